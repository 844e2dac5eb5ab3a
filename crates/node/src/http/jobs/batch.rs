//! `POST /v1/jobs:batch`: up to [`MAX_BATCH_JOBS`] jobs in one committed entry, all or none.
//!
//! Every spec meets the checks of `POST /v1/jobs` (its shape, validation, no `"<redacted>"`
//! placeholder, the egress policy), and the names are checked against each other and against
//! the jobs that exist at a linearizable read point, so one answer lists every spec at fault.
//! Only a batch with none is proposed, as one [`Command::CreateJobs`]; its apply checks again
//! (another write may land in between) and refuses the batch whole, naming the spec. The body
//! may be up to [`belfry_core::api::MAX_BATCH_BYTES`] (the route's own limit, in `ROUTES` and
//! [`HttpLimits`](super::super::HttpLimits)), and the request counts as one against the caller's
//! rate limit.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use belfry_core::api::{BatchCreated, CreatedJobView};
use belfry_core::command::MAX_BATCH_JOBS;
use belfry_core::{ApplyError, Command, JobSpec, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::super::extract::Body;
use super::super::Api;

/// The body: `{"jobs": [spec, ...]}`. The specs are read one by one, so that one of the wrong
/// shape is refused with its index like any other refusal, not as the whole body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    jobs: Vec<serde_json::Value>,
}

pub async fn create_many(
    State(ctx): State<Api>,
    caller: Caller,
    Body(body): Body<BatchBody>,
) -> Result<impl IntoResponse, ApiError> {
    let count = body.jobs.len();
    if count == 0 || count > MAX_BATCH_JOBS {
        return Err(ApiError::invalid("jobs", format!("must hold 1 to {MAX_BATCH_JOBS} job specs, not {count}")));
    }
    let now = Utc::now();
    let specs = checked(&ctx, body.jobs, now).await?;
    let command = Command::CreateJobs { specs, now, by: caller.id(), max_jobs: Some(ctx.config.max_jobs) };
    match ctx.propose(command).await?.1 {
        Response::Created { jobs } => {
            tracing::info!(count = jobs.len(), by = ?caller.id(), "jobs created in a batch");
            let jobs: Vec<CreatedJobView> = jobs.iter().map(CreatedJobView::from).collect();
            Ok((StatusCode::CREATED, Json(BatchCreated { created: jobs.len(), jobs })))
        }
        Response::Rejected { error } => Err(error.into()),
        other => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected {other:?}"))),
    }
}

/// The specs of `values`, once every one passes; otherwise the refusal of each that does not
/// ([`ApiError::batch`]). Each spec is refused for the first check it fails, in the order of
/// single create's checks, then a name given twice, then a name in use.
async fn checked(ctx: &Api, values: Vec<serde_json::Value>, now: DateTime<Utc>) -> Result<Vec<JobSpec>, ApiError> {
    let mut refused = Vec::new();
    let mut specs = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        match read_spec(value, now) {
            Ok(spec) => specs.push((index, spec)),
            Err(e) => refused.push((index, e)),
        }
    }
    let targets = crate::egress::check_targets(ctx, specs.iter().map(|(_, s)| s.target.url.as_str())).await;
    let mut passed = Vec::with_capacity(specs.len());
    for ((index, spec), target) in specs.into_iter().zip(targets) {
        match target {
            Ok(()) => passed.push((index, spec)),
            Err(e) => refused.push((index, e)),
        }
    }
    ctx.linearize().await?;
    {
        let applied = ctx.shared.read();
        let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(passed.len());
        for (index, spec) in &passed {
            if let Some(first) = first_at.insert(&spec.name, *index) {
                let message = format!("job {} is also at index {first} of the batch", spec.name);
                refused.push((*index, ApiError::invalid("name", message)));
            } else if applied.state.job(&spec.name).is_some() {
                refused.push((*index, ApplyError::AlreadyExists { name: spec.name.to_string() }.into()));
            }
        }
    }
    if refused.is_empty() {
        Ok(passed.into_iter().map(|(_, spec)| spec).collect())
    } else {
        Err(ApiError::batch(refused))
    }
}

/// One spec: its shape (a refusal names the field inside the spec), validation, and no
/// placeholder for a stored secret.
fn read_spec(value: serde_json::Value, now: DateTime<Utc>) -> Result<JobSpec, ApiError> {
    let spec: JobSpec = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
        } else {
            ApiError::invalid(&path, message)
        }
    })?;
    spec.validate(now)?;
    spec.target.refuse_redacted()?;
    Ok(spec)
}
