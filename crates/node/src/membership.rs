//! Membership changes and leadership transfer. Each runs on the leader, one at a time
//! ([`gate`]); any node forwards it there over gRPC ([`run`]), waiting for a leader while
//! leadership settles.
//!
//! No change may leave the cluster wedged, so an add is checked before anything is written
//! and a node becomes a voter only once it has proved it can keep up:
//! 1. the address is `host:port` with a port other than 0 and resolves (within
//!    [`RESOLVE_TIMEOUT`]);
//! 2. the node there answers the `Info` probe with the id requested, and belongs to no other
//!    cluster (a higher term than ours, or a leader that is not one of our voters);
//! 3. it is added as a learner, and stays one until its match index is within
//!    `learner_max_lag` entries of the leader's last log index; a learner that never
//!    answered has no match index and never qualifies, whatever the log length;
//! 4. only then is it promoted (joint consensus). A learner that has not caught up within
//!    `learner_catch_up_timeout`, or whose add is cancelled by a forced removal, is removed
//!    again and the add fails.
//!
//! Every raft membership call is bounded by [`CHANGE_TIMEOUT`]. Operations run in a task of
//! their own, so a caller that gives up (an HTTP client timing out) cannot stop one halfway
//! and leave a learner behind.
//!
//! # Left out
//! - A change openraft has begun but cannot commit (the new voters' majority is gone) stays
//!   pending inside openraft; until a quorum is back every further change answers 409.
//! - Nothing proves that a node with an empty log belongs to no other cluster: the probe
//!   only sees the term and leader it reports.

mod gate;
mod transfer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, LogId, RaftMetrics, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use gate::{ChangeGuard, Changes};
pub use transfer::take_leadership;

use crate::context::{Context, CLUSTER_TIMEOUT};
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{AdminRequest, Empty, InfoReply, MemberProgress};
use crate::raft::NodeId;

/// How long a member probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// How long resolving a new member's address may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one raft membership change may take to commit. A change needs a majority of the
/// old and the new voters; with them up it commits within a few heartbeats.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

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
        /// Skip the reachable-majority check, and cancel an add still waiting for its learner.
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
    /// Refused: another change is in progress, or the request contradicts the membership.
    #[error("{0}")]
    Conflict(String),
    /// The change did not finish in time; what it had done is undone where it can be (a
    /// learner that did not catch up is removed again).
    #[error("{0}")]
    Timeout(String),
    /// No leader, or the change failed; safe to retry.
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
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            MembershipError::Conflict(format!(
                "a membership change is still being committed ({p}); it needs a majority of both the old and the \
                 new voters"
            ))
        }
        other => MembershipError::Unavailable(other.to_string()),
    }
}

/// Runs one raft membership change, bounded by [`CHANGE_TIMEOUT`].
async fn change(ctx: &Context, changes: ChangeMembers<NodeId, BasicNode>) -> Result<LogId<NodeId>, MembershipError> {
    let call = async {
        match changes {
            ChangeMembers::AddNodes(nodes) if nodes.len() == 1 => {
                let (id, node) = nodes.into_iter().next().ok_or(MembershipError::Unavailable("no node".into()))?;
                ctx.raft.add_learner(id, node, false).await.map_err(raft_err)
            }
            other => ctx.raft.change_membership(other, false).await.map_err(raft_err),
        }
    };
    tokio::time::timeout(CHANGE_TIMEOUT, call)
        .await
        .map_err(|_| {
            MembershipError::Timeout(format!(
                "the membership change did not commit within {CHANGE_TIMEOUT:?} (it needs a majority of the old \
                 and the new voters)"
            ))
        })?
        .map(|reply| reply.log_id)
}

