//! Membership changes and leadership transfer. Each runs on the leader; any node forwards it
//! there over gRPC ([`run`]).
//!
//! openraft 0.9 has no leadership transfer, so belfry builds one from what raft offers
//! ([`transfer`]): the leader holds new writes, waits until the target has its whole log,
//! stops heartbeats and tells the target to call an election once every voter's leader
//! lease (`election_timeout_max` since the last heartbeat) has run out. The target's log is
//! complete, so voters grant it; the other followers' own election timers (lease plus a
//! random election timeout) have not fired yet, so it is the only candidate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{AdminRequest, Empty, InfoReply, TakeLeadershipRequest};
use crate::raft::NodeId;

/// How long a member probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// How long a learner may take to catch up before it is promoted.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// A membership operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Add `id` as a learner, then promote it to voter once caught up.
    Add {
        /// Node id.
        id: NodeId,
        /// Its gRPC address.
        grpc_addr: String,
    },
    /// Remove `id`; refused when it would leave no reachable majority, unless `force`.
    Remove {
        /// Node id.
        id: NodeId,
        /// Skip the reachable-majority check.
        force: bool,
    },
    /// Hand leadership to `to`, or to the most caught-up voter.
    Transfer {
        /// The voter to lead next.
        to: Option<NodeId>,
    },
}

/// Why a membership operation did not happen.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum MembershipError {
    /// This node does not lead.
    #[error("not the leader")]
    NotLeader {
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The request names something impossible.
    #[error("{message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No such member.
    #[error("node {0} is not a member")]
    NotFound(NodeId),
    /// Refused: the change would put the cluster at risk.
    #[error("{0}")]
    Unsafe(String),
    /// No leader, or the change failed or timed out; safe to retry.
    #[error("{0}")]
    Unavailable(String),
}

/// What a successful operation reports: the leader after it.
pub type OpResult = Result<Option<NodeId>, MembershipError>;

fn invalid(field: &str, message: impl Into<String>) -> MembershipError {
    MembershipError::Invalid { field: field.into(), message: message.into() }
}

fn raft_err(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader { leader: f.leader_id },
        other => MembershipError::Unavailable(other.to_string()),
    }
}

/// Runs `op` on the leader: here when this node leads, otherwise forwarded over gRPC.
pub async fn run(ctx: &Arc<Context>, op: Op) -> OpResult {
    match run_local(ctx, op.clone()).await {
        Err(MembershipError::NotLeader { leader: Some(leader) }) if leader != ctx.id() => {
            forward(ctx, leader, op).await
        }
        Err(MembershipError::NotLeader { .. }) => Err(MembershipError::Unavailable("no leader elected".into())),
        other => other,
    }
}

/// Runs `op` if this node leads; [`MembershipError::NotLeader`] otherwise.
pub async fn run_local(ctx: &Arc<Context>, op: Op) -> OpResult {
    if !ctx.is_leader() {
        return Err(MembershipError::NotLeader { leader: ctx.raft.metrics().borrow().current_leader });
    }
    match op {
        Op::Add { id, grpc_addr } => add(ctx, id, grpc_addr).await.map(|()| Some(ctx.id())),
        Op::Remove { id, force } => remove(ctx, id, force).await,
        Op::Transfer { to } => transfer(ctx, to).await.map(Some),
    }
}

async fn forward(ctx: &Context, leader: NodeId, op: Op) -> OpResult {
    let addr = ctx.member_addr(leader).ok_or_else(|| MembershipError::Unavailable("leader address unknown".into()))?;
    let ch = ctx.channels.get(&addr).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let body = serde_json::to_vec(&op).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let reply = ClusterClient::new(ch)
        .admin(AdminRequest { op: body })
        .await
        .map_err(|s| MembershipError::Unavailable(format!("leader at {addr}: {}", s.message())))?
        .into_inner();
    match serde_json::from_slice::<OpResult>(&reply.result) {
        Ok(Err(MembershipError::NotLeader { .. })) => {
            Err(MembershipError::Unavailable("leadership is changing".into()))
        }
        Ok(result) => result,
        Err(e) => Err(MembershipError::Unavailable(format!("bad reply from the leader: {e}"))),
    }
}

/// Asks the node at `addr` who it is. Errors are one line.
pub async fn probe(ctx: &Context, addr: &str) -> Result<InfoReply, String> {
    let call = async {
        let ch = ctx.channels.get(addr).map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(Empty {});
        req.set_timeout(PROBE_TIMEOUT);
        ClusterClient::new(ch).info(req).await.map(|r| r.into_inner()).map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, call).await.unwrap_or_else(|_| Err("probe timed out".into()))
}

/// The voter ids of the current membership.
pub fn voters(ctx: &Context) -> BTreeSet<NodeId> {
    ctx.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
}

