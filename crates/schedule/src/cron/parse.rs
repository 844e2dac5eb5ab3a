//! The cron grammar: one field at a time, into value bitsets plus the
//! calendar parts (`L`, `W`, `#`) that only make sense per month.

/// Which of the six fields is being read: its name in error messages, its range, its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Unit {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::DayOfMonth => "day-of-month",
            Unit::Month => "month",
            Unit::DayOfWeek => "day-of-week",
        }
    }

    /// The accepted range; day-of-week accepts 7 as a second Sunday.
    fn bounds(self) -> (u32, u32) {
        match self {
            Unit::Second | Unit::Minute => (0, 59),
            Unit::Hour => (0, 23),
            Unit::DayOfMonth => (1, 31),
            Unit::Month => (1, 12),
            Unit::DayOfWeek => (0, 7),
        }
    }

    /// The range `*` stands for (day-of-week stops at 6: Sunday is 0).
    fn star_bounds(self) -> (u32, u32) {
        match self {
            Unit::DayOfWeek => (0, 6),
            u => u.bounds(),
        }
    }
}

/// One comma-separated part of a field, kept as written so `describe` can read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `*` or `?` (step 1), or `*/n`.
    Star { step: u32 },
    /// `a` (lo == hi), `a-b`, `a-b/n`, or `a/n` (hi is the field's maximum).
    Range { lo: u32, hi: u32, step: u32 },
    /// Day-of-month `L` (offset 0) or `L-n`: the last day of the month minus `offset`.
    LastDay { offset: u32 },
    /// Day-of-month `LW`: the last weekday (Monday to Friday) of the month.
    LastWeekday,
    /// Day-of-month `nW`: the weekday nearest to day n, within the same month.
    NearestWeekday(u32),
    /// Day-of-week `nL`: the last such weekday of the month (`5L`, last Friday).
    LastOfMonth(u32),
    /// Day-of-week `d#n`: the n-th such weekday of the month (`MON#2`).
    Nth { weekday: u32, n: u32 },
}

/// A parsed field: the plain values as a bitset, and every part for the calendar and `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// Bit v is set when value v is listed by a `*`, single, range or step part.
    pub bits: u64,
    pub parts: Vec<Part>,
    /// The field is exactly `*` or `?`: it places no restriction (the day OR rule reads this).
    pub unrestricted: bool,
    /// The text contains `*`: a second, minute or hour field like this makes the cron wildcard.
    pub has_star: bool,
}

/// Parses one field's text; errors name the exact part ("minute 61 out of range 0-59").
pub(crate) fn parse_field(text: &str, unit: Unit) -> Result<Field, String> {
    let upper = text.to_ascii_uppercase();
    let unrestricted = upper == "*" || upper == "?";
    let mut parts = Vec::new();
    for part in upper.split(',') {
        if part.is_empty() {
            return Err(format!("empty list item in {} field {text:?}", unit.name()));
        }
        parts.push(parse_part(part, unit)?);
    }
    let mut bits = 0u64;
    for part in &parts {
        let (lo, hi, step) = match *part {
            Part::Star { step } => {
                let (lo, hi) = unit.star_bounds();
                (lo, hi, step)
            }
            Part::Range { lo, hi, step } => (lo, hi, step),
            _ => continue,
        };
        for v in (lo..=hi).step_by(step as usize) {
            // Day-of-week 7 is Sunday, stored as 0.
            let v = if unit == Unit::DayOfWeek { v % 7 } else { v };
            bits |= 1 << v;
        }
    }
    Ok(Field { bits, parts, unrestricted, has_star: upper.contains('*') })
}