/// Runs `op` on the leader: here when this node leads, otherwise forwarded over gRPC. While
/// no leader is known, or the one known refuses because it no longer leads, waits for a
/// (new) leader and tries again, until [`CLUSTER_TIMEOUT`].
pub async fn run(ctx: &Arc<Context>, op: Op) -> OpResult {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let seen = ctx.leader_seen();
        let local = {
            let (ctx, op) = (ctx.clone(), op.clone());
            tokio::spawn(async move { run_local(&ctx, op).await })
                .await
                .unwrap_or_else(|e| Err(MembershipError::Unavailable(format!("the change failed: {e}"))))
        };
        match local {
            Err(MembershipError::NotLeader { leader: Some(leader) }) if leader != ctx.id() => {
                match forward(ctx, leader, &op).await {
                    Err(MembershipError::NotLeader { .. }) => {}
                    other => return other,
                }
            }
            Err(MembershipError::NotLeader { .. }) => {}
            other => return other,
        }
        if !ctx.wait_for_new_leader(seen, deadline).await {
            return Err(MembershipError::Unavailable(format!("no leader took the change within {CLUSTER_TIMEOUT:?}")));
        }
    }
}

/// Runs `op` if this node leads; [`MembershipError::NotLeader`] otherwise.
pub async fn run_local(ctx: &Arc<Context>, op: Op) -> OpResult {
    if !ctx.is_leader() {
        return Err(MembershipError::NotLeader { leader: ctx.raft.metrics().borrow().current_leader });
    }
    let (mut guard, cancelled) = match ctx.changes.begin(&op) {
        Ok(guard) => (guard, None),
        Err(busy) => match op {
            Op::Remove { force: true, .. } => end_pending_add(ctx, &op, busy).await?,
            _ => return Err(busy),
        },
    };
    match op {
        Op::Add { id, grpc_addr } => add(ctx, id, grpc_addr, &mut guard).await.map(|()| Some(ctx.id())),
        // The cancelled add removed its learner already: the removal asked for is done.
        Op::Remove { id, .. } if cancelled == Some(id) && ctx.member_addr(id).is_none() => {
            Ok(ctx.raft.metrics().borrow().current_leader)
        }
        Op::Remove { id, force } => remove(ctx, id, force).await,
        Op::Transfer { to } => transfer::transfer_locked(ctx, to).await.map(Some),
    }
}

/// For a forced removal that found the gate taken: cancels the add waiting there (if that is
/// what runs), waits for it to remove its learner, and takes the gate.
async fn end_pending_add<'a>(
    ctx: &'a Context,
    op: &Op,
    busy: MembershipError,
) -> Result<(ChangeGuard<'a>, Option<NodeId>), MembershipError> {
    let Some(adding) = ctx.changes.cancel_add() else {
        return Err(busy);
    };
    tracing::info!(node = ctx.id(), member = adding, "forced removal cancels the pending add");
    tokio::time::timeout(CHANGE_TIMEOUT, ctx.changes.idle())
        .await
        .map_err(|_| MembershipError::Timeout(format!("the cancelled add of node {adding} did not end in time")))?;
    Ok((ctx.changes.begin(op)?, Some(adding)))
}

/// Hands leadership over, for a node that is stopping: an add still waiting for its learner
/// is cancelled first (it could not finish under the next leader anyway).
pub async fn transfer(ctx: &Context, to: Option<NodeId>) -> Result<NodeId, MembershipError> {
    let op = Op::Transfer { to };
    let _guard = match ctx.changes.begin(&op) {
        Ok(guard) => guard,
        Err(busy) => end_pending_add(ctx, &op, busy).await?.0,
    };
    transfer::transfer_locked(ctx, to).await
}

/// How long a forwarded operation may take on the leader: an add's catch-up and the changes
/// around it.
fn op_deadline(ctx: &Context) -> Duration {
    ctx.config.learner_catch_up_timeout.saturating_add(CHANGE_TIMEOUT.saturating_mul(4))
}

