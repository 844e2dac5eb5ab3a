//! Property tests of cron evaluation: generated expressions (with a model of
//! what each field means, built alongside the text), zones with odd offsets and
//! 30- or 60-minute shifts, and start instants in 2020-2030, half of them
//! within a day before a transition.
//!
//! The model decides matches on its own; chrono-tz maps wall-clock times to
//! instants. "Should fire" follows the documented rules: wildcard crons fire at
//! every instant whose wall time matches; fixed-time crons fire at the first
//! occurrence of a matching wall time, and at the end of a gap that skipped a
//! matching wall time.

use std::sync::OnceLock;

use belfry_schedule::{Schedule, ScheduleSpec};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::Index;

const ZONES: [&str; 8] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Europe/London",
    "America/Santiago",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
];
const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// How many fires each case asks for.
const FIRES: usize = 6;

// ------------------------------------------------------------------ model

fn bits(lo: u32, hi: u32, step: u32) -> u64 {
    (lo..=hi).step_by(step as usize).fold(0, |m, v| m | 1 << v)
}

fn values(mask: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |v| mask >> v & 1 == 1)
}

fn last_day(y: i32, m: u32) -> u32 {
    let next = if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { NaiveDate::from_ymd_opt(y, m + 1, 1) };
    next.expect("valid date").pred_opt().expect("valid date").day()
}

fn weekday(y: i32, m: u32, d: u32) -> u32 {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date").weekday().num_days_from_sunday()
}

#[derive(Debug, Clone)]
enum DomPart {
    Days(u64),
    /// `L` (0) or `L-n`.
    Last(u32),
    /// `LW`.
    LastWeekday,
    /// `nW`.
    Nearest(u32),
}

#[derive(Debug, Clone)]
enum DowPart {
    /// Weekdays, bit 0 = Sunday.
    Days(u64),
    /// `nL`.
    Last(u32),
    /// `d#n`.
    Nth(u32, u32),
}

impl DomPart {
    fn hit(&self, y: i32, m: u32, d: u32) -> bool {
        let last = last_day(y, m);
        match *self {
            DomPart::Days(mask) => mask >> d & 1 == 1,
            DomPart::Last(k) => d + k == last,
            DomPart::LastWeekday => {
                let back = match weekday(y, m, last) {
                    0 => 2,
                    6 => 1,
                    _ => 0,
                };
                d == last - back
            }
            DomPart::Nearest(n) if n > last => false,
            DomPart::Nearest(n) => {
                let target = match weekday(y, m, n) {
                    6 if n == 1 => 3,
                    6 => n - 1,
                    0 if n == last => n - 2,
                    0 => n + 1,
                    _ => n,
                };
                d == target
            }
        }
    }
}

impl DowPart {
    fn hit(&self, y: i32, m: u32, d: u32) -> bool {
        let wd = weekday(y, m, d);
        match *self {
            DowPart::Days(mask) => mask >> wd & 1 == 1,
            DowPart::Last(w) => wd == w && d + 7 > last_day(y, m),
            DowPart::Nth(w, n) => wd == w && d.div_ceil(7) == n,
        }
    }
}

/// An expression as text together with what its fields mean.
#[derive(Debug, Clone)]
struct Expr {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    dom: Option<Vec<DomPart>>,
    dow: Option<Vec<DowPart>>,
    fixed_time: bool,
}

impl Expr {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let (y, m, d) = (date.year(), date.month(), date.day());
        if self.months >> m & 1 == 0 {
            return false;
        }
        let dom = self.dom.as_ref().map(|parts| parts.iter().any(|p| p.hit(y, m, d)));
        let dow = self.dow.as_ref().map(|parts| parts.iter().any(|p| p.hit(y, m, d)));
        match (dom, dow) {
            (Some(a), Some(b)) => a || b,
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => true,
        }
    }

    fn matches(&self, w: NaiveDateTime) -> bool {
        self.seconds >> w.second() & 1 == 1
            && self.minutes >> w.minute() & 1 == 1
            && self.hours >> w.hour() & 1 == 1
            && self.day_matches(w.date())
    }
}

// ------------------------------------------------------------------ zones

fn local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

struct ZoneInfo {
    /// Instants in 2020-2030 at which the offset changes.
    transitions: Vec<DateTime<Utc>>,
    min_offset: Duration,
    max_offset: Duration,
}

fn offset(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()
}

