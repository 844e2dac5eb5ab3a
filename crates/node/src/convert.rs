//! Conversions between belfry's types and their protobuf forms.

use belfry_core::{Attempt, ResultClass};
use chrono::{DateTime, Utc};

use crate::proto;

/// Milliseconds to an instant (the epoch for out-of-range values).
pub fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// An attempt as a protobuf outcome.
pub fn outcome(a: &Attempt) -> proto::Outcome {
    proto::Outcome {
        worker: a.worker,
        attempt: a.number,
        started_at_ms: a.started_at.timestamp_millis(),
        finished_at_ms: a.finished_at.timestamp_millis(),
        class: match a.class {
            ResultClass::Success => proto::ResultClass::Success,
            ResultClass::Retryable => proto::ResultClass::Retryable,
            ResultClass::Permanent => proto::ResultClass::Permanent,
        } as i32,
        http_status: a.http_status.map(u32::from),
        error: a.error.clone(),
        body_excerpt: a.body_excerpt.clone(),
        retry_after_ms: a.retry_after_ms,
    }
}

/// A protobuf outcome as an attempt. Unknown classes count as retryable: a later attempt is
/// always safe, a wrongly final verdict is not.
pub fn attempt(o: &proto::Outcome) -> Attempt {
    Attempt {
        number: o.attempt,
        worker: o.worker,
        started_at: instant(o.started_at_ms),
        finished_at: instant(o.finished_at_ms),
        class: match proto::ResultClass::try_from(o.class) {
            Ok(proto::ResultClass::Success) => ResultClass::Success,
            Ok(proto::ResultClass::Permanent) => ResultClass::Permanent,
            _ => ResultClass::Retryable,
        },
        http_status: o.http_status.and_then(|s| u16::try_from(s).ok()),
        error: o.error.clone(),
        body_excerpt: o.body_excerpt.clone(),
        retry_after_ms: o.retry_after_ms,
    }
}

/// A refusal as its protobuf enum.
pub fn refusal_to_proto(r: belfry_core::protocol::Refusal) -> proto::Refusal {
    use belfry_core::protocol::Refusal as R;
    match r {
        R::StaleTerm => proto::Refusal::StaleTerm,
        R::NotLeader => proto::Refusal::NotLeader,
        R::NotDispatched => proto::Refusal::NotDispatched,
        R::LeaseExpired => proto::Refusal::LeaseExpired,
        R::InProgress => proto::Refusal::InProgress,
        R::ShuttingDown => proto::Refusal::ShuttingDown,
        R::LedgerError => proto::Refusal::LedgerError,
    }
}

/// A protobuf refusal; `None` for one this version does not know.
pub fn refusal_from_proto(code: i32) -> Option<belfry_core::protocol::Refusal> {
    use belfry_core::protocol::Refusal as R;
    match proto::Refusal::try_from(code).ok()? {
        proto::Refusal::Unspecified => None,
        proto::Refusal::StaleTerm => Some(R::StaleTerm),
        proto::Refusal::NotLeader => Some(R::NotLeader),
        proto::Refusal::NotDispatched => Some(R::NotDispatched),
        proto::Refusal::LeaseExpired => Some(R::LeaseExpired),
        proto::Refusal::InProgress => Some(R::InProgress),
        proto::Refusal::ShuttingDown => Some(R::ShuttingDown),
        proto::Refusal::LedgerError => Some(R::LedgerError),
    }
}
