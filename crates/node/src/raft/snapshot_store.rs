//! The current snapshot in sled: one record holding its meta and its bytes.
//!
//! The record is framed: a 4-byte big-endian length, the meta as JSON, then the snapshot's
//! bytes as they are. Builds before this one stored a JSON document whose bytes were a JSON
//! array of numbers (up to four bytes per byte, and a second copy in memory to parse); such a
//! record, under its old key, is still read, and the next save replaces it.

use std::sync::Arc;

use openraft::{BasicNode, ErrorSubject, ErrorVerb, SnapshotMeta};
use serde::Deserialize;

use crate::flusher::Flusher;

use super::{io_err, NodeId, StorageError};

/// The framed record.
const CURRENT: &[u8] = b"current.v2";
/// The JSON record of earlier builds.
const LEGACY: &[u8] = b"current";

type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The record of earlier builds.
#[derive(Deserialize)]
struct LegacySnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// Where the current snapshot is kept. Cheap to clone.
#[derive(Clone)]
pub struct SnapshotStore {
    tree: sled::Tree,
    flusher: Arc<Flusher>,
}

impl SnapshotStore {
    /// The store in `db`'s `snapshots` tree.
    pub fn open(db: &sled::Db, flusher: Arc<Flusher>) -> Result<SnapshotStore, StorageError> {
        let tree = db.open_tree("snapshots").map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?;
        Ok(SnapshotStore { tree, flusher })
    }

    /// The current snapshot's meta and bytes, if there is one.
    pub fn load(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError> {
        let read_err = |e: String| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, std::io::Error::other(e));
        if let Some(record) = self.tree.get(CURRENT).map_err(|e| read_err(e.to_string()))? {
            return decode(&record).map(Some).map_err(read_err);
        }
        match self.tree.get(LEGACY).map_err(|e| read_err(e.to_string()))? {
            Some(record) => {
                let legacy: LegacySnapshot = serde_json::from_slice(&record).map_err(|e| read_err(e.to_string()))?;
                Ok(Some((legacy.meta, legacy.data)))
            }
            None => Ok(None),
        }
    }

    /// Makes `data` the current snapshot, durably, in place of any earlier one.
    pub async fn save(&self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let record = encode(meta, data).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        // No `apply_batch` (see docs/ARCHITECTURE.md, "Storage"): the new record goes in first,
        // so a crash between the two leaves both, and `load` prefers the new one.
        self.tree.insert(CURRENT, record).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.tree.remove(LEGACY).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.flusher.flush().await.map_err(|e| io_err(subject, ErrorVerb::Write, e))?;
        Ok(())
    }
}

fn encode(meta: &Meta, data: &[u8]) -> serde_json::Result<Vec<u8>> {
    let meta = serde_json::to_vec(meta)?;
    let len = u32::try_from(meta.len()).map_err(serde::ser::Error::custom)?;
    let mut record = Vec::with_capacity(4 + meta.len() + data.len());
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&meta);
    record.extend_from_slice(data);
    Ok(record)
}

fn decode(record: &[u8]) -> Result<(Meta, Vec<u8>), String> {
    let (len, rest) = record.split_first_chunk::<4>().ok_or("snapshot record cut short")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err("snapshot record's meta cut short".into());
    }
    let (meta, data) = rest.split_at(len);
    let meta = serde_json::from_slice(meta).map_err(|e| format!("bad snapshot meta: {e}"))?;
    Ok((meta, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, StoredMembership};

    use super::*;

    fn meta() -> Meta {
        Meta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 250)),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-1-250".into(),
        }
    }

    fn store() -> (sled::Db, SnapshotStore) {
        let db = sled::Config::new().temporary(true).open().expect("temporary sled");
        let store = SnapshotStore::open(&db, Arc::new(Flusher::new(db.clone()))).expect("store");
        (db, store)
    }

    #[tokio::test]
    async fn a_saved_snapshot_loads_as_it_was_and_replaces_the_last() {
        let (_db, store) = store();
        assert!(store.load().expect("load").is_none());
        store.save(&meta(), b"first").await.expect("save");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        store.save(&meta(), &data).await.expect("save");
        let (loaded_meta, loaded) = store.load().expect("load").expect("a snapshot");
        assert_eq!(loaded_meta, meta());
        assert_eq!(loaded, data);
    }

    #[tokio::test]
    async fn a_snapshot_of_an_earlier_build_still_loads_and_the_next_save_replaces_it() {
        let (db, store) = store();
        let legacy = serde_json::json!({ "meta": meta(), "data": b"old state".to_vec() });
        db.open_tree("snapshots").unwrap().insert(LEGACY, serde_json::to_vec(&legacy).unwrap()).unwrap();
        let (loaded_meta, loaded) = store.load().expect("load").expect("a snapshot");
        assert_eq!((loaded_meta, loaded.as_slice()), (meta(), &b"old state"[..]));

        store.save(&meta(), b"new state").await.expect("save");
        assert!(db.open_tree("snapshots").unwrap().get(LEGACY).unwrap().is_none(), "the old record is gone");
        assert_eq!(store.load().expect("load").expect("a snapshot").1, b"new state");
    }

    #[test]
    fn a_cut_record_is_an_error_not_a_panic() {
        let record = encode(&meta(), b"data").unwrap();
        for end in 0..6 {
            assert!(decode(&record[..end]).is_err(), "cut at {end}");
        }
        assert!(decode(&record).is_ok());
    }
}
