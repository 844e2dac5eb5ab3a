//! Which days of a month a cron's day-of-month and day-of-week fields select.
//!
//! Everything here works one month at a time, as a 32-bit mask (bit d = day d),
//! because `L`, `W` and `#` only have a meaning relative to a month.

use chrono::{Datelike, NaiveDate};

use super::parse::{Field, Part};

/// The two day fields together, combined by the Vixie cron OR rule.
#[derive(Debug, Clone)]
pub(crate) struct Days {
    pub dom: Field,
    pub dow: Field,
}

impl Days {
    /// The days of `year`-`month` that match, as a mask (bit d set for day d).
    ///
    /// When both fields restrict (neither is `*` nor `?`) a day matches if either
    /// does; otherwise the restricted one alone decides (an unrestricted field
    /// matches every day, so AND gives the same answer).
    pub(crate) fn mask(&self, year: i32, month: u32) -> u32 {
        let len = days_in_month(year, month);
        let first = first_weekday(year, month);
        let dom = dom_mask(&self.dom, len, first);
        let dow = dow_mask(&self.dow, len, first);
        if !self.dom.unrestricted && !self.dow.unrestricted {
            dom | dow
        } else {
            dom & dow
        }
    }
}

/// The number of days in `month` of `year` (Gregorian).
pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        _ => 31,
    }
}

/// Weekday of the first of the month, 0 = Sunday.
fn first_weekday(year: i32, month: u32) -> u32 {
    NaiveDate::from_ymd_opt(year, month, 1).map_or(0, |d| d.weekday().num_days_from_sunday())
}

fn all_days(len: u32) -> u32 {
    ((1u64 << (len + 1)) - 2) as u32
}

fn weekday_of(day: u32, first: u32) -> u32 {
    (first + day - 1) % 7
}

fn dom_mask(field: &Field, len: u32, first: u32) -> u32 {
    let mut mask = (field.bits as u32) & all_days(len);
    for part in &field.parts {
        let day = match *part {
            Part::LastDay { offset } => len.checked_sub(offset).filter(|d| *d >= 1),
            Part::LastWeekday => Some(match weekday_of(len, first) {
                6 => len - 1,
                0 => len - 2,
                _ => len,
            }),
            Part::NearestWeekday(n) => nearest_weekday(n, len, first),
            _ => None,
        };
        if let Some(d) = day {
            mask |= 1 << d;
        }
    }
    mask
}

/// Quartz `nW`: day n if it is a weekday; a Saturday moves to the Friday before
/// and a Sunday to the Monday after, except that the move never leaves the month
/// (Saturday the 1st goes to Monday the 3rd, a Sunday that ends the month goes
/// to the Friday before). A day the month does not have (31W in April) selects nothing.
fn nearest_weekday(n: u32, len: u32, first: u32) -> Option<u32> {
    if n > len {
        return None;
    }
    Some(match weekday_of(n, first) {
        6 if n == 1 => 3,
        6 => n - 1,
        0 if n == len => n - 2,
        0 => n + 1,
        _ => n,
    })
}

fn dow_mask(field: &Field, len: u32, first: u32) -> u32 {
    let mut mask = 0u32;
    for day in 1..=len {
        let wd = weekday_of(day, first);
        let hit = field.bits & (1 << wd) != 0
            || field.parts.iter().any(|p| match *p {
                Part::LastOfMonth(w) => w == wd && day + 7 > len,
                Part::Nth { weekday, n } => weekday == wd && (day - 1) / 7 + 1 == n,
                _ => false,
            });
        if hit {
            mask |= 1 << day;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse_field, Unit};
    use super::*;

    fn days(dom: &str, dow: &str, year: i32, month: u32) -> Vec<u32> {
        let d =
            Days { dom: parse_field(dom, Unit::DayOfMonth).unwrap(), dow: parse_field(dow, Unit::DayOfWeek).unwrap() };
        let mask = d.mask(year, month);
        (1..=31).filter(|d| mask & (1 << d) != 0).collect()
    }

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2025, 4), 30);
    }

    #[test]
    fn last_day_and_offsets() {
        assert_eq!(days("L", "*", 2024, 2), vec![29]);
        assert_eq!(days("L", "?", 2025, 2), vec![28]);
        assert_eq!(days("L-3", "*", 2025, 1), vec![28]);
        assert_eq!(days("L,1", "*", 2025, 4), vec![1, 30]);
    }

    #[test]
    fn last_weekday() {
        // August 2025 ends on Sunday the 31st; May 2025 on Saturday the 31st; July 2025 on Thursday.
        assert_eq!(days("LW", "*", 2025, 8), vec![29]);
        assert_eq!(days("LW", "*", 2025, 5), vec![30]);
        assert_eq!(days("LW", "*", 2025, 7), vec![31]);
    }

    #[test]
    fn nearest_weekday_stays_in_month() {
        // March 2025: the 1st is a Saturday, the 15th a Saturday, the 16th a Sunday.
        assert_eq!(days("1W", "*", 2025, 3), vec![3]);
        assert_eq!(days("15W", "*", 2025, 3), vec![14]);
        assert_eq!(days("16W", "*", 2025, 3), vec![17]);
        assert_eq!(days("10W", "*", 2025, 3), vec![10]);
        // November 2025 ends on Sunday the 30th: go back to Friday the 28th.
        assert_eq!(days("30W", "*", 2025, 11), vec![28]);
        // February 2025 has no 30th.
        assert_eq!(days("30W", "*", 2025, 2), Vec::<u32>::new());
    }

    #[test]
    fn last_and_nth_weekday() {
        // March 2025: Fridays 7, 14, 21, 28; Mondays 3, 10, 17, 24, 31.
        assert_eq!(days("*", "5L", 2025, 3), vec![28]);
        assert_eq!(days("?", "MON#2", 2025, 3), vec![10]);
        assert_eq!(days("*", "1#5", 2025, 3), vec![31]);
        assert_eq!(days("*", "1#5", 2025, 2), Vec::<u32>::new());
    }

    #[test]
    fn or_rule_when_both_restricted() {
        // June 2025: Mondays are 2, 9, 16, 23, 30.
        assert_eq!(days("1,15", "MON", 2025, 6), vec![1, 2, 9, 15, 16, 23, 30]);
        assert_eq!(days("1,15", "*", 2025, 6), vec![1, 15]);
        assert_eq!(days("?", "MON", 2025, 6), vec![2, 9, 16, 23, 30]);
        // A step is a restriction: OR applies.
        assert_eq!(days("*/10", "MON", 2025, 6), vec![1, 2, 9, 11, 16, 21, 23, 30]);
    }
}
