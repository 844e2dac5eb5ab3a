//! Interval schedules: `anchor`, `anchor + period`, `anchor + 2·period`, ….

use chrono::{DateTime, Utc};

/// The first instant of the series strictly after `after`.
pub(crate) fn next_every(anchor: DateTime<Utc>, period_ms: i64, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let a = anchor.timestamp_millis();
    let t = after.timestamp_millis();
    let n = if t < a { 0 } else { (t - a) / period_ms + 1 };
    n.checked_mul(period_ms).and_then(|d| d.checked_add(a)).and_then(DateTime::from_timestamp_millis)
}
