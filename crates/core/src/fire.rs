//! Fires: one claimed instant of a job, from claim to its final outcome.

use belfry_schedule::instant::clamp_instant;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::JobUid;

/// Longest answer excerpt an attempt keeps, in bytes (the worker reads no more than this).
pub const MAX_BODY_EXCERPT_BYTES: usize = 512;
/// Longest transport error or refusal reason an attempt keeps, in bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

/// A raft node id.
pub type NodeId = u64;

/// The idempotency key of a fire: `"{job_uid}:{scheduled_at_unix_ms}"` for scheduled fires and
/// `"{job_uid}:manual:{log_index}"` for manual triggers. Deterministic, so every leader computes
/// the same key for the same fire, and it is the `Idempotency-Key` header on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct FireKey(pub String);

impl FireKey {
    /// The key of the scheduled fire of `job` at `scheduled_at`.
    pub fn scheduled(job: JobUid, scheduled_at: DateTime<Utc>) -> Self {
        FireKey(format!("{job}:{}", scheduled_at.timestamp_millis()))
    }

    /// The key of a manual trigger committed at `log_index`.
    pub fn manual(job: JobUid, log_index: u64) -> Self {
        FireKey(format!("{job}:manual:{log_index}"))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FireKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a fire is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FireStatus {
    /// Claimed, waiting to be dispatched (buffered behind a running fire, or requeued).
    Queued,
    /// Handed to a worker under a lease; the outcome is not committed yet.
    Dispatched,
    /// An attempt failed and another is due at `next_attempt_at`.
    RetryWaiting,
    /// A 2xx answer was committed.
    Succeeded,
    /// Attempts or age ran out, or the target refused for good.
    DeadLettered,
    /// Not delivered by policy (overlap, misfire); the note says why.
    Skipped,
    /// Its job was deleted before it was delivered, or while a retry was still due.
    Cancelled,
}

impl FireStatus {
    /// A finished fire needs no further work (a dead letter may still be requeued by hand).
    pub fn is_finished(self) -> bool {
        matches!(self, FireStatus::Succeeded | FireStatus::DeadLettered | FireStatus::Skipped | FireStatus::Cancelled)
    }

    /// Whether the fire counts as running for the overlap policy.
    pub fn is_in_flight(self) -> bool {
        matches!(self, FireStatus::Dispatched | FireStatus::RetryWaiting)
    }

    /// The status as it appears in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FireStatus::Queued => "queued",
            FireStatus::Dispatched => "dispatched",
            FireStatus::RetryWaiting => "retry_waiting",
            FireStatus::Succeeded => "succeeded",
            FireStatus::DeadLettered => "dead_lettered",
            FireStatus::Skipped => "skipped",
            FireStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`FireStatus::as_str`].
    pub fn parse(s: &str) -> Option<FireStatus> {
        [
            FireStatus::Queued,
            FireStatus::Dispatched,
            FireStatus::RetryWaiting,
            FireStatus::Succeeded,
            FireStatus::DeadLettered,
            FireStatus::Skipped,
            FireStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// How a delivery attempt ended, as the worker classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultClass {
    /// 2xx.
    Success,
    /// 408, 429, 5xx, timeout, connection error: worth another attempt.
    Retryable,
    /// Any other answer: retrying will not help.
    Permanent,
}

impl ResultClass {
    /// Classifies an HTTP status code (DESIGN.md, "Delivery").
    pub fn of_status(status: u16) -> ResultClass {
        match status {
            200..=299 => ResultClass::Success,
            408 | 429 | 500..=599 => ResultClass::Retryable,
            _ => ResultClass::Permanent,
        }
    }
}

/// One delivery attempt's outcome, recorded by the worker and committed by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1, 2, ...: the `Belfry-Attempt` header that was sent.
    pub number: u32,
    /// The node that sent it.
    pub worker: NodeId,
    /// When the request started.
    pub started_at: DateTime<Utc>,
    /// When the answer (or the error) came.
    pub finished_at: DateTime<Utc>,
    /// Success, retryable or permanent.
    pub class: ResultClass,
    /// The HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// Transport error or refusal reason, when no usable answer came.
    pub error: Option<String>,
    /// The first bytes of the answer body, for dead letters.
    pub body_excerpt: Option<String>,
    /// `Retry-After` of a 429/503 answer, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Attempt {
    /// The attempt as the state keeps it, whatever the worker sent: `error` and `body_excerpt`
    /// cut at a character boundary to [`MAX_ERROR_BYTES`] and [`MAX_BODY_EXCERPT_BYTES`], and
    /// both instants moved into the instant window (`belfry_schedule::instant`).
    pub fn bounded(mut self) -> Attempt {
        if let Some(e) = self.error.as_mut() {
            truncate_at_char_boundary(e, MAX_ERROR_BYTES);
        }
        if let Some(b) = self.body_excerpt.as_mut() {
            truncate_at_char_boundary(b, MAX_BODY_EXCERPT_BYTES);
        }
        self.started_at = clamp_instant(self.started_at);
        self.finished_at = clamp_instant(self.finished_at);
        self
    }

    /// Milliseconds the attempt took.
    pub fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at).num_milliseconds().max(0)
    }
}