fn zone_info(i: usize) -> &'static ZoneInfo {
    static INFO: OnceLock<Vec<ZoneInfo>> = OnceLock::new();
    &INFO.get_or_init(|| {
        ZONES
            .iter()
            .map(|name| {
                let tz: Tz = name.parse().expect("zone");
                let mut t = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
                let (mut lo, mut hi, mut transitions) = (i32::MAX, i32::MIN, Vec::new());
                while t.year() < 2038 {
                    let next = t + Duration::hours(6);
                    let (a, b) = (offset(tz, t), offset(tz, next));
                    (lo, hi) = (lo.min(a), hi.max(a));
                    if a != b && (2020..2031).contains(&t.year()) {
                        let (mut l, mut h) = (t.timestamp(), next.timestamp());
                        while h - l > 1 {
                            let mid = (l + h) / 2;
                            let at = DateTime::from_timestamp(mid, 0).unwrap();
                            if offset(tz, at) == a {
                                l = mid
                            } else {
                                h = mid
                            }
                        }
                        transitions.push(DateTime::from_timestamp(h, 0).unwrap());
                    }
                    t = next;
                }
                ZoneInfo {
                    transitions,
                    min_offset: Duration::seconds(lo.into()),
                    max_offset: Duration::seconds(hi.into()),
                }
            })
            .collect()
    })[i]
}

/// For a wall time skipped by a gap: the first instant whose wall clock is past it.
fn gap_end(tz: Tz, info: &ZoneInfo, w: NaiveDateTime) -> DateTime<Utc> {
    let (mut lo, mut hi) = ((w - info.max_offset).and_utc().timestamp(), (w - info.min_offset).and_utc().timestamp());
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if local(tz, DateTime::from_timestamp(mid, 0).unwrap()) > w {
            hi = mid
        } else {
            lo = mid
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap()
}

/// The instants the rules fire for wall time `w` (which matches).
fn fires_for(expr: &Expr, tz: Tz, info: &ZoneInfo, w: NaiveDateTime) -> Vec<DateTime<Utc>> {
    let mut out = match tz.from_local_datetime(&w) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
        LocalResult::None if expr.fixed_time => vec![gap_end(tz, info, w)],
        LocalResult::None => vec![],
    };
    out.sort();
    if expr.fixed_time {
        out.truncate(1);
    }
    out
}

/// Whether the rules fire at `t`.
fn should_fire(expr: &Expr, tz: Tz, info: &ZoneInfo, t: DateTime<Utc>) -> bool {
    let w = local(tz, t);
    if expr.matches(w) && fires_for(expr, tz, info, w).contains(&t) {
        return true;
    }
    // A fixed-time fire may also be the end of a gap that skipped a matching wall time.
    let before = local(tz, t - Duration::seconds(1));
    expr.fixed_time && (1..(w - before).num_seconds()).any(|s| expr.matches(before + Duration::seconds(s)))
}

/// A wall time that should fire strictly between `prev` and `next`, with its instant.
fn skipped(
    expr: &Expr,
    tz: Tz,
    info: &ZoneInfo,
    prev: DateTime<Utc>,
    next: DateTime<Utc>,
) -> Option<(NaiveDateTime, DateTime<Utc>)> {
    // Every instant in (prev, next) shows a wall time in this range.
    let lo = (prev + info.min_offset).naive_utc();
    let hi = (next + info.max_offset).naive_utc();
    let mut date = lo.date();
    while date <= hi.date() {
        if expr.day_matches(date) {
            for (h, m) in values(expr.hours).flat_map(|h| values(expr.minutes).map(move |m| (h, m))) {
                let minute = date.and_hms_opt(h, m, 0).unwrap();
                if minute + Duration::seconds(59) < lo || minute > hi {
                    continue;
                }
                for s in values(expr.seconds) {
                    let w = minute + Duration::seconds(s.into());
                    if let Some(t) = fires_for(expr, tz, info, w).into_iter().find(|t| prev < *t && *t < next) {
                        return Some((w, t));
                    }
                }
            }
        }
        date = date.succ_opt().unwrap();
    }
    None
}

// ------------------------------------------------------------------ strategies

/// A value of a plain field, rendered as a number or (when `names` is given) sometimes a name.
fn value(
    lo: u32,
    hi: u32,
    favour: Vec<u32>,
    names: Option<(&'static [&'static str], u32)>,
) -> BoxedStrategy<(u32, String)> {
    let v = if favour.is_empty() {
        (lo..=hi).boxed()
    } else {
        prop_oneof![lo..=hi, proptest::sample::select(favour)].boxed()
    };
    (v, any::<bool>())
        .prop_map(move |(v, named)| match names {
            Some((names, base)) if named && v >= base && ((v - base) as usize) < names.len() => {
                (v, names[(v - base) as usize].to_string())
            }
            _ => (v, v.to_string()),
        })
        .boxed()
}

