//! What the leader's ticker should propose next: pure reads of the state at an instant.

use chrono::{DateTime, Utc};

use crate::fire::{Fire, FireKey, FireStatus};
use crate::job::{JobUid, OverlapPolicy};
use crate::state::State;

/// Work that is due: instants to claim and fires to dispatch again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// `(job, instant)`: each job's `next_fire_at`, when due.
    pub claims: Vec<(JobUid, DateTime<Utc>)>,
    /// `(fire, attempt)`: retries whose backoff has run out, and queued fires that may start.
    pub redispatches: Vec<(FireKey, u32)>,
}

impl Due {
    /// Nothing to propose.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.redispatches.is_empty()
    }
}

impl State {
    /// What is due at `now`, at most `limit` items of each kind (one log entry's worth). Only
    /// live jobs' fires are redispatched: a deleted job starts no new attempt.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Due {
        self.due_ahead(now, now, limit)
    }

    /// Like [`State::due`], and also the instants up to `ahead` of jobs whose fires may
    /// overlap: a claim ahead, whose worker holds the send until the instant (docs/DESIGN.md,
    /// "Claiming ahead"). A job with an overlap policy is claimed only once due, because
    /// whether its fire runs, waits or is skipped depends on what still runs at the instant.
    pub fn due_ahead(&self, now: DateTime<Utc>, ahead: DateTime<Utc>, limit: usize) -> Due {
        let now_ms = now.timestamp_millis();
        let claims = self
            .due_jobs_with_instant(ahead.max(now))
            .filter(|(due, job)| *due <= now_ms || job.spec.overlap == OverlapPolicy::Allow)
            .filter_map(|(_, job)| job.next_fire_at.map(|at| (job.uid, at)))
            .take(limit)
            .collect();
        let next = |f: &Fire| f.attempt.checked_add(1).map(|attempt| (f.key.clone(), attempt));
        let mut redispatches: Vec<(FireKey, u32)> =
            self.due_retries(now).filter(|f| self.is_live(f.job_uid)).filter_map(next).take(limit).collect();
        let ready = self
            .fires_with_status(FireStatus::Queued)
            .filter(|f| {
                let Some(job) = self.job_by_uid(f.job_uid).filter(|_| self.is_live(f.job_uid)) else {
                    return false;
                };
                job.spec.overlap == OverlapPolicy::Allow || !self.job_fires(f.job_uid).any(|o| o.status.is_in_flight())
            })
            .filter_map(next)
            .take(limit.saturating_sub(redispatches.len()));
        redispatches.extend(ready);
        Due { claims, redispatches }
    }
}