async fn forward(ctx: &Context, leader: NodeId, op: &Op) -> OpResult {
    let addr = ctx.member_addr(leader).ok_or_else(|| MembershipError::Unavailable("leader address unknown".into()))?;
    let ch = ctx.channels.get(leader, &addr).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let body = serde_json::to_vec(op).map_err(|e| MembershipError::Unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(AdminRequest { op: body });
    request.set_timeout(op_deadline(ctx));
    let reply = ClusterClient::new(ch).admin(request).await.map_err(|s| {
        if crate::context::never_sent(&s) {
            MembershipError::NotLeader { leader: None }
        } else {
            MembershipError::Unavailable(format!("leader at {addr}: {}", s.message()))
        }
    })?;
    serde_json::from_slice::<OpResult>(&reply.into_inner().result)
        .unwrap_or_else(|e| Err(MembershipError::Unavailable(format!("bad reply from the leader: {e}"))))
}

/// Asks member `id` at `addr` who it is. Errors are one line.
pub async fn probe(ctx: &Context, id: NodeId, addr: &str) -> Result<InfoReply, String> {
    let ch = ctx.channels.get(id, addr).map_err(|e| e.to_string())?;
    probe_channel(ch).await
}

async fn probe_channel(ch: tonic::transport::Channel) -> Result<InfoReply, String> {
    let call = async {
        let mut req = tonic::Request::new(Empty {});
        req.set_timeout(PROBE_TIMEOUT);
        ClusterClient::new(ch).info(req).await.map(|r| r.into_inner()).map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, call).await.unwrap_or_else(|_| Err("probe timed out".into()))
}

/// The leader's view of every member's replication (empty unless this node leads): match
/// index and time since the member last answered (`0` for the leader itself).
pub fn leader_view(ctx: &Context, m: &RaftMetrics<NodeId, BasicNode>) -> Vec<MemberProgress> {
    let Some(replication) = m.replication.as_ref().filter(|_| m.current_leader == Some(ctx.id())) else {
        return Vec::new();
    };
    m.membership_config
        .membership()
        .nodes()
        .map(|(id, _)| {
            let id = *id;
            let last_contact = if id == ctx.id() { Some(Duration::ZERO) } else { ctx.contacts.since(id) };
            MemberProgress {
                id,
                match_index: replication.get(&id).map(|l| l.map_or(0, |l| l.index)),
                last_contact_ms: last_contact.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }
        })
        .collect()
}

/// The voter ids of the current membership.
pub fn voters(ctx: &Context) -> BTreeSet<NodeId> {
    ctx.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
}

/// Checks that `addr` is `host:port` with a port other than 0.
pub fn check_address_syntax(addr: &str) -> Result<(), MembershipError> {
    let bad = || invalid("grpc_addr", format!("{addr:?} must be host:port with a port from 1 to 65535"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

/// Checks `addr`'s syntax and that it resolves, within [`RESOLVE_TIMEOUT`].
async fn check_address(addr: &str) -> Result<(), MembershipError> {
    check_address_syntax(addr)?;
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(addr)).await;
    match resolved.map(|found| found.map(|mut addrs| addrs.next().is_some())) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(invalid("grpc_addr", format!("{addr} resolves to no address"))),
        Ok(Err(e)) => Err(invalid("grpc_addr", format!("{addr} does not resolve: {e}"))),
        Err(_) => Err(invalid("grpc_addr", format!("resolving {addr} took longer than {RESOLVE_TIMEOUT:?}"))),
    }
}

/// Checks that the node at `addr` is the node `id`, and a fresh one or one of ours.
async fn check_node(ctx: &Context, id: NodeId, addr: &str) -> Result<(), MembershipError> {
    let ch = ctx.channels.uncached(id, addr).map_err(|e| invalid("grpc_addr", format!("{addr}: {e}")))?;
    let tls = if ctx.config.peer_tls.is_some() {
        format!(" (or its certificate is not node {id}'s, signed by this cluster's CA)")
    } else {
        String::new()
    };
    let info = probe_channel(ch)
        .await
        .map_err(|e| invalid("grpc_addr", format!("no belfry node answers at {addr}{tls}: {e}")))?;
    if info.id != id {
        return Err(invalid("id", format!("the node at {addr} is node {}, not node {id}", info.id)));
    }
    let ours = voters(ctx);
    let term = ctx.term();
    if info.term > term || info.leader.is_some_and(|l| !ours.contains(&l)) {
        return Err(MembershipError::Conflict(format!(
            "node {id} at {addr} follows another cluster (term {}, leader {:?}; this cluster is at term {term}); \
             start it with an empty data dir and --join",
            info.term, info.leader
        )));
    }
    Ok(())
}

async fn add(ctx: &Context, id: NodeId, grpc_addr: String, guard: &mut ChangeGuard<'_>) -> Result<(), MembershipError> {
    if id == 0 {
        return Err(invalid("id", "must be positive"));
    }
    check_address(&grpc_addr).await?;
    let membership = ctx.raft.metrics().borrow().membership_config.membership().clone();
    let existing = membership.get_node(&id).map(|n| n.addr.clone());
    let is_voter = membership.voter_ids().any(|v| v == id);
    match existing {
        Some(addr) if is_voter && addr == grpc_addr => return Ok(()),
        Some(addr) if is_voter => {
            return Err(MembershipError::Unsafe(format!(
                "node {id} is already a voter at {addr}; remove it before adding it at {grpc_addr}"
            )))
        }
        Some(addr) if addr != grpc_addr => {
            return Err(MembershipError::Conflict(format!(
                "node {id} is already a learner at {addr}; remove it before adding it at {grpc_addr}"
            )))
        }
        _ => {}
    }
    if let Some((other, _)) = membership.nodes().find(|(other, n)| **other != id && n.addr == grpc_addr) {
        return Err(invalid("grpc_addr", format!("{grpc_addr} is the address of node {other}")));
    }
    check_node(ctx, id, &grpc_addr).await?;

    // A learner left by an earlier attempt at the same address is caught up, not re-added.
    let since = match existing {
        Some(_) => None,
        None => Some(change(ctx, ChangeMembers::AddNodes([(id, BasicNode::new(grpc_addr.clone()))].into())).await?),
    };
    tracing::info!(node = ctx.id(), member = id, addr = %grpc_addr, "learner added; waiting for it to catch up");
    if let Err(e) = catch_up(ctx, id, since, guard).await {
        return Err(undo_learner(ctx, id, e).await);
    }
    change(ctx, ChangeMembers::AddVoterIds([id].into())).await?;
    tracing::info!(node = ctx.id(), member = id, "member added as voter");
    Ok(())
}

/// Where a learner stands, as the leader's metrics say.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    CaughtUp,
    Behind,
    NotLeader,
    Gone,
}

fn progress(m: &RaftMetrics<NodeId, BasicNode>, id: NodeId, since: Option<LogId<NodeId>>, max_lag: u64) -> Progress {
    if m.state != ServerState::Leader {
        return Progress::NotLeader;
    }
    if m.membership_config.log_id() < &since {
        // The metrics do not show the membership with the learner yet.
        return Progress::Behind;
    }
    if m.membership_config.membership().get_node(&id).is_none() {
        return Progress::Gone;
    }
    let matched = m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten());
    match matched {
        Some(log_id) if m.last_log_index.unwrap_or(0).saturating_sub(log_id.index) <= max_lag => Progress::CaughtUp,
        _ => Progress::Behind,
    }
}

