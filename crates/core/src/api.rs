//! The HTTP API's JSON bodies, shared by the server and the client so the two cannot drift.

use belfry_schedule::ScheduleSpec;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::command::CreatedJob;
use crate::fire::{Attempt, Fire, FireStatus, NodeId};
use crate::job::{HistoryPolicy, HttpTarget, Job, MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::state::tokens::{Role, Token};

/// RFC 3339 UTC with milliseconds, the one format of every instant belfry exchanges.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job's name.
    pub name: String,
    /// Cluster-unique id; the first part of every fire key.
    pub uid: u64,
    /// The schedule as written.
    pub schedule: ScheduleSpec,
    /// The schedule in words.
    pub description: String,
    /// The HTTP target.
    pub target: HttpTarget,
    /// Overlap policy.
    pub overlap: OverlapPolicy,
    /// Misfire policy.
    pub misfire: MisfirePolicy,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// History retention (`{}` means the defaults: the last 100 finished fires, no age limit).
    #[serde(default)]
    pub history: HistoryPolicy,
    /// Paused jobs claim no fires.
    pub paused: bool,
    /// The `If-Match` version.
    pub version: u64,
    /// The next instant to be claimed; null once the schedule is exhausted, and while paused.
    pub next_fire_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Time of the last change.
    pub updated_at: String,
    /// The id of the token that created it (null with authentication off).
    #[serde(default)]
    pub created_by: Option<String>,
    /// The id of the token behind the last change.
    #[serde(default)]
    pub updated_by: Option<String>,
    /// The status of the job's newest finished fire (`succeeded`, `dead_lettered`, `skipped`,
    /// `cancelled`); absent before the first one finishes, and in the answers of writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// True while the newest finished fire is a dead letter or a fire waits to be retried;
    /// absent in the answers of writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<bool>,
}

impl JobView {
    /// The view of `job` with what `state` knows of its recent fires.
    pub fn with_health(job: &Job, state: &crate::State) -> JobView {
        let health = state.job_health(job.uid);
        JobView {
            last_status: health.last_status.map(|s| s.as_str().to_string()),
            failing: Some(health.failing()),
            ..JobView::from(job)
        }
    }
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        let description = job.schedule().map(|s| s.describe()).unwrap_or_default();
        JobView {
            name: job.spec.name.to_string(),
            uid: job.uid,
            schedule: job.spec.schedule.clone(),
            description,
            target: job.spec.target.redacted(),
            overlap: job.spec.overlap,
            misfire: job.spec.misfire,
            retry: job.spec.retry,
            history: job.spec.history,
            paused: job.spec.paused,
            version: job.version,
            // A paused job claims nothing, so it has no next fire to show (its stored instant
            // is where the misfire policy starts on resume, and is soon in the past).
            next_fire_at: job.next_fire_at.filter(|_| !job.spec.paused).map(rfc3339),
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            created_by: job.created_by.as_ref().map(ToString::to_string),
            updated_by: job.updated_by.as_ref().map(ToString::to_string),
            last_status: None,
            failing: None,
        }
    }
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// The jobs, in name order.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
    /// Live jobs in the cluster.
    #[serde(default)]
    pub total: usize,
    /// Live jobs the filters select, on every page.
    #[serde(default)]
    pub matching: usize,
}

/// One delivery attempt as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1, 2, ...
    pub number: u32,
    /// The node that sent it.
    pub worker: NodeId,
    /// Start of the request.
    pub started_at: String,
    /// End of the request.
    pub finished_at: String,
    /// Milliseconds.
    pub duration_ms: i64,
    /// `success`, `retryable` or `permanent`.
    pub result: String,
    /// HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// Transport error, when none did.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub body_excerpt: Option<String>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            number: a.number,
            worker: a.worker,
            started_at: rfc3339(a.started_at),
            finished_at: rfc3339(a.finished_at),
            duration_ms: a.duration_ms(),
            result: serde_json::to_value(a.class).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            http_status: a.http_status,
            error: a.error.clone(),
            body_excerpt: a.body_excerpt.clone(),
        }
    }
}

