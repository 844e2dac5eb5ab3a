//! Membership changes on the leader: add a node as a learner, then promote it to voter.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::context::Context;
use crate::proto::NotLeader;
use crate::raft::NodeId;

/// Why a membership change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// This node does not lead; ask the one named.
    #[error("not the leader")]
    NotLeader(NotLeader),
    /// The change was refused or failed.
    #[error("{0}")]
    Failed(String),
}

fn map_err(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => MembershipError::NotLeader(NotLeader {
            leader_id: f.leader_id,
            leader_grpc_addr: f.leader_node.map(|n| n.addr).unwrap_or_default(),
        }),
        other => MembershipError::Failed(other.to_string()),
    }
}

/// Adds `id` at `grpc_addr` as a learner, waits for it to catch up, then makes it a voter.
/// Safe to repeat: a node already a voter is left as it is.
pub async fn add_member(ctx: &Context, id: NodeId, grpc_addr: String) -> Result<(), MembershipError> {
    if crate::grpc::voters(ctx).contains(&id) {
        return Ok(());
    }
    // `blocking = true`: returns once the learner has caught up with the leader's log.
    tokio::time::timeout(Duration::from_secs(60), ctx.raft.add_learner(id, BasicNode::new(grpc_addr), true))
        .await
        .map_err(|_| MembershipError::Failed("learner did not catch up within 60s".into()))?
        .map_err(map_err)?;
    let add: std::collections::BTreeSet<NodeId> = [id].into();
    ctx.raft.change_membership(ChangeMembers::AddVoterIds(add), false).await.map_err(map_err)?;
    Ok(())
}

/// Removes `id` from the voters and the cluster.
pub async fn remove_member(ctx: &Context, id: NodeId) -> Result<(), MembershipError> {
    let remove: std::collections::BTreeSet<NodeId> = [id].into();
    ctx.raft.change_membership(ChangeMembers::RemoveVoters(remove.clone()), false).await.map_err(map_err)?;
    ctx.raft.change_membership(ChangeMembers::RemoveNodes(remove), false).await.map_err(map_err)?;
    Ok(())
}