/// `a`, `a-b`, `a-b/n` or `a/n` (up to `hi`).
fn plain_part(
    lo: u32,
    hi: u32,
    favour: Vec<u32>,
    names: Option<(&'static [&'static str], u32)>,
    from_step: bool,
) -> BoxedStrategy<(String, u64)> {
    let val = || value(lo, hi, favour.clone(), names);
    let mut shapes = vec![
        val().prop_map(|(v, s)| (s, bits(v, v, 1))).boxed(),
        val().prop_map(|(v, s)| (s, bits(v, v, 1))).boxed(),
        (val(), val())
            .prop_map(|(a, b)| {
                let (a, b) = if a.0 <= b.0 { (a, b) } else { (b, a) };
                (format!("{}-{}", a.1, b.1), bits(a.0, b.0, 1))
            })
            .boxed(),
        (val(), val(), 1..=6u32)
            .prop_map(|(a, b, n)| {
                let (a, b) = if a.0 <= b.0 { (a, b) } else { (b, a) };
                (format!("{}-{}/{n}", a.1, b.1), bits(a.0, b.0, n))
            })
            .boxed(),
    ];
    if from_step {
        shapes.push((val(), 1..=20u32).prop_map(move |(a, n)| (format!("{}/{n}", a.1), bits(a.0, hi, n))).boxed());
    }
    proptest::strategy::Union::new(shapes).boxed()
}

fn list(part: BoxedStrategy<(String, u64)>) -> BoxedStrategy<(String, u64)> {
    proptest::collection::vec(part, 1..=3)
        .prop_map(|parts| {
            let text = parts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(",");
            (text, parts.iter().fold(0, |m, p| m | p.1))
        })
        .boxed()
}

/// A second, minute or hour field: mostly without `*`, so about half the crons are fixed-time.
fn time_field(hi: u32, favour: Vec<u32>) -> BoxedStrategy<(String, u64)> {
    prop_oneof![
        1 => Just(("*".to_string(), bits(0, hi, 1))),
        1 => (1..=hi / 2).prop_map(move |n| (format!("*/{n}"), bits(0, hi, n))),
        5 => list(plain_part(0, hi, favour, None, true)),
    ]
    .boxed()
}

fn month_field() -> BoxedStrategy<(String, u64)> {
    prop_oneof![
        3 => Just(("*".to_string(), bits(1, 12, 1))),
        1 => (1..=4u32).prop_map(|n| (format!("*/{n}"), bits(1, 12, n))),
        2 => list(plain_part(1, 12, vec![3, 4, 9, 10, 11], Some((&MONTH_NAMES, 1)), true)),
    ]
    .boxed()
}

fn dom_field() -> BoxedStrategy<(String, Option<Vec<DomPart>>)> {
    let part = prop_oneof![
        3 => plain_part(1, 31, vec![], None, true).prop_map(|(s, m)| (s, DomPart::Days(m))),
        1 => Just(("L".to_string(), DomPart::Last(0))),
        1 => (1..=5u32).prop_map(|k| (format!("L-{k}"), DomPart::Last(k))),
        1 => Just(("LW".to_string(), DomPart::LastWeekday)),
        1 => (1..=31u32).prop_map(|n| (format!("{n}W"), DomPart::Nearest(n))),
    ];
    prop_oneof![
        4 => Just(("*".to_string(), None)),
        1 => Just(("?".to_string(), None)),
        1 => (2..=10u32).prop_map(|n| (format!("*/{n}"), Some(vec![DomPart::Days(bits(1, 31, n))]))),
        3 => proptest::collection::vec(part, 1..=2).prop_map(|parts| {
            let text = parts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(",");
            (text, Some(parts.into_iter().map(|p| p.1).collect()))
        }),
    ]
    .boxed()
}

fn dow_field() -> BoxedStrategy<(String, Option<Vec<DowPart>>)> {
    // 7 is a second Sunday; `a/n` is left out (its upper end, 6 or 7, is not pinned down by the docs).
    let sunday = |m: u64| (m | m >> 7) & 0x7f;
    let part = prop_oneof![
        3 => plain_part(0, 7, vec![], Some((&DAY_NAMES, 0)), false).prop_map(move |(s, m)| (s, DowPart::Days(sunday(m)))),
        1 => (0..=6u32).prop_map(|w| (format!("{w}L"), DowPart::Last(w))),
        1 => (value(0, 6, vec![], Some((&DAY_NAMES, 0))), 1..=5u32)
            .prop_map(|((w, s), n)| (format!("{s}#{n}"), DowPart::Nth(w, n))),
    ];
    prop_oneof![
        4 => Just(("*".to_string(), None)),
        1 => Just(("?".to_string(), None)),
        1 => (2..=3u32).prop_map(|n| (format!("*/{n}"), Some(vec![DowPart::Days(bits(0, 6, n))]))),
        3 => proptest::collection::vec(part, 1..=2).prop_map(|parts| {
            let text = parts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(",");
            (text, Some(parts.into_iter().map(|p| p.1).collect()))
        }),
    ]
    .boxed()
}