/// A fire as the API shows it (`GET /v1/executions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionView {
    /// The idempotency key.
    pub key: String,
    /// The job's name.
    pub job: String,
    /// The schedule instant (trigger time for manual fires).
    pub scheduled_at: String,
    /// When the claim committed.
    pub fired_at: String,
    /// Manual trigger.
    pub manual: bool,
    /// `queued`, `dispatched`, `retry_waiting`, `succeeded`, `dead_lettered`, `skipped`,
    /// `cancelled`.
    pub status: String,
    /// The worker of the last dispatch.
    pub worker: Option<NodeId>,
    /// Attempts finished so far.
    pub attempts: u32,
    /// HTTP status of the last attempt.
    pub http_status: Option<u16>,
    /// Start of the first attempt.
    pub started_at: Option<String>,
    /// When the fire finished.
    pub finished_at: Option<String>,
    /// Duration of the last attempt in milliseconds.
    pub duration_ms: Option<i64>,
    /// The next attempt, while retry-waiting.
    pub next_attempt_at: Option<String>,
    /// Why it was skipped, coalesced or dead-lettered.
    pub note: Option<String>,
    /// The id of the token that triggered a manual fire.
    #[serde(default)]
    pub triggered_by: Option<String>,
    /// The id of the token behind the last requeue.
    #[serde(default)]
    pub requeued_by: Option<String>,
    /// Every attempt; only in `GET /v1/executions/{key}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl ExecutionView {
    /// The summary of a fire; `detail` adds every attempt.
    pub fn of(f: &Fire, detail: bool) -> Self {
        let last = f.attempts.last();
        ExecutionView {
            key: f.key.0.clone(),
            job: f.job_name.to_string(),
            scheduled_at: rfc3339(f.scheduled_at),
            fired_at: rfc3339(f.claimed_at),
            manual: f.manual,
            status: f.status.as_str().to_string(),
            worker: f.worker,
            attempts: u32::try_from(f.attempts.len()).unwrap_or(u32::MAX),
            http_status: last.and_then(|a| a.http_status),
            started_at: f.attempts.first().map(|a| rfc3339(a.started_at)),
            finished_at: f.finished_at.map(rfc3339),
            duration_ms: last.map(|a| a.duration_ms()),
            next_attempt_at: f.next_attempt_at.filter(|_| f.status == FireStatus::RetryWaiting).map(rfc3339),
            note: f.note.clone(),
            triggered_by: f.triggered_by.clone(),
            requeued_by: f.requeued_by.clone(),
            attempt_log: detail.then(|| f.attempts.iter().map(AttemptView::from).collect()),
        }
    }
}

/// A page of executions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionList {
    /// The fires.
    pub executions: Vec<ExecutionView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// What `POST /v1/dead-letters/requeue` and `/purge` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterResult {
    /// How many dead letters were requeued or purged.
    pub count: usize,
    /// Their keys, oldest first.
    pub keys: Vec<String>,
}

/// `POST /v1/schedule/preview` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The schedule to evaluate.
    pub schedule: ScheduleSpec,
    /// How many instants (default 10, at most 1000).
    #[serde(default)]
    pub count: Option<usize>,
    /// Instants strictly after this RFC 3339 instant (default now).
    #[serde(default)]
    pub after: Option<String>,
}

/// Instants of a schedule, as `preview` and `upcoming` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instants {
    /// RFC 3339 UTC instants, ascending.
    pub instants: Vec<String>,
    /// The schedule in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /v1/stats`: the cluster's fires over the last seconds, for the console's chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatsView {
    /// Seconds covered.
    pub window_seconds: u32,
    /// The answering node's clock.
    pub now: String,
    /// One entry per second, oldest first; the last is the current, unfinished second.
    pub seconds: Vec<SecondView>,
}

/// One second of [`StatsView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecondView {
    /// The start of the second.
    pub at: String,
    /// Fires whose success was committed in this second.
    pub succeeded: u32,
    /// Attempts that failed in this second, retried or not.
    pub failed: u32,
    /// Fires dead-lettered in this second.
    pub dead_lettered: u32,
    /// Fires skipped by policy in this second.
    pub skipped: u32,
    /// Median start lag (send start minus instant) of the scheduled fires first sent in this
    /// second, in milliseconds; null when none was.
    pub lag_p50_ms: Option<i64>,
    /// 99th percentile of the same.
    pub lag_p99_ms: Option<i64>,
}

impl From<&crate::state::summary::SecondStats> for SecondView {
    fn from(s: &crate::state::summary::SecondStats) -> Self {
        SecondView {
            at: rfc3339(s.at),
            succeeded: s.succeeded,
            failed: s.failed,
            dead_lettered: s.dead_lettered,
            skipped: s.skipped,
            lag_p50_ms: s.lag_quantile(0.5),
            lag_p99_ms: s.lag_quantile(0.99),
        }
    }
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The node answering.
    pub node: NodeId,
    /// The leader's id; null when there is none.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Highest log index known committed on the answering node.
    pub commit_index: u64,
    /// Highest log index applied on the answering node.
    pub applied_index: u64,
    /// Last log index covered by the answering node's latest snapshot.
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    /// Highest log index the answering node has purged (its log starts after it).
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// Every voter and learner.
    pub members: Vec<MemberView>,
}