fn parse_part(part: &str, unit: Unit) -> Result<Part, String> {
    let name = unit.name();
    if part == "?" {
        return match unit {
            Unit::DayOfMonth | Unit::DayOfWeek => Ok(Part::Star { step: 1 }),
            _ => Err(format!("? is only allowed in day-of-month and day-of-week, not in {name}")),
        };
    }
    if unit == Unit::DayOfMonth {
        if part == "L" {
            return Ok(Part::LastDay { offset: 0 });
        }
        if part == "LW" {
            return Ok(Part::LastWeekday);
        }
        if let Some(n) = part.strip_prefix("L-") {
            let offset = number(n, "day-of-month L offset")?;
            if !(1..=30).contains(&offset) {
                return Err(format!("day-of-month L-{offset} offset out of range 1-30"));
            }
            return Ok(Part::LastDay { offset });
        }
        if let Some(day) = part.strip_suffix('W') {
            return Ok(Part::NearestWeekday(value(day, unit)?));
        }
    }
    if unit == Unit::DayOfWeek {
        if let Some((day, n)) = part.split_once('#') {
            let weekday = value(day, unit)? % 7;
            let n = number(n, "day-of-week #")?;
            if !(1..=5).contains(&n) {
                return Err(format!("day-of-week #{n} out of range 1-5"));
            }
            return Ok(Part::Nth { weekday, n });
        }
        if part == "L" {
            return Err("day-of-week L needs a day before it, e.g. 5L for the last Friday".into());
        }
        if let Some(day) = part.strip_suffix('L') {
            return Ok(Part::LastOfMonth(value(day, unit)? % 7));
        }
    }
    if part.contains(['L', 'W', '#']) && !is_name(part, unit) {
        return Err(format!("{name} does not accept {part:?} (L, W and # belong to the day fields)"));
    }
    let (base, step) = match part.split_once('/') {
        Some((base, step)) => {
            let step = number(step, &format!("{name} step"))?;
            if step == 0 {
                return Err("step must be at least 1".into());
            }
            (base, Some(step))
        }
        None => (part, None),
    };
    let (_, max) = unit.bounds();
    if base == "*" {
        return Ok(Part::Star { step: step.unwrap_or(1) });
    }
    if let Some((lo, hi)) = base.split_once('-') {
        let (lo, mut hi) = (value(lo, unit)?, value(hi, unit)?);
        // Sunday ends a week as 7: `SAT-SUN` and `5-0` mean 5-7.
        if unit == Unit::DayOfWeek && hi == 0 && lo > 0 {
            hi = 7;
        }
        if lo > hi {
            return Err(format!("{name} range {lo}-{hi} is reversed (wrap-around ranges are not supported)"));
        }
        return Ok(Part::Range { lo, hi, step: step.unwrap_or(1) });
    }
    let lo = value(base, unit)?;
    Ok(match step {
        Some(step) => Part::Range { lo, hi: max, step },
        None => Part::Range { lo, hi: lo, step: 1 },
    })
}

fn is_name(part: &str, unit: Unit) -> bool {
    let names: &[&str] = match unit {
        Unit::Month => &MONTH_NAMES,
        Unit::DayOfWeek => &DAY_NAMES,
        _ => &[],
    };
    part.split(['-', '/']).any(|p| names.contains(&p))
}

/// A value of `unit`: a number in range, or a month or day name where those are allowed.
fn value(token: &str, unit: Unit) -> Result<u32, String> {
    let (min, max) = unit.bounds();
    let name = unit.name();
    if token.is_empty() {
        return Err(format!("{name} value missing"));
    }
    let v = if token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse::<u32>().map_err(|_| format!("{name} {token} out of range {min}-{max}"))?
    } else if token.bytes().all(|b| b.is_ascii_alphabetic()) {
        let lookup = |names: &[&str], first: u32| names.iter().position(|n| *n == token).map(|i| i as u32 + first);
        return match unit {
            Unit::Month => lookup(&MONTH_NAMES, 1).ok_or_else(|| format!("unknown month name {token}")),
            Unit::DayOfWeek => lookup(&DAY_NAMES, 0).ok_or_else(|| format!("unknown day name {token}")),
            _ => Err(format!("{name} {token} is not a number")),
        };
    } else {
        return Err(format!("{name} {token} is not a number"));
    };
    if v < min || v > max {
        return Err(format!("{name} {v} out of range {min}-{max}"));
    }
    Ok(v)
}

