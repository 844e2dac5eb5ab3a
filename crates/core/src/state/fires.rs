//! The fire protocol's transitions: claims, redispatches and completions, and the fire store
//! that keeps the indexes in step with [`Data::fires`](super::Data).

use chrono::{DateTime, Utc};

use super::{due_at, State, MAX_CATCH_UP};
use crate::command::{Assignment, Claim, Completion, Redispatch, Response};
use crate::fire::{Dispatch, Fire, FireKey, FireStatus, ResultClass};
use crate::job::{JobUid, MisfireAction, OverlapPolicy};
use crate::retry::{self, RetryDecision};

impl State {
    pub(super) fn fire(&mut self, now: DateTime<Utc>, claims: Vec<Claim>, redispatches: Vec<Redispatch>) -> Response {
        let mut dispatches = Vec::new();
        for claim in claims {
            dispatches.extend(self.claim(now, claim));
        }
        for r in redispatches {
            dispatches.extend(self.redispatch(now, r));
        }
        Response::Dispatches { dispatches }
    }

    /// Claims one instant of a job. A claim that does not name the job's current `next_fire_at`
    /// (already claimed, or from a stale leader) changes nothing: this is what makes a duplicate
    /// or stale proposal harmless even after old keys are pruned.
    fn claim(&mut self, now: DateTime<Utc>, claim: Claim) -> Option<Dispatch> {
        let name = self.names.get(&claim.job_uid)?;
        let job = self.data.jobs.get(name)?;
        if job.spec.paused || job.next_fire_at != Some(claim.scheduled_at) {
            return None;
        }
        let (uid, misfire, overlap) = (job.uid, job.spec.misfire, job.spec.overlap);
        let due = due_at(job).unwrap_or(claim.scheduled_at);
        let name = job.spec.name.clone();
        let Ok(schedule) = job.schedule() else {
            // A spec stored by an older, laxer build that today's bounds refuse cannot be
            // evaluated: the job stops being due rather than being proposed on every tick.
            self.set_next_fire(uid, None);
            return None;
        };
        let key = FireKey::scheduled(uid, claim.scheduled_at);
        if self.keys.contains_key(&key) {
            self.set_next_fire(uid, schedule.next_after(claim.scheduled_at));
            return None;
        }

        // Both instants lie in chrono's range, so their difference is a valid TimeDelta.
        let late = now.signed_duration_since(due);
        let (scheduled_at, note) = if late > misfire.grace.chrono() {
            let mut missed = 1;
            let mut last = claim.scheduled_at;
            while missed < MAX_CATCH_UP {
                match schedule.next_after(last) {
                    Some(t) if t <= now => {
                        last = t;
                        missed += 1;
                    }
                    _ => break,
                }
            }
            let plus = if missed >= MAX_CATCH_UP { "+" } else { "" };
            match misfire.policy {
                MisfireAction::FireAll => (
                    claim.scheduled_at,
                    Some(format!("misfire: late by {}s, delivered (fire_all)", late.num_seconds())),
                ),
                MisfireAction::FireOnce => (
                    last,
                    Some(format!(
                        "misfire: {missed}{plus} missed fires from {} coalesced into this one (fire_once)",
                        claim.scheduled_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )),
                ),
                MisfireAction::Skip => {
                    self.set_next_fire(uid, schedule.next_after(last));
                    let mut fire = new_fire(key, uid, name, claim.scheduled_at, now, false);
                    fire.note = Some(format!(
                        "misfire: {missed}{plus} missed fires from {} to {} skipped (skip)",
                        claim.scheduled_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ));
                    finish(&mut fire, FireStatus::Skipped, now);
                    self.insert_fire(fire);
                    return None;
                }
            }
        } else {
            (claim.scheduled_at, None)
        };

        self.set_next_fire(uid, schedule.next_after(scheduled_at));
        let key = FireKey::scheduled(uid, scheduled_at);
        if self.keys.contains_key(&key) {
            // Coalesced onto an instant claimed before (a schedule replaced under a clock that
            // went back): that fire exists, and one key is one fire.
            return None;
        }
        let mut fire = new_fire(key, uid, name, scheduled_at, now, false);
        fire.note = note;

        let running = self.job_fires(uid).any(|f| f.status.is_in_flight());
        let buffered = self.job_fires(uid).any(|f| f.status == FireStatus::Queued);
        let overlap_note = match overlap {
            OverlapPolicy::Forbid if running => Some("overlap: previous fire still running (forbid)"),
            OverlapPolicy::BufferOne if running && buffered => Some("overlap: a fire is already buffered (buffer_one)"),
            OverlapPolicy::BufferOne if running => {
                fire.status = FireStatus::Queued;
                self.insert_fire(fire);
                return None;
            }
            _ => None,
        };
        if let Some(why) = overlap_note {
            fire.note = Some(why.to_string());
            finish(&mut fire, FireStatus::Skipped, now);
            self.insert_fire(fire);
            return None;
        }
        if due > now && scheduled_at == claim.scheduled_at {
            // Claimed ahead of its instant: the worker holds the send until it is due.
            fire.send_at = Some(due);
        }
        let dispatch = dispatch_fire(&mut fire, 1, claim.assign, now);
        self.insert_fire(fire);
        Some(dispatch)
    }

