//! `/v1/executions` and `/v1/dead-letters`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use belfry_core::api::{rfc3339, DeadLetterResult, ExecutionList, ExecutionView, SecondView, StatsView};
use belfry_core::state::summary::MAX_STATS_WINDOW_SECS;
use belfry_core::{Command, DeadLetterSelector, FireKey, FireStatus, Response};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, Param, Query};
use super::jobs::{fill_page, page_limit};
use super::Api;

/// `GET /v1/stats` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Seconds to cover, the current one last (default 60).
    #[param(minimum = 1, maximum = 300)]
    seconds: Option<u32>,
}

/// Default window of `GET /v1/stats`.
const DEFAULT_STATS_SECONDS: u32 = 60;

/// `GET /v1/stats`: the cluster's fires second by second (from the replicated state, so every
/// node answers the same), for the console's chart.
pub async fn stats(State(ctx): State<Api>, Query(q): Query<StatsQuery>) -> Result<Json<StatsView>, ApiError> {
    let window = q.seconds.unwrap_or(DEFAULT_STATS_SECONDS);
    if !(1..=MAX_STATS_WINDOW_SECS).contains(&window) {
        return Err(ApiError::invalid("seconds", format!("must be between 1 and {MAX_STATS_WINDOW_SECS}")));
    }
    ctx.linearize().await?;
    let now = Utc::now();
    let applied = ctx.shared.read();
    let seconds = applied.state.recent_seconds(now, window).iter().map(SecondView::from).collect();
    Ok(Json(StatsView { window_seconds: window, now: rfc3339(now), seconds }))
}

/// `GET /v1/executions` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only the fires of the live job of this name.
    job: Option<String>,
    /// Only fires with this status.
    #[param(value_type = Option<FireStatus>)]
    status: Option<String>,
    /// Page size (a page holds at most 500 items, and about 4 MiB).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/dead-letters` parameters: `status`, if given, can only be `dead_lettered`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only the dead letters of the live job of this name.
    job: Option<String>,
    /// Only `dead_lettered`, the one status dead letters have.
    #[param(pattern = "^dead_lettered$")]
    status: Option<String>,
    /// Page size (a page holds at most 500 items, and about 4 MiB).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of fires, newest first, of one status and one job if asked.
///
/// `job` names a live job and the filter is on its uid, not on the name a fire was claimed
/// under: a job deleted and created again under the same name is a new job, and its list
/// never shows the old one's fires. A name with no live job is a 404 naming `job`.
fn list_fires(
    ctx: &Api,
    job: Option<&str>,
    status: Option<FireStatus>,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<ExecutionList, ApiError> {
    let limit = page_limit(limit)?;
    let before = match cursor {
        None => None,
        Some(c) => {
            Some(c.parse::<u64>().map_err(|_| ApiError::invalid("cursor", "not a cursor from a previous page"))?)
        }
    };
    let applied = ctx.shared.read();
    let uid = match job {
        None => None,
        Some(name) => Some(
            applied.state.job(name).map(|j| j.uid).ok_or_else(|| ApiError::not_found("job", name).on_field("job"))?,
        ),
    };
    let matching = applied.state.fires_before(before, status).filter(|f| uid.is_none_or(|uid| f.job_uid == uid));
    let (page, more) = fill_page(matching.map(|f| (f.seq, ExecutionView::of(f, false))), limit);
    let next_cursor = if more { page.last().map(|(seq, _)| seq.to_string()) } else { None };
    Ok(ExecutionList { executions: page.into_iter().map(|(_, e)| e).collect(), next_cursor })
}

/// `GET /v1/executions?job=&status=&limit=&cursor=`.
pub async fn list(State(ctx): State<Api>, Query(q): Query<ListQuery>) -> Result<Json<ExecutionList>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(FireStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "must be one of queued, dispatched, retry_waiting, succeeded, dead_lettered, skipped, cancelled",
            )
        })?),
    };
    ctx.linearize().await?;
    Ok(Json(list_fires(&ctx, q.job.as_deref(), status, q.limit, q.cursor.as_deref())?))
}

