//! Jobs: what users define (a [`JobSpec`]) and what the state machine keeps (a [`Job`]).

use std::collections::BTreeMap;

use belfry_schedule::{Schedule, ScheduleSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::error::ApplyError;

/// A job's id inside the cluster: assigned at create, never reused, part of every fire key.
pub type JobUid = u64;

/// Largest request body a job may carry; larger specs are refused before they reach the log.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest delivery timeout a job may ask for: leases are sized from it.
pub const MAX_TIMEOUT: HumanDuration = HumanDuration::secs(15 * 60);
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// A job as users write it: name, schedule, HTTP target and policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique name, `[a-z0-9][a-z0-9._-]{0,127}`; the job's handle in the API.
    pub name: String,
    /// When the job fires.
    pub schedule: ScheduleSpec,
    /// What a fire delivers.
    pub target: HttpTarget,
    /// What to do when a fire falls due while the previous one is still running.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// What to do with fires that fell due while no leader could claim them.
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// How failed deliveries are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How many finished fires are kept, and for how long.
    #[serde(default)]
    pub history: HistoryPolicy,
    /// A paused job claims no fires.
    #[serde(default)]
    pub paused: bool,
}

/// The HTTP request a fire sends. belfry adds its own headers (see DESIGN.md, "Delivery").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// `http://` or `https://` URL.
    pub url: String,
    /// HTTP method; POST by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Per-attempt timeout, 30 s by default.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

/// Overlap policy: whether a fire may start while an earlier fire of the job is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Fires run concurrently.
    #[default]
    Allow,
    /// A fire due while another runs is recorded as skipped.
    Forbid,
    /// At most one fire waits for the running one; further ones are skipped.
    BufferOne,
}

/// Misfire handling: a fire claimed later than `grace` after its instant is a misfire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MisfirePolicy {
    /// What a misfire does.
    #[serde(default)]
    pub policy: MisfireAction,
    /// How late a fire may be and still count as on time.
    #[serde(default = "default_grace")]
    pub grace: HumanDuration,
}

fn default_grace() -> HumanDuration {
    HumanDuration::secs(60)
}

impl Default for MisfirePolicy {
    fn default() -> Self {
        MisfirePolicy { policy: MisfireAction::default(), grace: default_grace() }
    }
}

/// The action taken for missed fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfireAction {
    /// All missed fires coalesce into one.
    #[default]
    FireOnce,
    /// Every missed fire is delivered, late (at most [`crate::state::MAX_CATCH_UP`] per outage).
    FireAll,
    /// Missed fires are recorded as skipped; the schedule resumes with the next instant.
    Skip,
}

/// Retry policy for failed deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles for each further one.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Ceiling of the backoff.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// No attempt starts later than this after the fire was claimed.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

fn default_attempts() -> u32 {
    3
}
fn default_initial_backoff() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_max_age() -> HumanDuration {
    HumanDuration::secs(3600)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_age: default_max_age(),
        }
    }
}

/// Most finished fires a job may ask to keep.
pub const MAX_HISTORY_COUNT: u32 = 10_000;

/// History retention: which finished fires (succeeded, skipped, dead-lettered) a job keeps.
/// Unfinished fires are never removed. Applied inside apply() with the command's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryPolicy {
    /// Keep at most this many finished fires (the newest); the cluster default (100) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    /// Forget a finished fire this long after it finished; kept until pushed out by count when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
}

impl HistoryPolicy {
    fn validate(&self) -> Result<(), ApplyError> {
        if self.max_count.is_some_and(|n| n == 0 || n > MAX_HISTORY_COUNT) {
            return Err(ApplyError::invalid("history.max_count", format!("must be between 1 and {MAX_HISTORY_COUNT}")));
        }
        if self.max_age.is_some_and(|a| a.0.is_zero()) {
            return Err(ApplyError::invalid("history.max_age", "must be positive"));
        }
        Ok(())
    }
}

/// A job as the replicated state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Cluster-unique id, never reused.
    pub uid: JobUid,
    /// The definition, as last written.
    pub spec: JobSpec,
    /// Incremented by every change; the `If-Match` version.
    pub version: u64,
    /// When the job was created (the proposer's clock).
    pub created_at: DateTime<Utc>,
    /// When the job last changed.
    pub updated_at: DateTime<Utc>,
    /// The next schedule instant not yet claimed; `None` once the schedule is exhausted.
    pub next_fire_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The parsed schedule. Specs are validated before they enter the state, so this cannot fail
    /// for a stored job; the error path exists for specs restored from an older, laxer build.
    pub fn schedule(&self) -> Result<Schedule, ApplyError> {
        Schedule::parse(&self.spec.schedule, self.created_at).map_err(ApplyError::from)
    }
}

impl JobSpec {
    /// Checks everything that can be checked without the state; the error names the field.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<Schedule, ApplyError> {
        validate_name(&self.name)?;
        let schedule = Schedule::parse(&self.schedule, now)?;
        self.target.validate()?;
        self.retry.validate()?;
        self.history.validate()?;
        Ok(schedule)
    }
}

/// Checks a job name against `[a-z0-9][a-z0-9._-]{0,127}`.
pub fn validate_name(name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && matches!(b, b'.' | b'_' | b'-')));
    if ok {
        Ok(())
    } else {
        Err(ApplyError::invalid("name", "must match [a-z0-9][a-z0-9._-]{0,127}"))
    }
}

/// Headers belfry sets itself; a job may not override them.
const RESERVED_HEADERS: [&str; 6] =
    ["idempotency-key", "belfry-job", "belfry-scheduled-at", "belfry-attempt", "belfry-signature", "content-length"];

impl HttpTarget {
    fn validate(&self) -> Result<(), ApplyError> {
        let url =
            url::Url::parse(&self.url).map_err(|e| ApplyError::invalid("target.url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ApplyError::invalid("target.url", "must be an http:// or https:// URL with a host"));
        }
        if !matches!(self.method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD") {
            return Err(ApplyError::invalid("target.method", "must be one of GET, POST, PUT, PATCH, DELETE, HEAD"));
        }
        for (name, value) in &self.headers {
            let token =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if !token {
                return Err(ApplyError::invalid("target.headers", format!("invalid header name {name:?}")));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ApplyError::invalid("target.headers", format!("header {name} is set by belfry")));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(ApplyError::invalid("target.headers", format!("header {name} has a control character")));
            }
        }
        if self.body.as_ref().is_some_and(|b| b.len() > MAX_BODY_BYTES) {
            return Err(ApplyError::invalid("target.body", format!("larger than {MAX_BODY_BYTES} bytes")));
        }
        if self.timeout.0.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(ApplyError::invalid("target.timeout", format!("must be between 1ms and {MAX_TIMEOUT}")));
        }
        Ok(())
    }
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), ApplyError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ApplyError::invalid("retry.max_attempts", format!("must be between 1 and {MAX_ATTEMPTS}")));
        }
        if self.initial_backoff.0.is_zero() {
            return Err(ApplyError::invalid("retry.initial_backoff", "must be positive"));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(ApplyError::invalid("retry.max_backoff", "must not be less than initial_backoff"));
        }
        Ok(())
    }
}
