//! Replays `tests/schedule-reference/fixture.json`: cases computed by an
//! independent Python implementation of the cron grammar and daylight-saving
//! rules (`tests/schedule-reference/generate.py`), most of them starting within
//! a day before a transition. Every mismatch is listed, not just the first.

use std::path::PathBuf;

use belfry_schedule::{Schedule, ScheduleSpec};
use chrono::{DateTime, Duration, Offset, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    tzdata: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    expr: String,
    zone: String,
    start: String,
    near_dst: bool,
    expected: Vec<String>,
}

fn load() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/schedule-reference/fixture.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn show(ts: &[DateTime<Utc>]) -> Vec<String> {
    ts.iter().map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)).collect()
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()
}

#[test]
fn fixture_is_substantial() {
    let fixture = load();
    // chrono-tz 0.10.4 bundles this tz database; the generator refuses any other.
    assert_eq!(fixture.tzdata, "2025b");
    assert!(fixture.cases.len() >= 500, "only {} cases", fixture.cases.len());
    let mut near = 0;
    for case in &fixture.cases {
        assert!(
            (5..=10).contains(&case.expected.len()),
            "{} {}: {} instants",
            case.expr,
            case.zone,
            case.expected.len()
        );
        if case.near_dst {
            // Claimed, and checked: the zone's offset changes within a day of the start.
            let tz: Tz = case.zone.parse().unwrap();
            let start = utc(&case.start);
            assert_ne!(
                offset_at(tz, start),
                offset_at(tz, start + Duration::days(1)),
                "{} {} starts {}: no transition within a day",
                case.expr,
                case.zone,
                case.start
            );
            near += 1;
        }
    }
    assert!(near >= 250, "only {near} cases near a transition");
    for zone in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "Europe/London"] {
        let n = fixture.cases.iter().filter(|c| c.near_dst && c.zone == zone).count();
        assert!(n >= 20, "{zone}: only {n} cases near a transition");
    }
    assert!(fixture.cases.iter().any(|c| c.zone == "Asia/Kathmandu"));
    // Every grammar feature is exercised somewhere.
    let fields = |c: &Case| c.expr.split_whitespace().count();
    assert!(fixture.cases.iter().any(|c| fields(c) == 5) && fixture.cases.iter().any(|c| fields(c) == 6));
    for token in ["@", "?", "L", "LW", "W", "L-", "#", "/", "-", ",", "MON", "mon", "JAN", "7"] {
        assert!(fixture.cases.iter().any(|c| c.expr.contains(token)), "no case uses {token:?}");
    }
    assert!(fixture.cases.iter().any(|c| c.expr.contains('*')));
}

#[test]
fn engine_matches_reference() {
    let fixture = load();
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let spec = ScheduleSpec {
            cron: Some(case.expr.as_str().into()),
            timezone: Some(case.zone.as_str().into()),
            ..Default::default()
        };
        let schedule = match Schedule::parse(&spec, utc("2000-01-01T00:00:00Z")) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{:?} in {} : rejected: {e}", case.expr, case.zone));
                continue;
            }
        };
        let start = utc(&case.start);
        let expected: Vec<DateTime<Utc>> = case.expected.iter().map(|s| utc(s)).collect();
        let got = schedule.upcoming(start, expected.len());
        let first = schedule.next_after(start);
        if got != expected || first != expected.first().copied() {
            failures.push(format!(
                "{:?} in {} after {}:\n    expected {:?}\n    got      {:?}",
                case.expr,
                case.zone,
                case.start,
                show(&expected),
                show(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} reference cases differ:\n  {}",
        failures.len(),
        fixture.cases.len(),
        failures.join("\n  ")
    );
}
