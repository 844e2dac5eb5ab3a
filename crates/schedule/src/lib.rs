//! Pure schedule evaluation for belfry (no IO, no clock: time is a parameter).
//!
//! A [`ScheduleSpec`] is what users write (the JSON form); [`Schedule::parse`]
//! validates it into a [`Schedule`] that answers "what is the next instant
//! strictly after T" in UTC with millisecond precision. Three kinds exist:
//! `cron` (in any IANA zone, via chrono-tz), `every` (a fixed period from
//! `start_at`, or from the creation time) and `at` (one instant). `start_at`
//! and `end_at` bound all three; `jitter` is reported, never applied here
//! (the caller adds [`jitter_offset`] for each fire key).
//!
//! # Bounds
//!
//! Every instant a spec names (`at`, `start_at`, `end_at`) lies in years 1970 to 9999 (the
//! [`instant`] window), so each renders as RFC 3339; schedules yield no instant outside it and
//! [`Schedule::next_after`] takes any instant chrono can represent without panicking. `every`
//! lies between [`MIN_EVERY`] and [`MAX_EVERY`], `jitter` is at most [`MAX_JITTER`] (and, for
//! `every`, at most the period), a cron expression at most [`MAX_CRON_BYTES`] long, and a
//! duration's text is refused when its value overflows ([`parse_duration`]).
//!
//! # Cron evaluation
//!
//! Cron is evaluated in two steps (see the `cron` module): a field-skipping
//! search for the next matching *wall-clock* time, then a mapping of wall-clock
//! times to instants in the zone. Nothing scans minute by minute, and an
//! expression that never matches (`0 0 30 2 *`) gives `None` after searching
//! 28 years. Fire instants are whole seconds.
//!
//! Day of month and day of week combine as in Vixie cron: when both are
//! restricted a day matches if either does, otherwise the restricted one alone
//! decides. "Unrestricted" means the field is exactly `*` or `?`; a step such as
//! `*/2` counts as a restriction (Vixie cron would treat a field starting with
//! `*` as unrestricted, which silently turns the OR into an AND).
//!
//! # Daylight saving
//!
//! A cron is *fixed-time* when its second, minute and hour fields contain no
//! `*` (`*/5` contains one; `0,30` and `1-3` do not); otherwise it is *wildcard*.
//!
//! - Fixed-time, spring-forward gap: a wall time the gap skips fires once, at
//!   the instant the gap ends (the wall clock then shows the post-gap time, e.g.
//!   03:00 in Berlin). When several scheduled wall times fall into the same gap
//!   they all collapse into that one fire, which also coincides with (and is
//!   the same fire as) a time scheduled exactly at the gap's end. Example:
//!   `0 0,30 2,3 * * *` in Europe/Berlin on 2025-03-30 fires at 03:00 CEST
//!   (for 02:00, 02:30 and 03:00 together), then 03:30 CEST.
//! - Fixed-time, fall-back overlap: a wall time that occurs twice fires once,
//!   at its first occurrence (the earlier offset).
//! - Wildcard: fires at every instant whose wall-clock time matches, so nothing
//!   fires inside a gap and both occurrences fire inside an overlap (in instant
//!   order: the whole first pass, then the whole second pass).
//!
//! These rules are stated on wall-clock times and offsets only, so zones with
//! 30-minute shifts (Australia/Lord_Howe) and odd offsets (Pacific/Chatham,
//! Asia/Kathmandu) need no special handling. The reference fixture in
//! `tests/schedule-reference` is produced by an independent Python
//! implementation of the same rules and checked by `tests/reference.rs`.
//!
//! # Left out
//!
//! - Wrap-around ranges (`FRI-MON`) and a year field.
//! - Sub-second cron fields; `every` keeps millisecond precision.
//! - Leap seconds (chrono-tz, like POSIX time, has none).

mod cron;
mod describe;
mod duration;
mod every;
pub mod instant;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use cron::Cron;
pub use duration::{format_duration, parse_duration, MAX_DURATION_CHARS, MAX_DURATION_MS};
use instant::{in_window, MAX_INSTANT, MIN_INSTANT};

/// Shortest `every` period: the ticker's resolution is about a second, and a shorter period
/// would fill the log with claims.
pub const MIN_EVERY: Duration = Duration::from_secs(1);
/// Longest `every` period: a leap year. Longer intervals read better as a cron or an `at`.
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 86_400);
/// Largest `jitter`: spreading fires wider than an hour is a different schedule, not jitter.
pub const MAX_JITTER: Duration = Duration::from_secs(3_600);
/// Longest cron expression, in bytes: every field spelled out as a list still fits.
pub const MAX_CRON_BYTES: usize = 1_024;

/// The user-facing form of a schedule: exactly one of `cron`, `every`, `at`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 5 or 6 field cron expression (seconds first when 6), or an `@macro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub cron: Option<CompactString>,
    /// IANA zone for `cron`; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<CompactString>,
    /// Interval such as `30s`, `5m`, `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub every: Option<CompactString>,
    /// One-off RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub at: Option<CompactString>,
    /// No fire before this RFC 3339 instant (the anchor of `every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start_at: Option<CompactString>,
    /// No fire after this RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub end_at: Option<CompactString>,
    /// Maximum uniform delay added per fire, deterministic per fire key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub jitter: Option<CompactString>,
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
    Cron(Box<Cron>),
    Every { anchor: DateTime<Utc>, period_ms: i64 },
    At(DateTime<Utc>),
}

