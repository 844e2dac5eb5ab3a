//! From wall-clock matches to UTC instants: the daylight-saving rules.
//!
//! A wall-clock time maps to one instant, to two (a fall-back overlap: the
//! earlier one is the *first pass*, the later the *second pass*), or to none
//! (a spring-forward gap). See the crate documentation for the rules.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};

use super::Cron;

/// How many years past the start a search may look before it concludes the
/// expression never matches. 28 years is one full cycle of weekdays over leap
/// years, so any expression that matches at all matches within it (apart from
/// the skipped leap day of a century year, which 28 years also spans).
const SEARCH_YEARS: i32 = 28;

/// What a wall-clock time means in the zone.
enum Wall {
    Once(DateTime<Utc>),
    /// Twice in an overlap: (first pass, second pass).
    Twice(DateTime<Utc>, DateTime<Utc>),
    /// Skipped by a gap.
    Skipped,
}

const SECOND: TimeDelta = TimeDelta::seconds(1);

impl Cron {
    /// The first fire instant strictly after `after` (whole seconds; jitter not applied).
    ///
    /// `Schedule::next_after`, the only caller, passes instants inside the instant window
    /// (years 1970 to 9999), so the wall-clock arithmetic here stays thousands of years from
    /// the limits where chrono's operators panic.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The first whole second strictly after `after`.
        let t = DateTime::from_timestamp(after.timestamp().checked_add(1)?, 0)?;
        let last_year = chrono::Datelike::year(&self.wall(t)).saturating_add(SEARCH_YEARS);
        if self.fixed_time {
            self.next_fixed(t, last_year)
        } else {
            self.next_wildcard(t, last_year)
        }
    }

    fn wall(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    fn resolve(&self, wall: NaiveDateTime) -> Wall {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(x) => Wall::Once(x.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                Wall::Twice(a.min(b), a.max(b))
            }
            LocalResult::None => Wall::Skipped,
        }
    }

    /// Fixed-time: a skipped wall time fires at the end of its gap, a repeated one
    /// at its first pass only. Mapped this way, wall-clock order is instant order,
    /// so the first match whose instant is not before `t` is the answer.
    fn next_fixed(&self, t: DateTime<Utc>, last_year: i32) -> Option<DateTime<Utc>> {
        // When a gap ends exactly at `t`, the wall times inside it fire at `t`:
        // start the search at the gap's start rather than at the wall time of `t`.
        let before = self.wall(t - SECOND) + SECOND;
        let mut wall = before.min(self.wall(t));
        loop {
            wall = self.next_match(wall, last_year)?;
            match self.resolve(wall) {
                Wall::Once(x) | Wall::Twice(x, _) if x >= t => return Some(x),
                Wall::Once(_) | Wall::Twice(..) => {}
                Wall::Skipped => {
                    let (gap_end, wall_after) = self.gap_end(wall)?;
                    if gap_end >= t {
                        return Some(gap_end);
                    }
                    wall = wall_after;
                    continue;
                }
            }
            wall += SECOND;
        }
    }

    /// Wildcard: every instant whose wall-clock time matches. Wall-clock order is
    /// instant order except across an overlap, so when `t` is in the first pass
    /// of one, the second pass (which starts earlier on the wall clock) is
    /// searched too, and the earlier answer wins.
    fn next_wildcard(&self, t: DateTime<Utc>, last_year: i32) -> Option<DateTime<Utc>> {
        let first = self.scan_wildcard(t, last_year);
        match self.second_pass_start(t) {
            Some(u) => match (first, self.scan_wildcard(u, last_year)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            None => first,
        }
    }

    fn scan_wildcard(&self, t: DateTime<Utc>, last_year: i32) -> Option<DateTime<Utc>> {
        let mut wall = self.wall(t);
        loop {
            wall = self.next_match(wall, last_year)?;
            match self.resolve(wall) {
                Wall::Once(x) if x >= t => return Some(x),
                Wall::Twice(a, b) if b >= t => return Some(if a >= t { a } else { b }),
                Wall::Once(_) | Wall::Twice(..) => {}
                Wall::Skipped => {
                    wall = self.gap_end(wall)?.1;
                    continue;
                }
            }
            wall += SECOND;
        }
    }

    /// When `t` is in the first pass of an overlap, the instant its second pass starts.
    fn second_pass_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Wall::Twice(first, second) = self.resolve(self.wall(t)) else { return None };
        if first != t {
            return None;
        }
        // The offset changes once between `t` (first pass) and its second-pass twin.
        let offset = |x: DateTime<Utc>| self.tz.offset_from_utc_datetime(&x.naive_utc()).fix();
        let before = offset(t);
        let (mut lo, mut hi) = (t, second);
        while hi - lo > SECOND {
            let mid = lo + (hi - lo) / 2;
            let mid = DateTime::from_timestamp(mid.timestamp(), 0)?;
            if offset(mid) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// For a skipped wall time: the instant its gap ends and the first wall time after the gap.
    fn gap_end(&self, skipped: NaiveDateTime) -> Option<(DateTime<Utc>, NaiveDateTime)> {
        let exists = |w: NaiveDateTime| !matches!(self.resolve(w), Wall::Skipped);
        // Gaps are hours long (a day at most, as in Samoa 2011): widen, then bisect.
        let mut step = TimeDelta::minutes(1);
        while !exists(skipped + step) {
            step = step * 2;
            if step > TimeDelta::days(4) {
                return None;
            }
        }
        let (mut lo, mut hi) = (skipped, skipped + step);
        while hi - lo > SECOND {
            let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
            if exists(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        match self.resolve(hi) {
            Wall::Once(x) | Wall::Twice(x, _) => Some((x, hi)),
            Wall::Skipped => None,
        }
    }
}