/// An expression; half of them fire every day, so a transition's day is among their days.
fn expr() -> impl Strategy<Value = Expr> {
    (
        any::<bool>(),
        any::<bool>(),
        time_field(59, vec![0, 30]),
        time_field(59, vec![0, 15, 30, 45, 44, 46]),
        time_field(23, vec![0, 1, 2, 3, 23]),
        dom_field(),
        month_field(),
        dow_field(),
    )
        .prop_map(|(six, daily, sec, min, hour, dom, month, dow)| {
            let sec = if six { sec } else { ("0".to_string(), 1) };
            let (dom, month, dow) = if daily {
                (("*".to_string(), None), ("*".to_string(), bits(1, 12, 1)), ("*".to_string(), None))
            } else {
                (dom, month, dow)
            };
            let fields = [&sec.0, &min.0, &hour.0, &dom.0, &month.0, &dow.0];
            let text = fields[usize::from(!six)..].iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
            Expr {
                fixed_time: ![&sec.0, &min.0, &hour.0].iter().any(|f| f.contains('*')),
                text,
                seconds: sec.1,
                minutes: min.1,
                hours: hour.1,
                months: month.1,
                dom: dom.1,
                dow: dow.1,
            }
        })
}

/// A zone index and a start instant: half the time within a day (often within an hour) before
/// one of its transitions.
fn zone_and_start() -> impl Strategy<Value = (usize, DateTime<Utc>)> {
    let t2020 = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap().timestamp_millis();
    let t2031 = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap().timestamp_millis();
    let before_ms = prop_oneof![1..86_400_000i64, 1..3_600_000i64, 1..3_600_000i64];
    (0..ZONES.len(), any::<bool>(), any::<Index>(), before_ms, t2020..t2031).prop_map(
        |(zone, near, which, before_ms, anywhere_ms)| {
            let transitions = &zone_info(zone).transitions;
            let start = if near && !transitions.is_empty() {
                *which.get(transitions) - Duration::milliseconds(before_ms)
            } else {
                DateTime::from_timestamp_millis(anywhere_ms).unwrap()
            };
            (zone, start)
        },
    )
}

fn fires(expr: &Expr, zone: usize, start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let spec = ScheduleSpec {
        cron: Some(expr.text.as_str().into()),
        timezone: Some(ZONES[zone].into()),
        ..Default::default()
    };
    let schedule = Schedule::parse(&spec, start).unwrap_or_else(|e| panic!("{:?} rejected: {e}", expr.text));
    schedule.upcoming(start, FIRES)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 500, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fires_strictly_increase(expr in expr(), (zone, start) in zone_and_start()) {
        let fires = fires(&expr, zone, start);
        if let Some(first) = fires.first() {
            prop_assert!(*first > start, "{:?} in {}: first fire {first} not after {start}", expr.text, ZONES[zone]);
        }
        for pair in fires.windows(2) {
            prop_assert!(pair[0] < pair[1], "{:?} in {}: {} then {}", expr.text, ZONES[zone], pair[0], pair[1]);
        }
    }

    #[test]
    fn every_fire_is_due(expr in expr(), (zone, start) in zone_and_start()) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        for t in fires(&expr, zone, start) {
            prop_assert_eq!(t.timestamp_subsec_millis(), 0);
            prop_assert!(
                should_fire(&expr, tz, zone_info(zone), t),
                "{:?} in {} from {start}: fired at {t} (wall {}), which the rules do not fire",
                expr.text, ZONES[zone], local(tz, t)
            );
        }
    }

    #[test]
    fn nothing_due_is_skipped(expr in expr(), (zone, start) in zone_and_start()) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        let fires = fires(&expr, zone, start);
        let mut prev = start;
        for next in fires {
            if let Some((wall, t)) = skipped(&expr, tz, zone_info(zone), prev, next) {
                prop_assert!(
                    false,
                    "{:?} in {} from {start}: {wall} is due at {t}, between fires {prev} and {next}",
                    expr.text, ZONES[zone]
                );
            }
            prev = next;
        }
    }
}
