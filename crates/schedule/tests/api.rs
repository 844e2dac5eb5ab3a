//! The public API: parsing and its errors, bounds, `every`, `at`, grammar
//! features end to end, and `describe`.

use belfry_schedule::{Schedule, ScheduleError, ScheduleSpec};
use chrono::{DateTime, SecondsFormat, Utc};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cron(expr: &str) -> ScheduleSpec {
    ScheduleSpec { cron: Some(expr.into()), ..Default::default() }
}

fn parse(spec: &ScheduleSpec) -> Result<Schedule, ScheduleError> {
    Schedule::parse(spec, utc("2025-01-01T00:00:00Z"))
}

fn err(spec: &ScheduleSpec) -> (&'static str, String) {
    let e = parse(spec).unwrap_err();
    (e.field, e.message)
}

fn fires(spec: &ScheduleSpec, after: &str, count: usize) -> Vec<String> {
    parse(spec)
        .unwrap()
        .upcoming(utc(after), count)
        .into_iter()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .collect()
}

fn cron_fires(expr: &str, after: &str, count: usize) -> Vec<String> {
    fires(&cron(expr), after, count)
}

#[test]
fn errors_name_field_and_part() {
    assert_eq!(err(&cron("61 * * * *")), ("cron", "minute 61 out of range 0-59".into()));
    assert_eq!(err(&cron("* * * * * * *")), ("cron", "expected 5 or 6 fields, got 7".into()));
    assert_eq!(err(&cron("0 0 1 FOO *")), ("cron", "unknown month name FOO".into()));
    assert_eq!(err(&cron("*/0 * * * *")), ("cron", "step must be at least 1".into()));
    assert_eq!(err(&cron("0 0 * * XYZ")), ("cron", "unknown day name XYZ".into()));
    let zoned = ScheduleSpec { timezone: Some("Mars/Olympus".into()), ..cron("0 0 * * *") };
    assert_eq!(err(&zoned).0, "timezone");
    let every = |s: &str| ScheduleSpec { every: Some(s.into()), ..Default::default() };
    assert_eq!(err(&every("500ms")), ("every", "must be at least 1s".into()));
    assert_eq!(err(&every("5x")).0, "every");
    assert_eq!(err(&ScheduleSpec { at: Some("tomorrow".into()), ..Default::default() }).0, "at");
    assert_eq!(err(&ScheduleSpec { start_at: Some("x".into()), ..cron("* * * * *") }).0, "start_at");
    assert_eq!(err(&ScheduleSpec { end_at: Some("x".into()), ..cron("* * * * *") }).0, "end_at");
    assert_eq!(err(&ScheduleSpec { jitter: Some("soon".into()), ..cron("* * * * *") }).0, "jitter");
    let reversed = ScheduleSpec {
        start_at: Some("2025-02-01T00:00:00Z".into()),
        end_at: Some("2025-01-01T00:00:00Z".into()),
        ..cron("* * * * *")
    };
    assert_eq!(err(&reversed), ("end_at", "end_at is before start_at".into()));
    assert_eq!(err(&ScheduleSpec::default()).0, "schedule");
    assert_eq!(err(&ScheduleSpec { every: Some("1m".into()), ..cron("* * * * *") }).0, "schedule");
}

