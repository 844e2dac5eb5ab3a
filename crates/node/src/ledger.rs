//! The worker's delivery ledger: a durable record, per `(key, attempt)`, that a send started
//! and how it ended. Written before and after every send, so a repeated `Deliver` of a finished
//! attempt returns the recorded outcome instead of sending again, and a new leader can ask
//! whether an attempt it inherited was sent (`QueryDelivery`). Bounded by generations
//! ([`Ledger::rotate`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::flusher::Flusher;

use belfry_core::Attempt;
use serde::{Deserialize, Serialize};

/// How long a recorded outcome may wait for the fsync it shares with others.
pub const OUTCOME_LINGER: Duration = Duration::from_millis(20);

/// What the ledger knows of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The send was about to start at this instant (unix ms).
    Started { at_ms: i64 },
    /// The send finished with this outcome.
    Finished { attempt: Attempt },
}

/// The ledger, in sled trees of generations (`ledger.<n>`), newest first.
///
/// A record is needed while its attempt is in flight or still dispatched in this node's
/// replica: until then a leader may ask about it, or repeat the `Deliver`. Once the outcome is
/// committed nobody asks again, so the ledger would grow by two records a delivery for ever.
/// Instead [`Ledger::rotate`] starts a new generation every [`ROTATE_EVERY`] and drops the
/// oldest of three, carrying into the newest the few records of it still needed: the ledger
/// holds about two rotations of records whatever the node has delivered, and costs no write a
/// record to prune.
pub struct Ledger {
    db: sled::Db,
    flusher: Arc<Flusher>,
    /// `(generation, tree)`, newest first. Writers hold the read lock while they insert, so once
    /// [`Ledger::rotate`] has put a new generation in front, the older ones no longer change.
    trees: RwLock<Vec<(u64, sled::Tree)>>,
    // A std Mutex: held only to insert, remove or test, never across an `.await`.
    in_flight: Mutex<HashSet<String>>,
}

/// How often the ledger starts a generation (and drops the oldest).
pub const ROTATE_EVERY: Duration = Duration::from_secs(10);
/// Generations kept: a record lives two to three rotations unless carried.
const GENERATIONS: usize = 3;
/// The tree of a ledger from before generations: read as generation 0.
const LEGACY_TREE: &[u8] = b"ledger";
const PREFIX: &str = "ledger.";

fn id(key: &str, attempt: u32) -> String {
    format!("{key}#{attempt}")
}

/// The `(key, attempt)` of a record id.
fn parse_id(id: &[u8]) -> Option<(&str, u32)> {
    let (key, attempt) = std::str::from_utf8(id).ok()?.rsplit_once('#')?;
    Some((key, attempt.parse().ok()?))
}

fn tree_name(generation: u64) -> String {
    format!("{PREFIX}{generation}")
}

fn generation_of(name: &[u8]) -> Option<u64> {
    if name == LEGACY_TREE {
        return Some(0);
    }
    std::str::from_utf8(name).ok()?.strip_prefix(PREFIX)?.parse().ok()
}

impl Ledger {
    /// Opens the ledger in `db`: every generation found (a ledger from before generations is
    /// the oldest), or a first one.
    pub fn open(db: &sled::Db, flusher: Arc<Flusher>) -> Result<Ledger, sled::Error> {
        let mut trees = Vec::new();
        for name in db.tree_names() {
            if let Some(generation) = generation_of(&name) {
                trees.push((generation, db.open_tree(&name)?));
            }
        }
        trees.sort_by_key(|(generation, _)| std::cmp::Reverse(*generation));
        if trees.is_empty() {
            trees.push((1, db.open_tree(tree_name(1))?));
        }
        Ok(Ledger { db: db.clone(), flusher, trees: RwLock::new(trees), in_flight: Mutex::new(HashSet::new()) })
    }

