//! Hand-checked daylight-saving cases. Each expected instant was worked out
//! from the zone's published rules (offsets and transition times in the
//! comments), not from the implementation.

use belfry_schedule::{Schedule, ScheduleSpec};
use chrono::{DateTime, SecondsFormat, Utc};

fn fires(cron: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
    let spec = ScheduleSpec { cron: Some(cron.into()), timezone: Some(zone.into()), ..Default::default() };
    let created = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
    let schedule = Schedule::parse(&spec, created).unwrap();
    let after = DateTime::parse_from_rfc3339(after).unwrap().with_timezone(&Utc);
    schedule.upcoming(after, count).into_iter().map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).collect()
}

// Europe/Berlin: CET +01:00, CEST +02:00. 2025-03-30 01:00Z: 02:00 CET -> 03:00 CEST.
// 2025-10-26 01:00Z: 03:00 CEST -> 02:00 CET (02:00-02:59 twice).

#[test]
fn berlin_fixed_gap_fires_at_gap_end() {
    assert_eq!(
        fires("0 30 2 * * *", "Europe/Berlin", "2025-03-28T12:00:00Z", 3),
        ["2025-03-29T01:30:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"]
    );
}

#[test]
fn berlin_fixed_gap_when_asked_from_inside_the_last_second() {
    assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2025-03-30T00:59:59.500Z", 1), ["2025-03-30T01:00:00Z"]);
    assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2025-03-30T01:00:00Z", 1), ["2025-03-31T00:30:00Z"]);
}

#[test]
fn berlin_fixed_several_times_in_one_gap_fire_once() {
    // 02:00, 02:30 and 03:00 all land on the gap end 03:00 CEST; 03:30 CEST follows.
    assert_eq!(
        fires("0 0,30 2,3 * * *", "Europe/Berlin", "2025-03-30T00:00:00Z", 4),
        ["2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z", "2025-03-31T00:00:00Z", "2025-03-31T00:30:00Z"]
    );
}

#[test]
fn berlin_fixed_overlap_fires_first_occurrence_only() {
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2025-10-25T00:00:00Z", 3),
        ["2025-10-25T00:30:00Z", "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"]
    );
    // Asked from inside the second pass: the repeated 02:30 is not fired again.
    assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2025-10-26T01:10:00Z", 1), ["2025-10-27T01:30:00Z"]);
}

#[test]
fn berlin_wildcard_skips_gap() {
    assert_eq!(
        fires("*/30 * * * *", "Europe/Berlin", "2025-03-29T23:59:00Z", 4),
        ["2025-03-30T00:00:00Z", "2025-03-30T00:30:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z"]
    );
    // Hour 2 with a wildcard minute: nothing at all on the gap day.
    assert_eq!(fires("0 * 2 * * *", "Europe/Berlin", "2025-03-29T12:00:00Z", 1), ["2025-03-31T00:00:00Z"]);
}

#[test]
fn berlin_wildcard_fires_both_passes() {
    // 02:15 CEST (00:15Z), 02:15 CET (01:15Z), 03:15 CET (02:15Z).
    assert_eq!(
        fires("15 * * * *", "Europe/Berlin", "2025-10-25T23:30:00Z", 3),
        ["2025-10-26T00:15:00Z", "2025-10-26T01:15:00Z", "2025-10-26T02:15:00Z"]
    );
    // From inside the first pass, after its 02:15: the second pass's 02:15 is next.
    assert_eq!(fires("15 * * * *", "Europe/Berlin", "2025-10-26T00:30:00Z", 1), ["2025-10-26T01:15:00Z"]);
    // Every minute of hour 2, twice: 120 fires from 00:00Z to 01:59Z.
    let all = fires("0 * 2 * * *", "Europe/Berlin", "2025-10-25T23:59:59Z", 121);
    assert_eq!(all.len(), 121);
    assert_eq!(all[0], "2025-10-26T00:00:00Z");
    assert_eq!(all[59], "2025-10-26T00:59:00Z");
    assert_eq!(all[60], "2025-10-26T01:00:00Z");
    assert_eq!(all[119], "2025-10-26T01:59:00Z");
    assert_eq!(all[120], "2025-10-27T01:00:00Z");
}

// America/New_York: EST -05:00, EDT -04:00. 2025-03-09 07:00Z: 02:00 EST -> 03:00 EDT.
// 2025-11-02 06:00Z: 02:00 EDT -> 01:00 EST (01:00-01:59 twice).

#[test]
fn new_york_fixed() {
    assert_eq!(
        fires("30 2 * * *", "America/New_York", "2025-03-08T00:00:00Z", 3),
        ["2025-03-08T07:30:00Z", "2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"]
    );
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2025-11-01T00:00:00Z", 3),
        ["2025-11-01T05:30:00Z", "2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"]
    );
}

#[test]
fn new_york_wildcard() {
    assert_eq!(
        fires("*/20 1 * * *", "America/New_York", "2025-11-02T04:59:00Z", 7),
        [
            "2025-11-02T05:00:00Z",
            "2025-11-02T05:20:00Z",
            "2025-11-02T05:40:00Z",
            "2025-11-02T06:00:00Z",
            "2025-11-02T06:20:00Z",
            "2025-11-02T06:40:00Z",
            "2025-11-03T06:00:00Z"
        ]
    );
    assert_eq!(
        fires("*/20 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", 2),
        ["2025-03-10T06:00:00Z", "2025-03-10T06:20:00Z"]
    );
}

