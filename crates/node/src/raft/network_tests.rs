//! The network's batch handling against a scripted peer: a retry joins the batch in flight,
//! heartbeats pass a slow batch, and oversized batches are split through openraft's hint.

use std::sync::atomic::{AtomicUsize, Ordering};

use belfry_core::Command;
use openraft::error::RaftError;
use openraft::{CommittedLeaderId, EntryPayload};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::*;
use crate::proto::raft_server::{Raft as RaftService, RaftServer};

/// A peer that answers every AppendEntries with success, holding replies to requests with
/// entries until `release` says so; counts what it receives.
#[derive(Clone)]
struct Peer {
    batches: Arc<AtomicUsize>,
    heartbeats: Arc<AtomicUsize>,
    release: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl RaftService for Peer {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: AppendEntriesRequest<TypeConfig> =
            serde_json::from_slice(&req.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if req.entries.is_empty() {
            self.heartbeats.fetch_add(1, Ordering::SeqCst);
        } else {
            self.batches.fetch_add(1, Ordering::SeqCst);
            let mut release = self.release.clone();
            let _ = release.wait_for(|go| *go).await;
        }
        let reply: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> = Ok(AppendEntriesResponse::Success);
        Ok(Response::new(RaftPayload {
            data: serde_json::to_vec(&reply).map_err(|e| Status::internal(e.to_string()))?,
        }))
    }

    async fn vote(&self, _req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        Err(Status::unimplemented("vote"))
    }

    async fn install_snapshot(&self, _req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        Err(Status::unimplemented("install_snapshot"))
    }
}

struct Harness {
    peer: Peer,
    release: watch::Sender<bool>,
    client: PeerClient,
}

async fn harness() -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (release, release_rx) = watch::channel(false);
    let peer = Peer { batches: Arc::default(), heartbeats: Arc::default(), release: release_rx };
    let service = RaftServer::new(peer.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = futures::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
    let timeouts = RpcTimeouts { append_base: Duration::from_secs(5) };
    let mut network = Network::new(Channels::default(), Contacts::default(), timeouts);
    let client = network.new_client(2, &BasicNode::new(addr)).await;
    Harness { peer, release, client }
}

fn entry(index: u64, size: usize) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command::DeleteJob { name: "x".repeat(size) }),
    }
}

fn request(prev: u64, entries: Vec<Entry<TypeConfig>>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), prev)),
        leader_commit: None,
        entries,
    }
}

/// What openraft 0.9.25 does to every AppendEntries: give up after the heartbeat interval.
async fn with_openraft_timeout(
    client: &mut PeerClient,
    req: AppendEntriesRequest<TypeConfig>,
    timeout: Duration,
) -> Option<Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>>> {
    tokio::time::timeout(timeout, client.append_entries(req, RPCOption::new(timeout))).await.ok()
}

#[tokio::test]
async fn a_retry_of_a_slow_batch_joins_it_instead_of_sending_it_again() {
    let mut h = harness().await;
    let short = Duration::from_millis(100);
    let batch = || request(0, (1..=3).map(|i| entry(i, 10)).collect());
    assert!(with_openraft_timeout(&mut h.client, batch(), short).await.is_none(), "the held batch times out");
    assert!(with_openraft_timeout(&mut h.client, batch(), short).await.is_none(), "so does the retry");
    h.release.send_replace(true);
    let reply = with_openraft_timeout(&mut h.client, batch(), Duration::from_secs(5)).await.expect("answered");
    assert!(matches!(reply, Ok(AppendEntriesResponse::Success)), "{reply:?}");
    assert_eq!(h.peer.batches.load(Ordering::SeqCst), 1, "the batch went out once");
}

#[tokio::test]
async fn a_longer_retry_is_told_how_far_the_joined_batch_got() {
    let mut h = harness().await;
    let short = Duration::from_millis(100);
    assert!(with_openraft_timeout(&mut h.client, request(0, vec![entry(1, 10), entry(2, 10)]), short).await.is_none());
    h.release.send_replace(true);
    // The retry asks for entries 1..=4 after the same entry: the peer has only 1..=2 so far.
    let longer = request(0, (1..=4).map(|i| entry(i, 10)).collect());
    let reply = with_openraft_timeout(&mut h.client, longer, Duration::from_secs(5)).await.expect("answered");
    match reply {
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id))) => assert_eq!(log_id.index, 2),
        other => panic!("expected a partial success up to 2, got {other:?}"),
    }
    assert_eq!(h.peer.batches.load(Ordering::SeqCst), 1);
    // The next request starts after entry 2 and goes out on its own.
    let next = request(2, vec![entry(3, 10), entry(4, 10)]);
    let reply = with_openraft_timeout(&mut h.client, next, Duration::from_secs(5)).await.expect("answered");
    assert!(matches!(reply, Ok(AppendEntriesResponse::Success)), "{reply:?}");
    assert_eq!(h.peer.batches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn heartbeats_are_not_held_behind_a_slow_batch() {
    let mut h = harness().await;
    let short = Duration::from_millis(100);
    assert!(with_openraft_timeout(&mut h.client, request(0, vec![entry(1, 10)]), short).await.is_none());
    let reply = with_openraft_timeout(&mut h.client, request(0, vec![]), Duration::from_secs(2)).await;
    assert!(matches!(reply, Some(Ok(AppendEntriesResponse::Success))), "{reply:?}");
    assert_eq!(h.peer.heartbeats.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_oversized_batch_is_refused_with_an_entries_hint() {
    let mut h = harness().await;
    let big = request(0, (1..=5).map(|i| entry(i, 300 * 1024)).collect());
    let reply = with_openraft_timeout(&mut h.client, big, Duration::from_secs(2)).await.expect("answered");
    match reply {
        Err(RPCError::PayloadTooLarge(too_large)) => assert_eq!(too_large.entries_hint(), 3),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert_eq!(h.peer.batches.load(Ordering::SeqCst), 0, "nothing was sent");
}

#[tokio::test]
async fn a_single_entry_over_the_budget_is_sent_whole() {
    let mut h = harness().await;
    h.release.send_replace(true);
    let huge = request(0, vec![entry(1, 2 * MAX_APPEND_BYTES)]);
    let reply = with_openraft_timeout(&mut h.client, huge, Duration::from_secs(5)).await.expect("answered");
    assert!(matches!(reply, Ok(AppendEntriesResponse::Success)), "{reply:?}");
    assert_eq!(h.peer.batches.load(Ordering::SeqCst), 1);
}

#[test]
fn the_hint_is_always_smaller_than_the_batch() {
    let sized = |sizes: &[usize]| sizes.iter().enumerate().map(|(i, s)| entry(i as u64 + 1, *s)).collect::<Vec<_>>();
    assert_eq!(entries_within(&sized(&[300 * 1024; 5]), MAX_APPEND_BYTES), 3);
    assert_eq!(entries_within(&sized(&[2 * MAX_APPEND_BYTES, 10]), MAX_APPEND_BYTES), 1);
    assert_eq!(entries_within(&sized(&[10, 10, 10]), MAX_APPEND_BYTES), 2);
}

#[test]
fn append_deadlines_grow_with_the_payload() {
    let timeouts = RpcTimeouts { append_base: Duration::from_millis(1200) };
    assert_eq!(timeouts.append(0), Duration::from_millis(1200));
    assert_eq!(timeouts.append(8 * 1024 * 1024), Duration::from_millis(2200));
    assert!(timeouts.append(usize::MAX) >= Duration::from_secs(1 << 20), "saturates, never wraps");
}