    fn trees(&self) -> std::sync::RwLockReadGuard<'_, Vec<(u64, sled::Tree)>> {
        self.trees.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of an attempt, if any: the newest generation's. A record that cannot be
    /// decoded (a torn write, a record from an incompatible build) reads as started at an
    /// unknown instant: the send may have left, and reporting it as never sent would let the
    /// leader send it again.
    pub fn get(&self, key: &str, attempt: u32) -> Result<Option<Record>, sled::Error> {
        let id = id(key, attempt);
        let trees = self.trees();
        for (_, tree) in trees.iter() {
            if let Some(bytes) = tree.get(&id)? {
                return Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(key, attempt, error = %e, "unreadable ledger record; counted as started");
                    Record::Started { at_ms: 0 }
                })));
            }
        }
        Ok(None)
    }

    /// Whether this process is sending the attempt right now.
    pub fn in_flight(&self, key: &str, attempt: u32) -> bool {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains(&id(key, attempt))
    }

    /// Marks the attempt as in flight in this process; false if it already was.
    pub fn claim(&self, key: &str, attempt: u32) -> bool {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id(key, attempt))
    }

    /// How many attempts this process is sending right now.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Ends [`Ledger::claim`].
    pub fn release(&self, key: &str, attempt: u32) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id(key, attempt));
    }

    /// Durably records `record` (fsynced before returning; the fsync is shared with every
    /// write that waits for one at the same time).
    #[cfg(test)]
    async fn put(&self, key: &str, attempt: u32, record: &Record) -> Result<(), sled::Error> {
        self.insert(key, attempt, record)?;
        self.flusher.flush().await
    }

    /// Records an outcome: readable at once, durable before returning, its fsync shared with
    /// every outcome recorded within [`OUTCOME_LINGER`]. Under a steady stream of sends this is
    /// one fsync per linger, not one per send; the outcome reaches the leader that much later,
    /// which only delays its commit (the send has happened).
    pub async fn put_outcome(&self, key: &str, attempt_no: u32, outcome: &Attempt) -> Result<(), sled::Error> {
        self.insert(key, attempt_no, &Record::Finished { attempt: outcome.clone() })?;
        self.flusher.flush_within(OUTCOME_LINGER).await
    }

    /// Durably records every `(key, attempt, record)` with one fsync.
    pub async fn put_many(&self, records: &[(&str, u32, Record)]) -> Result<(), sled::Error> {
        for (key, attempt, record) in records {
            self.insert(key, *attempt, record)?;
        }
        self.flusher.flush().await
    }

    fn insert(&self, key: &str, attempt: u32, record: &Record) -> Result<(), sled::Error> {
        let bytes = serde_json::to_vec(record).expect("ledger records serialize");
        let trees = self.trees();
        trees[0].1.insert(id(key, attempt), bytes)?;
        Ok(())
    }

    /// Starts a generation, and drops those past [`GENERATIONS`] once the records of theirs
    /// that are in flight or that `needed(key, attempt)` says are still needed are copied into
    /// the new one (unless a newer generation has a record of that attempt already) and made
    /// durable. Returns how many records were dropped and how many carried. On an error the
    /// old generations stay, to be dropped at the next rotation.
    pub async fn rotate(&self, needed: impl Fn(&str, u32) -> bool) -> Result<(usize, usize), sled::Error> {
        let (newest, newer, retired) = {
            let mut trees = self.trees.write().unwrap_or_else(|e| e.into_inner());
            let generation = trees[0].0 + 1;
            trees.insert(0, (generation, self.db.open_tree(tree_name(generation))?));
            let kept = GENERATIONS.min(trees.len());
            let newer: Vec<sled::Tree> = trees[1..kept].iter().map(|(_, t)| t.clone()).collect();
            (trees[0].1.clone(), newer, trees[kept..].to_vec())
        };
        let (mut dropped, mut carried) = (0, 0);
        for (_, tree) in &retired {
            for entry in tree.iter() {
                let (id, value) = entry?;
                let keep =
                    parse_id(&id).is_some_and(|(key, attempt)| self.in_flight(key, attempt) || needed(key, attempt));
                if !keep {
                    dropped += 1;
                    continue;
                }
                let mut superseded = false;
                for t in &newer {
                    superseded |= t.contains_key(&id)?;
                }
                // Only where the newest has none: a writer may have just recorded more.
                if !superseded && newest.compare_and_swap(&id, None as Option<&[u8]>, Some(value))?.is_ok() {
                    carried += 1;
                } else {
                    dropped += 1;
                }
            }
        }
        if retired.is_empty() {
            return Ok((0, 0));
        }
        self.flusher.flush().await?;
        self.trees.write().unwrap_or_else(|e| e.into_inner()).truncate(GENERATIONS);
        for (generation, _) in &retired {
            let name = if *generation == 0 { LEGACY_TREE.to_vec() } else { tree_name(*generation).into_bytes() };
            self.db.drop_tree(name)?;
        }
        Ok((dropped, carried))
    }

    /// Records in every generation (it counts them all).
    #[cfg(test)]
    fn records(&self) -> usize {
        self.trees().iter().map(|(_, t)| t.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_in(db: &sled::Db) -> Ledger {
        Ledger::open(db, Arc::new(Flusher::new(db.clone()))).expect("ledger")
    }

    fn ledger() -> Ledger {
        ledger_in(&sled::Config::new().temporary(true).open().expect("temporary sled"))
    }

    fn started(ms: i64) -> Record {
        Record::Started { at_ms: ms }
    }

    #[test]
    fn an_unreadable_record_counts_as_started_never_as_unknown() {
        let ledger = ledger();
        ledger.trees()[0].1.insert(id("7:1000", 1), b"{not json".to_vec()).expect("insert");
        assert_eq!(ledger.get("7:1000", 1).expect("get"), Some(started(0)));
        assert_eq!(ledger.get("7:1000", 2).expect("get"), None, "no record is still no record");
    }

    #[tokio::test]
    async fn a_recorded_outcome_reads_back() {
        let ledger = ledger();
        ledger.put("7:1000", 1, &started(5)).await.expect("put");
        assert_eq!(ledger.get("7:1000", 1).expect("get"), Some(started(5)));
    }

    #[tokio::test]
    async fn rotation_drops_records_no_longer_needed_and_carries_the_others() {
        let ledger = ledger();
        for key in ["1:needed", "1:done", "1:sending"] {
            ledger.put(key, 1, &started(1)).await.expect("put");
        }
        assert!(ledger.claim("1:sending", 1));
        let needed = |key: &str, _: u32| key == "1:needed";
        // Two rotations keep every generation; the third retires the first.
        assert_eq!(ledger.rotate(needed).await.expect("rotate"), (0, 0));
        assert_eq!(ledger.rotate(needed).await.expect("rotate"), (0, 0));
        assert_eq!(ledger.rotate(needed).await.expect("rotate"), (1, 2));
        assert_eq!(ledger.get("1:done", 1).expect("get"), None);
        assert_eq!(ledger.get("1:needed", 1).expect("get"), Some(started(1)));
        assert_eq!(ledger.get("1:sending", 1).expect("get"), Some(started(1)), "in flight: kept");
        assert_eq!(ledger.records(), 2);

        // Once nothing needs them, they go too, and the ledger is empty again.
        ledger.release("1:sending", 1);
        for _ in 0..GENERATIONS {
            ledger.rotate(|_, _| false).await.expect("rotate");
        }
        assert_eq!(ledger.records(), 0);
        assert_eq!(ledger.trees().len(), GENERATIONS);
    }

    #[tokio::test]
    async fn a_carried_record_never_hides_a_newer_one() {
        let ledger = ledger();
        let outcome = Attempt {
            number: 1,
            worker: 2,
            started_at: chrono::Utc::now(),
            finished_at: chrono::Utc::now(),
            class: belfry_core::ResultClass::Success,
            http_status: Some(200),
            error: None,
            body_excerpt: None,
            retry_after_ms: None,
        };
        let finished = Record::Finished { attempt: outcome.clone() };
        ledger.put("1:a", 1, &started(1)).await.expect("put");
        ledger.rotate(|_, _| true).await.expect("rotate");
        // The outcome lands in the second generation, the start stays in the first.
        ledger.put_outcome("1:a", 1, &outcome).await.expect("put");
        ledger.rotate(|_, _| true).await.expect("rotate");
        ledger.rotate(|_, _| true).await.expect("rotate");
        assert_eq!(ledger.get("1:a", 1).expect("get"), Some(finished.clone()), "the start is not carried over it");
        for _ in 0..GENERATIONS {
            ledger.rotate(|_, _| true).await.expect("rotate");
        }
        assert_eq!(ledger.get("1:a", 1).expect("get"), Some(finished), "the outcome is carried while needed");
        assert_eq!(ledger.records(), 1);
    }

    #[tokio::test]
    async fn a_ledger_from_before_generations_is_read_then_retired() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("sled");
        let legacy = db.open_tree(LEGACY_TREE).expect("tree");
        legacy.insert(id("1:old", 1), serde_json::to_vec(&started(7)).expect("json")).expect("insert");
        let ledger = ledger_in(&db);
        assert_eq!(ledger.get("1:old", 1).expect("get"), Some(started(7)));
        for _ in 0..GENERATIONS {
            ledger.rotate(|_, _| false).await.expect("rotate");
        }
        assert_eq!(ledger.get("1:old", 1).expect("get"), None);
        assert!(!db.tree_names().iter().any(|n| n.as_ref() == LEGACY_TREE), "the old tree is dropped");

        // Reopened, the ledger finds its generations newest first and writes to the newest.
        ledger.put("1:new", 1, &started(8)).await.expect("put");
        drop(ledger);
        let again = ledger_in(&db);
        let generations: Vec<u64> = again.trees().iter().map(|(g, _)| *g).collect();
        assert_eq!(generations, [3, 2, 1]);
        assert_eq!(again.get("1:new", 1).expect("get"), Some(started(8)));
    }
}
