//! The raft layer: openraft wired to sled (log, vote, snapshots) and tonic (RPCs).
//!
//! belfry replicates one log of [`belfry_core::Command`]s with openraft 0.9 (the Raft paper's
//! leader election, log replication and joint-consensus membership changes, §5 and §6). The
//! state machine is [`belfry_core::State`], held in memory and rebuilt at start from the last
//! snapshot plus the committed log entries after it: openraft re-applies those itself when the
//! log store reports a saved committed index, which [`log_store::LogStore`] persists.
//!
//! Durability rules this module keeps (see the openraft storage docs):
//! - appended entries are fsynced (`flush_async`) before openraft is told they are on disk;
//! - the vote is fsynced before `save_vote` returns;
//! - `last_purged_log_id` is written and fsynced before entries are removed;
//! - snapshots carry the applied log id and membership in the same record as the data.
//!
//! apply() runs on every node and only records state; sends happen in the leader's dispatcher
//! after its own proposal commits.
//!
//! # Left out
//! - The state machine is snapshotted whole, as one JSON document; a state of hundreds of
//!   thousands of jobs makes snapshots of tens of MiB, built under a read lock.
//! - A node whose data dir was wiped while still a member must be removed and re-added: it
//!   would come back with an empty log and vote, which openraft treats as a fatal inconsistency.

// openraft's trait methods return its own (large) StorageError; helpers return the same type
// rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use belfry_core::{Command, Response};

openraft::declare_raft_types!(
    /// belfry's raft types: commands in, responses out, nodes named by their gRPC address.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A raft node id.
pub type NodeId = u64;
/// Storage errors as openraft wants them.
pub type StorageError = openraft::StorageError<NodeId>;

/// Wraps any error as a storage IO error on `subject`, for `?` in storage code.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}
