//! Retry math: when the next attempt of a failed fire is due, or whether it is dead.

use std::time::Duration;

use belfry_schedule::format_duration;
use belfry_schedule::instant::{saturating_add, saturating_add_ms};
use chrono::{DateTime, Utc};

use crate::fire::{truncate_at_char_boundary, Attempt, Fire, ResultClass, MAX_ERROR_BYTES};
use crate::job::RetryPolicy;

/// Longest `Retry-After` honoured, in milliseconds (1 h). A target may ask for longer; within
/// the fire's `max_age` it is retried after an hour instead (and may answer with a new
/// `Retry-After`), so one answer cannot park a fire for its whole budget.
pub const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// What follows a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// Give up; the reason goes into the fire's note.
    DeadLetter(String),
}

/// Decides what follows `attempt` of `fire`, at `now`.
///
/// The backoff before attempt n+1 is drawn from `[b/2, b]` with `b = min(max_backoff,
/// initial_backoff * 2^(n-1))` ("equal jitter"): spread like full jitter, yet never shorter than
/// half the nominal backoff, so successive delays grow. The draw is a hash of the key and the
/// attempt number, so every replica computes the same instant.
///
/// `Retry-After` raises the delay, up to [`MAX_RETRY_AFTER_MS`]; a `Retry-After` that reaches
/// past the fire's `max_age` dead-letters it at once, since no attempt the target would accept
/// is left. Every value of the attempt and every `now` is taken: instants saturate at the
/// window's ends (`belfry_schedule::instant`), so the answer is always in it.
pub fn decide(policy: &RetryPolicy, fire: &Fire, attempt: &Attempt, now: DateTime<Utc>) -> RetryDecision {
    if attempt.class == ResultClass::Permanent {
        return RetryDecision::DeadLetter(format!("permanent failure: {}", describe(attempt)));
    }
    let used = attempt.number.saturating_sub(fire.budget_base);
    if used >= policy.max_attempts {
        return RetryDecision::DeadLetter(format!("{used} attempts failed; last: {}", describe(attempt)));
    }
    let deadline = saturating_add(fire.budget_since, policy.max_age.chrono());
    let asked = attempt.retry_after_ms.unwrap_or(0);
    let asked_ms = i64::try_from(asked).unwrap_or(i64::MAX);
    if asked > 0 && saturating_add_ms(now, asked_ms) > deadline {
        return RetryDecision::DeadLetter(format!(
            "Retry-After of {} reaches past max_age {}; last: {}",
            format_duration(Duration::from_millis(asked)),
            policy.max_age,
            describe(attempt)
        ));
    }
    // At most an hour, so the conversion is exact.
    let retry_after = i64::try_from(asked.min(MAX_RETRY_AFTER_MS)).unwrap_or(i64::MAX);
    let at = saturating_add_ms(now, backoff_ms(policy, used, fire.key.as_str()).max(retry_after));
    if at > deadline {
        return RetryDecision::DeadLetter(format!("max_age {} reached; last: {}", policy.max_age, describe(attempt)));
    }
    RetryDecision::RetryAt(at)
}

/// The backoff after `failed` failed attempts (1-based), in milliseconds; at least 1, and in
/// `[nominal / 2, nominal]` for any policy, saturating rather than overflowing.
pub fn backoff_ms(policy: &RetryPolicy, failed: u32, key: &str) -> i64 {
    let initial = policy.initial_backoff.as_millis();
    let cap = policy.max_backoff.as_millis();
    let exp = failed.saturating_sub(1).min(40);
    let nominal = initial.saturating_mul(2i64.saturating_pow(exp)).min(cap).max(1);
    let half = nominal / 2;
    // nominal >= 1, so the span is at least 1; it is at most i64::MAX / 2 + 1.
    let span = u64::try_from(nominal - half).unwrap_or(0).saturating_add(1);
    half.saturating_add(i64::try_from(stable_hash(key, failed) % span).unwrap_or(0))
}

fn stable_hash(key: &str, n: u32) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.bytes().chain(n.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The attempt's outcome for a note; an error text is cut to [`MAX_ERROR_BYTES`] whatever the
/// caller passed.
fn describe(a: &Attempt) -> String {
    match (a.http_status, &a.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => {
            let mut e = e.clone();
            truncate_at_char_boundary(&mut e, MAX_ERROR_BYTES);
            e
        }
        (None, None) => "no answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn backoff_stays_within_half_and_nominal(failed in 1u32..30, key in "[0-9a-z:]{1,20}") {
            let p = RetryPolicy::default();
            let nominal = (p.initial_backoff.as_millis() << (failed - 1).min(40)).min(p.max_backoff.as_millis());
            let b = backoff_ms(&p, failed, &key);
            prop_assert!(b >= nominal / 2 && b <= nominal, "{b} not in [{}, {nominal}]", nominal / 2);
        }

        #[test]
        fn backoff_never_shrinks_below_the_cap(failed in 1u32..20, key in "[0-9a-z:]{1,20}") {
            let p = RetryPolicy { max_backoff: HumanDuration::secs(1 << 30), ..RetryPolicy::default() };
            prop_assert!(backoff_ms(&p, failed + 1, &key) >= backoff_ms(&p, failed, &key));
        }
    }
}
