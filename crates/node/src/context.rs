//! What every part of a node shares: raft, the applied state, peers, metrics; and the two
//! cluster-wide operations built on them, [`Context::propose`] and [`Context::linearize`].

use std::sync::Arc;
use std::time::Duration;

use belfry_core::{Command, Response};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{forward_reply, read_index_reply, Empty, ForwardRequest, NotLeader};
use crate::raft::network::{Channels, Contacts, MAX_MESSAGE_BYTES};
use crate::raft::state_machine::Shared;
use crate::raft::{NodeId, Raft};

/// How long a write or read waits for the leader before answering 503: a few elections'
/// worth, so a write sent while leadership settles still lands.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The membership change this node runs as leader (one at a time).
    pub changes: crate::membership::Changes,
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

    fn cluster_client(&self, id: NodeId, addr: &str) -> Result<ClusterClient<tonic::transport::Channel>, ClusterError> {
        let ch = self.channels.get(id, addr).map_err(|e| ClusterError::NoLeader(e.to_string()))?;
        Ok(ClusterClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// The leader and term as this node sees them now.
    pub fn leader_seen(&self) -> LeaderSeen {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        LeaderSeen { term: m.current_term, leader: m.current_leader }
    }

    /// Waits until this node knows a leader other than the one in `seen` (any leader, when
    /// `seen` had none), at most until `deadline`; false once the deadline has passed.
    ///
    /// When `seen` named a leader that refused a request, the change normally shows within an
    /// election; if it does not (the refusal came from a leader still settling in), this
    /// returns after the longest election timeout so the caller tries again.
    pub async fn wait_for_new_leader(&self, seen: LeaderSeen, deadline: Instant) -> bool {
        if Instant::now() >= deadline {
            return false;
        }
        let mut metrics = self.raft.metrics();
        let changed = metrics.wait_for(|m| {
            m.current_leader.is_some() && (m.current_leader != seen.leader || m.current_term != seen.term)
        });
        match seen.leader {
            None => matches!(tokio::time::timeout_at(deadline, changed).await, Ok(Ok(_))),
            Some(_) => {
                let settle = (Instant::now() + self.config.election_timeout.saturating_mul(2)).min(deadline);
                let stopped = matches!(tokio::time::timeout_at(settle, changed).await, Ok(Err(_)));
                !stopped && Instant::now() < deadline
            }
        }
    }

    /// Commits `command` through the leader, from any node, and returns its apply response and
    /// log index. A returned response means a majority has the entry.
    ///
    /// While leadership settles (no leader known yet, or the one known refuses because it no
    /// longer leads) the write waits for a leader and tries again, until [`CLUSTER_TIMEOUT`];
    /// it is retried only when it was certainly not taken.
    pub async fn propose(&self, command: Command) -> Result<(u64, Response), ClusterError> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let seen = self.leader_seen();
            tokio::time::timeout_at(deadline, self.hold.released())
                .await
                .map_err(|_| ClusterError::NoLeader("leadership handover did not finish in time".into()))?;
            let attempt = tokio::time::timeout_at(deadline, self.propose_once(&command))
                .await
                .unwrap_or_else(|_| Err(Attempt::Failed(ClusterError::Unknown("timed out waiting for commit".into()))));
            match attempt {
                Ok(done) => return Ok(done),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Refused(why)) => {
                    if !self.wait_for_new_leader(seen, deadline).await {
                        return Err(ClusterError::NoLeader(why));
                    }
                }
            }
        }
    }

    async fn propose_once(&self, command: &Command) -> Result<(u64, Response), Attempt> {
        match self.raft.client_write(command.clone()).await {
            Ok(reply) => Ok((reply.log_id.index, reply.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                // This node itself, named while its leadership is not yet confirmed, is no
                // leader to forward to.
                let Some(leader) = f.leader_id.filter(|id| *id != self.id()) else {
                    return Err(Attempt::Refused("no leader elected".into()));
                };
                let addr = f.leader_node.map(|n| n.addr).or_else(|| self.member_addr(leader));
                let Some(addr) = addr else {
                    return Err(Attempt::Refused(format!("address of leader {leader} unknown")));
                };
                self.forward(leader, &addr, command).await
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(Attempt::Failed(ClusterError::Internal(e.to_string())))
            }
            Err(RaftError::Fatal(e)) => Err(Attempt::Failed(ClusterError::Internal(e.to_string()))),
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

    async fn forward(&self, leader: NodeId, addr: &str, command: &Command) -> Result<(u64, Response), Attempt> {
        let body = serde_json::to_vec(command).map_err(|e| Attempt::Failed(ClusterError::Internal(e.to_string())))?;
        let mut client = self.cluster_client(leader, addr).map_err(Attempt::Failed)?;
        let reply = client.forward(ForwardRequest { command: body }).await.map_err(|s| {
            if never_sent(&s) {
                Attempt::Refused(format!("leader at {addr} refused the connection"))
            } else if s.code() == tonic::Code::Unavailable {
                Attempt::Failed(ClusterError::NoLeader(format!("leader at {addr} unreachable: {}", s.message())))
            } else {
                Attempt::Failed(ClusterError::Unknown(s.message().to_string()))
            }
        })?;
        let reply = reply.into_inner();
        match reply.result {
            Some(forward_reply::Result::Response(bytes)) => {
                let response = serde_json::from_slice(&bytes)
                    .map_err(|e| Attempt::Failed(ClusterError::Internal(e.to_string())))?;
                Ok((reply.log_index, response))
            }
            // The node no longer leads: its raft refused the entry, so nothing was written.
            Some(forward_reply::Result::NotLeader(NotLeader { .. })) => {
                Err(Attempt::Refused("leadership is changing".into()))
            }
            Some(forward_reply::Result::Unavailable(why)) => Err(Attempt::Failed(ClusterError::NoLeader(why))),
            None => Err(Attempt::Failed(ClusterError::Internal("empty forward reply".into()))),
        }
    }

    /// Waits until this node's state reflects every write committed before the call (a
    /// linearizable read point): the leader confirms its leadership with a quorum; a follower
    /// asks the leader for its commit index and waits to apply up to it. A read has no effect,
    /// so any failed attempt is tried again once a (new) leader shows, until
    /// [`CLUSTER_TIMEOUT`].
    pub async fn linearize(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let seen = self.leader_seen();
            let error = match tokio::time::timeout_at(deadline, self.linearize_once()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => return Err(ClusterError::NoLeader("timed out confirming the read point".into())),
            };
            if !self.wait_for_new_leader(seen, deadline).await {
                return Err(error);
            }
        }
    }

    async fn linearize_once(&self) -> Result<(), ClusterError> {
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
            .cluster_client(leader, &addr)?
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

/// The leader and term a node saw at one moment (see [`Context::wait_for_new_leader`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSeen {
    /// The term.
    pub term: u64,
    /// The leader, if one was known.
    pub leader: Option<NodeId>,
}

/// How one attempt at a write ended, when it did not commit.
enum Attempt {
    /// Certainly not taken by any leader: safe to try again.
    Refused(String),
    /// Failed, or its outcome is unknown: reported as is.
    Failed(ClusterError),
}

/// Whether a failed RPC never reached its server (the connection was refused), so the request
/// cannot have had any effect.
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::network::Channels;

    #[tokio::test]
    async fn a_refused_connection_counts_as_never_sent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let ch = Channels::default().uncached(1, &format!("127.0.0.1:{port}")).expect("channel");
        let status = ClusterClient::new(ch).info(Empty {}).await.expect_err("nothing listens");
        assert!(never_sent(&status), "{status:?}");
        assert!(!never_sent(&tonic::Status::unavailable("broken pipe")));
    }
}
