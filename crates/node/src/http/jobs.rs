//! `/v1/jobs` and `/v1/schedule/preview`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use belfry_core::api::{rfc3339, ExecutionView, Instants, JobList, JobView, PreviewRequest};
use belfry_core::{Command, JobSpec, Response};
use belfry_schedule::Schedule;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, Param, Query};
use super::Api;

mod batch;

pub use batch::create_many;

/// Most items one page holds; a larger `limit` (up to [`MAX_LIMIT`]) is served as this. Jobs
/// are up to 96 KiB each, so a page of them is also cut by [`MAX_PAGE_BYTES`].
pub const MAX_PAGE: usize = 500;
/// Default page size.
pub const DEFAULT_PAGE: usize = 100;
/// Largest `limit` accepted (a larger one is a 400); anything above [`MAX_PAGE`] is served as
/// [`MAX_PAGE`].
pub const MAX_LIMIT: usize = 1000;
/// Default of `Config::max_jobs` (`--max-jobs`): far above what one cluster schedules in
/// practice, and a state of that many jobs still snapshots in seconds.
pub const DEFAULT_MAX_JOBS: u64 = 100_000;
/// Largest list answer, roughly: a page stops taking items once their JSON reaches this (it
/// always holds at least one) and hands out the cursor of the rest, so no list answer costs a
/// node more than a few MiB to build and send.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// A job's view with its version as the `ETag` (`"<version>"`), the value `If-Match` takes.
pub struct Versioned(pub JobView);

impl IntoResponse for Versioned {
    fn into_response(self) -> axum::response::Response {
        let etag = format!("\"{}\"", self.0.version);
        ([(axum::http::header::ETAG, etag)], Json(self.0)).into_response()
    }
}

fn job_response(response: Response) -> Result<Versioned, ApiError> {
    match response {
        Response::Job { job } => Ok(Versioned(JobView::from(job.as_ref()))),
        Response::Rejected { error } => Err(error.into()),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected {other:?}"))),
    }
}

pub async fn create(
    State(ctx): State<Api>,
    caller: Caller,
    Body(spec): Body<JobSpec>,
) -> Result<impl IntoResponse, ApiError> {
    let now = Utc::now();
    spec.validate(now)?;
    spec.target.refuse_redacted()?;
    crate::egress::check_target(&ctx, &spec.target.url).await?;
    let command = Command::CreateJob { spec, now, by: caller.id(), max_jobs: Some(ctx.config.max_jobs) };
    let (_, response) = ctx.propose(command).await?;
    Ok((StatusCode::CREATED, job_response(response)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only paused (`true`) or only active (`false`) jobs.
    paused: Option<bool>,
    /// Only failing (`true`: the newest finished fire is a dead letter, or a fire is being
    /// retried) or only healthy (`false`) jobs.
    failing: Option<bool>,
    /// Only jobs whose name starts with this.
    #[param(max_length = 128)]
    prefix: Option<String>,
    /// Page size (a page holds at most 500 items, and about 4 MiB).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub async fn list(State(ctx): State<Api>, Query(q): Query<ListQuery>) -> Result<Json<JobList>, ApiError> {
    let limit = page_limit(q.limit)?;
    let prefix = q.prefix.unwrap_or_default();
    if prefix.len() > belfry_core::job::MAX_NAME_BYTES {
        return Err(ApiError::invalid(
            "prefix",
            format!("longer than a job name ({} bytes)", belfry_core::job::MAX_NAME_BYTES),
        ));
    }
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    let state = &applied.state;
    let selected = |job: &&belfry_core::Job| {
        q.paused.is_none_or(|p| job.spec.paused == p)
            && q.failing.is_none_or(|f| state.job_health(job.uid).failing() == f)
    };
    // Unfiltered, every job matches: no walk over all of them on every page.
    let unfiltered = prefix.is_empty() && q.paused.is_none() && q.failing.is_none();
    let matching =
        if unfiltered { state.job_count() } else { state.jobs_with_prefix(&prefix, None).filter(selected).count() };
    let page =
        state.jobs_with_prefix(&prefix, q.cursor.as_deref()).filter(selected).map(|j| JobView::with_health(j, state));
    let (jobs, more) = fill_page(page, limit);
    let next_cursor = if more { jobs.last().map(|j| j.name.clone()) } else { None };
    Ok(Json(JobList { jobs, next_cursor, total: state.job_count(), matching }))
}

/// Checks `limit`: 1 to [`MAX_LIMIT`], default 100; a page holds at most [`MAX_PAGE`] whatever
/// the limit (the cursor says there is more), so clients written for bigger pages still page.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n.min(MAX_PAGE)),
        Some(_) => Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}"))),
    }
}

/// Takes at most `limit` items, and no more once their JSON passes [`MAX_PAGE_BYTES`] (but at
/// least one); says whether items were left.
pub fn fill_page<T: serde::Serialize>(items: impl Iterator<Item = T>, limit: usize) -> (Vec<T>, bool) {
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        if page.len() >= limit {
            return (page, true);
        }
        let size = json_size(&item);
        if !page.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
            return (page, true);
        }
        bytes = bytes.saturating_add(size);
        page.push(item);
    }
    (page, false)
}

/// Bytes of `value`'s JSON, counted without keeping it.
fn json_size<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing belfry's own view types into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

