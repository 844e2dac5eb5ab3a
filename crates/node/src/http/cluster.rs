//! `/v1/cluster`, membership changes, leadership transfer, `/healthz` and `/readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use belfry_core::api::{ClusterView, MemberView};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Body, Param, Query};
use super::Api;
use crate::membership::{self, MembershipError, Op};

pub async fn status(State(ctx): State<Api>) -> Json<ClusterView> {
    Json(view(&ctx).await)
}

async fn view(ctx: &Api) -> ClusterView {
    let m = ctx.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let last_log = m.last_log_index.unwrap_or(0);
    let probes = membership.nodes().map(|(id, node)| {
        let (id, addr) = (*id, node.addr.clone());
        async move {
            let probe = if id == ctx.id() { Ok(None) } else { membership::probe(ctx, id, &addr).await.map(Some) };
            (id, addr, probe)
        }
    });
    let results = futures::future::join_all(probes).await;
    // Replication is the leader's to know: a follower shows what the leader answered its probe.
    let (last_log, progress) = if m.current_leader == Some(ctx.id()) {
        (last_log, membership::leader_view(ctx, &m))
    } else {
        results
            .iter()
            .find(|(id, _, _)| Some(*id) == m.current_leader)
            .and_then(|(_, _, probe)| probe.as_ref().ok().and_then(Option::as_ref))
            .map(|info| (info.last_log_index, info.progress.clone()))
            .unwrap_or_default()
    };
    let of = |id: u64| progress.iter().find(|p| p.id == id);
    let members = results
        .into_iter()
        .map(|(id, grpc_addr, probe)| {
            let matched = of(id).and_then(|p| p.match_index);
            let (reachable, error, http_addr, version) = match probe {
                Ok(Some(info)) => (true, None, Some(info.http_addr), Some(info.version)),
                Ok(None) => (true, None, Some(ctx.config.advertise_http.clone()), Some(crate::VERSION.to_string())),
                Err(e) => (false, Some(e), None, None),
            };
            MemberView {
                id,
                http_addr,
                grpc_addr,
                voter: voters.contains(&id),
                match_index: matched,
                lag: matched.map(|i| last_log.saturating_sub(i)),
                last_contact_ms: of(id).and_then(|p| p.last_contact_ms),
                reachable,
                error,
                version,
            }
        })
        .collect();
    ClusterView {
        node: ctx.id(),
        leader: m.current_leader,
        term: m.current_term,
        // openraft 0.9 publishes no commit index; everything applied is committed.
        commit_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        members,
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> ApiError {
        let message = e.to_string();
        match e {
            MembershipError::Invalid { field, message } => ApiError::invalid(&field, message),
            MembershipError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            MembershipError::Unsafe(_) => ApiError::new(StatusCode::CONFLICT, "unsafe_change", message),
            MembershipError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            MembershipError::Timeout(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message),
            MembershipError::NotLeader { .. } | MembershipError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message)
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The new node's id (positive, unused).
    #[schema(minimum = 1)]
    id: u64,
    /// Its gRPC address, `host:port`, as the other nodes reach it.
    grpc_addr: String,
    /// Accepted for symmetry with `/v1/cluster`; members report their HTTP address themselves.
    #[serde(default)]
    #[allow(dead_code)]
    http_addr: Option<String>,
}

/// Adds a node as a learner and promotes it to voter once it has caught up; answers when
/// it is a voter. Repeating it for a voter at the same address is a no-op.
pub async fn add_member(State(ctx): State<Api>, Body(req): Body<AddMember>) -> Result<Json<ClusterView>, ApiError> {
    if req.id == 0 {
        return Err(ApiError::invalid("id", "must be positive"));
    }
    if req.grpc_addr.parse::<std::net::SocketAddr>().is_err() && !looks_like_host_port(&req.grpc_addr) {
        return Err(ApiError::invalid("grpc_addr", "must be host:port"));
    }
    membership::run(&ctx, Op::Add { id: req.id, grpc_addr: req.grpc_addr }).await?;
    Ok(Json(view(&ctx).await))
}

fn looks_like_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Remove even when the rest would have no reachable majority.
    #[serde(default)]
    force: bool,
}

/// Removes a member. Refused (409) when fewer than a majority of the remaining voters would
/// be reachable, unless `?force=true`; removing the leader hands leadership over first.
pub async fn remove_member(
    State(ctx): State<Api>,
    Param(id): Param<u64>,
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    membership::run(&ctx, Op::Remove { id, force: q.force }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// The voter to hand leadership to; the most caught-up one when absent.
    #[serde(default)]
    to: Option<u64>,
}

/// Hands leadership to `to` (or the most caught-up voter) and answers with the new view.
pub async fn transfer_leadership(
    State(ctx): State<Api>,
    Body(req): Body<Transfer>,
) -> Result<Json<ClusterView>, ApiError> {
    membership::run(&ctx, Op::Transfer { to: req.to }).await?;
    Ok(Json(view(&ctx).await))
}

/// `GET /v1/backup`: the state as of every write committed before the request.
pub async fn backup(State(ctx): State<Api>) -> Result<Json<belfry_core::api::Backup>, ApiError> {
    Ok(Json(crate::restore::backup(&ctx).await?))
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
