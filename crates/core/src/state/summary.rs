//! Read-side summaries for the console and the API: a job's health, and the last minute of
//! fires second by second. Nothing here changes the state.

use chrono::{DateTime, TimeDelta, Utc};

use super::State;
use crate::fire::{FireStatus, ResultClass};
use crate::job::JobUid;

/// Longest window [`State::recent_seconds`] reports.
pub const MAX_STATS_WINDOW_SECS: u32 = 300;
/// Fires claimed this long before a window's start are not looked at: a fire that finishes
/// later than this after its claim (a long retry chain) is missing from the live figures.
pub const STATS_CLAIM_HORIZON: TimeDelta = TimeDelta::minutes(10);
/// Most fires one summary looks at, newest claim first, whatever the window.
pub const MAX_STATS_FIRES: usize = 200_000;

/// What a job's recent fires say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobHealth {
    /// The status of its newest finished fire.
    pub last_status: Option<FireStatus>,
    /// Whether one of its fires waits for another attempt.
    pub retrying: bool,
}

impl JobHealth {
    /// Failing: the newest finished fire was dead-lettered, or a fire is being retried.
    pub fn failing(&self) -> bool {
        self.retrying || self.last_status == Some(FireStatus::DeadLettered)
    }
}

/// One second of fires.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecondStats {
    /// The start of the second.
    pub at: DateTime<Utc>,
    /// Fires that succeeded in this second.
    pub succeeded: u32,
    /// Attempts that failed in this second (whether or not another follows).
    pub failed: u32,
    /// Fires dead-lettered in this second.
    pub dead_lettered: u32,
    /// Fires skipped by policy in this second.
    pub skipped: u32,
    /// Start lag (first attempt's start minus the instant) of the scheduled fires whose first
    /// attempt started in this second, in milliseconds, sorted.
    pub lags_ms: Vec<i64>,
}

impl SecondStats {
    /// The `q` quantile (0..=1) of the lags, nearest rank; `None` without a lag.
    pub fn lag_quantile(&self, q: f64) -> Option<i64> {
        let n = self.lags_ms.len();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        Some(self.lags_ms[rank.clamp(1, n) - 1])
    }
}

impl State {
    /// The health of job `uid` from its kept history (newest first; the history holds at most
    /// the job's `history.max_count` finished fires, so this is bounded).
    pub fn job_health(&self, uid: JobUid) -> JobHealth {
        let mut health = JobHealth::default();
        for fire in self.job_fires(uid).rev() {
            if fire.status == FireStatus::RetryWaiting {
                health.retrying = true;
            }
            if fire.status.is_finished() {
                health.last_status = Some(fire.status);
                break;
            }
        }
        health
    }

    /// The `window_secs` whole seconds before `now` (at most [`MAX_STATS_WINDOW_SECS`]), oldest
    /// first: outcomes by when they were committed, lag by when the first attempt started.
    /// Looks at fires claimed since [`STATS_CLAIM_HORIZON`] before the window, at most
    /// [`MAX_STATS_FIRES`] of them.
    pub fn recent_seconds(&self, now: DateTime<Utc>, window_secs: u32) -> Vec<SecondStats> {
        let window = i64::from(window_secs.clamp(1, MAX_STATS_WINDOW_SECS));
        let end = now.timestamp().saturating_add(1);
        let start = end.saturating_sub(window);
        let mut seconds: Vec<SecondStats> = (start..end)
            .map(|s| SecondStats { at: DateTime::from_timestamp(s, 0).unwrap_or(now), ..Default::default() })
            .collect();
        let slot = |t: DateTime<Utc>| {
            let s = t.timestamp();
            (start..end).contains(&s).then(|| (s - start) as usize)
        };
        let horizon = seconds.first().map_or(now, |s| s.at).checked_sub_signed(STATS_CLAIM_HORIZON).unwrap_or(now);
        for fire in self.fires_before(None, None).take(MAX_STATS_FIRES) {
            if fire.claimed_at < horizon {
                break;
            }
            for attempt in &fire.attempts {
                if attempt.class != ResultClass::Success {
                    if let Some(i) = slot(attempt.finished_at) {
                        seconds[i].failed += 1;
                    }
                }
            }
            if let (Some(first), false) = (fire.attempts.first(), fire.manual) {
                if let Some(i) = slot(first.started_at) {
                    seconds[i].lags_ms.push((first.started_at - fire.scheduled_at).num_milliseconds());
                }
            }
            let Some(i) = fire.finished_at.and_then(slot) else { continue };
            match fire.status {
                FireStatus::Succeeded => seconds[i].succeeded += 1,
                FireStatus::DeadLettered => seconds[i].dead_lettered += 1,
                FireStatus::Skipped => seconds[i].skipped += 1,
                _ => {}
            }
        }
        for s in &mut seconds {
            s.lags_ms.sort_unstable();
        }
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fire::{Attempt, Fire, FireKey};
    use crate::state::{new_fire, Data};

    fn t(secs: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_767_225_600_000 + (secs * 1000.0) as i64).unwrap()
    }