    /// Dispatches an existing fire again. Valid transitions only: the next attempt of a
    /// retry-waiting or queued fire, or the same attempt of a dispatched fire (a new worker after
    /// its lease ran out). Anything else is a stale proposal and changes nothing.
    fn redispatch(&mut self, now: DateTime<Utc>, r: Redispatch) -> Option<Dispatch> {
        let seq = *self.keys.get(&r.key)?;
        let fire = self.data.fires.get(&seq)?;
        let live = self.names.contains_key(&fire.job_uid);
        let valid = match fire.status {
            // Only a live job's fire starts a new attempt; a deleted job's has none left.
            FireStatus::RetryWaiting | FireStatus::Queued => live && fire.attempt.checked_add(1) == Some(r.attempt),
            FireStatus::Dispatched => r.attempt == fire.attempt && r.assign.term >= fire.term,
            _ => false,
        };
        if !valid {
            return None;
        }
        let mut fire = fire.clone();
        let dispatch = dispatch_fire(&mut fire, r.attempt, r.assign, now);
        self.replace_fire(seq, fire);
        Some(dispatch)
    }

    /// Records finished attempts. Only the current attempt of a dispatched fire counts; a
    /// repeated or stale report changes nothing. The attempt is bounded first
    /// ([`crate::Attempt::bounded`]): a worker relays what a target answered. A deleted job's
    /// fire finishes with its attempt: a retry it would have earned is cancelled instead.
    pub(super) fn complete(&mut self, now: DateTime<Utc>, completions: Vec<Completion>) -> Response {
        for c in completions {
            let Some(&seq) = self.keys.get(&c.key) else {
                continue;
            };
            let Some(fire) = self.data.fires.get(&seq) else {
                continue;
            };
            if fire.status != FireStatus::Dispatched || fire.attempt != c.attempt.number {
                continue;
            }
            let attempt = c.attempt.bounded();
            let mut fire = fire.clone();
            let live = self.names.contains_key(&fire.job_uid);
            let policy = self.job_by_uid(fire.job_uid).map(|j| j.spec.retry).unwrap_or_default();
            let decision = match attempt.class {
                ResultClass::Success => None,
                _ => Some(retry::decide(&policy, &fire, &attempt, now)),
            };
            fire.attempts.push(attempt);
            fire.lease_until = None;
            match decision {
                None => finish(&mut fire, FireStatus::Succeeded, now),
                Some(RetryDecision::RetryAt(_)) if !live => {
                    fire.note = Some(JOB_DELETED.into());
                    finish(&mut fire, FireStatus::Cancelled, now);
                }
                Some(RetryDecision::RetryAt(at)) => {
                    fire.status = FireStatus::RetryWaiting;
                    fire.next_attempt_at = Some(at);
                }
                Some(RetryDecision::DeadLetter(why)) => {
                    fire.note = Some(why);
                    finish(&mut fire, FireStatus::DeadLettered, now);
                }
            }
            self.replace_fire(seq, fire);
        }
        Response::None
    }

    /// Stores a new fire under the next sequence number.
    pub(super) fn insert_fire(&mut self, mut fire: Fire) {
        if self.keys.contains_key(&fire.key) {
            // Callers check first; a second fire under one key would break the key index.
            return;
        }
        let seq = self.data.next_seq;
        // Restore keeps next_seq below MAX_COUNTER and each fire adds one, so this never
        // saturates in practice; saturating keeps apply() total regardless.
        self.data.next_seq = seq.saturating_add(1);
        fire.seq = seq;
        let uid = fire.job_uid;
        let finished = fire.status.is_finished();
        self.keys.insert(fire.key.clone(), seq);
        self.by_status.insert((fire.status, seq));
        self.finished += usize::from(finished);
        self.data.fires.insert(seq, Box::new(fire));
        self.history.entry(uid).or_default().insert(seq);
        self.index_expiry(seq);
        if finished {
            self.prune_history(uid);
            self.cap_finished();
        }
    }