impl Schedule {
    /// Validates `spec`. `created_at` anchors an `every` schedule that has no `start_at`.
    pub fn parse(spec: &ScheduleSpec, created_at: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let start_at = spec.start_at.as_deref().map(|s| parse_instant("start_at", s)).transpose()?;
        let end_at = spec.end_at.as_deref().map(|s| parse_instant("end_at", s)).transpose()?;
        if let (Some(start), Some(end)) = (start_at, end_at) {
            if end < start {
                return Err(ScheduleError { field: "end_at", message: "end_at is before start_at".into() });
            }
        }
        let jitter = match spec.jitter.as_deref() {
            Some(s) => parse_duration(s).map_err(|message| ScheduleError { field: "jitter", message })?,
            None => Duration::ZERO,
        };
        if jitter > MAX_JITTER {
            return Err(ScheduleError {
                field: "jitter",
                message: format!("must be at most {}", format_duration(MAX_JITTER)),
            });
        }
        // Validated whatever the kind, although only cron reads it.
        let tz = match spec.timezone.as_deref() {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError {
                field: "timezone",
                message: format!("unknown time zone {name:?} (use an IANA name such as Europe/Berlin)"),
            })?,
        };
        let kind = match (&spec.cron, &spec.every, &spec.at) {
            (None, Some(every), None) => {
                let period = parse_duration(every).map_err(|message| ScheduleError { field: "every", message })?;
                if period < MIN_EVERY {
                    return Err(ScheduleError { field: "every", message: "must be at least 1s".into() });
                }
                if period > MAX_EVERY {
                    return Err(ScheduleError {
                        field: "every",
                        message: format!("must be at most {}", format_duration(MAX_EVERY)),
                    });
                }
                if jitter > period {
                    return Err(ScheduleError { field: "jitter", message: "must not exceed the every period".into() });
                }
                // At most MAX_EVERY, so the conversion is exact.
                let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
                Kind::Every { anchor: start_at.unwrap_or(created_at), period_ms }
            }
            (None, None, Some(at)) => Kind::At(parse_instant("at", at)?),
            (Some(expr), None, None) => {
                if expr.len() > MAX_CRON_BYTES {
                    return Err(ScheduleError {
                        field: "cron",
                        message: format!("longer than {MAX_CRON_BYTES} bytes"),
                    });
                }
                let cron = Cron::parse(expr, tz).map_err(|message| ScheduleError { field: "cron", message })?;
                Kind::Cron(Box::new(cron))
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

    /// The first instant strictly after `after`, within `start_at`/`end_at` and the
    /// [`instant`] window; `None` when exhausted. Takes any instant chrono can represent.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after >= MAX_INSTANT {
            return None;
        }
        // Nothing is produced before the window or before start_at: search from just before
        // the later of the two (both lie in the window, so the subtraction stays in range).
        let floor = self.start_at.map_or(MIN_INSTANT, |s| s.max(MIN_INSTANT));
        let after = match floor.checked_sub_signed(TimeDelta::milliseconds(1)) {
            Some(before_floor) if before_floor > after => before_floor,
            _ => after,
        };
        if self.end_at.is_some_and(|end| after >= end) {
            return None;
        }
        let next = match &self.kind {
            Kind::At(at) => (*at > after).then_some(*at),
            Kind::Every { anchor, period_ms } => every::next_every(*anchor, *period_ms, after),
            Kind::Cron(cron) => cron.next_after(after),
        }?;
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next).filter(|t| *t <= MAX_INSTANT),
        }
    }

    /// The first instant at or after `t`: what a job created at `t` fires first.
    pub fn first_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Only chrono's very first instant has no predecessor; it lies before the window, where
        // searching strictly after it finds the same instants.
        self.next_after(t.checked_sub_signed(TimeDelta::milliseconds(1)).unwrap_or(t))
    }

    /// Up to `count` instants strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count.min(1024));
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

    /// A human description, e.g. "At 02:30, Monday through Friday (Europe/Berlin)".
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::At(at) => format!("Once, at {}", at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            Kind::Every { period_ms, .. } => {
                let period = Duration::from_millis(u64::try_from(*period_ms).unwrap_or(0));
                format!("Every {}", duration::spell_duration(period))
            }
            Kind::Cron(cron) => describe::describe(cron),
        }
    }
}

/// The delay in `[0, max]` (whole milliseconds) added to the fire with `key`: uniform over
/// keys, and the same on every node. Defined for every `max`, [`Duration::MAX`] included.
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
    // In u128, `max_ms + 1` cannot overflow (Duration::MAX is below 2^75 ms) and is never 0;
    // the remainder is at most `h`, so it fits a u64.
    let offset = u128::from(h) % (max.as_millis() + 1);
    Duration::from_millis(u64::try_from(offset).unwrap_or(u64::MAX))
}

fn parse_instant(field: &'static str, s: &str) -> Result<DateTime<Utc>, ScheduleError> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ScheduleError { field, message: format!("not an RFC 3339 instant: {e}") })?;
    if !in_window(t) {
        return Err(ScheduleError { field, message: OUTSIDE_WINDOW.into() });
    }
    Ok(t)
}

const OUTSIDE_WINDOW: &str = "must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z (years 1970 to \
                              9999 in UTC, so that every instant renders as RFC 3339)";
