//! The state machine: [`belfry_core::State`] in memory, snapshots in sled.
//!
//! apply() cannot fail for any entry the API, a worker or a target can produce: every value is
//! bounded at validation and clamped where it is read (crates/core, and its property test
//! `apply_never_panics`). Should a replica still meet an entry it cannot apply (a bug), it must
//! not go on: its state may be half-changed, and skipping the entry would fork it from the
//! others. [`apply_guarded`] turns the panic into a storage error, which stops raft on this
//! node, and records why in [`Shared::halted`]; the node then exits with that reason instead
//! of crash-looping in silence. The entry stays in the log, so a restart stops at it again,
//! with the same message, until a fixed build applies it.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use belfry_core::{Command, Data, Response, State};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::flusher::Flusher;

use super::snapshot_store::SnapshotStore;
use super::{io_err, NodeId, StorageError, TypeConfig};

/// The applied state with the log position it reflects.
#[derive(Debug)]
pub struct Applied {
    /// The jobs and fires.
    pub state: State,
    /// The last log entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    pub membership: StoredMembership<NodeId, BasicNode>,
}

/// The applied state, shared between raft (writer) and the API, ticker and metrics (readers).
#[derive(Debug)]
pub struct Shared {
    applied: RwLock<Applied>,
    /// Woken after every apply, so the ticker can re-plan when jobs change.
    pub changed: Notify,
    /// Why this replica stopped applying, once it has (see the module docs).
    halted: Mutex<Option<String>>,
}

impl Shared {
    /// Read access. A std lock: it is never held across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Why this replica stopped applying entries, if it has.
    pub fn halted(&self) -> Option<String> {
        self.halted.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn halt(&self, why: String) {
        self.halted.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
    }
}

/// Runs `apply` for the entry at `index`, turning a panic into the reason the replica must
/// stop. Nothing after a panic is trusted: the caller stops applying.
pub fn apply_guarded(index: u64, kind: &str, apply: impl FnOnce() -> Response) -> Result<Response, String> {
    catch_unwind(AssertUnwindSafe(apply)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!(
            "log entry {index} ({kind}) cannot be applied: {message}. This node stops applying so that its \
             state cannot fork from the other replicas; the entry stays in the log and a restart stops here \
             again until a build that applies it runs"
        )
    })
}

/// The command's name as it appears in the log (`type`), for the halt message.
fn kind(command: &Command) -> &'static str {
    match command {
        Command::CreateJob { .. } => "create_job",
        Command::CreateJobs { .. } => "create_jobs",
        Command::ReplaceJob { .. } => "replace_job",
        Command::DeleteJob { .. } => "delete_job",
        Command::PauseJob { .. } => "pause_job",
        Command::ResumeJob { .. } => "resume_job",
        Command::TriggerJob { .. } => "trigger_job",
        Command::Fire { .. } => "fire",
        Command::Complete { .. } => "complete",
        Command::Requeue { .. } => "requeue",
        Command::RequeueDeadLetters { .. } => "requeue_dead_letters",
        Command::PurgeDeadLetters { .. } => "purge_dead_letters",
        Command::Restore { .. } => "restore",
        Command::CreateToken { .. } => "create_token",
        Command::RevokeToken { .. } => "revoke_token",
    }
}

/// The snapshot document: data, applied position and membership in one record.
#[derive(Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    data: Data,
}

/// [`SnapshotBody`] borrowed from the live state, so building a snapshot copies nothing but
/// the JSON it writes.
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    last_applied: Option<LogId<NodeId>>,
    membership: &'a StoredMembership<NodeId, BasicNode>,
    data: &'a Data,
}

/// openraft's view of the state machine. Cheap to clone.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
    snapshots: SnapshotStore,
}

