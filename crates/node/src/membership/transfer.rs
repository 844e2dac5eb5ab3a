//! Leadership transfer. openraft 0.9 has none, so belfry builds one from what raft offers:
//! the leader holds new writes, waits until the target has its whole log, stops heartbeats
//! and tells the target to call an election once every voter's leader lease
//! (`election_timeout_max` since the last heartbeat) has run out. The target's log is
//! complete, so voters grant it; the other followers' own election timers (lease plus a
//! random election timeout) have not fired yet, so it is the only candidate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{invalid, probe, voters, MembershipError};
use crate::context::Context;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::TakeLeadershipRequest;
use crate::raft::NodeId;

/// How long the target may take to have the leader's whole log before the transfer starts.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Restores heartbeats when a transfer ends, however it ends.
struct Heartbeats<'a>(&'a Context);

impl Drop for Heartbeats<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
    }
}

/// Hands leadership to `to` (or the most caught-up reachable voter) and returns the new
/// leader. The caller holds the membership gate.
pub(super) async fn transfer_locked(ctx: &Context, to: Option<NodeId>) -> Result<NodeId, MembershipError> {
    let voters = voters(ctx);
    let me = ctx.id();
    let target = match to {
        Some(t) if t == me => return Ok(me),
        Some(t) if !voters.contains(&t) => return Err(invalid("to", format!("node {t} is not a voter"))),
        Some(t) => {
            let addr = ctx.member_addr(t).ok_or(MembershipError::NotFound(t))?;
            probe(ctx, t, &addr).await.map_err(|e| MembershipError::Unsafe(format!("node {t} is unreachable: {e}")))?;
            t
        }
        None => pick_target(ctx, &voters).await?,
    };
    let addr = ctx.member_addr(target).ok_or(MembershipError::NotFound(target))?;
    let term = ctx.term();
    let lease = ctx.config.election_timeout.saturating_mul(2);
    tracing::info!(node = me, term, to = target, "transferring leadership");

    let _hold = ctx.hold.hold();
    let mut metrics = ctx.raft.metrics();
    let caught_up = metrics.wait_for(|m| {
        let last = m.last_log_index;
        m.replication.as_ref().and_then(|r| r.get(&target)).is_some_and(|matched| matched.map(|l| l.index) >= last)
    });
    tokio::time::timeout(CATCH_UP, caught_up)
        .await
        .map_err(|_| MembershipError::Timeout(format!("node {target} did not catch up within {CATCH_UP:?}")))?
        .map_err(|e| MembershipError::Unavailable(e.to_string()))?;

    ctx.raft.runtime_config().heartbeat(false);
    let _heartbeats = Heartbeats(ctx);
    let ch = ctx.channels.get(target, &addr).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let elect_after = lease.saturating_add(Duration::from_millis(100));
    let elect_after_ms = u64::try_from(elect_after.as_millis()).unwrap_or(u64::MAX);
    ClusterClient::new(ch)
        .take_leadership(TakeLeadershipRequest { term, elect_after_ms })
        .await
        .map_err(|s| MembershipError::Unavailable(format!("node {target}: {}", s.message())))?;
    let took_over =
        metrics.wait_for(|m| m.current_term > term && m.current_leader.is_some() && m.current_leader != Some(me));
    let patience = lease.saturating_mul(4);
    let leader = tokio::time::timeout(patience, took_over)
        .await
        .map_err(|_| MembershipError::Timeout(format!("node {target} did not take over within {patience:?}")))?
        .map_err(|e| MembershipError::Unavailable(e.to_string()))?
        .current_leader
        .unwrap_or(target);
    tracing::info!(node = me, from_term = term, leader, "leadership transferred");
    Ok(leader)
}

/// The reachable voter other than this node with the longest log.
async fn pick_target(ctx: &Context, voters: &BTreeSet<NodeId>) -> Result<NodeId, MembershipError> {
    let matched = ctx.raft.metrics().borrow().replication.clone().unwrap_or_default();
    let mut candidates: Vec<(u64, NodeId)> = voters
        .iter()
        .filter(|v| **v != ctx.id())
        .map(|v| (matched.get(v).copied().flatten().map(|l| l.index).unwrap_or(0), *v))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, id) in &candidates {
        if let Some(addr) = ctx.member_addr(*id) {
            if probe(ctx, *id, &addr).await.is_ok() {
                return Ok(*id);
            }
        }
    }
    Err(MembershipError::Unsafe("no other voter is reachable to take over leadership".into()))
}

/// On the target of a transfer: once the old leader's lease has run out everywhere, call
/// elections until this node leads or another leader appears.
pub fn take_leadership(ctx: Arc<Context>, term: u64, elect_after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(elect_after).await;
        for _ in 0..5 {
            let (leader, current) = {
                let m = ctx.raft.metrics().borrow().clone();
                (m.current_leader, m.current_term)
            };
            if current > term && leader.is_some() {
                return;
            }
            if let Err(e) = ctx.raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start an election");
                return;
            }
            let mut metrics = ctx.raft.metrics();
            let won = metrics.wait_for(|m| m.current_term > term && m.current_leader.is_some());
            if tokio::time::timeout(Duration::from_millis(300), won).await.is_ok() {
                return;
            }
        }
    });
}
