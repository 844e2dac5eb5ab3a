//! The raft layer: openraft wired to sled (log, vote), snapshot files and tonic (RPCs).
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
//! - snapshots carry the applied log id and membership in the same file as the data, which is
//!   synced before it is renamed into place ([`snapshot_store`]).
//!
//! apply() runs on every node and only records state; sends happen in the leader's dispatcher
//! after its own proposal commits.
//!
//! # Sizes and timeouts
//! Every raft RPC is bounded so that no entry size the API accepts can stall replication (a
//! batch that cannot arrive within its timeout is re-sent forever while heartbeats queue
//! behind it, and followers start elections):
//! - an AppendEntries carries at most [`MAX_APPEND_ENTRIES`] entries and, past its first
//!   entry, at most [`MAX_APPEND_BYTES`] of them: the log reader stops there, and the network
//!   answers openraft's `PayloadTooLarge` with an entries hint for a request that still encodes
//!   larger. A single entry is always sent whole, whatever its size;
//! - openraft 0.9.25 gives every AppendEntries `heartbeat_interval` and nothing else (its
//!   replication loop wraps the call in that timeout, and `RPCOption::hard_ttl` is the same
//!   value); raising it would also slow the tick that drives elections. So the network sends
//!   each batch from a task of its own with a deadline sized for the payload
//!   ([`network::RpcTimeouts`]), and openraft's retry of the same range joins that request
//!   instead of sending the batch again. Heartbeats carry no entries and keep the short
//!   deadline;
//! - snapshots travel in [`SNAPSHOT_CHUNK_BYTES`] chunks framed as raw bytes ([`chunk`]),
//!   each with [`SNAPSHOT_RPC_TIMEOUT`] (the last chunk includes installing the snapshot);
//! - a learner counts as caught up within `learner_max_lag` entries of the leader's log
//!   (`crate::membership`), which is also openraft's `replication_lag_threshold`;
//! - a follower that lacks committed entries calls no elections ([`campaign`]), so one that
//!   waits for a snapshot cannot depose the leader sending it.
//!
//! # Left out
//! - The state machine is snapshotted whole, as one JSON document written from the live state
//!   into its file under the state's read lock: no copy of the state and no buffer of the
//!   document, but entries wait to be applied while it is written (some 4 s for a million idle
//!   jobs). Snapshots grow apart as the state grows ([`compaction`]), so that pause stays rare.
//! - A node whose data dir was wiped while still a member must be removed and re-added: it
//!   would come back with an empty log and vote, which openraft treats as a fatal inconsistency.
//! - A node that predates framed snapshot chunks cannot read one: during a rolling upgrade,
//!   a follower that needs a snapshot gets it once the leader and it run the same version.

// openraft's trait methods return its own (large) StorageError; helpers return the same type
// rather than boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod campaign;
pub mod chunk;
pub mod compaction;
pub mod log_store;
pub mod network;
mod snapshot_store;
pub mod state_machine;

use std::time::Duration;

use belfry_core::{Command, Response};
use openraft::SnapshotPolicy;

use crate::config::Config;
use network::MAX_MESSAGE_BYTES;

/// Most entries in one AppendEntries (openraft's `max_payload_entries`, default 300). Enough
/// to carry a burst of small writes per round trip; a lagging follower catches up at this
/// many entries per RPC.
pub const MAX_APPEND_ENTRIES: u64 = 64;

/// Byte budget of the entries in one AppendEntries. At 100 Mbit/s a full batch takes about
/// 85 ms, well inside the 250 ms default heartbeat interval openraft times appends out at;
/// entries of the largest job spec (about 100 KiB) still go ten at a time.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// Snapshot chunk size: far below [`MAX_MESSAGE_BYTES`] with its frame ([`chunk`]), and
/// short on any link, so a chunk never holds the connection heartbeats share for long.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Deadline of one snapshot chunk RPC. The last chunk includes decoding and installing the
/// whole snapshot on the follower: seconds, some 8 s for a million jobs.
pub const SNAPSHOT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

// The budgets above must fit the gRPC message limit, with room for the request around them.
const _: () = assert!(SNAPSHOT_CHUNK_BYTES + 64 * 1024 <= MAX_MESSAGE_BYTES);
const _: () = assert!(2 * MAX_APPEND_BYTES <= MAX_MESSAGE_BYTES);

openraft::declare_raft_types!(
    /// belfry's raft types: commands in, responses out, nodes named by their gRPC address.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A raft node id.
pub type NodeId = u64;
/// Storage errors as openraft wants them.
pub type StorageError = openraft::StorageError<NodeId>;

/// openraft's configuration for a node configured as `config`.
pub fn raft_config(config: &Config) -> Result<openraft::Config, openraft::ConfigError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let election_min = ms(config.election_timeout);
    openraft::Config {
        cluster_name: "belfry".into(),
        heartbeat_interval: ms(config.heartbeat),
        election_timeout_min: election_min,
        election_timeout_max: election_min.saturating_mul(2),
        max_payload_entries: MAX_APPEND_ENTRIES,
        // Used by openraft only to decide when a blocking `add_learner` returns; belfry waits
        // for its learners itself, with the same threshold.
        replication_lag_threshold: config.learner_max_lag,
        // Snapshots are asked for by `compaction::run`, after a number of entries that grows
        // with the state.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: config.keep_logs,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES as u64,
        install_snapshot_timeout: ms(SNAPSHOT_RPC_TIMEOUT),
        ..Default::default()
    }
    .validate()
}

/// Wraps any error as a storage IO error on `subject`, for `?` in storage code.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}
