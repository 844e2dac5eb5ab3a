//! Human durations (`30s`, `1h30m`, `500ms`): the unit of `every`, `jitter`
//! and every other interval belfry reads from users.

use std::time::Duration;

/// Longest duration text [`parse_duration`] reads; `1d23h59m59s999ms` needs 16.
pub const MAX_DURATION_CHARS: usize = 64;
/// Longest duration [`parse_duration`] accepts, in milliseconds: `i64::MAX`, so that every
/// parsed duration is exactly a chrono `TimeDelta` (about 292 million years). Each field that
/// takes a duration sets its own, much smaller, bound on top.
pub const MAX_DURATION_MS: u64 = i64::MAX.unsigned_abs();

/// Parses `500ms`, `30s`, `5m`, `2h`, `1d` and concatenations such as `1h30m`.
///
/// Refuses text longer than [`MAX_DURATION_CHARS`] and totals above [`MAX_DURATION_MS`] (or
/// beyond `u64`) with a message saying so, instead of saturating.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.len() > MAX_DURATION_CHARS {
        return Err(format!("invalid duration: longer than {MAX_DURATION_CHARS} characters"));
    }
    let too_large = || format!("invalid duration {s:?}: too large (at most {})", format_ms(MAX_DURATION_MS));
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per)
            .and_then(|v| total.checked_add(v))
            .filter(|t| *t <= MAX_DURATION_MS)
            .ok_or_else(too_large)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`, `500ms`); whole
/// milliseconds, saturating at `u64::MAX` of them.
pub fn format_duration(d: Duration) -> String {
    format_ms(whole_ms(d))
}

fn whole_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn format_ms(mut ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in UNITS {
        if ms >= per {
            out.push_str(&format!("{}{}", ms / per, unit));
            ms %= per;
        }
    }
    out
}

/// Spells a duration out for people: `5 minutes`, `1 hour 30 minutes`, `500 milliseconds`.
pub(crate) fn spell_duration(d: Duration) -> String {
    let mut ms = whole_ms(d);
    if ms == 0 {
        return "0 seconds".into();
    }
    let words = [
        ("day", "days"),
        ("hour", "hours"),
        ("minute", "minutes"),
        ("second", "seconds"),
        ("millisecond", "milliseconds"),
    ];
    let mut parts = Vec::new();
    for ((_, per), (one, many)) in UNITS.into_iter().zip(words) {
        if ms >= per {
            let n = ms / per;
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            ms %= per;
        }
    }
    parts.join(" ")
}

const UNITS: [(&str, u64); 5] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_concatenations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 2d "), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(parse_duration(""), Err("empty duration".into()));
        assert!(parse_duration("5").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m5").unwrap_err().contains("expected a number"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit \"y\""));
        assert!(parse_duration("99999999999999999999s").unwrap_err().contains("too large"));
    }

    #[test]
    fn refuses_what_overflows_instead_of_saturating() {
        for s in ["100000000000000000000d", "18446744073709551615d", "9223372036854775808ms", "106751991167301d"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("too large (at most 106751991167d7h12m55s807ms)"), "{s}: {e}");
        }
        assert_eq!(parse_duration("9223372036854775807ms"), Ok(Duration::from_millis(MAX_DURATION_MS)));
        assert_eq!(parse_duration("1000000000d"), Ok(Duration::from_secs(86_400_000_000_000)));
        assert!(parse_duration(&"1s".repeat(40)).unwrap_err().contains("longer than 64 characters"));
        assert_eq!(format_duration(Duration::MAX), "213503982334d14h25m51s615ms");
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1d2h3m4s5ms", "30s", "500ms", "1h30m"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn spells_for_people() {
        assert_eq!(spell_duration(Duration::from_secs(300)), "5 minutes");
        assert_eq!(spell_duration(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(spell_duration(Duration::from_secs(1)), "1 second");
    }
}
