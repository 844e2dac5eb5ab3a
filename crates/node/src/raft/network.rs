//! openraft's network over tonic: one lazily connected channel per peer, reused by every
//! replication stream, election and read openraft opens to it.
//!
//! Deadlines (see the `raft` module documentation for why): votes and snapshot chunks use the
//! deadline openraft passes; heartbeats too, so they stay cheap. An AppendEntries that carries
//! entries is sent by a task of its own with a deadline sized for its payload
//! ([`RpcTimeouts::append`]): openraft gives up on it after `heartbeat_interval` and retries
//! the same range, and the retry joins the request still in flight rather than sending the
//! batch again. A request larger than [`MAX_APPEND_BYTES`] with more than one entry is refused
//! with `PayloadTooLarge` and an entries hint, so openraft splits it. Snapshot chunks travel
//! framed ([`chunk`]), their bytes as they are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Entry, LogId, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use super::{chunk, NodeId, TypeConfig, MAX_APPEND_BYTES};
use crate::config::Config;
use crate::peer_tls::PeerTls;
use crate::proto::raft_client::RaftClient;
use crate::proto::RaftPayload;

/// Largest gRPC message between nodes. Replication batches and snapshot chunks are far
/// smaller; what needs the room is one entry that cannot be split, such as a `Restore` of a
/// whole backup (sent to followers, or forwarded to the leader, as one message).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How much room the request around a batch's entries may take (vote, log ids, commit index)
/// before the network asks openraft to split the batch.
const ENVELOPE_BYTES: usize = 16 * 1024;

/// The slowest link between nodes that append deadlines are sized for, in bytes per second
/// (64 Mbit/s).
const MIN_PEER_BYTES_PER_SEC: u64 = 8 * 1024 * 1024;

/// Cached channels by peer id and gRPC address. Shared with the dispatcher and the cluster
/// client so a node holds one HTTP/2 connection per peer. With peer TLS, each channel checks
/// that the server it reaches holds the certificate of the node it was opened for.
#[derive(Clone, Default)]
pub struct Channels {
    // A std Mutex: held only to look up or insert, never across an `.await`.
    inner: Arc<Mutex<HashMap<(NodeId, String), Channel>>>,
    tls: Option<PeerTls>,
}

impl Channels {
    /// Channels that use `tls` (plaintext when `None`).
    pub fn new(tls: Option<PeerTls>) -> Channels {
        Channels { inner: Arc::default(), tls }
    }

    /// The channel to node `id` at `addr` (`host:port`), created lazily on first use.
    pub fn get(&self, id: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (id, addr.to_string());
        if let Some(ch) = map.get(&key) {
            return Ok(ch.clone());
        }
        let ch = self.endpoint(id, addr)?.connect_lazy();
        map.insert(key, ch.clone());
        Ok(ch)
    }

    /// A channel to node `id` at `addr` that is not cached: for addresses that are not
    /// members (yet), so a stream of bad requests cannot grow the cache. Its connection
    /// closes when it is dropped.
    pub fn uncached(&self, id: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        Ok(self.endpoint(id, addr)?.connect_lazy())
    }

    fn endpoint(&self, id: NodeId, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.client(id)),
            None => Ok(endpoint),
        }
    }
}

/// When each peer last answered a raft RPC from this node (for `/v1/cluster`).
#[derive(Clone, Default)]
pub struct Contacts {
    inner: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl Contacts {
    fn touch(&self, id: NodeId) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Instant::now());
    }

    /// How long ago `id` last answered, if it ever did.
    pub fn since(&self, id: NodeId) -> Option<Duration> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).get(&id).map(Instant::elapsed)
    }
}

/// Deadlines of the raft RPCs belfry sizes itself.
#[derive(Debug, Clone, Copy)]
pub struct RpcTimeouts {
    /// Deadline of an AppendEntries with entries, before its size is counted: the longest
    /// election timeout, so a follower's fsync under load never cuts a batch off.
    pub append_base: Duration,
}

impl RpcTimeouts {
    /// The deadlines for a node configured as `config`.
    pub fn from_config(config: &Config) -> RpcTimeouts {
        RpcTimeouts { append_base: config.election_timeout.saturating_mul(2) }
    }

    /// Deadline of an AppendEntries of `bytes`: the base plus its transfer time over the
    /// slowest link planned for (a 1 MiB batch adds 125 ms, a 40 MiB restore entry 5 s).
    pub fn append(&self, bytes: usize) -> Duration {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let transfer = Duration::from_millis(bytes.saturating_mul(1000) / MIN_PEER_BYTES_PER_SEC);
        self.append_base.saturating_add(transfer)
    }
}

