//! The window of instants belfry stores and exchanges: 1970-01-01T00:00:00.000Z to
//! 9999-12-31T23:59:59.999Z.
//!
//! Inside the window every instant renders as RFC 3339 with a four-digit year (`YYYY-…Z`);
//! chrono itself reaches year ±262143, which renders as `+10000-01-01T…`, a form RFC 3339
//! readers refuse. Instants users write are refused outside the window, schedules produce none
//! outside it, and arithmetic on instants from outside (a clock, a header) saturates at its ends.

use chrono::{DateTime, TimeDelta, Utc};

/// The first instant of the window, in Unix milliseconds: 1970-01-01T00:00:00.000Z.
pub const MIN_INSTANT_MS: i64 = 0;
/// The last instant of the window, in Unix milliseconds: 9999-12-31T23:59:59.999Z.
pub const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

/// The first instant of the window.
pub const MIN_INSTANT: DateTime<Utc> = match DateTime::from_timestamp_millis(MIN_INSTANT_MS) {
    Some(t) => t,
    None => panic!("MIN_INSTANT_MS is representable"),
};
/// The last instant of the window.
pub const MAX_INSTANT: DateTime<Utc> = match DateTime::from_timestamp_millis(MAX_INSTANT_MS) {
    Some(t) => t,
    None => panic!("MAX_INSTANT_MS is representable"),
};

/// Whether `t` lies inside the window.
pub fn in_window(t: DateTime<Utc>) -> bool {
    (MIN_INSTANT..=MAX_INSTANT).contains(&t)
}

/// `t`, moved to the nearest end of the window when it lies outside.
pub fn clamp_instant(t: DateTime<Utc>) -> DateTime<Utc> {
    t.clamp(MIN_INSTANT, MAX_INSTANT)
}

/// `t + d`, clamped to the window; never panics, whatever `t` and `d` are.
pub fn saturating_add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    let sum = t.checked_add_signed(d).unwrap_or(if d < TimeDelta::zero() { MIN_INSTANT } else { MAX_INSTANT });
    clamp_instant(sum)
}

/// `t + ms` milliseconds, clamped to the window; never panics.
pub fn saturating_add_ms(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    // -i64::MAX is the most negative delta chrono accepts; a larger negative shift leaves the
    // window anyway.
    saturating_add(t, TimeDelta::try_milliseconds(ms.max(-i64::MAX)).unwrap_or(TimeDelta::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn window_ends_render_as_rfc3339() {
        assert_eq!(MIN_INSTANT.to_rfc3339_opts(SecondsFormat::Millis, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(MAX_INSTANT.to_rfc3339_opts(SecondsFormat::Millis, true), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn arithmetic_saturates_at_the_window() {
        assert_eq!(saturating_add(DateTime::<Utc>::MAX_UTC, TimeDelta::MAX), MAX_INSTANT);
        assert_eq!(saturating_add(DateTime::<Utc>::MIN_UTC, TimeDelta::MIN), MIN_INSTANT);
        assert_eq!(saturating_add_ms(MAX_INSTANT, 1), MAX_INSTANT);
        assert_eq!(saturating_add_ms(MIN_INSTANT, i64::MIN), MIN_INSTANT);
        assert_eq!(saturating_add_ms(MIN_INSTANT, 5).timestamp_millis(), 5);
        assert_eq!(clamp_instant(DateTime::<Utc>::MIN_UTC), MIN_INSTANT);
        assert!(in_window(MAX_INSTANT) && !in_window(MAX_INSTANT + TimeDelta::milliseconds(1)));
    }
}
