//! The gRPC server: raft RPCs, worker RPCs and cluster RPCs on one port.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use belfry_core::Command;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::membership;
use crate::peer_tls::Caller;
use crate::proto::cluster_server::Cluster;
use crate::proto::raft_server::Raft as RaftService;
use crate::proto::worker_server::Worker as WorkerService;
use crate::proto::{
    forward_reply, read_index_reply, AdminReply, AdminRequest, DeliverBatchReply, DeliverBatchRequest, DeliverReply,
    DeliverRequest, Empty, ForwardReply, ForwardRequest, InfoReply, NotLeader, QueryDeliveryReply,
    QueryDeliveryRequest, RaftPayload, ReadIndexReply, TakeLeadershipRequest,
};
use crate::raft::campaign::CampaignGate;
use crate::raft::{chunk, NodeId, TypeConfig};
use crate::worker::Worker;

/// Serves every gRPC service of a node.
#[derive(Clone)]
pub struct Services {
    ctx: Arc<Context>,
    worker: Arc<Worker>,
    campaign: Arc<CampaignGate>,
}

impl Services {
    /// Services backed by `ctx` and `worker`.
    pub fn new(ctx: Arc<Context>, worker: Arc<Worker>) -> Services {
        let campaign = Arc::<CampaignGate>::default();
        campaign.watch(ctx.raft.clone());
        Services { ctx, worker, campaign }
    }

    fn caller<T>(&self, req: &Request<T>) -> Caller {
        Caller::of(req, self.ctx.config.peer_tls.is_some())
    }

    /// Refuses a caller that holds no cluster certificate.
    fn require_node<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(req);
        if caller.is_cluster_node() {
            Ok(caller)
        } else {
            Err(Status::unauthenticated("a cluster certificate is required"))
        }
    }

    /// Refuses a caller that is not a member of this node's latest membership.
    fn require_member<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.require_node(req)?;
        let members = self.members();
        if caller.is_any(members, self.ctx.id()) {
            Ok(caller)
        } else {
            Err(Status::permission_denied("the caller is not a member of this cluster"))
        }
    }

    /// The voters and learners of this node's latest membership.
    fn members(&self) -> Vec<NodeId> {
        let metrics = self.ctx.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().nodes().map(|(id, _)| *id).collect()
    }

    /// A raft RPC must come from the node its vote names (the certificate proves it), and that
    /// node must be a member, unless this node has no membership yet (it is joining, and its
    /// first leader is teaching it one).
    fn check_raft_sender(&self, caller: &Caller, claimed: NodeId) -> Result<(), Status> {
        if !caller.is(claimed, self.ctx.id()) {
            return Err(Status::permission_denied(format!("the caller's certificate is not node {claimed}'s")));
        }
        // Every append and heartbeat passes here: look the node up, copy nothing.
        let known = {
            let metrics = self.ctx.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            membership.nodes().next().is_none() || membership.get_node(&claimed).is_some()
        };
        if !known {
            return Err(Status::permission_denied(format!("node {claimed} is not a member of this cluster")));
        }
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("bad payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftService for Services {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let caller = self.require_node(&req)?;
        let req: AppendEntriesRequest<TypeConfig> = decode(req)?;
        self.check_raft_sender(&caller, req.vote.leader_id().voted_for().unwrap_or_default())?;
        let committed = req.leader_commit.map(|l| l.index);
        let sent_last = req.entries.last().map(|e| e.log_id).or(req.prev_log_id).map(|l| l.index);
        let reply = self.ctx.raft.append_entries(req).await;
        let holds = match &reply {
            Ok(AppendEntriesResponse::Success) => sent_last,
            Ok(AppendEntriesResponse::PartialSuccess(matched)) => matched.map(|l| l.index),
            _ => None,
        };
        self.campaign.observe(&self.ctx.raft, committed, holds);
        encode(&reply)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let caller = self.require_node(&req)?;
        let req: VoteRequest<NodeId> = decode(req)?;
        self.check_raft_sender(&caller, req.vote.leader_id().voted_for().unwrap_or_default())?;
        encode(&self.ctx.raft.vote(req).await)
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let caller = self.require_node(&req)?;
        let req = chunk::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        self.check_raft_sender(&caller, req.vote.leader_id().voted_for().unwrap_or_default())?;
        let committed = req.meta.last_log_id.map(|l| l.index);
        let reply = self.ctx.raft.install_snapshot(req).await;
        self.campaign.observe(&self.ctx.raft, committed, None);
        encode(&reply)
    }
}

#[tonic::async_trait]
impl WorkerService for Services {
    async fn deliver(&self, req: Request<DeliverRequest>) -> Result<Response<DeliverReply>, Status> {
        let caller = self.require_member(&req)?;
        Ok(Response::new(self.worker.deliver(&caller, req.into_inner()).await))
    }

