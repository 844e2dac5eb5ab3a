//! What every part of a node shares: raft, the applied state, peers, metrics; and the two
//! cluster-wide operations built on them, [`Context::propose`] and [`Context::linearize`].

use std::sync::Arc;
use std::time::Duration;

use belfry_core::{Command, Response};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{forward_reply, read_index_reply, Empty, ForwardRequest, NotLeader};
use crate::raft::network::{Channels, Contacts, MAX_MESSAGE_BYTES};
use crate::raft::state_machine::Shared;
use crate::raft::{NodeId, Raft};

/// How long a write or read waits for the leader before answering 503.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a cluster operation did not happen. Never a partial success: a write either committed
/// (and then the caller got its response) or it is reported here.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader is known, or it could not be reached in time. Safe to retry.
    #[error("no leader available: {0}")]
    NoLeader(String),
    /// The outcome is unknown (the connection broke after the request was sent).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The node itself failed (storage, fatal raft error).
    #[error("node error: {0}")]
    Internal(String),
}

/// Shared by the API, the ticker, the dispatcher and the worker.
pub struct Context {
    /// This node's configuration.
    pub config: Config,
    /// The raft handle.
    pub raft: Raft,
    /// The applied state.
    pub shared: Arc<Shared>,
    /// gRPC channels to peers.
    pub channels: Channels,
    /// Metrics.
    pub metrics: Metrics,
    /// When each peer last answered this node's raft RPCs.
    pub contacts: Contacts,
    /// Raised while this node hands leadership over.
    pub hold: WriteHold,
}

/// Holds new writes and leader reads while leadership is handed over: both would send
/// entries or heartbeats that renew the followers' leader lease, which the new leader needs
/// to run out (see `membership::transfer`). Writes wait, then go to the new leader.
pub struct WriteHold(watch::Sender<bool>);

impl Default for WriteHold {
    fn default() -> WriteHold {
        WriteHold(watch::Sender::new(false))
    }
}

impl WriteHold {
    /// Holds until the guard is dropped.
    pub fn hold(&self) -> HoldGuard<'_> {
        self.0.send_replace(true);
        HoldGuard(self)
    }

    /// Returns once no hold is up.
    pub async fn released(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|held| !*held).await;
    }
}

/// Releases a [`WriteHold`] when dropped.
pub struct HoldGuard<'a>(&'a WriteHold);

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.send_replace(false);
    }
}

impl Context {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Whether raft considers this node the leader right now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The current term as this node knows it.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The gRPC address of a member, from the membership.
    pub fn member_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    fn cluster_client(&self, addr: &str) -> Result<ClusterClient<tonic::transport::Channel>, ClusterError> {
        let ch = self.channels.get(addr).map_err(|e| ClusterError::NoLeader(e.to_string()))?;
        Ok(ClusterClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Commits `command` through the leader, from any node, and returns its apply response and
    /// log index. A returned response means a majority has the entry.
    pub async fn propose(&self, command: Command) -> Result<(u64, Response), ClusterError> {
        tokio::time::timeout(CLUSTER_TIMEOUT, self.propose_inner(command))
            .await
            .unwrap_or_else(|_| Err(ClusterError::Unknown("timed out waiting for commit".into())))
    }

    async fn propose_inner(&self, command: Command) -> Result<(u64, Response), ClusterError> {
        self.hold.released().await;
        match self.raft.client_write(command.clone()).await {
            Ok(reply) => Ok((reply.log_id.index, reply.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let addr = f.leader_node.map(|n| n.addr).or_else(|| f.leader_id.and_then(|id| self.member_addr(id)));
                let Some(addr) = addr else {
                    return Err(ClusterError::NoLeader("no leader elected".into()));
                };
                self.forward(&addr, &command).await
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ClusterError::Internal(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ClusterError::Internal(e.to_string())),
        }
    }

    /// Commits `command` only if this node leads when raft takes it; never forwards. For the
    /// leader's own claims: a claim made by a deposed leader is worthless to the next one.
    pub async fn propose_as_leader(&self, command: Command) -> Result<(u64, Response), ClusterError> {
        let write = async {
            self.hold.released().await;
            match self.raft.client_write(command).await {
                Ok(reply) => Ok((reply.log_id.index, reply.data)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    Err(ClusterError::NoLeader("no longer the leader".into()))
                }
                Err(e) => Err(ClusterError::Internal(e.to_string())),
            }
        };
        tokio::time::timeout(CLUSTER_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err(ClusterError::Unknown("timed out waiting for commit".into())))
    }

    async fn forward(&self, addr: &str, command: &Command) -> Result<(u64, Response), ClusterError> {
        let body = serde_json::to_vec(command).map_err(|e| ClusterError::Internal(e.to_string()))?;
        let reply = self
            .cluster_client(addr)?
            .forward(ForwardRequest { command: body })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable => {
                    ClusterError::NoLeader(format!("leader at {addr} unreachable: {}", s.message()))
                }
                _ => ClusterError::Unknown(s.message().to_string()),
            })?
            .into_inner();
        match reply.result {
            Some(forward_reply::Result::Response(bytes)) => {
                let response = serde_json::from_slice(&bytes).map_err(|e| ClusterError::Internal(e.to_string()))?;
                Ok((reply.log_index, response))
            }
            Some(forward_reply::Result::NotLeader(NotLeader { .. })) => {
                Err(ClusterError::NoLeader("leadership is changing".into()))
            }
            Some(forward_reply::Result::Unavailable(why)) => Err(ClusterError::NoLeader(why)),
            None => Err(ClusterError::Internal("empty forward reply".into())),
        }
    }

    /// Waits until this node's state reflects every write committed before the call (a
    /// linearizable read point): the leader confirms its leadership with a quorum; a follower
    /// asks the leader for its commit index and waits to apply up to it.
    pub async fn linearize(&self) -> Result<(), ClusterError> {
        tokio::time::timeout(CLUSTER_TIMEOUT, self.linearize_inner())
            .await
            .unwrap_or_else(|_| Err(ClusterError::NoLeader("timed out confirming the read point".into())))
    }

    async fn linearize_inner(&self) -> Result<(), ClusterError> {
        self.hold.released().await;
        if self.is_leader() && self.raft.ensure_linearizable().await.is_ok() {
            return Ok(());
        }
        let leader =
            self.raft.current_leader().await.ok_or_else(|| ClusterError::NoLeader("no leader elected".into()))?;
        if leader == self.id() {
            return self
                .raft
                .ensure_linearizable()
                .await
                .map(|_| ())
                .map_err(|e| ClusterError::NoLeader(e.to_string()));
        }
        let addr = self.member_addr(leader).ok_or_else(|| ClusterError::NoLeader("leader address unknown".into()))?;
        let reply = self
            .cluster_client(&addr)?
            .read_index(Empty {})
            .await
            .map_err(|s| ClusterError::NoLeader(format!("leader at {addr}: {}", s.message())))?
            .into_inner();
        let index = match reply.result {
            Some(read_index_reply::Result::Index(i)) => i,
            Some(read_index_reply::Result::NotLeader(_)) => {
                return Err(ClusterError::NoLeader("leadership is changing".into()))
            }
            Some(read_index_reply::Result::Unavailable(why)) => return Err(ClusterError::NoLeader(why)),
            None => return Err(ClusterError::Internal("empty read-index reply".into())),
        };
        self.raft
            .wait(Some(CLUSTER_TIMEOUT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::NoLeader(e.to_string()))
    }
}
