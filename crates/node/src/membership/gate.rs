//! One membership change at a time on the leader. openraft refuses a change while another
//! is uncommitted, but an add spends most of its time before that (waiting for its learner),
//! where a second change would interleave with it; the gate refuses that second change with
//! a clear conflict instead.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::{MembershipError, Op};
use crate::raft::NodeId;

/// The change running on this node, if any.
#[derive(Default)]
pub struct Changes {
    slot: watch::Sender<Option<Running>>,
    next: AtomicU64,
}

struct Running {
    seq: u64,
    what: String,
    /// The node an add is waiting for; only such a change can be cancelled.
    adding: Option<NodeId>,
    cancel: watch::Sender<bool>,
}

/// Holds the gate until dropped.
pub struct ChangeGuard<'a> {
    changes: &'a Changes,
    seq: u64,
    cancelled: watch::Receiver<bool>,
}

impl ChangeGuard<'_> {
    /// Resolves once a forced removal has cancelled this change.
    pub async fn cancelled(&mut self) {
        if self.cancelled.wait_for(|c| *c).await.is_err() {
            // The sender lives in the slot until this guard drops: never reached while held.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        let seq = self.seq;
        self.changes.slot.send_if_modified(|slot| {
            let mine = slot.as_ref().is_some_and(|r| r.seq == seq);
            if mine {
                *slot = None;
            }
            mine
        });
    }
}

fn describe(op: &Op) -> String {
    match op {
        Op::Add { id, grpc_addr } => format!("adding node {id} at {grpc_addr}"),
        Op::Remove { id, .. } => format!("removing node {id}"),
        Op::Transfer { to: Some(to) } => format!("transferring leadership to node {to}"),
        Op::Transfer { to: None } => "transferring leadership".into(),
    }
}

impl Changes {
    /// Starts `op`, or refuses it with [`MembershipError::Conflict`] while another runs.
    pub fn begin(&self, op: &Op) -> Result<ChangeGuard<'_>, MembershipError> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (cancel, cancelled) = watch::channel(false);
        let adding = match op {
            Op::Add { id, .. } => Some(*id),
            _ => None,
        };
        let mut running = Some(Running { seq, what: describe(op), adding, cancel });
        let mut busy = None;
        self.slot.send_if_modified(|slot| match slot {
            Some(other) => {
                busy = Some(other.what.clone());
                false
            }
            None => {
                *slot = running.take();
                true
            }
        });
        match busy {
            Some(what) => Err(MembershipError::Conflict(format!(
                "another membership change is in progress ({what}); try again once it has finished"
            ))),
            None => Ok(ChangeGuard { changes: self, seq, cancelled }),
        }
    }

    /// Cancels the running change if it is an add waiting for its learner; returns the node
    /// it was adding.
    pub fn cancel_add(&self) -> Option<NodeId> {
        let slot = self.slot.borrow();
        let running = slot.as_ref()?;
        let id = running.adding?;
        running.cancel.send_replace(true);
        Some(id)
    }

    /// Resolves once no change runs.
    pub async fn idle(&self) {
        let mut rx = self.slot.subscribe();
        let _ = rx.wait_for(Option::is_none).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn add(id: NodeId) -> Op {
        Op::Add { id, grpc_addr: format!("127.0.0.1:{}", 7200 + id) }
    }

    #[test]
    fn a_second_change_is_refused_while_one_runs() {
        let changes = Changes::default();
        let first = changes.begin(&add(4)).expect("first change");
        match changes.begin(&Op::Remove { id: 2, force: false }) {
            Err(MembershipError::Conflict(m)) => assert!(m.contains("adding node 4"), "{m}"),
            other => panic!("expected a conflict, got {:?}", other.err()),
        }
        drop(first);
        assert!(changes.begin(&Op::Transfer { to: None }).is_ok(), "the gate opens when the change ends");
    }

    #[tokio::test]
    async fn cancelling_an_add_wakes_it_and_only_an_add_can_be_cancelled() {
        let changes = Changes::default();
        {
            let _transfer = changes.begin(&Op::Transfer { to: Some(2) }).expect("transfer");
            assert_eq!(changes.cancel_add(), None);
        }
        let mut guard = changes.begin(&add(5)).expect("add");
        assert_eq!(changes.cancel_add(), Some(5));
        tokio::time::timeout(Duration::from_secs(1), guard.cancelled()).await.expect("woken");
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), changes.idle()).await.expect("idle");
    }
}