impl StateMachineStore {
    /// Opens the store, restoring the state from the last snapshot (in `snapshot_dir`, or in
    /// `db` for a snapshot of an earlier build). openraft then re-applies the committed entries
    /// after it.
    pub async fn open(
        db: &sled::Db,
        snapshot_dir: &Path,
        flusher: &Flusher,
    ) -> Result<StateMachineStore, StorageError> {
        let snapshots = SnapshotStore::open(db, snapshot_dir, flusher).await?;
        let applied = match snapshots.read_current()? {
            Some((_, document)) => restore(document)?,
            None => Applied { state: State::default(), last_applied: None, membership: StoredMembership::default() },
        };
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                applied: RwLock::new(applied),
                changed: Notify::new(),
                halted: Mutex::new(None),
            }),
            snapshots,
        })
    }

    /// The current snapshot's size in bytes, kept up to date.
    pub fn snapshot_bytes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.snapshots.size()
    }

    /// The shared applied state.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Applied> {
        self.shared.applied.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads a snapshot document as it streams in: nothing holds the whole of it. (A concrete
/// reader: serde_json reads byte by byte, and a `dyn Read` would cost a call per byte.)
fn restore<R: Read>(document: R) -> Result<Applied, StorageError> {
    let body: SnapshotBody =
        serde_json::from_reader(document).map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
    Ok(Applied { state: State::from_data(body.data), last_applied: body.last_applied, membership: body.membership })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    /// Writes the applied state into the snapshot file as it serializes (module docs of
    /// `snapshot_store`), on the blocking pool: with a large state this takes seconds.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (shared, store) = (self.shared.clone(), self.snapshots.clone());
        let built = tokio::task::spawn_blocking(move || {
            let applied = shared.read();
            let snapshot_id = match applied.last_applied {
                Some(id) => format!("{}-{}", id.leader_id, id.index),
                None => "empty".to_string(),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            let body = SnapshotBodyRef {
                last_applied: applied.last_applied,
                membership: &applied.membership,
                data: applied.state.data(),
            };
            let file = store.build(&meta, |out| serde_json::to_writer(out, &body).map_err(std::io::Error::from))?;
            Ok::<_, StorageError>((meta, file))
        })
        .await
        .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        let (meta, file) = built?;
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
    {
        if let Some(why) = self.shared.halted() {
            return Err(io_err(ErrorSubject::StateMachine, ErrorVerb::Write, std::io::Error::other(why)));
        }
        let mut responses = Vec::new();
        let mut halt = None;
        {
            let mut applied = self.write();
            for entry in entries {
                let response = match entry.payload {
                    EntryPayload::Blank => Response::None,
                    EntryPayload::Normal(command) => {
                        let (index, kind) = (entry.log_id.index, kind(&command));
                        match apply_guarded(index, kind, || applied.state.apply(index, command)) {
                            Ok(response) => response,
                            Err(why) => {
                                halt = Some((entry.log_id, why));
                                break;
                            }
                        }
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::None
                    }
                };
                applied.last_applied = Some(entry.log_id);
                responses.push(response);
            }
        }
        self.shared.changed.notify_waiters();
        if let Some((log_id, why)) = halt {
            tracing::error!(index = log_id.index, reason = %why, "state machine halted");
            self.shared.halt(why.clone());
            return Err(io_err(ErrorSubject::Apply(log_id), ErrorVerb::Write, std::io::Error::other(why)));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        Ok(Box::new(tokio::fs::File::from_std(self.snapshots.begin_receiving()?)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let received = snapshot.into_std().await;
        let (store, meta) = (self.snapshots.clone(), meta.clone());
        let restored = tokio::task::spawn_blocking(move || store.install_received(&meta, received, restore))
            .await
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))??;
        *self.write() = restored;
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.snapshots.current_for_sending().await?.map(|(meta, file)| Snapshot { meta, snapshot: Box::new(file) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_that_panics_becomes_a_halt_reason_naming_it() {
        let why = apply_guarded(42, "complete", || panic!("DateTime + TimeDelta overflowed")).unwrap_err();
        assert!(why.contains("log entry 42 (complete)"), "{why}");
        assert!(why.contains("DateTime + TimeDelta overflowed"), "{why}");
        assert_eq!(apply_guarded(7, "fire", || Response::Deleted), Ok(Response::Deleted));
    }

    #[test]
    fn a_halted_replica_keeps_its_first_reason() {
        let shared = Shared {
            applied: RwLock::new(Applied {
                state: State::default(),
                last_applied: None,
                membership: StoredMembership::default(),
            }),
            changed: Notify::new(),
            halted: Mutex::new(None),
        };
        assert_eq!(shared.halted(), None);
        shared.halt("first".into());
        shared.halt("second".into());
        assert_eq!(shared.halted().as_deref(), Some("first"));
    }
}
