//! History retention: per job, at most `history.max_count` finished fires (the cluster default
//! when unset), and none older than `history.max_age` after it finished; across all jobs, at
//! most [`Data::finished_limit`](super::Data) finished fires, the oldest going first and dead
//! letters last. Unfinished fires are never removed. Everything here runs inside apply() with
//! the command's clock, so replicas forget the same fires at the same log index.

use belfry_schedule::instant::saturating_add;
use chrono::{DateTime, Utc};

use super::State;
use crate::fire::FireStatus;
use crate::job::JobUid;

/// Finished fires the cluster keeps in all by default. A finished fire costs about 1.2 KB of
/// memory on every node (the fire, its attempt, its key and index entries: see
/// `examples/state_memory.rs`), so this bounds history near 120 MB however many jobs there
/// are and whatever each job's own `history.max_count`.
pub const DEFAULT_FINISHED_LIMIT: usize = 100_000;
/// The largest finished-fire limit a restored backup may carry.
pub const MAX_FINISHED_LIMIT: usize = 100_000_000;

/// The limit of snapshots and backups written before there was one.
pub(super) fn default_finished_limit() -> usize {
    DEFAULT_FINISHED_LIMIT
}

/// Finished statuses in the order the cluster-wide limit gives them up: dead letters last, as
/// someone may still requeue them.
const GIVEN_UP_FIRST: [FireStatus; 3] = [FireStatus::Succeeded, FireStatus::Skipped, FireStatus::Cancelled];

impl State {
    /// The number of finished fires job `uid` keeps: 0 once it is deleted.
    fn history_limit_of(&self, uid: JobUid) -> usize {
        if self.data.retired.contains_key(&uid) {
            return 0;
        }
        let job = self.job_by_uid(uid);
        job.and_then(|j| j.spec.history.max_count)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(self.data.history_limit)
    }

    /// Keeps at most the job's limit of finished fires (oldest go first; unfinished fires are
    /// never pruned), and forgets a retired job once its last fire has finished.
    pub(super) fn prune_history(&mut self, uid: JobUid) {
        let limit = self.history_limit_of(uid);
        let fires = &self.data.fires;
        let finished = |seq: &&u64| fires.get(seq).is_some_and(|f| f.status.is_finished());
        let history = self.history.get(&uid).into_iter().flatten();
        let excess = history.clone().filter(finished).count().saturating_sub(limit);
        if excess > 0 {
            let oldest: Vec<u64> = history.filter(finished).take(excess).copied().collect();
            for seq in oldest {
                self.remove_fire(seq);
            }
        }
        self.forget_if_retired(uid);
    }

    /// Keeps the finished fires of all jobs within [`Data::finished_limit`](super::Data): the
    /// oldest by claim order go first, dead letters only when no other finished fire is left.
    pub(super) fn cap_finished(&mut self) {
        while self.finished > self.data.finished_limit {
            let oldest = GIVEN_UP_FIRST
                .iter()
                .filter_map(|s| self.by_status.range((*s, 0)..=(*s, u64::MAX)).next())
                .map(|(_, seq)| *seq)
                .min();
            let dead = FireStatus::DeadLettered;
            let Some(seq) = oldest.or_else(|| self.by_status.range((dead, 0)..=(dead, u64::MAX)).next().map(|e| e.1))
            else {
                return;
            };
            let uid = self.data.fires.get(&seq).map(|f| f.job_uid);
            self.remove_fire(seq);
            if let Some(uid) = uid {
                self.forget_if_retired(uid);
            }
        }
    }

    fn forget_if_retired(&mut self, uid: JobUid) {
        if self.data.retired.contains_key(&uid) && !self.history.contains_key(&uid) {
            self.data.retired.remove(&uid);
        }
    }

    /// Puts fire `seq` in the age index when it is finished and its job has a `max_age`, and
    /// takes it out otherwise. Called whenever a fire is stored.
    pub(super) fn index_expiry(&mut self, seq: u64) {
        self.unindex_expiry(seq);
        let Some(fire) = self.data.fires.get(&seq) else {
            return;
        };
        let (Some(finished_at), true) = (fire.finished_at, fire.status.is_finished()) else {
            return;
        };
        let Some(max_age) = self.job_by_uid(fire.job_uid).and_then(|j| j.spec.history.max_age) else {
            return;
        };
        let at = saturating_add(finished_at, max_age.chrono()).timestamp_millis();
        self.expiry.insert((at, seq));
        self.expiry_of.insert(seq, at);
    }

    pub(super) fn unindex_expiry(&mut self, seq: u64) {
        if let Some(at) = self.expiry_of.remove(&seq) {
            self.expiry.remove(&(at, seq));
        }
    }

    /// Forgets every finished fire whose age limit has passed at `now`.
    pub(super) fn expire_history(&mut self, now: DateTime<Utc>) {
        let now = now.timestamp_millis();
        while let Some(&(at, seq)) = self.expiry.first() {
            if at > now {
                break;
            }
            let uid = self.data.fires.get(&seq).map(|f| f.job_uid);
            self.remove_fire(seq);
            if let Some(uid) = uid {
                self.forget_if_retired(uid);
            }
        }
    }

    /// Re-applies job `uid`'s retention after its policy changed.
    pub(super) fn retention_changed(&mut self, uid: JobUid, now: DateTime<Utc>) {
        let seqs: Vec<u64> = self.history.get(&uid).into_iter().flatten().copied().collect();
        for seq in seqs {
            self.index_expiry(seq);
        }
        self.expire_history(now);
        self.prune_history(uid);
    }

    /// When the next finished fire ages out, if any job has an age limit.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.expiry.first().and_then(|(ms, _)| DateTime::from_timestamp_millis(*ms))
    }
}
