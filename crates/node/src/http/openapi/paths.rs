//! The operations of the document, one per route of [`crate::http::ROUTES`] under `/v1` and
//! the health and metrics routes. Each names its parameters (the handlers' own query types),
//! its body and its answers; the errors every route shares are added by
//! [`super::Contract`]. The functions are never called: they carry the attributes.

#![allow(dead_code)]

use belfry_core::api::{
    Backup, BatchCreated, ClusterView, DeadLetterResult, ErrorBody, ExecutionList, ExecutionView, Instants, JobList,
    JobView, NewToken, PreviewRequest, StatsView, TokenList, TokenRequest,
};
use belfry_core::{DeadLetterSelector, JobSpec};

use super::super::cluster::{AddMember, RemoveQuery, Transfer};
use super::super::executions::{DeadLetterQuery, ListQuery as ExecutionQuery, StatsQuery};
use super::super::jobs::{CountQuery, ListQuery as JobQuery};
use super::JobBatch;

/// Creates a job.
///
/// Validated before it enters the log; answered once a majority has it.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobSpec,
    responses(
        (status = 201, description = "Created", body = JobView, headers(("ETag" = String, description = "The job's version, quoted: the value If-Match takes"))),
        (status = 409, description = "`already_exists` (the name is in use) or `quota_exceeded`", body = ErrorBody),
    ))]
fn create_job() {}

/// Creates up to 1000 jobs in one committed entry, or none.
///
/// A refusal names each refused spec by its index in `errors`.
#[utoipa::path(post, path = "/v1/jobs:batch", tag = "jobs", request_body = JobBatch,
    responses(
        (status = 201, description = "Every job created", body = BatchCreated),
        (status = 409, description = "Names in use, or the batch would pass `--max-jobs`", body = ErrorBody),
    ))]
fn create_jobs() {}

/// Lists jobs in name order, one page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "One page", body = JobList)))]
fn list_jobs() {}

/// Reads one job.
#[utoipa::path(get, path = "/v1/jobs/{name}", tag = "jobs", params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, description = "The job", body = JobView, headers(("ETag" = String, description = "The job's version, quoted")))))]
fn get_job() {}

/// Replaces a job's spec; with `If-Match`, only at that version.
#[utoipa::path(put, path = "/v1/jobs/{name}", tag = "jobs", request_body = JobSpec,
    params(
        ("name" = String, Path, description = "The job's name; the spec's name must be the same"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on (the ETag of a read)"),
    ),
    responses(
        (status = 200, description = "Replaced", body = JobView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 409, description = "`version_mismatch`: the job changed since that version", body = ErrorBody),
    ))]
fn replace_job() {}

/// Deletes a job; fires already in flight finish.
#[utoipa::path(delete, path = "/v1/jobs/{name}", tag = "jobs", params(("name" = String, Path, description = "The job's name")),
    responses((status = 204, description = "Deleted")))]
fn delete_job() {}

/// Pauses a job: it claims no fires until resumed.
#[utoipa::path(post, path = "/v1/jobs/{name}/pause", tag = "jobs", params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, description = "Paused", body = JobView, headers(("ETag" = String, description = "The new version, quoted")))))]
fn pause_job() {}

/// Resumes a paused job; its misfire policy decides about the instants it missed.
#[utoipa::path(post, path = "/v1/jobs/{name}/resume", tag = "jobs", params(("name" = String, Path, description = "The job's name")),
    responses((status = 200, description = "Resumed", body = JobView, headers(("ETag" = String, description = "The new version, quoted")))))]
fn resume_job() {}

/// Fires a job now, outside its schedule.
#[utoipa::path(post, path = "/v1/jobs/{name}/trigger", tag = "jobs", params(("name" = String, Path, description = "The job's name")),
    responses((status = 202, description = "The fire, claimed", body = ExecutionView)))]
fn trigger_job() {}

/// The next instants of a job's schedule.
#[utoipa::path(get, path = "/v1/jobs/{name}/upcoming", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), CountQuery),
    responses((status = 200, description = "The instants", body = Instants)))]
fn upcoming() {}

/// Evaluates a schedule without creating a job.
#[utoipa::path(post, path = "/v1/schedule/preview", tag = "jobs", request_body = PreviewRequest,
    responses((status = 200, description = "The instants and the schedule in words", body = Instants)))]
fn preview() {}

/// Lists fires, newest claim first.
#[utoipa::path(get, path = "/v1/executions", tag = "executions", params(ExecutionQuery),
    responses(
        (status = 200, description = "One page", body = ExecutionList),
        (status = 404, description = "`not_found`: `job` names no live job", body = ErrorBody),
    ))]
fn list_executions() {}

/// Reads one fire with every attempt.
#[utoipa::path(get, path = "/v1/executions/{key}", tag = "executions",
    params(("key" = String, Path, description = "The fire's idempotency key")),
    responses((status = 200, description = "The fire", body = ExecutionView)))]