/// Builds a [`PeerClient`] per target, from the channel cache.
#[derive(Clone)]
pub struct Network {
    channels: Channels,
    contacts: Contacts,
    timeouts: RpcTimeouts,
}

impl Network {
    /// A network over `channels` that records answers in `contacts`.
    pub fn new(channels: Channels, contacts: Contacts, timeouts: RpcTimeouts) -> Network {
        Network { channels, contacts, timeouts }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let client = self.channels.get(target, &node.addr).ok().map(|ch| {
            RaftClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
        });
        PeerClient {
            target,
            addr: node.addr.clone(),
            client,
            contacts: self.contacts.clone(),
            timeouts: self.timeouts,
            in_flight: None,
            failing: None,
        }
    }
}

/// Raft RPCs to one peer. openraft gives each replication stream its own client, so
/// `in_flight` is the one batch this stream has on the wire.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    client: Option<RaftClient<Channel>>,
    contacts: Contacts,
    timeouts: RpcTimeouts,
    in_flight: Option<InFlight>,
    /// Since when every RPC of this stream has failed, and whether that has been logged.
    failing: Option<(std::time::Instant, bool)>,
}

/// How long a peer's RPCs fail before it is logged as unreachable: longer than a peer takes to
/// start, so a healthy cluster coming up logs nothing.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// Why an RPC got no answer: the part of openraft's `RPCError` that does not depend on the
/// RPC, so one outcome can serve every caller that joined it.
#[derive(Debug, Clone)]
enum Failure {
    Unreachable(Unreachable),
    Network(NetworkError),
}

impl Failure {
    fn network(message: String) -> Failure {
        Failure::Network(NetworkError::new(&Message(message)))
    }

    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match self {
            Failure::Unreachable(e) => RPCError::Unreachable(e),
            Failure::Network(e) => RPCError::Network(e),
        }
    }
}

/// The raw reply to an RPC: the serialized openraft result, or why there is none.
type Reply = Result<Vec<u8>, Failure>;

/// A batch on the wire: what it was sent for, and where its reply will appear. Dropping it
/// cancels the request (an RPC belongs to the stream that sent it).
struct InFlight {
    vote: Vote<NodeId>,
    prev: Option<LogId<NodeId>>,
    last: Option<LogId<NodeId>>,
    reply: watch::Receiver<Option<Reply>>,
    task: tokio::task::AbortHandle,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

/// Sends one serialized request and waits, at most `timeout`, for its serialized reply.
async fn send(client: Option<RaftClient<Channel>>, addr: &str, kind: Rpc, data: Vec<u8>, timeout: Duration) -> Reply {
    let Some(mut client) = client else {
        return Err(Failure::Unreachable(Unreachable::new(&Message(format!("bad address {addr}")))));
    };
    let mut request = tonic::Request::new(RaftPayload { data });
    request.set_timeout(timeout);
    let call = async {
        match kind {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        }
    };
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| Failure::network(format!("no answer from {addr} within {timeout:?}")))?;
    match reply {
        Ok(reply) => Ok(reply.into_inner().data),
        Err(status) if status.code() == tonic::Code::Unavailable => {
            Err(Failure::Unreachable(Unreachable::new(&status)))
        }
        Err(status) => Err(Failure::Network(NetworkError::new(&status))),
    }
}