    fn attempt(class: ResultClass, started: f64, finished: f64) -> Attempt {
        Attempt {
            number: 1,
            worker: 2,
            started_at: t(started),
            finished_at: t(finished),
            class,
            http_status: Some(if class == ResultClass::Success { 200 } else { 503 }),
            error: None,
            body_excerpt: None,
            retry_after_ms: None,
        }
    }

    /// A fire of job 1 scheduled at `at`, with `status` and `attempts`.
    fn fire(seq: u64, at: f64, status: FireStatus, attempts: Vec<Attempt>) -> Fire {
        let mut f = new_fire(FireKey::scheduled(1, t(at)), 1, "a".into(), t(at), t(at - 0.5), false);
        f.seq = seq;
        f.status = status;
        // A fire finished without an attempt (skipped) finishes at its instant.
        let finished = attempts.last().map_or(t(at), |a| a.finished_at);
        f.finished_at = status.is_finished().then_some(finished);
        f.attempts = attempts;
        f
    }

    fn state(fires: Vec<Fire>) -> State {
        let mut data = Data::default();
        for f in fires {
            data.fires.insert(f.seq, Box::new(f));
        }
        State::from_data(data)
    }

    #[test]
    fn a_job_fails_while_its_newest_finished_fire_is_a_dead_letter_or_a_fire_retries() {
        let ok = |seq, at| fire(seq, at, FireStatus::Succeeded, vec![attempt(ResultClass::Success, at, at + 0.1)]);
        let dead = |seq, at| fire(seq, at, FireStatus::DeadLettered, vec![attempt(ResultClass::Permanent, at, at)]);
        assert_eq!(state(vec![]).job_health(1), JobHealth::default());
        let h = state(vec![ok(1, 1.0), dead(2, 2.0)]).job_health(1);
        assert_eq!(h.last_status, Some(FireStatus::DeadLettered));
        assert!(h.failing());
        let h = state(vec![dead(1, 1.0), ok(2, 2.0)]).job_health(1);
        assert_eq!(h.last_status, Some(FireStatus::Succeeded));
        assert!(!h.failing(), "a success after the dead letter");
        let retrying = fire(3, 3.0, FireStatus::RetryWaiting, vec![attempt(ResultClass::Retryable, 3.0, 3.1)]);
        let h = state(vec![ok(1, 1.0), ok(2, 2.0), retrying]).job_health(1);
        assert_eq!(h.last_status, Some(FireStatus::Succeeded));
        assert!(h.retrying && h.failing());
    }

    #[test]
    fn seconds_count_outcomes_when_committed_and_lag_when_the_send_started() {
        let fires = vec![
            // Long before the window's claim horizon: never looked at, although it "finished" in it.
            fire(1, -1000.0, FireStatus::Succeeded, vec![attempt(ResultClass::Success, 58.0, 58.0)]),
            fire(2, 50.0, FireStatus::Succeeded, vec![attempt(ResultClass::Success, 50.010, 50.2)]),
            fire(3, 50.0, FireStatus::Succeeded, vec![attempt(ResultClass::Success, 50.030, 51.5)]),
            fire(
                4,
                51.0,
                FireStatus::DeadLettered,
                vec![attempt(ResultClass::Retryable, 51.002, 51.1), attempt(ResultClass::Permanent, 52.0, 52.5)],
            ),
            fire(5, 52.0, FireStatus::Skipped, vec![]),
            fire(6, 59.5, FireStatus::Dispatched, vec![]),
        ];
        let seconds = state(fires).recent_seconds(t(59.7), 10);
        assert_eq!(seconds.len(), 10);
        assert_eq!(seconds.first().unwrap().at, t(50.0));
        assert_eq!(seconds.last().unwrap().at, t(59.0), "the current second is the last");
        let s = |secs: f64| &seconds[(secs - 50.0) as usize];
        assert_eq!((s(50.0).succeeded, s(50.0).lags_ms.clone()), (1, vec![10, 30]));
        assert_eq!((s(51.0).succeeded, s(51.0).failed, s(51.0).lags_ms.clone()), (1, 1, vec![2]));
        assert_eq!((s(52.0).dead_lettered, s(52.0).failed, s(52.0).skipped), (1, 1, 1));
        assert_eq!(s(58.0).succeeded, 0, "the fire claimed before the horizon is left out");
        assert_eq!(s(50.0).lag_quantile(0.5), Some(10));
        assert_eq!(s(50.0).lag_quantile(0.99), Some(30));
        assert_eq!(s(53.0).lag_quantile(0.5), None);
        assert_eq!(state(vec![]).recent_seconds(t(0.0), 100_000).len(), MAX_STATS_WINDOW_SECS as usize);
    }
}