/// Shortens `s` to at most `max` bytes, at the last character boundary that fits.
pub fn truncate_at_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let cut = (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
    }
}

/// One claimed instant of a job and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fire {
    /// The idempotency key.
    pub key: FireKey,
    /// Position in the cluster-wide order of claims: the executions cursor.
    pub seq: u64,
    /// The job's uid.
    pub job_uid: JobUid,
    /// The job's name when the fire was claimed.
    pub job_name: compact_str::CompactString,
    /// The schedule instant (the manual trigger's commit time for manual fires).
    pub scheduled_at: DateTime<Utc>,
    /// When the claim committed (the proposer's clock).
    pub claimed_at: DateTime<Utc>,
    /// A manual trigger rather than a schedule instant.
    pub manual: bool,
    /// Where the fire is.
    pub status: FireStatus,
    /// The number of the current (or last) attempt; 0 before the first dispatch.
    pub attempt: u32,
    /// The worker of the current (or last) dispatch.
    pub worker: Option<NodeId>,
    /// The leader term of the current dispatch: workers refuse lower terms.
    pub term: u64,
    /// No send may start after this instant for the current dispatch.
    pub lease_until: Option<DateTime<Utc>>,
    /// The instant the first attempt's send starts, for a fire claimed ahead of its instant
    /// (the schedule instant plus jitter): its worker holds the send until then. Absent: at
    /// once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, while retry-waiting.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Attempts counted against the retry policy start after this many (a requeue resets it).
    pub budget_base: u32,
    /// The start of the `max_age` window (the claim, or the last requeue).
    pub budget_since: DateTime<Utc>,
    /// Every finished attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Why a fire was skipped, coalesced or dead-lettered, in words.
    pub note: Option<String>,
    /// When the fire reached a finished status.
    pub finished_at: Option<DateTime<Utc>>,
    /// The id of the API token that triggered a manual fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    /// The id of the API token behind the last requeue of this dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_by: Option<String>,
}

impl Fire {
    /// Whether the fire's current dispatch is attempt `attempt` on `worker` under the lease
    /// `lease_until`. A reply or a ledger answer about any other dispatch must not move the
    /// fire: the attempt may be in flight on another worker.
    pub fn is_dispatch(&self, attempt: u32, worker: NodeId, lease_until: DateTime<Utc>) -> bool {
        self.status == FireStatus::Dispatched
            && self.attempt == attempt
            && self.worker == Some(worker)
            && self.lease_until == Some(lease_until)
    }
}

/// What the leader sends after a claim or redispatch commits: one `Deliver` to `worker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// The fire.
    pub key: FireKey,
    /// The attempt number to send.
    pub attempt: u32,
    /// The worker to send it.
    pub worker: NodeId,
    /// The proposing leader's term.
    pub term: u64,
    /// Start-by deadline.
    pub lease_until: DateTime<Utc>,
    /// Start-no-earlier-than: the worker holds the send until this instant (a claim ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let cut = |s: &str, max: usize| {
            let mut s = s.to_string();
            truncate_at_char_boundary(&mut s, max);
            s
        };
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("日本", 5), "日");
        assert_eq!(cut("日本", 0), "");
    }

    #[test]
    fn cancelled_is_a_finished_status_of_its_own() {
        assert!(FireStatus::Cancelled.is_finished() && !FireStatus::Cancelled.is_in_flight());
        assert_eq!(FireStatus::parse("cancelled"), Some(FireStatus::Cancelled));
        assert_eq!(serde_json::to_string(&FireStatus::Cancelled).unwrap(), "\"cancelled\"");
    }
}
