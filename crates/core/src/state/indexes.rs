//! The consistency check of the indexes: every index of [`State`] is derived from [`Data`], so a
//! state rebuilt from its data alone (as after a restart or a snapshot install) must hold the
//! very same indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;

use super::State;

/// How many differing entries a report shows per index.
const SHOWN: usize = 5;

impl State {
    /// Consistency check, for tests and for the node to run after a restore: rebuilds a state from
    /// this one's [`Data`](super::Data) ([`State::from_data`]) and compares every index with
    /// the one apply() maintained. `Err` names each index that differs and the entries at fault.
    pub fn check_indexes(&self) -> Result<(), String> {
        let fresh = State::from_data(self.data.clone());
        let reports = [
            compare("names", &sorted(&self.names), &sorted(&fresh.names)),
            compare("keys", &sorted(&self.keys), &sorted(&fresh.keys)),
            compare("due", &self.due, &fresh.due),
            compare("by_status", &self.by_status, &fresh.by_status),
            compare("retries", &self.retries, &fresh.retries),
            compare("history", &sorted(&self.history), &sorted(&fresh.history)),
            compare("expiry", &self.expiry, &fresh.expiry),
            compare("expiry_of", &sorted(&self.expiry_of), &sorted(&fresh.expiry_of)),
            (self.finished != fresh.finished)
                .then(|| format!("finished count {} differs from its data's {}", self.finished, fresh.finished)),
        ];
        let differ: Vec<String> = reports.into_iter().flatten().collect();
        if differ.is_empty() {
            Ok(())
        } else {
            Err(differ.join("; "))
        }
    }
}

/// A hash map's entries in key order, so two maps compare and print alike.
fn sorted<K: Ord + Clone, V: Clone>(map: &HashMap<K, V>) -> BTreeMap<K, V> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Compares two orderings of entries; `None` when they are equal.
fn compare<C, T>(name: &str, kept: &C, rebuilt: &C) -> Option<String>
where
    C: PartialEq + Entries<Item = T>,
    T: Debug + Ord,
{
    if kept == rebuilt {
        return None;
    }
    let (kept, rebuilt): (BTreeSet<T>, BTreeSet<T>) = (kept.entries(), rebuilt.entries());
    let extra: Vec<&T> = kept.difference(&rebuilt).take(SHOWN).collect();
    let missing: Vec<&T> = rebuilt.difference(&kept).take(SHOWN).collect();
    Some(format!("index {name} differs from its data: stale {extra:?}, missing {missing:?}"))
}

/// A collection seen as a set of printable entries.
trait Entries {
    type Item;
    fn entries(&self) -> BTreeSet<Self::Item>;
}

impl<T: Ord + Clone> Entries for BTreeSet<T> {
    type Item = T;
    fn entries(&self) -> BTreeSet<T> {
        self.clone()
    }
}

impl<K: Ord + Clone, V: Ord + Clone> Entries for BTreeMap<K, V> {
    type Item = (K, V);
    fn entries(&self) -> BTreeSet<(K, V)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