// Australia/Lord_Howe: +10:30 standard, +11:00 summer, a 30-minute shift.
// 2025-10-04 15:30Z: 02:00 -> 02:30 (02:00-02:29 skipped).
// 2025-04-05 15:00Z: 02:00 -> 01:30 (01:30-01:59 twice).

#[test]
fn lord_howe_fixed() {
    assert_eq!(
        fires("15 2 * * *", "Australia/Lord_Howe", "2025-10-03T00:00:00Z", 3),
        ["2025-10-03T15:45:00Z", "2025-10-04T15:30:00Z", "2025-10-05T15:15:00Z"]
    );
    assert_eq!(
        fires("45 1 * * *", "Australia/Lord_Howe", "2025-04-04T00:00:00Z", 3),
        ["2025-04-04T14:45:00Z", "2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"]
    );
}

#[test]
fn lord_howe_wildcard() {
    // 01:40 (+10:30), then 02:00 and 02:20 are skipped, 02:40 (+11:00).
    assert_eq!(
        fires("*/20 * * * *", "Australia/Lord_Howe", "2025-10-04T15:00:00Z", 2),
        ["2025-10-04T15:10:00Z", "2025-10-04T15:40:00Z"]
    );
    // 01:00, 01:20, 01:40 (+11:00); 01:40 again and 02:00, 02:20 (+10:30).
    assert_eq!(
        fires("*/20 * * * *", "Australia/Lord_Howe", "2025-04-05T13:59:00Z", 6),
        [
            "2025-04-05T14:00:00Z",
            "2025-04-05T14:20:00Z",
            "2025-04-05T14:40:00Z",
            "2025-04-05T15:10:00Z",
            "2025-04-05T15:30:00Z",
            "2025-04-05T15:50:00Z"
        ]
    );
}

// Pacific/Chatham: +12:45 standard, +13:45 summer.
// 2025-09-27 14:00Z: 02:45 -> 03:45 (02:45-03:44 skipped).
// 2025-04-05 14:00Z: 03:45 -> 02:45 (02:45-03:44 twice).

#[test]
fn chatham_fixed() {
    assert_eq!(
        fires("0 3 * * *", "Pacific/Chatham", "2025-09-26T00:00:00Z", 3),
        ["2025-09-26T14:15:00Z", "2025-09-27T14:00:00Z", "2025-09-28T13:15:00Z"]
    );
    // Both 03:00 and 03:30 are in the gap: one fire at its end.
    assert_eq!(
        fires("0 0,30 3 * * *", "Pacific/Chatham", "2025-09-27T12:00:00Z", 2),
        ["2025-09-27T14:00:00Z", "2025-09-28T13:15:00Z"]
    );
    assert_eq!(
        fires("0 3 * * *", "Pacific/Chatham", "2025-04-05T00:00:00Z", 2),
        ["2025-04-05T13:15:00Z", "2025-04-06T14:15:00Z"]
    );
}

#[test]
fn chatham_wildcard() {
    // 02:30 (+12:45), 03:30 skipped, 04:30 (+13:45).
    assert_eq!(
        fires("30 * * * *", "Pacific/Chatham", "2025-09-27T13:00:00Z", 2),
        ["2025-09-27T13:45:00Z", "2025-09-27T14:45:00Z"]
    );
    // 02:30 and 03:30 (+13:45), 03:30 again and 04:30 (+12:45).
    assert_eq!(
        fires("30 * * * *", "Pacific/Chatham", "2025-04-05T12:00:00Z", 4),
        ["2025-04-05T12:45:00Z", "2025-04-05T13:45:00Z", "2025-04-05T14:45:00Z", "2025-04-05T15:45:00Z"]
    );
}

// Asia/Kathmandu: +05:45 with no daylight saving; on 1986-01-01 it moved from
// +05:30 to +05:45 at local midnight (1985-12-31 18:30Z), skipping 00:00-00:14.

#[test]
fn kathmandu_odd_offset() {
    assert_eq!(
        fires("30 2 * * *", "Asia/Kathmandu", "2025-06-01T00:00:00Z", 2),
        ["2025-06-01T20:45:00Z", "2025-06-02T20:45:00Z"]
    );
    assert_eq!(
        fires("*/30 * * * *", "Asia/Kathmandu", "2025-06-01T00:00:00Z", 2),
        ["2025-06-01T00:15:00Z", "2025-06-01T00:45:00Z"]
    );
}

#[test]
fn kathmandu_1986_offset_change() {
    assert_eq!(
        fires("5 0 * * *", "Asia/Kathmandu", "1985-12-30T00:00:00Z", 3),
        ["1985-12-30T18:35:00Z", "1985-12-31T18:30:00Z", "1986-01-01T18:20:00Z"]
    );
    assert_eq!(
        fires("*/5 0 * * *", "Asia/Kathmandu", "1985-12-31T18:20:00Z", 3),
        // 00:00, 00:05 and 00:10 never happened; 00:15 +05:45 is 18:30Z.
        ["1985-12-31T18:30:00Z", "1985-12-31T18:35:00Z", "1985-12-31T18:40:00Z"]
    );
}