pub async fn get(State(ctx): State<Api>, Param(name): Param<String>) -> Result<Versioned, ApiError> {
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    applied
        .state
        .job(&name)
        .map(|j| Versioned(JobView::with_health(j, &applied.state)))
        .ok_or_else(|| ApiError::not_found("job", &name))
}

pub async fn replace(
    State(ctx): State<Api>,
    caller: Caller,
    Param(name): Param<String>,
    headers: HeaderMap,
    Body(spec): Body<JobSpec>,
) -> Result<Versioned, ApiError> {
    if spec.name != name {
        return Err(ApiError::invalid("name", format!("must match the path ({name})")));
    }
    let if_version = match headers.get(axum::http::header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("If-Match", "must be a job version number"))?,
        ),
    };
    let (spec, if_version) = keep_redacted(&ctx, spec, if_version).await?;
    let now = Utc::now();
    spec.validate(now)?;
    crate::egress::check_target(&ctx, &spec.target.url).await?;
    let (_, response) = ctx.propose(Command::ReplaceJob { spec, if_version, now, by: caller.id() }).await?;
    job_response(response)
}

/// Gives `"<redacted>"` header values the stored job's values (docs/API.md, "Secret
/// headers"). The replace is then pinned to the version read, so that a change in between
/// answers 409 instead of bringing back an older secret.
async fn keep_redacted(
    ctx: &Api,
    mut spec: JobSpec,
    if_version: Option<u64>,
) -> Result<(JobSpec, Option<u64>), ApiError> {
    if !spec.target.has_redacted() {
        return Ok((spec, if_version));
    }
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    let job = applied.state.job(&spec.name).ok_or_else(|| ApiError::not_found("job", &spec.name))?;
    if let Some(expected) = if_version.filter(|v| *v != job.version) {
        return Err(belfry_core::ApplyError::VersionMismatch { expected, current: job.version }.into());
    }
    spec.target.keep_redacted(&job.spec.target)?;
    Ok((spec, Some(job.version)))
}

/// Deletes a job. A delete leaves no record to carry its writer, so it is logged with it.
pub async fn delete(
    State(ctx): State<Api>,
    caller: Caller,
    Param(name): Param<String>,
) -> Result<StatusCode, ApiError> {
    match ctx.propose(Command::DeleteJob { name: name.clone() }).await?.1 {
        Response::Rejected { error } => Err(error.into()),
        _ => {
            tracing::info!(job = %name, by = ?caller.id(), "job deleted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

pub async fn pause(State(ctx): State<Api>, caller: Caller, Param(name): Param<String>) -> Result<Versioned, ApiError> {
    job_response(ctx.propose(Command::PauseJob { name, now: Utc::now(), by: caller.id() }).await?.1)
}

pub async fn resume(State(ctx): State<Api>, caller: Caller, Param(name): Param<String>) -> Result<Versioned, ApiError> {
    job_response(ctx.propose(Command::ResumeJob { name, now: Utc::now(), by: caller.id() }).await?.1)
}

pub async fn trigger(
    State(ctx): State<Api>,
    caller: Caller,
    Param(name): Param<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (index, response) = ctx.propose(Command::TriggerJob { name, now: Utc::now(), by: caller.id() }).await?;
    let key = match response {
        Response::Triggered { key } => key,
        Response::Rejected { error } => return Err(error.into()),
        other => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected {other:?}")))
        }
    };
    // The entry committed; wait until this node has applied it to show the fire.
    ctx.raft
        .wait(Some(std::time::Duration::from_secs(5)))
        .applied_index_at_least(Some(index), "trigger")
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", e.to_string()))?;
    let applied = ctx.shared.read();
    let fire = applied.state.fire_by_key(&key).ok_or_else(|| ApiError::not_found("execution", key.as_str()))?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionView::of(fire, false))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    /// How many instants (default 10).
    #[param(minimum = 1, maximum = 1000)]
    count: Option<usize>,
}

fn count(c: Option<usize>) -> Result<usize, ApiError> {
    match c {
        None => Ok(10),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("count", "must be between 1 and 1000")),
    }
}

pub async fn upcoming(
    State(ctx): State<Api>,
    Param(name): Param<String>,
    Query(q): Query<CountQuery>,
) -> Result<Json<Instants>, ApiError> {
    let count = count(q.count)?;
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    let job = applied.state.job(&name).ok_or_else(|| ApiError::not_found("job", &name))?;
    let schedule = job.schedule()?;
    let mut instants = Vec::new();
    if let Some(next) = job.next_fire_at {
        instants.push(next);
        instants.extend(schedule.upcoming(next, count - 1));
    }
    Ok(Json(Instants { instants: instants.into_iter().map(rfc3339).collect(), description: Some(schedule.describe()) }))
}

pub async fn preview(Body(req): Body<PreviewRequest>) -> Result<Json<Instants>, ApiError> {
    let count = count(req.count)?;
    let now = Utc::now();
    let after = match req.after.as_deref() {
        None => now,
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| ApiError::invalid("after", format!("not an RFC 3339 instant: {e}")))?,
    };
    let schedule = Schedule::parse(&req.schedule, now).map_err(belfry_core::ApplyError::from)?;
    let instants = schedule.upcoming(after, count).into_iter().map(rfc3339).collect();
    Ok(Json(Instants { instants, description: Some(schedule.describe()) }))
}