#[test]
fn spec_rejects_unknown_json_fields() {
    assert!(serde_json::from_str::<ScheduleSpec>(r#"{"cron": "* * * * *", "tz": "UTC"}"#).is_err());
    let spec: ScheduleSpec = serde_json::from_str(r#"{"cron": "0 30 2 * * *", "timezone": "Europe/Berlin"}"#).unwrap();
    assert_eq!(spec.timezone.as_deref(), Some("Europe/Berlin"));
}

#[test]
fn next_after_is_strict_and_whole_seconds() {
    assert_eq!(cron_fires("* * * * * *", "2025-01-01T00:00:00Z", 1), ["2025-01-01T00:00:01.000Z"]);
    assert_eq!(cron_fires("* * * * * *", "2025-01-01T00:00:00.001Z", 1), ["2025-01-01T00:00:01.000Z"]);
    assert_eq!(cron_fires("* * * * * *", "2025-01-01T00:00:00.999Z", 1), ["2025-01-01T00:00:01.000Z"]);
    assert_eq!(cron_fires("0 * * * *", "2025-01-01T00:00:00Z", 1), ["2025-01-01T01:00:00.000Z"]);
}

#[test]
fn grammar_end_to_end() {
    let day = |e: &str, after: &str, n: usize| -> Vec<String> {
        cron_fires(e, after, n).into_iter().map(|s| s[..10].to_string()).collect()
    };
    // Ranges, steps, lists.
    assert_eq!(
        cron_fires("10-20/5 0 0 1 1 *", "2025-01-01T00:00:00Z", 3),
        ["2025-01-01T00:00:10.000Z", "2025-01-01T00:00:15.000Z", "2025-01-01T00:00:20.000Z"]
    );
    assert_eq!(day("0 0 1,15 * *", "2025-01-01T00:00:00Z", 3), ["2025-01-15", "2025-02-01", "2025-02-15"]);
    // Names, case-insensitive, in ranges.
    assert_eq!(day("0 0 1 jan-MAR *", "2025-01-01T00:00:00Z", 3), ["2025-02-01", "2025-03-01", "2026-01-01"]);
    assert_eq!(day("0 0 * * sat-SUN", "2025-01-01T00:00:00Z", 3), ["2025-01-04", "2025-01-05", "2025-01-11"]);
    // 0 and 7 are Sunday.
    assert_eq!(day("0 0 * * 7", "2025-01-01T00:00:00Z", 1), day("0 0 * * 0", "2025-01-01T00:00:00Z", 1));
    // L, L-n, LW, nW.
    assert_eq!(day("0 0 L * ?", "2024-01-31T00:00:00Z", 2), ["2024-02-29", "2024-03-31"]);
    assert_eq!(day("0 0 L-2 * ?", "2025-02-01T00:00:00Z", 1), ["2025-02-26"]);
    assert_eq!(day("0 0 LW * ?", "2025-08-01T00:00:00Z", 1), ["2025-08-29"]);
    assert_eq!(day("0 0 1W * ?", "2025-02-15T00:00:00Z", 1), ["2025-03-03"]);
    // nL and #.
    assert_eq!(day("0 0 ? * 5L", "2025-03-01T00:00:00Z", 2), ["2025-03-28", "2025-04-25"]);
    assert_eq!(day("0 0 ? * MON#2", "2025-03-01T00:00:00Z", 2), ["2025-03-10", "2025-04-14"]);
    assert_eq!(day("0 0 * * 1#2", "2025-03-01T00:00:00Z", 1), ["2025-03-10"]);
    // OR rule: the 13th or any Friday.
    assert_eq!(
        day("0 0 13 * FRI", "2025-06-01T00:00:00Z", 4),
        ["2025-06-06", "2025-06-13", "2025-06-20", "2025-06-27"]
    );
    // Macros.
    assert_eq!(cron_fires("@yearly", "2025-01-01T00:00:00Z", 1), ["2026-01-01T00:00:00.000Z"]);
    assert_eq!(cron_fires("@annually", "2025-01-01T00:00:00Z", 1), ["2026-01-01T00:00:00.000Z"]);
    assert_eq!(cron_fires("@monthly", "2025-01-01T00:00:00Z", 1), ["2025-02-01T00:00:00.000Z"]);
    assert_eq!(cron_fires("@weekly", "2025-01-01T00:00:00Z", 1), ["2025-01-05T00:00:00.000Z"]);
    assert_eq!(cron_fires("@daily", "2025-01-01T00:00:00Z", 1), ["2025-01-02T00:00:00.000Z"]);
    assert_eq!(cron_fires("@midnight", "2025-01-01T00:00:00Z", 1), ["2025-01-02T00:00:00.000Z"]);
    assert_eq!(cron_fires("@hourly", "2025-01-01T00:00:00Z", 1), ["2025-01-01T01:00:00.000Z"]);
}

#[test]
fn never_matching_gives_none_quickly() {
    let s = parse(&cron("0 0 30 2 *")).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(s.next_after(utc("2025-01-01T00:00:00Z")), None);
    assert_eq!(parse(&cron("0 0 31 4 ?")).unwrap().next_after(utc("2025-01-01T00:00:00Z")), None);
    assert!(started.elapsed() < std::time::Duration::from_millis(200));
    // Rare but possible: February 29th that is also... any day; next leap day.
    assert_eq!(cron_fires("0 0 29 2 *", "2097-01-01T00:00:00Z", 1), ["2104-02-29T00:00:00.000Z"]);
}

#[test]
fn start_and_end_bound_every_kind() {
    let bounded = ScheduleSpec {
        start_at: Some("2025-01-01T10:00:00.500Z".into()),
        end_at: Some("2025-01-01T10:00:03Z".into()),
        ..cron("* * * * * *")
    };
    assert_eq!(
        fires(&bounded, "2024-01-01T00:00:00Z", 10),
        ["2025-01-01T10:00:01.000Z", "2025-01-01T10:00:02.000Z", "2025-01-01T10:00:03.000Z"]
    );
    let every = ScheduleSpec {
        every: Some("90s".into()),
        start_at: Some("2025-01-01T00:00:00.250Z".into()),
        end_at: Some("2025-01-01T00:03:00.250Z".into()),
        ..Default::default()
    };
    assert_eq!(
        fires(&every, "2024-01-01T00:00:00Z", 10),
        ["2025-01-01T00:00:00.250Z", "2025-01-01T00:01:30.250Z", "2025-01-01T00:03:00.250Z"]
    );
    let anchored_at_creation = ScheduleSpec { every: Some("1h".into()), ..Default::default() };
    assert_eq!(fires(&anchored_at_creation, "2025-01-01T00:30:00Z", 1), ["2025-01-01T01:00:00.000Z"]);
    let at = ScheduleSpec { at: Some("2026-12-01T09:00:00Z".into()), ..Default::default() };
    assert_eq!(fires(&at, "2025-01-01T00:00:00Z", 3), ["2026-12-01T09:00:00.000Z"]);
    assert!(fires(&at, "2026-12-01T09:00:00Z", 3).is_empty());
    let at_late = ScheduleSpec { end_at: Some("2026-01-01T00:00:00Z".into()), ..at };
    assert!(fires(&at_late, "2025-01-01T00:00:00Z", 3).is_empty());
}

#[test]
fn describes_common_shapes() {
    let describe = |spec: ScheduleSpec| parse(&spec).unwrap().describe();
    let zoned = |e: &str, z: &str| ScheduleSpec { timezone: Some(z.into()), ..cron(e) };
    assert_eq!(describe(zoned("30 2 * * MON-FRI", "Europe/Berlin")), "At 02:30, Monday through Friday (Europe/Berlin)");
    assert_eq!(describe(cron("*/5 * * * *")), "Every 5 minutes");
    assert_eq!(describe(ScheduleSpec { every: Some("5m".into()), ..Default::default() }), "Every 5 minutes");
    assert_eq!(describe(ScheduleSpec { every: Some("1h30m".into()), ..Default::default() }), "Every 1 hour 30 minutes");
    assert_eq!(describe(cron("0 * * * * *")), "At second 0 of every minute");
    assert_eq!(describe(cron("* * * * *")), "Every minute");
    assert_eq!(describe(cron("* * * * * *")), "Every second");
    assert_eq!(describe(cron("*/10 * * * * *")), "Every 10 seconds");
    assert_eq!(describe(cron("@hourly")), "Every hour");
    assert_eq!(describe(cron("0 */2 * * *")), "Every 2 hours");
    assert_eq!(describe(cron("15,45 * * * *")), "At minutes 15 and 45 of every hour");
    assert_eq!(describe(cron("*/15 9-17 * * 1-5")), "Every 15 minutes, between 09:00 and 17:59, Monday through Friday");
    assert_eq!(describe(cron("0 9,18 * * *")), "At 09:00 and 18:00");
    assert_eq!(describe(cron("30 15 8 * * SAT,SUN")), "At 08:15:30, only on Sunday and Saturday");
    assert_eq!(describe(cron("@yearly")), "At 00:00, on January 1");
    assert_eq!(describe(cron("0 0 1 * *")), "At 00:00, on day 1 of the month");
    assert_eq!(describe(cron("0 0 L * ?")), "At 00:00, on the last day of the month");
    assert_eq!(describe(cron("0 12 ? * 5L")), "At 12:00, on the last Friday of the month");
    assert_eq!(describe(cron("0 12 ? * MON#2")), "At 12:00, on the second Monday of the month");
    assert_eq!(describe(cron("0 0 * JUN-AUG *")), "At 00:00, June through August");
    assert_eq!(describe(cron("0 0 13 * FRI")), "0 0 13 * FRI");
    assert_eq!(describe(zoned("1-7/3 2 * * *", "Asia/Kathmandu")), "1-7/3 2 * * * (Asia/Kathmandu)");
    assert_eq!(
        describe(ScheduleSpec { at: Some("2026-12-01T09:00:00Z".into()), ..Default::default() }),
        "Once, at 2026-12-01T09:00:00Z"
    );
}

#[test]
fn jitter_is_reported_not_applied() {
    let spec = ScheduleSpec { jitter: Some("30s".into()), ..cron("0 * * * *") };
    let s = parse(&spec).unwrap();
    assert_eq!(s.jitter(), std::time::Duration::from_secs(30));
    assert_eq!(s.next_after(utc("2025-01-01T00:00:00Z")), Some(utc("2025-01-01T01:00:00Z")));
    let offset = belfry_schedule::jitter_offset(s.jitter(), "job-1:2025-01-01T01:00:00Z");
    assert!(offset <= s.jitter());
    assert_eq!(offset, belfry_schedule::jitter_offset(s.jitter(), "job-1:2025-01-01T01:00:00Z"));
}