/// One cluster member, as seen by the answering node (and probed by it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Node id.
    pub id: NodeId,
    /// HTTP API address (learned by probing; null when unreachable).
    pub http_addr: Option<String>,
    /// gRPC address, as in the membership.
    pub grpc_addr: String,
    /// Voter or learner.
    pub voter: bool,
    /// Highest log index the leader knows replicated to it. Replication is the leader's to
    /// know: a follower answers what the leader told it just now; null without a leader that
    /// answered.
    pub match_index: Option<u64>,
    /// Entries it is behind the leader's log (the leader's view, as `match_index`).
    pub lag: Option<u64>,
    /// Milliseconds since it last answered the leader (0 for the leader; the leader's view, as
    /// `match_index`; null when it never has).
    #[serde(default)]
    pub last_contact_ms: Option<u64>,
    /// Whether it answered a probe just now.
    pub reachable: bool,
    /// The probe's error when it did not.
    pub error: Option<String>,
    /// Its build version, when reachable.
    pub version: Option<String>,
}

/// Every error the API returns: `{"error": {"code", "message", "field"}}`, and for a refused
/// batch create also `"errors"`, one entry per refused spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
    /// Every spec a `POST /v1/jobs:batch` refused, by index; absent from every other answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ItemError>,
}

/// The error detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid`, `not_found`, `conflict`, `no_leader`, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

/// Why one spec of a batch create was refused: the error single create would answer for it,
/// with the spec's place in the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemError {
    /// The spec's position in `jobs`, from 0.
    pub index: usize,
    /// Stable machine-readable code (`invalid`, `already_exists`, `quota_exceeded`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The field of the spec at fault (`schedule.cron`), when one is.
    pub field: Option<String>,
}

/// Largest body of a `POST /v1/jobs:batch`, in bytes (413 beyond): a batch of
/// [`crate::command::MAX_BATCH_JOBS`] specs averaging 16 KiB. A batch is one raft entry that
/// every replica writes and the leader sends to each follower whole, so it is held to what a
/// slow link carries within a few seconds; clients cut larger imports into batches by count and
/// by size (`belfry job import` does).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What `POST /v1/jobs:batch` answers: how many jobs it created and, in the order of the
/// request, each one's name, uid and first instant. The whole views are a `GET` away; an answer
/// that echoed a thousand specs back would cost as much as the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCreated {
    /// The number of jobs created: every spec of the request.
    pub created: usize,
    /// The jobs, in the order of the request.
    pub jobs: Vec<CreatedJobView>,
}

/// One job of a [`BatchCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedJobView {
    /// The job's name.
    pub name: String,
    /// Its uid.
    pub uid: u64,
    /// Its first instant; null when its schedule has none.
    pub next_fire_at: Option<String>,
}

impl From<&CreatedJob> for CreatedJobView {
    fn from(job: &CreatedJob) -> Self {
        CreatedJobView { name: job.name.clone(), uid: job.uid, next_fire_at: job.next_fire_at.map(rfc3339) }
    }
}

/// `GET /v1/backup`: a consistent copy of the replicated state, and `belfry restore`'s input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backup {
    /// Always [`Backup::FORMAT`].
    pub format: String,
    /// When it was taken (RFC 3339 UTC).
    pub taken_at: String,
    /// The node that answered.
    pub node: NodeId,
    /// The log index the state reflects.
    pub applied_index: u64,
    /// The state.
    #[schema(value_type = Object)]
    pub data: crate::Data,
}

impl Backup {
    /// The format tag of this version.
    pub const FORMAT: &'static str = "belfry-backup/1";
}

/// `POST /v1/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `viewer`, `editor`, `operator` or `admin`.
    pub role: Role,
    /// What the token is for (`ci`, `grafana`): 1 to 64 bytes.
    pub name: String,
}

/// A token as the API shows it: never its secret or the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Public id, for revocation and in the `*_by` fields.
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// What it is for.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// The id of the token that created it.
    pub created_by: Option<String>,
}

impl From<&Token> for TokenView {
    fn from(t: &Token) -> Self {
        TokenView {
            id: t.id.clone(),
            role: t.role,
            name: t.name.clone(),
            created_at: rfc3339(t.created_at),
            created_by: t.created_by.clone(),
        }
    }
}

/// What `POST /v1/tokens` answers: the only time the whole token is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// `bf_<id>_<secret>`, for `Authorization: Bearer`.
    pub token: String,
    /// The stored token.
    #[serde(flatten)]
    pub view: TokenView,
}

/// `GET /v1/tokens`: every replicated token, in id order (the bootstrap token is not one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenView>,
}