/// Waits until learner `id` is within `learner_max_lag` entries of the leader's log.
async fn catch_up(
    ctx: &Context,
    id: NodeId,
    since: Option<LogId<NodeId>>,
    guard: &mut ChangeGuard<'_>,
) -> Result<(), MembershipError> {
    let (max_lag, limit) = (ctx.config.learner_max_lag, ctx.config.learner_catch_up_timeout);
    let mut metrics = ctx.raft.metrics();
    let settled = metrics.wait_for(|m| progress(m, id, since, max_lag) != Progress::Behind);
    let outcome = tokio::select! {
        waited = tokio::time::timeout(limit, settled) => match waited {
            Ok(Ok(m)) => progress(&m, id, since, max_lag),
            Ok(Err(_)) => return Err(MembershipError::Unavailable("raft stopped".into())),
            Err(_) => {
                let m = ctx.raft.metrics().borrow().clone();
                let matched = m.replication.as_ref().and_then(|r| r.get(&id).copied().flatten()).map(|l| l.index);
                let last = m.last_log_index.unwrap_or(0);
                let at = matched.map_or_else(|| "never answered".to_string(), |i| format!("at index {i} of {last}"));
                return Err(MembershipError::Timeout(format!(
                    "node {id} did not catch up within {limit:?} ({at}, at most {max_lag} behind needed)"
                )));
            }
        },
        () = guard.cancelled() => {
            return Err(MembershipError::Conflict(format!("adding node {id} was cancelled by a forced removal")));
        }
    };
    match outcome {
        Progress::CaughtUp => Ok(()),
        Progress::Gone => Err(MembershipError::Conflict(format!("node {id} was removed while catching up"))),
        Progress::NotLeader | Progress::Behind => Err(MembershipError::Unavailable(format!(
            "leadership moved while node {id} was catching up; retry the add"
        ))),
    }
}

