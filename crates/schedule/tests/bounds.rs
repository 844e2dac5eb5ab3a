//! The documented bounds of a schedule spec, each refused with the field named, and schedule
//! evaluation that takes any instant chrono can represent without panicking.

use std::time::Duration;

use belfry_schedule::instant::{in_window, MAX_INSTANT, MIN_INSTANT};
use belfry_schedule::{jitter_offset, Schedule, ScheduleError, ScheduleSpec, MAX_CRON_BYTES};
use chrono::{DateTime, TimeDelta, Utc};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn parse(spec: &ScheduleSpec) -> Result<Schedule, ScheduleError> {
    Schedule::parse(spec, utc("2026-01-01T00:00:00Z"))
}

fn err(spec: &ScheduleSpec) -> (&'static str, String) {
    let e = parse(spec).expect_err("the spec must be refused");
    (e.field, e.message)
}

fn every(period: &str) -> ScheduleSpec {
    ScheduleSpec { every: Some(period.into()), ..Default::default() }
}

fn cron(expr: &str) -> ScheduleSpec {
    ScheduleSpec { cron: Some(expr.into()), ..Default::default() }
}

fn at(instant: &str) -> ScheduleSpec {
    ScheduleSpec { at: Some(instant.into()), ..Default::default() }
}

#[test]
fn every_lies_between_one_second_and_366_days() {
    assert!(parse(&every("1s")).is_ok());
    assert!(parse(&every("366d")).is_ok());
    assert_eq!(err(&every("367d")), ("every", "must be at most 366d".into()));
    assert_eq!(err(&every("1000000000d")), ("every", "must be at most 366d".into()));
    let (field, message) = err(&every("18446744073709551615ms"));
    assert_eq!(field, "every");
    assert!(message.contains("too large"), "{message}");
    let (field, message) = err(&every("100000000000000000000d"));
    assert_eq!(field, "every");
    assert!(message.contains("too large"), "{message}");
}

#[test]
fn jitter_is_at_most_an_hour_and_never_above_the_period() {
    assert!(parse(&ScheduleSpec { jitter: Some("1h".into()), ..cron("0 * * * *") }).is_ok());
    let refused = |jitter: &str, spec: ScheduleSpec| err(&ScheduleSpec { jitter: Some(jitter.into()), ..spec });
    assert_eq!(refused("1h1ms", cron("0 * * * *")), ("jitter", "must be at most 1h".into()));
    assert_eq!(refused("1000000000d", cron("0 * * * *")), ("jitter", "must be at most 1h".into()));
    assert_eq!(refused("1000000000d", at("2026-02-01T00:00:00Z")), ("jitter", "must be at most 1h".into()));
    let (field, message) = refused("18446744073709551615ms", every("10s"));
    assert_eq!(field, "jitter");
    assert!(message.contains("too large"), "{message}");
    assert_eq!(refused("11s", every("10s")), ("jitter", "must not exceed the every period".into()));
    assert!(parse(&ScheduleSpec { jitter: Some("10s".into()), ..every("10s") }).is_ok());
}

#[test]
fn instants_lie_in_years_1970_to_9999() {
    assert!(parse(&at("1970-01-01T00:00:00Z")).is_ok());
    assert!(parse(&at("9999-12-31T23:59:59.999Z")).is_ok());
    for outside in ["1969-12-31T23:59:59.999Z", "9999-12-31T23:59:59-00:01", "0000-01-01T00:00:00+23:59"] {
        let (field, message) = err(&at(outside));
        assert_eq!(field, "at", "{outside}");
        assert!(message.contains("years 1970 to 9999") && message.contains("RFC 3339"), "{message}");
        let start = ScheduleSpec { start_at: Some(outside.into()), ..every("1m") };
        assert_eq!(err(&start).0, "start_at");
        let end = ScheduleSpec { end_at: Some(outside.into()), ..every("1m") };
        assert_eq!(err(&end).0, "end_at");
    }
}

#[test]
fn cron_expressions_have_a_length_limit() {
    let long = format!("0 0 * * *{}", " ".repeat(MAX_CRON_BYTES));
    assert_eq!(err(&cron(&long)), ("cron", format!("longer than {MAX_CRON_BYTES} bytes")));
}

/// Instants at and beyond chrono's and the window's ends, where unchecked arithmetic panics.
fn extremes() -> Vec<DateTime<Utc>> {
    let ms = TimeDelta::milliseconds(1);
    vec![
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        MIN_INSTANT - ms,
        MIN_INSTANT,
        MAX_INSTANT - TimeDelta::seconds(1),
        MAX_INSTANT - ms,
        MAX_INSTANT,
        MAX_INSTANT + ms,
        utc("2026-01-01T00:00:00Z"),
    ]
}

#[test]
fn next_after_takes_any_instant_and_yields_only_window_instants() {
    let zoned = |expr: &str, zone: &str| ScheduleSpec { timezone: Some(zone.into()), ..cron(expr) };
    let specs = [
        cron("* * * * * *"),
        zoned("* * * * * *", "Pacific/Kiritimati"),
        zoned("0 30 2 * * *", "Pacific/Pago_Pago"),
        zoned("0 0 29 2 *", "Europe/Berlin"),
        every("1s"),
        every("366d"),
        at("9999-12-31T23:59:59.999Z"),
        ScheduleSpec { start_at: Some("9999-12-31T23:59:59Z".into()), ..every("1s") },
    ];
    for spec in &specs {
        for created_at in extremes() {
            let schedule = Schedule::parse(spec, created_at).expect("valid spec");
            for after in extremes() {
                for next in [schedule.next_after(after), schedule.first_at_or_after(after)].into_iter().flatten() {
                    assert!(in_window(next), "{spec:?} after {after}: {next}");
                    assert!(next >= after, "{spec:?} after {after}: {next}");
                }
            }
        }
    }
}

#[test]
fn schedules_end_with_the_window() {
    let s = parse(&cron("* * * * * *")).unwrap();
    assert_eq!(s.next_after(utc("9999-12-31T23:59:58Z")), Some(utc("9999-12-31T23:59:59Z")));
    assert_eq!(s.next_after(utc("9999-12-31T23:59:59Z")), None);
    let s = Schedule::parse(&every("1s"), utc("9999-12-31T23:59:58.500Z")).unwrap();
    assert_eq!(
        s.upcoming(utc("9999-12-31T23:59:58Z"), 5),
        [utc("9999-12-31T23:59:58.500Z"), utc("9999-12-31T23:59:59.500Z")]
    );
    let s = parse(&at("1970-01-01T00:00:00Z")).unwrap();
    assert_eq!(s.next_after(DateTime::<Utc>::MIN_UTC), Some(MIN_INSTANT));
    assert_eq!(s.first_at_or_after(MIN_INSTANT), Some(MIN_INSTANT));
}

#[test]
fn jitter_offset_is_defined_for_every_maximum() {
    for max in [Duration::MAX, Duration::from_millis(u64::MAX), Duration::from_millis(1), Duration::from_nanos(1)] {
        for key in ["", "1:0", "7:253402300799999"] {
            let offset = jitter_offset(max, key);
            assert!(offset <= max, "{offset:?} > {max:?}");
            assert_eq!(offset, jitter_offset(max, key));
        }
    }
}
