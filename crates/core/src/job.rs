//! Jobs: what users define (a [`JobSpec`]) and what the state machine keeps (a [`Job`]).

use belfry_schedule::{Schedule, ScheduleSpec};
use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::error::ApplyError;

/// A job's id inside the cluster: assigned at create, never reused, part of every fire key.
pub type JobUid = u64;

mod headers;
mod validate;

pub use headers::Headers;
pub use validate::validate_name;

// The bounds of a job spec. Every value a spec carries is checked against these at validation
// (a 400 naming the field; nothing reaches the log), so that no spec can make apply() overflow
// and every entry stays small enough to replicate. docs/API.md lists them for users.

/// Largest serialized job spec (JSON), in bytes: the body, headers and URL at their limits fit,
/// and a create stays one modest raft entry.
pub const MAX_SPEC_BYTES: usize = 96 * 1024;
/// Longest job name, in bytes (the name is `[a-z0-9][a-z0-9._-]{0,127}`).
pub const MAX_NAME_BYTES: usize = 128;
/// Largest request body a job may carry; larger specs are refused before they reach the log.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest target URL, in bytes: what common HTTP servers and proxies accept on a request line.
pub const MAX_URL_BYTES: usize = 2048;
/// Most extra request headers a job may set.
pub const MAX_HEADERS: usize = 32;
/// Longest header name, in bytes.
pub const MAX_HEADER_NAME_BYTES: usize = 128;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4 * 1024;
/// Largest sum of header names and values, in bytes: below the 16 KiB many servers allow for a
/// whole request head.
pub const MAX_HEADERS_BYTES: usize = 16 * 1024;
/// Longest delivery timeout a job may ask for: leases are sized from it.
pub const MAX_TIMEOUT: HumanDuration = HumanDuration::secs(15 * 60);
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Most finished fires a job may ask to keep.
pub const MAX_HISTORY_COUNT: u32 = 10_000;
/// Shortest `schedule.every` period ([`belfry_schedule::MIN_EVERY`]).
pub const MIN_EVERY: HumanDuration = HumanDuration(belfry_schedule::MIN_EVERY);
/// Longest `schedule.every` period, a leap year ([`belfry_schedule::MAX_EVERY`]): a longer interval
/// reads better as a cron or an `at`.
pub const MAX_EVERY: HumanDuration = HumanDuration(belfry_schedule::MAX_EVERY);
/// Largest `schedule.jitter` ([`belfry_schedule::MAX_JITTER`]); for `every` it may not exceed the
/// period either.
pub const MAX_JITTER: HumanDuration = HumanDuration(belfry_schedule::MAX_JITTER);
/// Largest `misfire.grace`: a week; a fire later than that is a misfire by any measure.
pub const MAX_GRACE: HumanDuration = HumanDuration::days(7);
/// Largest `retry.initial_backoff`: a day.
pub const MAX_INITIAL_BACKOFF: HumanDuration = HumanDuration::days(1);
/// Largest `retry.max_backoff`: a day between two attempts.
pub const MAX_MAX_BACKOFF: HumanDuration = HumanDuration::days(1);
/// Largest `retry.max_age`: 30 days of retrying; a fire still failing after that is a dead
/// letter for a person to look at.
pub const MAX_RETRY_AGE: HumanDuration = HumanDuration::days(30);
/// Largest `history.max_age`: ten years (3650 days).
pub const MAX_HISTORY_AGE: HumanDuration = HumanDuration::days(3650);

/// A job as users write it: name, schedule, HTTP target and policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique name, `[a-z0-9][a-z0-9._-]{0,127}`; the job's handle in the API.
    #[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")]
    pub name: CompactString,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// `http://` or `https://` URL.
    #[schema(value_type = String, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://")]
    pub url: CompactString,
    /// HTTP method; POST by default.
    #[serde(default = "default_method")]
    #[schema(value_type = String)]
    pub method: CompactString,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Request body, sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub body: Option<CompactString>,
    /// Per-attempt timeout, 30 s by default.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// What the API shows in place of a secret header's value (docs/API.md, "Secret headers").
/// Written back unchanged on a replace, it keeps the stored value.
pub const REDACTED: &str = "<redacted>";

/// Name endings that mark a header as a credential (compared in lowercase); `_` is taken for
/// `-` as well, since some services name their keys `x_api_key`.
const SECRET_HEADER_ENDINGS: [&str; 5] = ["token", "key", "secret", "password", "signature"];

/// Whether the header `name` carries a credential, whose value the API never shows:
/// `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name ending in
/// `-token`, `-key`, `-secret`, `-password` or `-signature`, case-insensitively.
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(lower.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie")
        || SECRET_HEADER_ENDINGS
            .iter()
            .any(|end| lower.strip_suffix(end).is_some_and(|rest| rest.ends_with('-') || rest.ends_with('_')))
}

impl HttpTarget {
    /// The target as the API shows it: every secret header's value (see [`is_secret_header`])
    /// replaced by [`REDACTED`]. Delivery uses the stored target, never this one.
    pub fn redacted(&self) -> HttpTarget {
        let mut shown = self.clone();
        for (name, value) in shown.headers.iter_mut() {
            if is_secret_header(name) {
                *value = REDACTED.into();
            }
        }
        shown
    }

    /// Whether some header's value is the [`REDACTED`] placeholder.
    pub fn has_redacted(&self) -> bool {
        self.headers.values().any(|v| v == REDACTED)
    }

