//! The worker's delivery ledger: a durable record, per `(key, attempt)`, that a send started
//! and how it ended. Written before and after every send, so a repeated `Deliver` of a finished
//! attempt returns the recorded outcome instead of sending again, and a new leader can ask
//! whether an attempt it inherited was sent (`QueryDelivery`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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

/// The ledger, in its own sled tree.
pub struct Ledger {
    flusher: Arc<Flusher>,
    tree: sled::Tree,
    // A std Mutex: held only to insert, remove or test, never across an `.await`.
    in_flight: Mutex<HashSet<String>>,
}

fn id(key: &str, attempt: u32) -> String {
    format!("{key}#{attempt}")
}

impl Ledger {
    /// Opens the ledger in `db`.
    pub fn open(db: &sled::Db, flusher: Arc<Flusher>) -> Result<Ledger, sled::Error> {
        Ok(Ledger { flusher, tree: db.open_tree("ledger")?, in_flight: Mutex::new(HashSet::new()) })
    }

    /// The record of an attempt, if any. A record that cannot be decoded (a torn write, a
    /// record from an incompatible build) reads as started at an unknown instant: the send may
    /// have left, and reporting it as never sent would let the leader send it again.
    pub fn get(&self, key: &str, attempt: u32) -> Result<Option<Record>, sled::Error> {
        let Some(bytes) = self.tree.get(id(key, attempt))? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(key, attempt, error = %e, "unreadable ledger record; counted as started");
            Record::Started { at_ms: 0 }
        })))
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
    pub async fn put(&self, key: &str, attempt: u32, record: &Record) -> Result<(), sled::Error> {
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
        self.tree.insert(id(key, attempt), bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        let db = sled::Config::new().temporary(true).open().expect("temporary sled");
        Ledger::open(&db, Arc::new(Flusher::new(db.clone()))).expect("ledger")
    }

    #[test]
    fn an_unreadable_record_counts_as_started_never_as_unknown() {
        let ledger = ledger();
        ledger.tree.insert(id("7:1000", 1), b"{not json".to_vec()).expect("insert");
        assert_eq!(ledger.get("7:1000", 1).expect("get"), Some(Record::Started { at_ms: 0 }));
        assert_eq!(ledger.get("7:1000", 2).expect("get"), None, "no record is still no record");
    }

    #[tokio::test]
    async fn a_recorded_outcome_reads_back() {
        let ledger = ledger();
        ledger.put("7:1000", 1, &Record::Started { at_ms: 5 }).await.expect("put");
        assert_eq!(ledger.get("7:1000", 1).expect("get"), Some(Record::Started { at_ms: 5 }));
    }
}
