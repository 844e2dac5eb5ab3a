//! Cron expressions: grammar, wall-clock search and the daylight-saving rules.
//!
//! An expression is parsed once ([`parse`]) into a bitset per time field and the
//! two day fields ([`calendar`]). Evaluation is two steps:
//!
//! 1. [`eval`] finds the next *wall-clock* time that matches, skipping a whole
//!    month, day, hour or minute at a time when a field rejects it, so the cost
//!    is a few dozen steps per answer, not one per minute. The search gives up
//!    after 28 years (see `zone::SEARCH_YEARS`), so `0 0 30 2 *` yields `None`.
//! 2. [`zone`] maps that wall-clock time onto UTC instants in the schedule's
//!    zone, applying the fixed-time / wildcard rules described in the crate
//!    documentation, and moves on when a wall time yields no instant after `t`.
//!
//! # Grammar
//!
//! `second minute hour day-of-month month day-of-week`, the seconds field being
//! optional (5 fields mean second 0). Each field is a comma list of `*`, `a`,
//! `a-b`, `*/n`, `a-b/n` and `a/n` (a to the field's maximum). Months take
//! `JAN`..`DEC`, days `SUN`..`SAT` (any case, also inside ranges); day-of-week 0
//! and 7 are both Sunday. The day fields also take `?` (no restriction);
//! day-of-month takes `L`, `L-n`, `LW` and `nW`; day-of-week takes `nL` (last
//! such weekday) and `d#n` (n-th such weekday). Macros: `@yearly`/`@annually`,
//! `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
//!
//! Left out: wrap-around ranges (`FRI-MON`, `22-2`) are rejected rather than
//! guessed at; there is no year field; `L` alone in day-of-week (Quartz's
//! Saturday) is rejected because it reads like "last day".

mod calendar;
mod eval;
pub(crate) mod parse;
mod zone;

use chrono_tz::Tz;

use calendar::Days;
use parse::{parse_field, Field, Unit};

/// A parsed cron expression bound to its zone.
#[derive(Debug, Clone)]
pub(crate) struct Cron {
    /// The expression as written, for `describe`'s fallback.
    pub expr: String,
    pub tz: Tz,
    /// Whether the expression had a seconds field (or was a macro, which has none).
    pub has_seconds: bool,
    pub seconds: u64,
    pub minutes: u64,
    pub hours: u64,
    pub months: u64,
    pub days: Days,
    /// The parsed time fields (second, minute, hour) and month, for `describe`.
    pub fields: [Field; 4],
    /// No `*` in the second, minute or hour field: DST gaps and overlaps are
    /// smoothed (fire at the gap's end, once in an overlap) instead of followed.
    pub fixed_time: bool,
}

fn expand_macro(expr: &str) -> Result<&'static str, String> {
    Ok(match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            return Err(format!(
                "unknown macro {expr} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
            ))
        }
    })
}

impl Cron {
    /// Parses `expr`; the error message names the field and the part at fault.
    pub(crate) fn parse(expr: &str, tz: Tz) -> Result<Cron, String> {
        let trimmed = expr.trim();
        let body = if trimmed.starts_with('@') { expand_macro(trimmed)? } else { trimmed };
        let texts: Vec<&str> = body.split_whitespace().collect();
        let (texts, has_seconds) = match texts.len() {
            5 => ([&["0"], &texts[..]].concat(), false),
            6 => (texts, true),
            n => return Err(format!("expected 5 or 6 fields, got {n}")),
        };
        let units = [Unit::Second, Unit::Minute, Unit::Hour, Unit::DayOfMonth, Unit::Month, Unit::DayOfWeek];
        let mut fields = Vec::with_capacity(6);
        for (text, unit) in texts.iter().zip(units) {
            fields.push(parse_field(text, unit)?);
        }
        let [second, minute, hour, dom, month, dow]: [Field; 6] =
            fields.try_into().map_err(|f: Vec<Field>| format!("expected 6 fields, got {}", f.len()))?;
        let fixed_time = !(second.has_star || minute.has_star || hour.has_star);
        Ok(Cron {
            expr: trimmed.to_string(),
            tz,
            has_seconds,
            seconds: second.bits,
            minutes: minute.bits,
            hours: hour.bits,
            months: month.bits,
            days: Days { dom, dow },
            fields: [second, minute, hour, month],
            fixed_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(expr: &str) -> String {
        Cron::parse(expr, Tz::UTC).unwrap_err()
    }

    #[test]
    fn field_counts() {
        assert_eq!(err("* * * * * * *"), "expected 5 or 6 fields, got 7");
        assert_eq!(err("* * * *"), "expected 5 or 6 fields, got 4");
        assert_eq!(err(""), "expected 5 or 6 fields, got 0");
        assert!(!Cron::parse("* * * * *", Tz::UTC).unwrap().has_seconds);
        assert!(Cron::parse("* * * * * *", Tz::UTC).unwrap().has_seconds);
    }

    #[test]
    fn macros_expand() {
        let c = Cron::parse("@hourly", Tz::UTC).unwrap();
        assert_eq!((c.seconds, c.minutes, c.hours), (1, 1, (1 << 24) - 1));
        assert!(!c.fixed_time);
        assert!(Cron::parse("@DAILY", Tz::UTC).unwrap().fixed_time);
        assert!(err("@reboot").starts_with("unknown macro @reboot"));
    }

    #[test]
    fn fixed_time_classification() {
        let fixed = |e: &str| Cron::parse(e, Tz::UTC).unwrap().fixed_time;
        assert!(fixed("30 2 * * *"));
        assert!(fixed("0 0,30 1-3 * * MON"));
        assert!(!fixed("*/5 2 * * *"));
        assert!(!fixed("0 * * * *"));
        assert!(!fixed("* 0 2 * * *"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err("61 * * * *"), "minute 61 out of range 0-59");
        assert_eq!(err("0 0 * FOO *"), "unknown month name FOO");
        assert_eq!(err("*/0 * * * *"), "step must be at least 1");
        assert_eq!(err("60 * * * * *"), "second 60 out of range 0-59");
    }
}