fn get_execution() {}

/// The cluster's fires second by second, by outcome, with start-lag percentiles.
#[utoipa::path(get, path = "/v1/stats", tag = "executions", params(StatsQuery),
    responses((status = 200, description = "The seconds, oldest first", body = StatsView)))]
fn stats() {}

/// Lists dead letters, newest claim first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "dead letters", params(DeadLetterQuery),
    responses(
        (status = 200, description = "One page", body = ExecutionList),
        (status = 404, description = "`not_found`: `job` names no live job", body = ErrorBody),
    ))]
fn list_dead_letters() {}

/// Requeues the selected dead letters (keys, a job's, or all), or none.
#[utoipa::path(post, path = "/v1/dead-letters/requeue", tag = "dead letters", request_body = DeadLetterSelector,
    responses(
        (status = 200, description = "Requeued", body = DeadLetterResult),
        (status = 404, description = "`not_found`: a selected key is no fire, or `job` names no live job", body = ErrorBody),
        (status = 409, description = "`conflict`: a selected fire is not a dead letter, or its job is gone", body = ErrorBody),
    ))]
fn requeue_dead_letters() {}

/// Purges the selected dead letters, or none.
#[utoipa::path(post, path = "/v1/dead-letters/purge", tag = "dead letters", request_body = DeadLetterSelector,
    responses(
        (status = 200, description = "Purged", body = DeadLetterResult),
        (status = 404, description = "`not_found`: a selected key is no fire, or `job` names no live job", body = ErrorBody),
        (status = 409, description = "`conflict`: a selected fire is not a dead letter", body = ErrorBody),
    ))]
fn purge_dead_letters() {}

/// Purges one dead letter.
#[utoipa::path(delete, path = "/v1/dead-letters/{key}", tag = "dead letters",
    params(("key" = String, Path, description = "The fire's idempotency key")),
    responses(
        (status = 204, description = "Purged"),
        (status = 409, description = "`conflict`: the fire is not a dead letter", body = ErrorBody),
    ))]
fn purge_dead_letter() {}

/// Requeues one dead letter under its key, with a fresh retry budget.
#[utoipa::path(post, path = "/v1/dead-letters/{key}/requeue", tag = "dead letters",
    params(("key" = String, Path, description = "The fire's idempotency key")),
    responses(
        (status = 200, description = "Requeued", body = ExecutionView),
        (status = 409, description = "`conflict`: the fire is not a dead letter, or its job is gone", body = ErrorBody),
    ))]
fn requeue_dead_letter() {}

/// The cluster as the answering node sees it, with lag from the leader's view.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, description = "The cluster", body = ClusterView)))]
fn cluster() {}

/// Adds a node: a learner first, a voter once caught up.
#[utoipa::path(post, path = "/v1/cluster/members", tag = "cluster", request_body = AddMember,
    responses(
        (status = 200, description = "The node is a voter", body = ClusterView),
        (status = 409, description = "`unsafe_change`, or the id is taken at another address", body = ErrorBody),
    ))]
fn add_member() {}

/// Removes a member; refused when it would leave no reachable majority, unless forced.
#[utoipa::path(delete, path = "/v1/cluster/members/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "The member's node id"), RemoveQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "`unsafe_change`", body = ErrorBody),
    ))]
fn remove_member() {}

/// Hands leadership to a voter (the most caught-up one by default).
#[utoipa::path(post, path = "/v1/cluster/transfer-leadership", tag = "cluster", request_body(content = Option<Transfer>),
    responses(
        (status = 200, description = "Leadership moved", body = ClusterView),
        (status = 409, description = "No voter can take it", body = ErrorBody),
    ))]
fn transfer_leadership() {}

/// The state as of every write committed before the request (holds credentials: admins and
/// operators only).
#[utoipa::path(get, path = "/v1/backup", tag = "cluster",
    responses((status = 200, description = "The backup", body = Backup)))]
fn backup() {}

/// Creates an API token; the answer is the only time its secret is shown.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses(
        (status = 201, description = "Created", body = NewToken),
        (status = 409, description = "`quota_exceeded`: 1000 tokens", body = ErrorBody),
    ))]
fn create_token() {}

/// Lists tokens: ids, roles, names and creators, never secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList)))]
fn list_tokens() {}

/// Revokes a token at once, on every node.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked")))]
fn revoke_token() {}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
fn healthz() {}

/// Readiness: a checklist, one `ok` or `fail` line per check.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Every check passed", content_type = "text/plain", body = String),
        (status = 503, description = "A check failed", content_type = "text/plain", body = String),
    ))]
fn readyz() {}

/// Prometheus metrics of this node (a viewer token with `--metrics-auth`).
#[utoipa::path(get, path = "/metrics", tag = "health", security((), ("bearer" = [])),
    responses((status = 200, description = "The text exposition format", content_type = "text/plain", body = String)))]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
fn openapi() {}