    type DeliverBatchStream = Pin<Box<dyn Stream<Item = Result<DeliverBatchReply, Status>> + Send>>;

    async fn deliver_batch(
        &self,
        req: Request<DeliverBatchRequest>,
    ) -> Result<Response<Self::DeliverBatchStream>, Status> {
        let caller = self.require_member(&req)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let worker = self.worker.clone();
        // Admission runs on even when the leader hangs up: what it admits is sent.
        tokio::spawn(async move { worker.deliver_batch(&caller, req.into_inner(), tx).await });
        let replies = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (Ok(r), rx)) });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn query_delivery(&self, req: Request<QueryDeliveryRequest>) -> Result<Response<QueryDeliveryReply>, Status> {
        self.require_member(&req)?;
        let req = req.into_inner();
        Ok(Response::new(self.worker.query(&req.key, req.attempt)))
    }
}

fn not_leader<E>(f: &openraft::error::ForwardToLeader<NodeId, BasicNode>) -> NotLeader {
    let _ = std::marker::PhantomData::<E>;
    NotLeader {
        leader_id: f.leader_id,
        leader_grpc_addr: f.leader_node.as_ref().map(|n| n.addr.clone()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Cluster for Services {
    async fn forward(&self, req: Request<ForwardRequest>) -> Result<Response<ForwardReply>, Status> {
        self.require_member(&req)?;
        let command: Command = serde_json::from_slice(&req.into_inner().command)
            .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?;
        let command = command
            .forwarded(chrono::Utc::now())
            .ok_or_else(|| Status::permission_denied("only the leader proposes fires and completions"))?;
        self.ctx.hold.released().await;
        let reply = match self.ctx.raft.client_write(command).await {
            Ok(r) => {
                let body = serde_json::to_vec(&r.data).map_err(|e| Status::internal(e.to_string()))?;
                ForwardReply { result: Some(forward_reply::Result::Response(body)), log_index: r.log_id.index }
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                ForwardReply { result: Some(forward_reply::Result::NotLeader(not_leader::<()>(&f))), log_index: 0 }
            }
            Err(e) => ForwardReply { result: Some(forward_reply::Result::Unavailable(e.to_string())), log_index: 0 },
        };
        Ok(Response::new(reply))
    }

    async fn read_index(&self, req: Request<Empty>) -> Result<Response<ReadIndexReply>, Status> {
        self.require_member(&req)?;
        self.ctx.hold.released().await;
        let result = match self.ctx.raft.ensure_linearizable().await {
            Ok(log_id) => read_index_reply::Result::Index(log_id.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                read_index_reply::Result::NotLeader(not_leader::<()>(&f))
            }
            Err(e) => read_index_reply::Result::Unavailable(e.to_string()),
        };
        Ok(Response::new(ReadIndexReply { result: Some(result) }))
    }

    async fn info(&self, req: Request<Empty>) -> Result<Response<InfoReply>, Status> {
        self.require_node(&req)?;
        let m = self.ctx.raft.metrics().borrow().clone();
        let progress = membership::leader_view(&self.ctx, &m);
        Ok(Response::new(InfoReply {
            id: self.ctx.id(),
            http_addr: self.ctx.config.advertise_http.clone(),
            grpc_addr: self.ctx.config.advertise_grpc.clone(),
            version: crate::VERSION.to_string(),
            term: m.current_term,
            leader: m.current_leader,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: if progress.is_empty() { 0 } else { m.last_log_index.unwrap_or(0) },
            progress,
        }))
    }

    async fn admin(&self, req: Request<AdminRequest>) -> Result<Response<AdminReply>, Status> {
        self.require_member(&req)?;
        let op: membership::Op = serde_json::from_slice(&req.into_inner().op)
            .map_err(|e| Status::invalid_argument(format!("bad operation: {e}")))?;
        // A task of its own: a caller that gives up must not stop a change halfway.
        let ctx = self.ctx.clone();
        let result = tokio::spawn(async move { membership::run_local(&ctx, op).await })
            .await
            .unwrap_or_else(|e| Err(membership::MembershipError::Unavailable(format!("the change failed: {e}"))));
        let result = serde_json::to_vec(&result).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(AdminReply { result }))
    }

    async fn take_leadership(&self, req: Request<TakeLeadershipRequest>) -> Result<Response<Empty>, Status> {
        let caller = self.require_member(&req)?;
        let leader = self.ctx.leader_seen().leader;
        if !leader.is_some_and(|l| caller.is(l, self.ctx.id())) {
            return Err(Status::permission_denied("only the leader hands leadership over"));
        }
        let req = req.into_inner();
        if !membership::voters(&self.ctx).contains(&self.ctx.id()) {
            return Err(Status::failed_precondition("not a voter"));
        }
        membership::take_leadership(self.ctx.clone(), req.term, Duration::from_millis(req.elect_after_ms.min(10_000)));
        Ok(Response::new(Empty {}))
    }
}