async fn add(ctx: &Context, id: NodeId, grpc_addr: String) -> Result<(), MembershipError> {
    if id == 0 {
        return Err(invalid("id", "must be positive"));
    }
    if voters(ctx).contains(&id) {
        match ctx.member_addr(id) {
            Some(addr) if addr == grpc_addr => return Ok(()),
            Some(addr) => {
                return Err(MembershipError::Unsafe(format!(
                    "node {id} is already a voter at {addr}; remove it before adding it at {grpc_addr}"
                )))
            }
            None => {}
        }
    }
    // `blocking = true`: returns once the learner has caught up with the leader's log.
    tokio::time::timeout(CATCH_UP_TIMEOUT, ctx.raft.add_learner(id, BasicNode::new(grpc_addr), true))
        .await
        .map_err(|_| MembershipError::Unavailable(format!("node {id} did not catch up within {CATCH_UP_TIMEOUT:?}")))?
        .map_err(raft_err)?;
    let add: BTreeSet<NodeId> = [id].into();
    ctx.raft.change_membership(ChangeMembers::AddVoterIds(add), false).await.map_err(raft_err)?;
    tracing::info!(node = ctx.id(), member = id, "member added as voter");
    Ok(())
}

async fn remove(ctx: &Arc<Context>, id: NodeId, force: bool) -> OpResult {
    if ctx.member_addr(id).is_none() {
        return Err(MembershipError::NotFound(id));
    }
    let voters = voters(ctx);
    if voters.contains(&id) {
        let rest: BTreeSet<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
        if rest.is_empty() {
            return Err(MembershipError::Unsafe(format!("node {id} is the last voter")));
        }
        if !force {
            check_majority_reachable(ctx, id, &rest).await?;
        }
        if id == ctx.id() {
            // The leader cannot remove itself and go on leading: hand over, then ask the
            // new leader to do it.
            let next = transfer(ctx, None).await?;
            return forward(ctx, next, Op::Remove { id, force }).await;
        }
        let remove: BTreeSet<NodeId> = [id].into();
        ctx.raft.change_membership(ChangeMembers::RemoveVoters(remove), false).await.map_err(raft_err)?;
    }
    let remove: BTreeSet<NodeId> = [id].into();
    ctx.raft.change_membership(ChangeMembers::RemoveNodes(remove), false).await.map_err(raft_err)?;
    tracing::info!(node = ctx.id(), member = id, "member removed");
    Ok(ctx.raft.metrics().borrow().current_leader)
}

/// Refuses a removal after which fewer than a majority of the remaining voters answer.
async fn check_majority_reachable(ctx: &Context, id: NodeId, rest: &BTreeSet<NodeId>) -> Result<(), MembershipError> {
    let mut reachable = 0;
    for voter in rest {
        let up = *voter == ctx.id()
            || match ctx.member_addr(*voter) {
                Some(addr) => probe(ctx, &addr).await.is_ok(),
                None => false,
            };
        reachable += usize::from(up);
    }
    let need = rest.len() / 2 + 1;
    if reachable < need {
        return Err(MembershipError::Unsafe(format!(
            "removing node {id} leaves {reachable} of {} voters reachable, fewer than the {need} a majority needs \
             (force=true removes it anyway)",
            rest.len()
        )));
    }
    Ok(())
}

/// Restores heartbeats when a transfer ends, however it ends.
struct Heartbeats<'a>(&'a Context);

impl Drop for Heartbeats<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
    }
}

/// Hands leadership to `to` (or the most caught-up reachable voter) and returns the new
/// leader. See the module documentation for how.
pub async fn transfer(ctx: &Context, to: Option<NodeId>) -> Result<NodeId, MembershipError> {
    let voters = voters(ctx);
    let me = ctx.id();
    let target = match to {
        Some(t) if t == me => return Ok(me),
        Some(t) if !voters.contains(&t) => return Err(invalid("to", format!("node {t} is not a voter"))),
        Some(t) => {
            let addr = ctx.member_addr(t).ok_or(MembershipError::NotFound(t))?;
            probe(ctx, &addr).await.map_err(|e| MembershipError::Unsafe(format!("node {t} is unreachable: {e}")))?;
            t
        }
        None => pick_target(ctx, &voters).await?,
    };
    let addr = ctx.member_addr(target).ok_or(MembershipError::NotFound(target))?;
    let term = ctx.term();
    let lease = 2 * ctx.config.election_timeout;
    tracing::info!(node = me, term, to = target, "transferring leadership");

    let _hold = ctx.hold.hold();
    let mut metrics = ctx.raft.metrics();
    let caught_up = metrics.wait_for(|m| {
        let last = m.last_log_index;
        m.replication.as_ref().and_then(|r| r.get(&target)).is_some_and(|matched| matched.map(|l| l.index) >= last)
    });
    tokio::time::timeout(Duration::from_secs(2), caught_up)
        .await
        .map_err(|_| MembershipError::Unavailable(format!("node {target} did not catch up within 2s")))?
        .map_err(|e| MembershipError::Unavailable(e.to_string()))?;

    ctx.raft.runtime_config().heartbeat(false);
    let _heartbeats = Heartbeats(ctx);
    let ch = ctx.channels.get(&addr).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let elect_after_ms = (lease + Duration::from_millis(100)).as_millis() as u64;
    ClusterClient::new(ch)
        .take_leadership(TakeLeadershipRequest { term, elect_after_ms })
        .await
        .map_err(|s| MembershipError::Unavailable(format!("node {target}: {}", s.message())))?;
    let took_over =
        metrics.wait_for(|m| m.current_term > term && m.current_leader.is_some() && m.current_leader != Some(me));
    let leader = tokio::time::timeout(4 * lease, took_over)
        .await
        .map_err(|_| MembershipError::Unavailable(format!("node {target} did not take over within {:?}", 4 * lease)))?
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
            if probe(ctx, &addr).await.is_ok() {
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
