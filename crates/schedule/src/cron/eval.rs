//! Wall-clock search: the first local date-time at or after a given one that
//! every field accepts, skipping whole months, days, hours and minutes at a time.
//!
//! This knows nothing of time zones; `zone.rs` maps its answers onto instants.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::Cron;

/// The first set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = mask & (!0u64 << from);
    (m != 0).then(|| m.trailing_zeros())
}

impl Cron {
    /// The first wall-clock time `>= from` that matches, or `None` once the
    /// search passes the end of `last_year` (which bounds expressions that can
    /// never match, such as February 30th).
    pub(crate) fn next_match(&self, from: NaiveDateTime, last_year: i32) -> Option<NaiveDateTime> {
        let (mut y, mut mo, mut d) = (from.year(), from.month(), from.day());
        let (mut h, mut mi, mut s) = (from.hour(), from.minute(), from.second());
        loop {
            if y > last_year {
                return None;
            }
            match next_bit(self.months, mo) {
                Some(m) if m == mo => {}
                Some(m) => (mo, d, h, mi, s) = (m, 1, 0, 0, 0),
                None => {
                    (y, mo, d, h, mi, s) = (y + 1, 1, 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(u64::from(self.days.mask(y, mo)), d) {
                Some(x) if x == d => {}
                Some(x) => (d, h, mi, s) = (x, 0, 0, 0),
                None => {
                    (mo, d, h, mi, s) = (mo + 1, 1, 0, 0, 0);
                    if mo > 12 {
                        (y, mo) = (y + 1, 1);
                    }
                    continue;
                }
            }
            match next_bit(self.hours, h) {
                Some(x) if x == h => {}
                Some(x) => (h, mi, s) = (x, 0, 0),
                None => {
                    (d, h, mi, s) = (d + 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, mi) {
                Some(x) if x == mi => {}
                Some(x) => (mi, s) = (x, 0),
                None => {
                    (h, mi, s) = (h + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.seconds, s) {
                Some(x) => s = x,
                None => {
                    (mi, s) = (mi + 1, 0);
                    continue;
                }
            }
            return NaiveDate::from_ymd_opt(y, mo, d).and_then(|date| date.and_hms_opt(h, mi, s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn next(expr: &str, from: &str) -> Option<String> {
        let cron = Cron::parse(expr, chrono_tz::UTC).unwrap();
        cron.next_match(at(from), at(from).year() + 10).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    }

    #[test]
    fn at_or_after() {
        assert_eq!(next("30 2 * * *", "2025-03-01 02:30:00").as_deref(), Some("2025-03-01 02:30:00"));
        assert_eq!(next("30 2 * * *", "2025-03-01 02:30:01").as_deref(), Some("2025-03-02 02:30:00"));
    }

    #[test]
    fn carries_across_fields() {
        assert_eq!(next("59 23 31 12 *", "2025-01-01 00:00:00").as_deref(), Some("2025-12-31 23:59:00"));
        assert_eq!(next("0 0 29 2 *", "2025-01-01 00:00:00").as_deref(), Some("2028-02-29 00:00:00"));
        assert_eq!(next("*/20 * * * * *", "2025-12-31 23:59:41").as_deref(), Some("2026-01-01 00:00:00"));
        assert_eq!(next("0 12 L * *", "2025-01-31 12:00:01").as_deref(), Some("2025-02-28 12:00:00"));
    }

    #[test]
    fn impossible_is_bounded() {
        assert_eq!(next("0 0 30 2 *", "2025-01-01 00:00:00"), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", "2025-01-01 00:00:00"), None);
    }
}
