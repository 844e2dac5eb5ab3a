//! Deterministic errors: the same command against the same state fails the same way on every
//! replica, so these travel in the apply response instead of failing the state machine.

use serde::{Deserialize, Serialize};

/// Why a command was refused. Carried in [`crate::Response::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApplyError {
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault, as a JSON path (`target.url`, `schedule.cron`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No job or fire with that name or key.
    #[error("{what} {name} not found")]
    NotFound {
        /// `job` or `execution`.
        what: String,
        /// The name or key asked for.
        name: String,
    },
    /// A job with that name exists already.
    #[error("job {name} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// `If-Match` named a version other than the current one.
    #[error("version mismatch: expected {expected}, current {current}")]
    VersionMismatch {
        /// The version the caller sent.
        expected: u64,
        /// The version the job has.
        current: u64,
    },
    /// The request conflicts with the fire's or job's state (requeue of a live fire, ...).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The cluster holds as many of these as it may (`--max-jobs`, or the token cap); a delete
    /// makes room, a retry alone does not.
    #[error("the cluster holds {limit} {what} already, its limit; delete some first")]
    QuotaExceeded {
        /// `jobs` or `tokens`.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// One spec of a batch create was refused, and with it the whole batch.
    #[error("job spec {index}: {error}")]
    Item {
        /// The spec's position in the batch, from 0.
        index: usize,
        /// Why it was refused.
        error: Box<ApplyError>,
    },
}

impl ApplyError {
    /// An [`ApplyError::Invalid`] for `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApplyError::Invalid { field: field.to_string(), message: message.into() }
    }

    /// This error as the refusal of the spec at `index` of a batch.
    pub fn at(self, index: usize) -> Self {
        ApplyError::Item { index, error: Box::new(self) }
    }

    /// An [`ApplyError::NotFound`] for a job.
    pub fn job_not_found(name: &str) -> Self {
        ApplyError::NotFound { what: "job".into(), name: name.into() }
    }
}

impl From<belfry_schedule::ScheduleError> for ApplyError {
    fn from(e: belfry_schedule::ScheduleError) -> Self {
        ApplyError::Invalid {
            field: format!("schedule.{}", e.field).replace("schedule.schedule", "schedule"),
            message: e.message,
        }
    }
}
