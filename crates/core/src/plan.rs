//! What the leader's ticker should propose next: pure reads of the state at an instant.

use chrono::{DateTime, Utc};

use crate::fire::{FireKey, FireStatus};
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
    /// What is due at `now`, at most `limit` items of each kind (one log entry's worth).
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Due {
        let claims =
            self.due_jobs(now).filter_map(|job| job.next_fire_at.map(|at| (job.uid, at))).take(limit).collect();
        let mut redispatches: Vec<(FireKey, u32)> =
            self.due_retries(now).take(limit).map(|f| (f.key.clone(), f.attempt + 1)).collect();
        let ready = self
            .fires_with_status(FireStatus::Queued)
            .filter(|f| {
                let allow = self.job_by_uid(f.job_uid).is_some_and(|j| j.spec.overlap == OverlapPolicy::Allow);
                allow || !self.job_fires(f.job_uid).any(|other| other.status.is_in_flight())
            })
            .take(limit.saturating_sub(redispatches.len()))
            .map(|f| (f.key.clone(), f.attempt + 1));
        redispatches.extend(ready);
        Due { claims, redispatches }
    }
}