pub async fn get(State(ctx): State<Api>, Param(key): Param<String>) -> Result<Json<ExecutionView>, ApiError> {
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    let fire =
        applied.state.fire_by_key(&FireKey(key.clone())).ok_or_else(|| ApiError::not_found("execution", &key))?;
    Ok(Json(ExecutionView::of(fire, true)))
}

/// `GET /v1/dead-letters?job=&limit=&cursor=`.
pub async fn dead_letters(
    State(ctx): State<Api>,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<ExecutionList>, ApiError> {
    if q.status.as_deref().is_some_and(|s| FireStatus::parse(s) != Some(FireStatus::DeadLettered)) {
        return Err(ApiError::invalid("status", "dead letters are all dead_lettered; leave status out"));
    }
    ctx.linearize().await?;
    Ok(Json(list_fires(&ctx, q.job.as_deref(), Some(FireStatus::DeadLettered), q.limit, q.cursor.as_deref())?))
}

pub async fn requeue(
    State(ctx): State<Api>,
    caller: Caller,
    Param(key): Param<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let command = Command::Requeue { key: FireKey(key.clone()), now: Utc::now(), by: caller.id() };
    let (index, response) = ctx.propose(command).await?;
    if let Response::Rejected { error } = response {
        return Err(error.into());
    }
    ctx.raft
        .wait(Some(std::time::Duration::from_secs(5)))
        .applied_index_at_least(Some(index), "requeue")
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "no_leader", e.to_string()))?;
    let applied = ctx.shared.read();
    let fire =
        applied.state.fire_by_key(&FireKey(key.clone())).ok_or_else(|| ApiError::not_found("execution", &key))?;
    Ok(Json(ExecutionView::of(fire, true)))
}

fn bulk_response(response: Response) -> Result<DeadLetterResult, ApiError> {
    match response {
        Response::Fires { keys } => {
            Ok(DeadLetterResult { count: keys.len(), keys: keys.into_iter().map(|k| k.0).collect() })
        }
        Response::Rejected { error } => Err(error.into()),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected {other:?}"))),
    }
}

/// `POST /v1/dead-letters/requeue` with `{"keys": [..]}`, `{"job": ".."}` or `{"all": true}`.
pub async fn requeue_many(
    State(ctx): State<Api>,
    caller: Caller,
    Body(select): Body<DeadLetterSelector>,
) -> Result<Json<DeadLetterResult>, ApiError> {
    let (_, response) = ctx.propose(Command::RequeueDeadLetters { select, now: Utc::now(), by: caller.id() }).await?;
    Ok(Json(bulk_response(response)?))
}

/// `POST /v1/dead-letters/purge` with the same selector as requeue.
/// A purge leaves no record to carry its writer, so it is logged with it.
pub async fn purge_many(
    State(ctx): State<Api>,
    caller: Caller,
    Body(select): Body<DeadLetterSelector>,
) -> Result<Json<DeadLetterResult>, ApiError> {
    let (_, response) = ctx.propose(Command::PurgeDeadLetters { select, now: Utc::now() }).await?;
    let result = bulk_response(response)?;
    tracing::info!(count = result.count, by = ?caller.id(), "dead letters purged");
    Ok(Json(result))
}

/// `DELETE /v1/dead-letters/{key}`: forgets one dead letter.
pub async fn purge(State(ctx): State<Api>, caller: Caller, Param(key): Param<String>) -> Result<StatusCode, ApiError> {
    let select = DeadLetterSelector { keys: Some(vec![FireKey(key.clone())]), ..Default::default() };
    let (_, response) = ctx.propose(Command::PurgeDeadLetters { select, now: Utc::now() }).await?;
    bulk_response(response)?;
    tracing::info!(key = %key, by = ?caller.id(), "dead letter purged");
    Ok(StatusCode::NO_CONTENT)
}
