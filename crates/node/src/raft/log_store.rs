//! The raft log and vote in sled: big-endian `u64` keys, so iteration order is index order.
//!
//! Entries are stored as the same JSON that goes on the wire, so the reader can bound a
//! replication batch by bytes ([`super::MAX_APPEND_BYTES`]) without encoding anything.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::flusher::Flusher;

use super::{io_err, NodeId, StorageError, TypeConfig, MAX_APPEND_BYTES};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// The raft log store. Cheap to clone: sled trees are shared handles.
#[derive(Clone)]
pub struct LogStore {
    flusher: Arc<Flusher>,
    log: sled::Tree,
    meta: sled::Tree,
    appended: Arc<AtomicU64>,
    sizes: EntrySizes,
}

/// The stored size of every entry appended since the node started, by index, kept in step
/// with truncation and purging: what [`super::compaction`] purges the log by.
pub type EntrySizes = Arc<Mutex<BTreeMap<u64, u64>>>;

impl LogStore {
    /// Opens the log in `db`.
    pub fn open(db: &sled::Db, flusher: Arc<Flusher>) -> Result<LogStore, sled::Error> {
        let (log, meta) = (db.open_tree("raft_log")?, db.open_tree("raft_meta")?);
        Ok(LogStore { flusher, log, meta, appended: Arc::new(AtomicU64::new(0)), sizes: EntrySizes::default() })
    }

    /// The sizes of the entries appended since the node started.
    pub fn entry_sizes(&self) -> EntrySizes {
        self.sizes.clone()
    }

    fn sizes(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of entries appended since the node started, as stored: what
    /// [`super::compaction`] weighs against the last snapshot.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    fn get_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(|e| io_err(subject.clone(), ErrorVerb::Read, e))? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| io_err(subject, ErrorVerb::Read, e)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.meta.insert(key, bytes).map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        self.flusher.flush().await.map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
        Ok(())
    }

    /// Removes `from..=to_inclusive`, highest index first when `from_top`, so a crash midway
    /// leaves a log without gaps (a truncated suffix, or a purged prefix).
    ///
    /// Single removes rather than a `sled::Batch`: in sled 0.34 `apply_batch` takes a global
    /// lock that can deadlock with a concurrent `flush_async`.
    fn remove_range(&self, from: u64, to_inclusive: u64, from_top: bool) -> Result<(), StorageError> {
        let keys: Vec<sled::IVec> = self
            .log
            .range(from.to_be_bytes()..=to_inclusive.to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let ordered: Box<dyn Iterator<Item = sled::IVec>> =
            if from_top { Box::new(keys.into_iter().rev()) } else { Box::new(keys.into_iter()) };
        for key in ordered {
            self.log.remove(key).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        }
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Result<Entry<TypeConfig>, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for item in self.log.range(start.to_be_bytes()..) {
            let (key, value) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0xff; 8]));
            if !range.contains(&index) {
                break;
            }
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// A replication batch: entries from `start` while they fit in [`MAX_APPEND_BYTES`] as
    /// stored, and always the first one, so an entry larger than the budget still goes out.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let mut bytes = 0usize;
        for item in self.log.range(start.to_be_bytes()..end.to_be_bytes()) {
            let (_, value) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            bytes = bytes.saturating_add(value.len());
            if !out.is_empty() && bytes > MAX_APPEND_BYTES {
                break;
            }
            out.push(decode(&value)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(LAST_PURGED, ErrorSubject::Store)?;
        let last = match self.log.last().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))? {
            Some((_, value)) => Some(decode(&value)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote, ErrorSubject::Vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError> {
        // Flushed: a node that restarts and finds itself leader of the same term (openraft
        // restores a committed vote without an election) answers read indexes from this value.
        // A stale one would let a read after a restart miss writes that were acknowledged.
        self.put_meta(COMMITTED, &committed, ErrorSubject::Store)?;
        self.flush(ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
    {
        // Entries are inserted one by one (see `remove_range` on sled batches); none counts as
        // written until the flush below completes and openraft is told so.
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            self.appended.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.sizes().insert(entry.log_id.index, bytes.len() as u64);
            self.log
                .insert(entry.log_id.index.to_be_bytes(), bytes)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        }
        let flushed = self.flusher.flush().await.map_err(std::io::Error::other);
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.sizes().split_off(&log_id.index);
        self.remove_range(log_id.index, u64::MAX, true)?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.put_meta(LAST_PURGED, &log_id, ErrorSubject::Store)?;
        self.flush(ErrorSubject::Store).await?;
        {
            let mut sizes = self.sizes();
            *sizes = sizes.split_off(&log_id.index.saturating_add(1));
        }
        self.remove_range(0, log_id.index, false)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().expect("sled");
        let store = LogStore::open(&db, Arc::new(Flusher::new(db.clone()))).expect("log store");
        (dir, store)
    }

    /// Stores entries 1..=n whose JSON is about `size` bytes each.
    fn fill(store: &LogStore, n: u64, size: usize) {
        for index in 1..=n {
            let entry: Entry<TypeConfig> = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(belfry_core::Command::DeleteJob { name: "x".repeat(size) }),
            };
            store.log.insert(index.to_be_bytes(), serde_json::to_vec(&entry).expect("encode")).expect("insert");
        }
    }

    async fn batch(store: &mut LogStore, start: u64, end: u64) -> Vec<u64> {
        let entries = store.limited_get_log_entries(start, end).await.expect("read");
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_byte_budget() {
        let (_dir, mut store) = store();
        fill(&store, 10, 300 * 1024);
        // Three entries of ~300 KiB fit in 1 MiB, a fourth does not.
        assert_eq!(batch(&mut store, 1, 11).await, vec![1, 2, 3]);
        assert_eq!(batch(&mut store, 4, 11).await, vec![4, 5, 6]);
    }

    #[tokio::test]
    async fn an_entry_over_the_budget_goes_alone() {
        let (_dir, mut store) = store();
        fill(&store, 3, MAX_APPEND_BYTES + 1);
        assert_eq!(batch(&mut store, 1, 4).await, vec![1]);
        assert_eq!(batch(&mut store, 2, 4).await, vec![2]);
    }

    #[tokio::test]
    async fn entry_sizes_follow_truncation_and_purging() {
        let (_dir, mut store) = store();
        fill(&store, 10, 100);
        store.sizes().extend((1..=10).map(|i| (i, 100)));
        let id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        store.truncate(id(8)).await.expect("truncate");
        store.purge(id(3)).await.expect("purge");
        assert_eq!(store.sizes().keys().copied().collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(batch(&mut store, 1, 11).await, vec![4, 5, 6, 7], "the log itself agrees");
    }

    #[tokio::test]
    async fn small_entries_fill_the_whole_range() {
        let (_dir, mut store) = store();
        fill(&store, 100, 100);
        assert_eq!(batch(&mut store, 1, 65).await, (1..65).collect::<Vec<_>>());
        assert!(batch(&mut store, 5, 5).await.is_empty());
        assert!(batch(&mut store, 7, 3).await.is_empty());
    }
}
