//! The gRPC server: raft RPCs, worker RPCs and cluster RPCs on one port.

use std::sync::Arc;
use std::time::Duration;

use belfry_core::Command;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::membership;
use crate::proto::cluster_server::Cluster;
use crate::proto::raft_server::Raft as RaftService;
use crate::proto::worker_server::Worker as WorkerService;
use crate::proto::{
    forward_reply, read_index_reply, AdminReply, AdminRequest, DeliverReply, DeliverRequest, Empty, ForwardReply,
    ForwardRequest, InfoReply, NotLeader, QueryDeliveryReply, QueryDeliveryRequest, RaftPayload, ReadIndexReply,
    TakeLeadershipRequest,
};
use crate::raft::{NodeId, TypeConfig};
use crate::worker::Worker;

/// Serves every gRPC service of a node.
#[derive(Clone)]
pub struct Services {
    ctx: Arc<Context>,
    worker: Arc<Worker>,
}

impl Services {
    /// Services backed by `ctx` and `worker`.
    pub fn new(ctx: Arc<Context>, worker: Arc<Worker>) -> Services {
        Services { ctx, worker }
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
        let req: AppendEntriesRequest<TypeConfig> = decode(req)?;
        encode(&self.ctx.raft.append_entries(req).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: VoteRequest<NodeId> = decode(req)?;
        encode(&self.ctx.raft.vote(req).await)
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        encode(&self.ctx.raft.install_snapshot(req).await)
    }
}

#[tonic::async_trait]
impl WorkerService for Services {
    async fn deliver(&self, req: Request<DeliverRequest>) -> Result<Response<DeliverReply>, Status> {
        Ok(Response::new(self.worker.deliver(req.into_inner()).await))
    }

    async fn query_delivery(&self, req: Request<QueryDeliveryRequest>) -> Result<Response<QueryDeliveryReply>, Status> {
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
        let command: Command = serde_json::from_slice(&req.into_inner().command)
            .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?;
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

    async fn read_index(&self, _req: Request<Empty>) -> Result<Response<ReadIndexReply>, Status> {
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

    async fn info(&self, _req: Request<Empty>) -> Result<Response<InfoReply>, Status> {
        let m = self.ctx.raft.metrics().borrow().clone();
        Ok(Response::new(InfoReply {
            id: self.ctx.id(),
            http_addr: self.ctx.config.advertise_http.clone(),
            grpc_addr: self.ctx.config.advertise_grpc.clone(),
            version: crate::VERSION.to_string(),
            term: m.current_term,
            leader: m.current_leader,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        }))
    }

    async fn admin(&self, req: Request<AdminRequest>) -> Result<Response<AdminReply>, Status> {
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
        let req = req.into_inner();
        if !membership::voters(&self.ctx).contains(&self.ctx.id()) {
            return Err(Status::failed_precondition("not a voter"));
        }
        membership::take_leadership(self.ctx.clone(), req.term, Duration::from_millis(req.elect_after_ms.min(10_000)));
        Ok(Response::new(Empty {}))
    }
}
