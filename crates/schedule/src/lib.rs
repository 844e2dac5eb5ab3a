//! Pure schedule evaluation for belfry (no IO, no clock: time is a parameter).
//!
//! A [`ScheduleSpec`] is what users write (the JSON form); [`Schedule::parse`]
//! validates it into a [`Schedule`] that answers "what is the next instant
//! strictly after T" in UTC with millisecond precision.
//!
//! This is the API contract other crates build against; the full cron grammar
//! and daylight-saving rules live behind it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The user-facing form of a schedule: exactly one of `cron`, `every`, `at`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 5 or 6 field cron expression (seconds first when 6), or an `@macro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA zone for `cron`; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Interval such as `30s`, `5m`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// One-off RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// No fire before this RFC 3339 instant (the anchor of `every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// No fire after this RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Maximum uniform delay added per fire, deterministic per fire key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
}

/// A validation failure that names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    /// The JSON field at fault, relative to the schedule object (`cron`, `every`, `timezone`, ...).
    pub field: &'static str,
    /// What is wrong, naming the exact part ("minute 61 out of range 0-59").
    pub message: String,
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
    jitter: Duration,
}

#[derive(Debug, Clone)]
enum Kind {
    Every { anchor: DateTime<Utc>, period_ms: i64 },
    At(DateTime<Utc>),
}

impl Schedule {
    /// Validates `spec`. `created_at` anchors an `every` schedule that has no `start_at`.
    pub fn parse(spec: &ScheduleSpec, created_at: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let start_at = spec.start_at.as_deref().map(|s| parse_instant("start_at", s)).transpose()?;
        let end_at = spec.end_at.as_deref().map(|s| parse_instant("end_at", s)).transpose()?;
        let jitter = match spec.jitter.as_deref() {
            Some(s) => parse_duration(s).map_err(|message| ScheduleError { field: "jitter", message })?,
            None => Duration::ZERO,
        };
        let kind = match (&spec.cron, &spec.every, &spec.at) {
            (None, Some(every), None) => {
                let period = parse_duration(every).map_err(|message| ScheduleError { field: "every", message })?;
                let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
                if period_ms < 1000 {
                    return Err(ScheduleError { field: "every", message: "must be at least 1s".into() });
                }
                Kind::Every { anchor: start_at.unwrap_or(created_at), period_ms }
            }
            (None, None, Some(at)) => Kind::At(parse_instant("at", at)?),
            (Some(_), None, None) => {
                return Err(ScheduleError { field: "cron", message: "cron is not supported yet".into() })
            }
            _ => {
                return Err(ScheduleError {
                    field: "schedule",
                    message: "exactly one of cron, every, at is required".into(),
                })
            }
        };
        Ok(Schedule { kind, start_at, end_at, jitter })
    }

    /// The first instant strictly after `after`, within `start_at`/`end_at`; `None` when exhausted.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start_at {
            Some(s) if s > after => s - chrono::Duration::milliseconds(1),
            _ => after,
        };
        let next = match &self.kind {
            Kind::At(at) => (*at > after).then_some(*at),
            Kind::Every { anchor, period_ms } => {
                let a = anchor.timestamp_millis();
                let t = after.timestamp_millis();
                let n = if t < a { 0 } else { (t - a) / period_ms + 1 };
                DateTime::from_timestamp_millis(a + n * period_ms)
            }
        }?;
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Up to `count` instants strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut t = after;
        while out.len() < count {
            match self.next_after(t) {
                Some(n) => {
                    out.push(n);
                    t = n;
                }
                None => break,
            }
        }
        out
    }

    /// The maximum jitter configured.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// A human description, e.g. "At 02:30, Monday through Friday, Europe/Berlin".
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::At(at) => format!("Once, at {}", at.to_rfc3339()),
            Kind::Every { period_ms, .. } => {
                format!("Every {}", format_duration(Duration::from_millis(*period_ms as u64)))
            }
        }
    }
}

/// The delay in `[0, max]` added to the fire with `key`: uniform over keys, and the same on every node.
pub fn jitter_offset(max: Duration, key: &str) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let max_ms = max.as_millis() as u64;
    Duration::from_millis(h % (max_ms + 1))
}

fn parse_instant(field: &'static str, s: &str) -> Result<DateTime<Utc>, ScheduleError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ScheduleError { field, message: format!("not an RFC 3339 instant: {e}") })
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `1d` and concatenations such as `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= per {
            out.push_str(&format!("{}{}", ms / per, unit));
            ms %= per;
        }
    }
    out
}