fn encode<T: Serialize, E: std::error::Error>(
    value: &T,
) -> Result<Vec<u8>, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
    serde_json::to_vec(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl PeerClient {
    fn decode<Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One request, sent and awaited here, with openraft's deadline.
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = encode(req)?;
        self.call_encoded(kind, data, option).await
    }

    /// [`PeerClient::call`] for a request already encoded.
    async fn call_encoded<Resp, E>(
        &mut self,
        kind: Rpc,
        data: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let sent = send(self.client.clone(), &self.addr, kind, data, option.hard_ttl()).await;
        self.note(sent.as_ref().err());
        let bytes = sent.map_err(Failure::into_rpc)?;
        self.contacts.touch(self.target);
        self.decode(&bytes)
    }

    /// Logs a peer that stays unreachable once, and once again when it answers. (openraft's
    /// own log of every failed RPC, at ERROR, is filtered out by default.)
    fn note(&mut self, failure: Option<&Failure>) {
        match (failure, &mut self.failing) {
            (None, Some((since, logged))) => {
                if *logged {
                    tracing::info!(peer = self.target, addr = %self.addr, after = ?since.elapsed(), "peer reachable again");
                }
                self.failing = None;
            }
            (None, None) => {}
            (Some(_), None) => self.failing = Some((std::time::Instant::now(), false)),
            (Some(failure), Some((since, logged))) => {
                if !*logged && since.elapsed() >= UNREACHABLE_AFTER {
                    *logged = true;
                    tracing::warn!(peer = self.target, addr = %self.addr, error = ?failure, "peer unreachable; raft keeps retrying");
                }
            }
        }
    }

    /// Puts a batch on the wire from a task of its own, or refuses it as too large.
    fn start_append(
        &self,
        req: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<InFlight, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let data = encode(req)?;
        if data.len() > MAX_APPEND_BYTES + ENVELOPE_BYTES && req.entries.len() > 1 {
            let fit = entries_within(&req.entries, MAX_APPEND_BYTES);
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(fit)));
        }
        let timeout = self.timeouts.append(data.len());
        let (tx, rx) = watch::channel(None);
        let (client, addr, contacts, target) =
            (self.client.clone(), self.addr.clone(), self.contacts.clone(), self.target);
        let task = tokio::spawn(async move {
            let reply = send(client, &addr, Rpc::Append, data, timeout).await;
            if reply.is_ok() {
                contacts.touch(target);
            }
            tx.send_replace(Some(reply));
        });
        Ok(InFlight {
            vote: req.vote,
            prev: req.prev_log_id,
            last: req.entries.last().map(|e| e.log_id),
            reply: rx,
            task: task.abort_handle(),
        })
    }
}

/// How many leading `entries` fit in `budget` bytes once encoded: at least one, and fewer
/// than all of them, so openraft's retry always sends a smaller request.
fn entries_within(entries: &[Entry<TypeConfig>], budget: usize) -> u64 {
    let mut used = 0usize;
    let mut fit = 0u64;
    for entry in entries {
        used = used.saturating_add(serde_json::to_vec(entry).map(|v| v.len()).unwrap_or(usize::MAX));
        if used > budget {
            break;
        }
        fit += 1;
    }
    let most = u64::try_from(entries.len()).unwrap_or(u64::MAX).saturating_sub(1).max(1);
    fit.clamp(1, most)
}

/// The answer to a request for entries up to `asked` from the reply to one that carried
/// entries up to `sent` (the same leader and previous entry, so the same entries at the same
/// indexes): a follower that took `sent` has everything up to it, and no more.
fn covering(
    reply: AppendEntriesResponse<NodeId>,
    sent: Option<LogId<NodeId>>,
    asked: Option<LogId<NodeId>>,
) -> AppendEntriesResponse<NodeId> {
    let index = |l: Option<LogId<NodeId>>| l.map(|l| l.index);
    match reply {
        AppendEntriesResponse::Success if index(sent) >= index(asked) => AppendEntriesResponse::Success,
        AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(sent),
        AppendEntriesResponse::PartialSuccess(m) if index(m) >= index(asked) => AppendEntriesResponse::Success,
        other => other,
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let Some(asked) = req.entries.last().map(|e| e.log_id) else {
            return self.call(Rpc::Append, &req, &option).await;
        };
        let joins = self.in_flight.as_ref().is_some_and(|f| f.vote == req.vote && f.prev == req.prev_log_id);
        if !joins {
            self.in_flight = None;
            self.in_flight = Some(self.start_append(&req)?);
        }
        let Some(in_flight) = self.in_flight.as_ref() else {
            return Err(Failure::network("no request in flight".into()).into_rpc());
        };
        let sent = in_flight.last;
        let mut reply = in_flight.reply.clone();
        // If openraft's own timeout drops this future here, the request stays in flight for
        // the retry to join.
        let outcome = match reply.wait_for(Option::is_some).await {
            Ok(ready) => ready.clone().unwrap_or_else(|| Err(Failure::network("empty reply".into()))),
            Err(_) => Err(Failure::network(format!("the request to {} was cancelled", self.addr))),
        };
        self.in_flight = None;
        self.note(outcome.as_ref().err());
        let bytes = outcome.map_err(Failure::into_rpc)?;
        let response: AppendEntriesResponse<NodeId> = self.decode(&bytes)?;
        Ok(covering(response, sent, Some(asked)))
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        let data = chunk::encode(&req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call_encoded(Rpc::Snapshot, data, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &req, &option).await
    }
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