    /// Gives every header whose value is [`REDACTED`] the value `stored` has for the same name
    /// (compared case-insensitively), so that a target read from the API and written back
    /// keeps its secrets. A placeholder with nothing stored behind it is an error naming
    /// `target.headers`, and leaves `self` unchanged.
    pub fn keep_redacted(&mut self, stored: &HttpTarget) -> Result<(), ApplyError> {
        let mut kept = Vec::new();
        for (name, value) in &self.headers {
            if value != REDACTED {
                continue;
            }
            let previous = stored.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            match previous {
                Some(v) => kept.push((CompactString::from(name), CompactString::from(v))),
                None => {
                    return Err(ApplyError::invalid(
                        "target.headers",
                        format!("header {name} is {REDACTED:?} but the stored job has no {name} header to keep"),
                    ))
                }
            }
        }
        self.headers.extend(kept);
        Ok(())
    }

    /// Refuses the [`REDACTED`] placeholder in a new job: it stands for a stored value, and a
    /// job being created has none.
    pub fn refuse_redacted(&self) -> Result<(), ApplyError> {
        match self.headers.iter().find(|(_, v)| *v == REDACTED) {
            Some((name, _)) => Err(ApplyError::invalid(
                "target.headers",
                format!(
                    "header {name} is {REDACTED:?}, which keeps the stored value when a job is replaced; a new job \
                     needs the real value"
                ),
            )),
            None => Ok(()),
        }
    }
}

fn default_method() -> CompactString {
    "POST".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

/// Overlap policy: whether a fire may start while an earlier fire of the job is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    #[schema(minimum = 1, maximum = 100)]
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

/// History retention: which finished fires (succeeded, skipped, dead-lettered) a job keeps.
/// Unfinished fires are never removed. Applied inside apply() with the command's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryPolicy {
    /// Keep at most this many finished fires (the newest); the cluster default (100) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_count: Option<u32>,
    /// Forget a finished fire this long after it finished; kept until pushed out by count when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
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
    /// The id of the API token that created the job (none with authentication off, and for
    /// jobs created before tokens existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<CompactString>,
    /// The id of the API token behind the last change (create, replace, pause, resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<CompactString>,
}

impl Job {
    /// The parsed schedule. Specs are validated before they enter the state, so this cannot fail
    /// for a stored job; the error path exists for specs restored from an older, laxer build.
    pub fn schedule(&self) -> Result<Schedule, ApplyError> {
        Schedule::parse(&self.spec.schedule, self.created_at).map_err(ApplyError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(headers: &[(&str, &str)]) -> HttpTarget {
        HttpTarget {
            url: "https://example.com/hook".into(),
            method: default_method(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: None,
            timeout: default_timeout(),
        }
    }

    #[test]
    fn credential_headers_are_recognised_by_name() {
        for secret in [
            "Authorization",
            "proxy-authorization",
            "COOKIE",
            "Set-Cookie",
            "X-Api-Key",
            "x_api_key",
            "X-Auth-Token",
            "Client-Secret",
            "X-Db-Password",
            "X-Hub-Signature",
        ] {
            assert!(is_secret_header(secret), "{secret}");
        }
        for plain in ["X-Team", "Content-Type", "Accept", "Keyboard", "X-Tokenizer", "token", "X-Monkey"] {
            assert!(!is_secret_header(plain), "{plain}");
        }
    }

    #[test]
    fn a_redacted_target_hides_credentials_and_keeps_the_rest() {
        let t = target(&[("Authorization", "Bearer s3cret"), ("X-Api-Key", "k"), ("X-Team", "ops")]);
        let shown = t.redacted();
        assert_eq!(shown.headers["Authorization"], REDACTED);
        assert_eq!(shown.headers["X-Api-Key"], REDACTED);
        assert_eq!(shown.headers["X-Team"], "ops");
        assert_eq!((shown.url.as_str(), shown.body), (t.url.as_str(), t.body.clone()));
    }

    #[test]
    fn a_placeholder_written_back_keeps_the_stored_value() {
        let stored = target(&[("Authorization", "Bearer s3cret"), ("X-Team", "ops")]);
        let mut edited = target(&[("authorization", REDACTED), ("X-Team", "dev")]);
        edited.keep_redacted(&stored).expect("the stored value is kept");
        assert_eq!(edited.headers["authorization"], "Bearer s3cret");
        assert_eq!(edited.headers["X-Team"], "dev");
        assert!(!edited.has_redacted());

        let mut unknown = target(&[("X-Api-Key", REDACTED), ("Authorization", REDACTED)]);
        let before = unknown.clone();
        let err = unknown.keep_redacted(&stored).unwrap_err();
        assert!(
            matches!(&err, ApplyError::Invalid { field, message } if field == "target.headers" && message.contains("X-Api-Key")),
            "{err}"
        );
        assert_eq!(unknown, before, "a refused target is left as it was");
    }

    #[test]
    fn a_new_job_may_not_carry_the_placeholder() {
        assert!(target(&[("Authorization", "Bearer s3cret")]).refuse_redacted().is_ok());
        let err = target(&[("Authorization", REDACTED)]).refuse_redacted().unwrap_err();
        assert!(matches!(err, ApplyError::Invalid { ref field, .. } if field == "target.headers"), "{err}");
    }
}