/// Removes a learner whose add failed with `why`, and says how that went.
async fn undo_learner(ctx: &Context, id: NodeId, why: MembershipError) -> MembershipError {
    if !ctx.is_leader() || ctx.member_addr(id).is_none() {
        return why;
    }
    let undone = change(ctx, ChangeMembers::RemoveNodes([id].into())).await;
    let note = match undone {
        Ok(_) => "it was removed again".to_string(),
        Err(e) => format!("removing it again failed too: {e}"),
    };
    tracing::warn!(node = ctx.id(), member = id, error = %why, %note, "add failed");
    let message = format!("{why}; {note}");
    match why {
        MembershipError::Timeout(_) => MembershipError::Timeout(message),
        MembershipError::Conflict(_) => MembershipError::Conflict(message),
        _ => MembershipError::Unavailable(message),
    }
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
            let next = transfer::transfer_locked(ctx, None).await?;
            return forward(ctx, next, &Op::Remove { id, force }).await;
        }
        change(ctx, ChangeMembers::RemoveVoters([id].into())).await?;
    }
    change(ctx, ChangeMembers::RemoveNodes([id].into())).await?;
    tracing::info!(node = ctx.id(), member = id, "member removed");
    Ok(ctx.raft.metrics().borrow().current_leader)
}

/// Refuses a removal after which fewer than a majority of the remaining voters answer.
async fn check_majority_reachable(ctx: &Context, id: NodeId, rest: &BTreeSet<NodeId>) -> Result<(), MembershipError> {
    let mut reachable = 0;
    for voter in rest {
        let up = *voter == ctx.id()
            || match ctx.member_addr(*voter) {
                Some(addr) => probe(ctx, *voter, &addr).await.is_ok(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_host_and_a_real_port() {
        for good in ["127.0.0.1:7201", "node-4.belfry.svc:7201", "[::1]:7201", "localhost:1"] {
            assert!(check_address_syntax(good).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1:0", "127.0.0.1", ":7201", "host:65536", "host:port", "a b:7201", "[nope]:7201", ""] {
            match check_address_syntax(bad) {
                Err(MembershipError::Invalid { field, .. }) => assert_eq!(field, "grpc_addr", "{bad}"),
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_refused_naming_the_field() {
        match check_address("no-such-host.invalid:7201").await {
            Err(MembershipError::Invalid { field, .. }) => assert_eq!(field, "grpc_addr"),
            other => panic!("accepted: {other:?}"),
        }
    }
}