fn number(token: &str, what: &str) -> Result<u32, String> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {token:?} is not a number"));
    }
    token.parse().map_err(|_| format!("{what} {token} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(text: &str, unit: Unit) -> Vec<u32> {
        let f = parse_field(text, unit).unwrap();
        (0..64).filter(|v| f.bits & (1 << v) != 0).collect()
    }

    #[test]
    fn star_range_step_list() {
        assert_eq!(bits("*", Unit::Hour), (0..24).collect::<Vec<_>>());
        assert_eq!(bits("*/15", Unit::Minute), vec![0, 15, 30, 45]);
        assert_eq!(bits("10-20/5", Unit::Second), vec![10, 15, 20]);
        assert_eq!(bits("50/4", Unit::Minute), vec![50, 54, 58]);
        assert_eq!(bits("1,3,5-6", Unit::Hour), vec![1, 3, 5, 6]);
        assert_eq!(bits("7", Unit::Hour), vec![7]);
    }

    #[test]
    fn names_are_case_insensitive_and_work_in_ranges() {
        assert_eq!(bits("jan-Mar,DEC", Unit::Month), vec![1, 2, 3, 12]);
        assert_eq!(bits("mon-FRI", Unit::DayOfWeek), vec![1, 2, 3, 4, 5]);
        assert_eq!(bits("SAT,sun", Unit::DayOfWeek), vec![0, 6]);
        assert_eq!(bits("*/2", Unit::DayOfWeek), vec![0, 2, 4, 6]);
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        assert_eq!(bits("7", Unit::DayOfWeek), vec![0]);
        assert_eq!(bits("5-7", Unit::DayOfWeek), vec![0, 5, 6]);
        assert_eq!(bits("FRI-SUN", Unit::DayOfWeek), vec![0, 5, 6]);
    }

    #[test]
    fn question_mark_is_unrestricted_in_day_fields_only() {
        let f = parse_field("?", Unit::DayOfMonth).unwrap();
        assert!(f.unrestricted && !f.has_star);
        assert!(parse_field("?", Unit::DayOfWeek).unwrap().unrestricted);
        assert_eq!(
            parse_field("?", Unit::Hour).unwrap_err(),
            "? is only allowed in day-of-month and day-of-week, not in hour"
        );
    }

    #[test]
    fn restriction_and_star_flags() {
        let f = parse_field("*/5", Unit::DayOfMonth).unwrap();
        assert!(!f.unrestricted && f.has_star);
        let f = parse_field("1-5", Unit::Minute).unwrap();
        assert!(!f.unrestricted && !f.has_star);
    }

    #[test]
    fn calendar_parts() {
        let parts = |t, u| parse_field(t, u).unwrap().parts;
        assert_eq!(parts("L", Unit::DayOfMonth), vec![Part::LastDay { offset: 0 }]);
        assert_eq!(parts("L-3", Unit::DayOfMonth), vec![Part::LastDay { offset: 3 }]);
        assert_eq!(parts("lw", Unit::DayOfMonth), vec![Part::LastWeekday]);
        assert_eq!(parts("15W", Unit::DayOfMonth), vec![Part::NearestWeekday(15)]);
        assert_eq!(parts("5L", Unit::DayOfWeek), vec![Part::LastOfMonth(5)]);
        assert_eq!(parts("FRIL", Unit::DayOfWeek), vec![Part::LastOfMonth(5)]);
        assert_eq!(parts("MON#2", Unit::DayOfWeek), vec![Part::Nth { weekday: 1, n: 2 }]);
        assert_eq!(parts("7#1", Unit::DayOfWeek), vec![Part::Nth { weekday: 0, n: 1 }]);
    }

    #[test]
    fn error_messages_name_the_part() {
        let err = |t, u| parse_field(t, u).unwrap_err();
        assert_eq!(err("61", Unit::Minute), "minute 61 out of range 0-59");
        assert_eq!(err("24", Unit::Hour), "hour 24 out of range 0-23");
        assert_eq!(err("0", Unit::DayOfMonth), "day-of-month 0 out of range 1-31");
        assert_eq!(err("13", Unit::Month), "month 13 out of range 1-12");
        assert_eq!(err("8", Unit::DayOfWeek), "day-of-week 8 out of range 0-7");
        assert_eq!(err("FOO", Unit::Month), "unknown month name FOO");
        assert_eq!(err("foo", Unit::DayOfWeek), "unknown day name FOO");
        assert_eq!(err("*/0", Unit::Minute), "step must be at least 1");
        assert_eq!(err("*/x", Unit::Minute), "minute step \"X\" is not a number");
        assert_eq!(err("5-2", Unit::Hour), "hour range 5-2 is reversed (wrap-around ranges are not supported)");
        assert_eq!(err("1,,2", Unit::Hour), "empty list item in hour field \"1,,2\"");
        assert_eq!(err("MON", Unit::Minute), "minute MON is not a number");
        assert_eq!(err("MON#6", Unit::DayOfWeek), "day-of-week #6 out of range 1-5");
        assert_eq!(err("L", Unit::DayOfWeek), "day-of-week L needs a day before it, e.g. 5L for the last Friday");
        assert_eq!(err("L", Unit::Hour), "hour does not accept \"L\" (L, W and # belong to the day fields)");
        assert_eq!(err("32W", Unit::DayOfMonth), "day-of-month 32 out of range 1-31");
        assert_eq!(err("L-31", Unit::DayOfMonth), "day-of-month L-31 offset out of range 1-30");
        assert_eq!(err("1-", Unit::Hour), "hour value missing");
    }
}
