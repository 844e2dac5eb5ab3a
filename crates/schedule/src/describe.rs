//! Human descriptions of cron schedules for the API and the admin UI.
//!
//! Common shapes get a sentence ("At 02:30, Monday through Friday
//! (Europe/Berlin)", "Every 5 minutes"); anything else falls back to the
//! expression itself, which is exact if less friendly.

use chrono_tz::Tz;

use crate::cron::parse::{Field, Part};
use crate::cron::Cron;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const ORDINALS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

/// What a field says, in the few shapes worth putting into words.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Any,
    Every(u32),
    Range(u32, u32),
    Values(Vec<u32>),
    Other,
}

fn shape(field: &Field) -> Shape {
    if field.unrestricted {
        return Shape::Any;
    }
    match field.parts[..] {
        [Part::Star { step }] => return Shape::Every(step),
        [Part::Range { lo, hi, step: 1 }] if lo < hi => return Shape::Range(lo, hi),
        _ => {}
    }
    let mut values = Vec::new();
    for part in &field.parts {
        match *part {
            Part::Range { lo, hi, step: 1 } if lo == hi => values.push(lo),
            _ => return Shape::Other,
        }
    }
    values.sort_unstable();
    values.dedup();
    Shape::Values(values)
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {one}s")
    }
}

/// Describes `cron`, with its zone in parentheses unless it is UTC.
pub(crate) fn describe(cron: &Cron) -> String {
    let zone = if cron.tz == Tz::UTC { String::new() } else { format!(" ({})", cron.tz.name()) };
    match (time_phrase(cron), day_phrase(cron)) {
        (Some(time), Some(days)) => format!("{time}{days}{zone}"),
        _ => format!("{}{zone}", cron.expr),
    }
}

fn time_phrase(cron: &Cron) -> Option<String> {
    let [second, minute, hour, _] = &cron.fields;
    let (s, m, h) = (shape(second), shape(minute), shape(hour));
    let clock = |h: u32, m: u32, s: u32| {
        if s == 0 {
            format!("{h:02}:{m:02}")
        } else {
            format!("{h:02}:{m:02}:{s:02}")
        }
    };
    let hour_window = |h: &Shape| match *h {
        Shape::Any => Some(String::new()),
        Shape::Values(ref v) if v.len() == 1 => Some(format!(", between {:02}:00 and {:02}:59", v[0], v[0])),
        Shape::Range(a, b) => Some(format!(", between {a:02}:00 and {b:02}:59")),
        _ => None,
    };
    Some(match (&s, &m, &h) {
        (Shape::Any, Shape::Any, Shape::Any) => "Every second".into(),
        (Shape::Every(n), Shape::Any, Shape::Any) => format!("Every {}", plural(*n, "second")),
        (Shape::Values(s), Shape::Values(ms), Shape::Values(hs)) if s.len() == 1 && ms.len() * hs.len() <= 6 => {
            let times: Vec<String> = hs.iter().flat_map(|h| ms.iter().map(move |m| clock(*h, *m, s[0]))).collect();
            format!("At {}", join(&times))
        }
        (Shape::Values(s), Shape::Any, h) if s.len() == 1 && (s[0] != 0 || cron.has_seconds) => {
            format!("At second {} of every minute{}", s[0], hour_window(h)?)
        }
        (Shape::Values(s), Shape::Any, h) if s == &[0] => format!("Every minute{}", hour_window(h)?),
        (Shape::Values(s), Shape::Every(n), h) if s == &[0] => {
            format!("Every {}{}", plural(*n, "minute"), hour_window(h)?)
        }
        (Shape::Values(s), Shape::Values(ms), Shape::Any) if s == &[0] && ms == &[0] => "Every hour".into(),
        (Shape::Values(s), Shape::Values(ms), Shape::Any) if s == &[0] => {
            let minutes: Vec<String> = ms.iter().map(u32::to_string).collect();
            let noun = if ms.len() == 1 { "minute" } else { "minutes" };
            format!("At {noun} {} of every hour", join(&minutes))
        }
        (Shape::Values(s), Shape::Values(ms), Shape::Every(n)) if s == &[0] && ms.len() == 1 => {
            format!("At minute {} of every {}", ms[0], plural(*n, "hour")).replace("At minute 0 of every", "Every")
        }
        _ => return None,
    })
}

fn day_phrase(cron: &Cron) -> Option<String> {
    let (dom, dow) = (&cron.days.dom, &cron.days.dow);
    let month = &cron.fields[3];
    let day = match (dom.unrestricted, dow.unrestricted) {
        (true, true) => String::new(),
        (false, true) => format!(", {}", dom_phrase(dom)?),
        (true, false) => format!(", {}", dow_phrase(dow)?),
        (false, false) => return None,
    };
    // "on day 1 of the month, in January" reads better as "on January 1".
    if let (Shape::Values(days), Shape::Values(months)) = (shape(dom), shape(month)) {
        if days.len() == 1 && months.len() == 1 && dow.unrestricted {
            return Some(format!(", on {} {}", MONTHS[months[0] as usize - 1], days[0]));
        }
    }
    let month = match shape(month) {
        Shape::Any => String::new(),
        Shape::Values(v) => {
            format!(", in {}", join(&v.iter().map(|m| MONTHS[*m as usize - 1].to_string()).collect::<Vec<_>>()))
        }
        Shape::Range(a, b) => format!(", {} through {}", MONTHS[a as usize - 1], MONTHS[b as usize - 1]),
        _ => return None,
    };
    Some(format!("{day}{month}"))
}

fn dom_phrase(dom: &Field) -> Option<String> {
    Some(match (shape(dom), &dom.parts[..]) {
        (Shape::Values(v), _) => {
            let noun = if v.len() == 1 { "day" } else { "days" };
            format!("on {noun} {} of the month", join(&v.iter().map(u32::to_string).collect::<Vec<_>>()))
        }
        (Shape::Range(a, b), _) => format!("on days {a} through {b} of the month"),
        (_, [Part::LastDay { offset: 0 }]) => "on the last day of the month".into(),
        (_, [Part::LastDay { offset }]) => format!("{} before the last day of the month", plural(*offset, "day")),
        (_, [Part::LastWeekday]) => "on the last weekday of the month".into(),
        (_, [Part::NearestWeekday(n)]) => format!("on the weekday nearest day {n} of the month"),
        _ => return None,
    })
}

fn dow_phrase(dow: &Field) -> Option<String> {
    Some(match (shape(dow), &dow.parts[..]) {
        (Shape::Values(v), _) => {
            format!("only on {}", join(&v.iter().map(|d| DAYS[*d as usize % 7].to_string()).collect::<Vec<_>>()))
        }
        (Shape::Range(a, b), _) => format!("{} through {}", DAYS[a as usize % 7], DAYS[b as usize % 7]),
        (_, [Part::LastOfMonth(d)]) => format!("on the last {} of the month", DAYS[*d as usize]),
        (_, [Part::Nth { weekday, n }]) => {
            format!("on the {} {} of the month", ORDINALS[*n as usize - 1], DAYS[*weekday as usize])
        }
        _ => return None,
    })
}
