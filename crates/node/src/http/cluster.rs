//! `/v1/cluster`, membership changes, `/healthz` and `/readyz`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use belfry_core::api::{ClusterView, MemberView};
use serde::Deserialize;

use super::error::{ApiError, Body};
use super::Api;
use crate::membership::{self, MembershipError};
use crate::proto::cluster_client::ClusterClient;
use crate::proto::{join_reply, Empty, JoinRequest};

/// How long a member probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn status(State(ctx): State<Api>) -> Json<ClusterView> {
    let m = ctx.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let last_log = m.last_log_index.unwrap_or(0);
    let probes = membership.nodes().map(|(id, node)| {
        let ctx = ctx.clone();
        let (id, addr) = (*id, node.addr.clone());
        async move {
            let probe = async {
                let ch = ctx.channels.get(&addr).map_err(|e| e.to_string())?;
                let mut req = tonic::Request::new(Empty {});
                req.set_timeout(PROBE_TIMEOUT);
                ClusterClient::new(ch).info(req).await.map(|r| r.into_inner()).map_err(|s| s.message().to_string())
            };
            let result =
                tokio::time::timeout(PROBE_TIMEOUT, probe).await.unwrap_or_else(|_| Err("probe timed out".into()));
            (id, addr, result)
        }
    });
    let results = futures::future::join_all(probes).await;
    let members = results
        .into_iter()
        .map(|(id, grpc_addr, probe)| {
            let matched = m.replication.as_ref().and_then(|r| r.get(&id)).map(|l| l.map(|l| l.index).unwrap_or(0));
            let (reachable, error, http_addr, version) = match probe {
                Ok(info) => (true, None, Some(info.http_addr), Some(info.version)),
                Err(e) => (false, Some(e), None, None),
            };
            MemberView {
                id,
                http_addr,
                grpc_addr,
                voter: voters.contains(&id),
                match_index: matched,
                lag: matched.map(|i| last_log.saturating_sub(i)),
                reachable,
                error,
                version,
            }
        })
        .collect();
    Json(ClusterView {
        node: ctx.id(),
        leader: m.current_leader,
        term: m.current_term,
        // openraft 0.9 publishes no commit index; everything applied is committed.
        commit_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        members,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    id: u64,
    grpc_addr: String,
    #[serde(default)]
    http_addr: Option<String>,
}

pub async fn add_member(State(ctx): State<Api>, Body(req): Body<AddMember>) -> Result<impl IntoResponse, ApiError> {
    if req.id == 0 {
        return Err(ApiError::invalid("id", "must be positive"));
    }
    if !req.grpc_addr.contains(':') {
        return Err(ApiError::invalid("grpc_addr", "must be host:port"));
    }
    match membership::add_member(&ctx, req.id, req.grpc_addr.clone()).await {
        Ok(()) => Ok((StatusCode::OK, Json(serde_json::json!({"id": req.id, "grpc_addr": req.grpc_addr})))),
        Err(MembershipError::NotLeader(nl)) => {
            // Forward the join to the leader over gRPC.
            if nl.leader_grpc_addr.is_empty() {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", "no leader elected"));
            }
            let ch = ctx
                .channels
                .get(&nl.leader_grpc_addr)
                .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", e.to_string()))?;
            let reply = ClusterClient::new(ch)
                .join(JoinRequest {
                    id: req.id,
                    grpc_addr: req.grpc_addr.clone(),
                    http_addr: req.http_addr.unwrap_or_default(),
                })
                .await
                .map_err(|s| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", s.message().to_string()))?
                .into_inner();
            match reply.result {
                Some(join_reply::Result::Ok(_)) => {
                    Ok((StatusCode::OK, Json(serde_json::json!({"id": req.id, "grpc_addr": req.grpc_addr}))))
                }
                Some(join_reply::Result::Error(e)) => Err(ApiError::new(StatusCode::CONFLICT, "membership", e)),
                _ => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", "leadership is changing")),
            }
        }
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "membership", e.to_string())),
    }
}

pub async fn remove_member(State(ctx): State<Api>, Path(id): Path<u64>) -> Result<StatusCode, ApiError> {
    match membership::remove_member(&ctx, id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(MembershipError::NotLeader(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_leader",
            "membership changes must be sent to the leader",
        )),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "membership", e.to_string())),
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// A checklist: every line `ok` or `fail`, 503 when any fails.
pub async fn readyz(State(ctx): State<Api>) -> impl IntoResponse {
    let m = ctx.raft.metrics().borrow().clone();
    let mut lines = vec![format!("ok node {}", ctx.id())];
    let mut ready = m.running_state.is_ok();
    lines.push(if m.running_state.is_ok() { "ok store".into() } else { "fail store: raft stopped".into() });
    match m.current_leader {
        Some(l) => lines.push(format!("ok leader {l}")),
        None => {
            ready = false;
            lines.push("fail leader: none elected".into());
        }
    }
    let caught_up = match ctx.linearize().await {
        Ok(()) => true,
        Err(e) => {
            lines.push(format!("fail caught up: {e}"));
            false
        }
    };
    if caught_up {
        lines.push("ok caught up".into());
    }
    ready &= caught_up;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, lines.join("\n") + "\n")
}