    /// Stores a changed fire, keeping the status and retry indexes in step.
    pub(super) fn replace_fire(&mut self, seq: u64, fire: Box<Fire>) {
        if let Some(old) = self.data.fires.get(&seq) {
            self.by_status.remove(&(old.status, seq));
            self.finished -= usize::from(old.status.is_finished());
            if let Some(at) = old.next_attempt_at.filter(|_| old.status == FireStatus::RetryWaiting) {
                self.retries.remove(&(at.timestamp_millis(), seq));
            }
        }
        self.by_status.insert((fire.status, seq));
        if let Some(at) = fire.next_attempt_at.filter(|_| fire.status == FireStatus::RetryWaiting) {
            self.retries.insert((at.timestamp_millis(), seq));
        }
        let uid = fire.job_uid;
        let finished = fire.status.is_finished();
        self.finished += usize::from(finished);
        self.data.fires.insert(seq, fire);
        self.index_expiry(seq);
        if finished {
            self.prune_history(uid);
            self.cap_finished();
        }
    }

    /// Forgets a fire and its index entries.
    pub(super) fn remove_fire(&mut self, seq: u64) {
        // First, so that expire_history, which loops until the expiry index has nothing due,
        // always makes progress.
        self.unindex_expiry(seq);
        let Some(fire) = self.data.fires.remove(&seq) else {
            return;
        };
        self.keys.remove(&fire.key);
        self.by_status.remove(&(fire.status, seq));
        self.finished -= usize::from(fire.status.is_finished());
        if let Some(at) = fire.next_attempt_at.filter(|_| fire.status == FireStatus::RetryWaiting) {
            self.retries.remove(&(at.timestamp_millis(), seq));
        }
        if let Some(h) = self.history.get_mut(&fire.job_uid) {
            h.remove(&seq);
            if h.is_empty() {
                self.history.remove(&fire.job_uid);
            }
        }
    }
}

/// The note of a fire cancelled because its job was deleted.
pub(super) const JOB_DELETED: &str = "job deleted";

/// A queued fire of `job`, claimed at `now`.
pub(super) fn new_fire(
    key: FireKey,
    job_uid: JobUid,
    job_name: compact_str::CompactString,
    scheduled_at: DateTime<Utc>,
    now: DateTime<Utc>,
    manual: bool,
) -> Fire {
    Fire {
        key,
        seq: 0,
        job_uid,
        job_name,
        scheduled_at,
        claimed_at: now,
        manual,
        status: FireStatus::Queued,
        attempt: 0,
        worker: None,
        term: 0,
        lease_until: None,
        send_at: None,
        next_attempt_at: None,
        budget_base: 0,
        budget_since: now,
        attempts: Vec::new(),
        note: None,
        finished_at: None,
        triggered_by: None,
        requeued_by: None,
    }
}

/// Hands `fire` to the assigned worker for `attempt` at `now` (the command's clock).
///
/// A send held for a later instant (`fire.send_at`, set by a claim ahead for the first
/// attempt; kept by a new dispatch of it, dropped by any later attempt) must not see its lease run out
/// while it waits: the assignment's lease, a lease for a send starting `now`, is moved on by
/// the wait.
fn dispatch_fire(fire: &mut Fire, attempt: u32, assign: Assignment, now: DateTime<Utc>) -> Dispatch {
    if attempt > 1 {
        fire.send_at = None;
    }
    let wait = fire.send_at.map(|at| at.signed_duration_since(now)).filter(|w| *w > chrono::TimeDelta::zero());
    let lease_until = match wait {
        // Clamped to the instant window, like every instant the state keeps.
        Some(wait) => belfry_schedule::instant::saturating_add(assign.lease_until, wait),
        None => assign.lease_until,
    };
    fire.status = FireStatus::Dispatched;
    fire.attempt = attempt;
    fire.worker = Some(assign.worker);
    fire.term = assign.term;
    fire.lease_until = Some(lease_until);
    fire.next_attempt_at = None;
    Dispatch {
        key: fire.key.clone(),
        attempt,
        worker: assign.worker,
        term: assign.term,
        lease_until,
        send_at: fire.send_at.filter(|_| wait.is_some()),
    }
}

/// Moves `fire` to a finished status at `now`.
pub(super) fn finish(fire: &mut Fire, status: FireStatus, now: DateTime<Utc>) {
    fire.status = status;
    fire.finished_at = Some(now);
    fire.next_attempt_at = None;
}
