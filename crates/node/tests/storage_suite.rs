//! openraft's own storage test suite against belfry's sled log store and state machine:
//! logs, vote, purge, truncation, membership, snapshots, apply.

use std::sync::Arc;

use belfry_node::flusher::Flusher;
use belfry_node::raft::log_store::LogStore;
use belfry_node::raft::state_machine::StateMachineStore;
use belfry_node::raft::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};

struct SledStores;

fn storage_error(e: impl std::fmt::Display) -> StorageError {
    openraft::StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, std::io::Error::other(e.to_string()))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SledStores {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(storage_error)?;
        let db = sled::Config::new().path(dir.path()).flush_every_ms(None).open().map_err(storage_error)?;
        let flusher = Arc::new(Flusher::new(db.clone()));
        let log = LogStore::open(&db, flusher.clone()).map_err(storage_error)?;
        let sm = StateMachineStore::open(&db, &dir.path().join("snapshots"), &flusher).await?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(SledStores) {
        panic!("openraft storage suite failed: {e}");
    }
}
