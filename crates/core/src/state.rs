//! The replicated state and apply(): the only code that changes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use belfry_schedule::{jitter_offset, parse_duration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::command::{Assignment, Claim, Command, Completion, Redispatch, Response};
use crate::error::ApplyError;
use crate::fire::{Dispatch, Fire, FireKey, FireStatus, ResultClass};
use crate::job::{Job, JobSpec, JobUid, MisfireAction, OverlapPolicy};
use crate::retry::{self, RetryDecision};

mod dead_letters;
mod retention;

/// History kept per job by default (DESIGN.md, "Job policies").
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Most missed instants a misfire decision walks through; beyond it the count is reported as a
/// lower bound, so a job paused for a month costs no more than this to resume.
pub const MAX_CATCH_UP: usize = 10_000;

/// What is replicated and snapshotted. Everything else in [`State`] is an index rebuilt from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Live jobs by name.
    pub jobs: BTreeMap<String, Job>,
    /// Deleted jobs that still have unfinished fires, by uid: their fires still need the target.
    pub retired: BTreeMap<JobUid, Job>,
    /// Every fire kept, by sequence number (claim order).
    pub fires: BTreeMap<u64, Fire>,
    /// The next job uid to assign.
    pub next_uid: JobUid,
    /// The next fire sequence number to assign.
    pub next_seq: u64,
    /// Finished fires kept per job.
    pub history_limit: usize,
}

/// The state machine: [`Data`] plus indexes, and [`State::apply`].
#[derive(Debug, Clone)]
pub struct State {
    data: Data,
    names: HashMap<JobUid, String>,
    keys: HashMap<FireKey, u64>,
    /// `(due instant in ms, uid)` for every unpaused job with a next instant: the ticker's queue.
    due: BTreeSet<(i64, JobUid)>,
    /// `(status, seq)` for every fire.
    by_status: BTreeSet<(FireStatus, u64)>,
    /// `(next attempt in ms, seq)` for retry-waiting fires.
    retries: BTreeSet<(i64, u64)>,
    /// Fire sequence numbers per job, oldest first.
    history: HashMap<JobUid, BTreeSet<u64>>,
    /// `(expiry in ms, seq)` for finished fires of jobs with a `history.max_age`.
    expiry: BTreeSet<(i64, u64)>,
    /// The expiry of each fire in `expiry`, by seq.
    expiry_of: HashMap<u64, i64>,
}

impl Default for State {
    fn default() -> Self {
        State::from_data(Data { history_limit: DEFAULT_HISTORY_LIMIT, next_uid: 1, next_seq: 1, ..Data::default() })
    }
}

impl State {
    /// Rebuilds the indexes of `data` (after a snapshot install or a restart).
    pub fn from_data(data: Data) -> State {
        let mut state = State {
            data,
            names: HashMap::new(),
            keys: HashMap::new(),
            due: BTreeSet::new(),
            by_status: BTreeSet::new(),
            retries: BTreeSet::new(),
            history: HashMap::new(),
            expiry: BTreeSet::new(),
            expiry_of: HashMap::new(),
        };
        let jobs: Vec<Job> = state.data.jobs.values().cloned().collect();
        for job in &jobs {
            state.names.insert(job.uid, job.spec.name.clone());
            state.index_job(job);
        }
        for (seq, f) in &state.data.fires {
            state.keys.insert(f.key.clone(), *seq);
            state.by_status.insert((f.status, *seq));
            state.history.entry(f.job_uid).or_default().insert(*seq);
            if let (FireStatus::RetryWaiting, Some(at)) = (f.status, f.next_attempt_at) {
                state.retries.insert((at.timestamp_millis(), *seq));
            }
        }
        let seqs: Vec<u64> = state.data.fires.keys().copied().collect();
        for seq in seqs {
            state.index_expiry(seq);
        }
        state
    }

    /// The replicated data, for snapshots.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// Applies one command committed at `index`. Deterministic: no clock, no IO, no randomness.
    pub fn apply(&mut self, index: u64, command: Command) -> Response {
        if let Some(now) = command.now() {
            self.expire_history(now);
        }
        let result = match command {
            Command::CreateJob { spec, now } => self.create_job(spec, now),
            Command::ReplaceJob { spec, if_version, now } => self.replace_job(spec, if_version, now),
            Command::DeleteJob { name } => self.delete_job(&name),
            Command::PauseJob { name, now } => self.set_paused(&name, true, now),
            Command::ResumeJob { name, now } => self.set_paused(&name, false, now),
            Command::TriggerJob { name, now } => self.trigger(index, &name, now),
            Command::Fire { now, claims, redispatches } => Ok(self.fire(now, claims, redispatches)),
            Command::Complete { now, completions } => Ok(self.complete(now, completions)),
            Command::Requeue { key, now } => self.requeue(&key, now),
            Command::RequeueDeadLetters { select, now } => self.requeue_selected(&select, now),
            Command::PurgeDeadLetters { select, .. } => self.purge_selected(&select),
            Command::Restore { data } => self.restore(*data),
        };
        result.unwrap_or_else(|error| Response::Rejected { error })
    }

    /// Replaces an empty state with a backup's. Refused once the cluster holds anything, so a
    /// restore can never overwrite live jobs or history.
    fn restore(&mut self, data: Data) -> Result<Response, ApplyError> {
        if !self.data.jobs.is_empty() || !self.data.retired.is_empty() || !self.data.fires.is_empty() {
            return Err(ApplyError::Conflict { message: "restore needs an empty cluster; this one has jobs".into() });
        }
        let invalid = |message: &str| ApplyError::Invalid { field: "data".into(), message: message.into() };
        let max_uid = data.jobs.values().chain(data.retired.values()).map(|j| j.uid).max().unwrap_or(0);
        if data.next_uid <= max_uid {
            return Err(invalid("next_uid must be above every job uid"));
        }
        if data.fires.keys().next_back().is_some_and(|seq| *seq >= data.next_seq) {
            return Err(invalid("next_seq must be above every fire sequence number"));
        }
        if data.history_limit == 0 {
            return Err(invalid("history_limit must be positive"));
        }
        if data.jobs.iter().any(|(name, job)| *name != job.spec.name) {
            return Err(invalid("jobs must be keyed by their name"));
        }
        *self = State::from_data(data);
        Ok(Response::None)
    }

    // ---- jobs -------------------------------------------------------------------------------

    fn create_job(&mut self, spec: JobSpec, now: DateTime<Utc>) -> Result<Response, ApplyError> {
        let schedule = spec.validate(now)?;
        if self.data.jobs.contains_key(&spec.name) {
            return Err(ApplyError::AlreadyExists { name: spec.name });
        }
        let uid = self.data.next_uid;
        self.data.next_uid += 1;
        let job = Job {
            uid,
            next_fire_at: schedule.next_after(now - chrono::Duration::milliseconds(1)),
            spec,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.names.insert(uid, job.spec.name.clone());
        self.index_job(&job);
        self.data.jobs.insert(job.spec.name.clone(), job.clone());
        Ok(Response::Job { job: Box::new(job) })
    }

    fn replace_job(
        &mut self,
        spec: JobSpec,
        if_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Response, ApplyError> {
        let old = self.data.jobs.get(&spec.name).ok_or_else(|| ApplyError::job_not_found(&spec.name))?.clone();
        if let Some(expected) = if_version.filter(|v| *v != old.version) {
            return Err(ApplyError::VersionMismatch { expected, current: old.version });
        }
        let schedule = crate::job::JobSpec::validate(&spec, old.created_at)?;
        let mut job = old.clone();
        if spec.schedule != old.spec.schedule {
            job.next_fire_at = schedule.next_after(now - chrono::Duration::milliseconds(1));
        }
        let retention_changed = spec.history != old.spec.history;
        job.spec = spec;
        job.version += 1;
        job.updated_at = now;
        self.store_job(&old, job.clone());
        if retention_changed {
            self.retention_changed(job.uid, now);
        }
        Ok(Response::Job { job: Box::new(job) })
    }

    fn delete_job(&mut self, name: &str) -> Result<Response, ApplyError> {
        let job = self.data.jobs.remove(name).ok_or_else(|| ApplyError::job_not_found(name))?;
        self.unindex_job(&job);
        self.names.remove(&job.uid);
        let seqs: Vec<u64> = self.history.get(&job.uid).into_iter().flatten().copied().collect();
        let mut unfinished = false;
        for seq in seqs {
            if self.data.fires[&seq].status.is_finished() {
                self.remove_fire(seq);
            } else {
                unfinished = true;
            }
        }
        if unfinished {
            self.data.retired.insert(job.uid, job);
        }
        Ok(Response::Deleted)
    }

    fn set_paused(&mut self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<Response, ApplyError> {
        let old = self.data.jobs.get(name).ok_or_else(|| ApplyError::job_not_found(name))?.clone();
        let mut job = old.clone();
        if job.spec.paused != paused {
            job.spec.paused = paused;
            job.version += 1;
            job.updated_at = now;
            self.store_job(&old, job.clone());
        }
        Ok(Response::Job { job: Box::new(job) })
    }

    fn trigger(&mut self, index: u64, name: &str, now: DateTime<Utc>) -> Result<Response, ApplyError> {
        let job = self.data.jobs.get(name).ok_or_else(|| ApplyError::job_not_found(name))?;
        let key = FireKey::manual(job.uid, index);
        self.insert_fire(new_fire(key.clone(), job, now, now, true));
        Ok(Response::Triggered { key })
    }

    /// Replaces `old` by `job`, keeping the due index in step.
    fn store_job(&mut self, old: &Job, job: Job) {
        self.unindex_job(old);
        self.index_job(&job);
        self.data.jobs.insert(job.spec.name.clone(), job);
    }

    fn index_job(&mut self, job: &Job) {
        if let Some(due) = due_at(job) {
            self.due.insert((due.timestamp_millis(), job.uid));
        }
    }

    fn unindex_job(&mut self, job: &Job) {
        if let Some(due) = due_at(job) {
            self.due.remove(&(due.timestamp_millis(), job.uid));
        }
    }

    // ---- fires ------------------------------------------------------------------------------

    fn fire(&mut self, now: DateTime<Utc>, claims: Vec<Claim>, redispatches: Vec<Redispatch>) -> Response {
        let mut dispatches = Vec::new();
        for claim in claims {
            dispatches.extend(self.claim(now, claim));
        }
        for r in redispatches {
            dispatches.extend(self.redispatch(r));
        }
        Response::Dispatches { dispatches }
    }

    /// Claims one instant of a job. A claim that does not name the job's current `next_fire_at`
    /// (already claimed, or from a stale leader) changes nothing: this is what makes a duplicate
    /// or stale proposal harmless even after old keys are pruned.
    fn claim(&mut self, now: DateTime<Utc>, claim: Claim) -> Option<Dispatch> {
        let name = self.names.get(&claim.job_uid)?;
        let old = self.data.jobs.get(name)?.clone();
        if old.spec.paused || old.next_fire_at != Some(claim.scheduled_at) {
            return None;
        }
        let schedule = old.schedule().ok()?;
        let mut job = old.clone();
        let key = FireKey::scheduled(job.uid, claim.scheduled_at);
        if self.keys.contains_key(&key) {
            job.next_fire_at = schedule.next_after(claim.scheduled_at);
            self.store_job(&old, job);
            return None;
        }

        let due = due_at(&old).unwrap_or(claim.scheduled_at);
        let misfire = old.spec.misfire;
        let late = now - due;
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
                    job.next_fire_at = schedule.next_after(last);
                    self.store_job(&old, job.clone());
                    let mut fire = new_fire(key, &job, claim.scheduled_at, now, false);
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

        job.next_fire_at = schedule.next_after(scheduled_at);
        self.store_job(&old, job.clone());
        let key = FireKey::scheduled(job.uid, scheduled_at);
        let mut fire = new_fire(key, &job, scheduled_at, now, false);
        fire.note = note;

        let running = self.job_fires(job.uid).any(|f| f.status.is_in_flight());
        let buffered = self.job_fires(job.uid).any(|f| f.status == FireStatus::Queued);
        let overlap_note = match job.spec.overlap {
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
        let dispatch = dispatch_fire(&mut fire, 1, claim.assign);
        self.insert_fire(fire);
        Some(dispatch)
    }

    /// Dispatches an existing fire again. Valid transitions only: the next attempt of a
    /// retry-waiting or queued fire, or the same attempt of a dispatched fire (a new worker after
    /// its lease ran out). Anything else is a stale proposal and changes nothing.
    fn redispatch(&mut self, r: Redispatch) -> Option<Dispatch> {
        let seq = *self.keys.get(&r.key)?;
        let fire = self.data.fires.get(&seq)?;
        let valid = match fire.status {
            FireStatus::RetryWaiting | FireStatus::Queued => r.attempt == fire.attempt + 1,
            FireStatus::Dispatched => r.attempt == fire.attempt && r.assign.term >= fire.term,
            _ => false,
        };
        if !valid {
            return None;
        }
        let mut fire = fire.clone();
        let dispatch = dispatch_fire(&mut fire, r.attempt, r.assign);
        self.replace_fire(seq, fire);
        Some(dispatch)
    }

    fn complete(&mut self, now: DateTime<Utc>, completions: Vec<Completion>) -> Response {
        for c in completions {
            let Some(&seq) = self.keys.get(&c.key) else {
                continue;
            };
            let fire = &self.data.fires[&seq];
            if fire.status != FireStatus::Dispatched || fire.attempt != c.attempt.number {
                continue;
            }
            let mut fire = fire.clone();
            let policy = self.job_by_uid(fire.job_uid).map(|j| j.spec.retry).unwrap_or_default();
            let decision = match c.attempt.class {
                ResultClass::Success => None,
                _ => Some(retry::decide(&policy, &fire, &c.attempt, now)),
            };
            fire.attempts.push(c.attempt);
            fire.lease_until = None;
            match decision {
                None => finish(&mut fire, FireStatus::Succeeded, now),
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

    fn insert_fire(&mut self, mut fire: Fire) {
        let seq = self.data.next_seq;
        self.data.next_seq += 1;
        fire.seq = seq;
        let uid = fire.job_uid;
        self.keys.insert(fire.key.clone(), seq);
        self.by_status.insert((fire.status, seq));
        self.data.fires.insert(seq, fire);
        self.history.entry(uid).or_default().insert(seq);
        self.index_expiry(seq);
        self.prune_history(uid);
    }

    /// Stores a changed fire, keeping the status and retry indexes in step.
    fn replace_fire(&mut self, seq: u64, fire: Fire) {
        let old = &self.data.fires[&seq];
        self.by_status.remove(&(old.status, seq));
        if let Some(at) = old.next_attempt_at.filter(|_| old.status == FireStatus::RetryWaiting) {
            self.retries.remove(&(at.timestamp_millis(), seq));
        }
        self.by_status.insert((fire.status, seq));
        if let Some(at) = fire.next_attempt_at.filter(|_| fire.status == FireStatus::RetryWaiting) {
            self.retries.insert((at.timestamp_millis(), seq));
        }
        let uid = fire.job_uid;
        let finished = fire.status.is_finished();
        self.data.fires.insert(seq, fire);
        self.index_expiry(seq);
        if finished {
            self.prune_history(uid);
        }
    }

    fn remove_fire(&mut self, seq: u64) {
        let Some(fire) = self.data.fires.remove(&seq) else {
            return;
        };
        self.unindex_expiry(seq);
        self.keys.remove(&fire.key);
        self.by_status.remove(&(fire.status, seq));
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

    // ---- reads ------------------------------------------------------------------------------

    /// A live job by name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.data.jobs.get(name)
    }

    /// A live or retired job by uid.
    pub fn job_by_uid(&self, uid: JobUid) -> Option<&Job> {
        match self.names.get(&uid) {
            Some(name) => self.data.jobs.get(name),
            None => self.data.retired.get(&uid),
        }
    }

    /// Live jobs in name order, starting after `after`.
    pub fn jobs_after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a Job> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        self.data.jobs.range((start, Bound::Unbounded)).map(|(_, j)| j)
    }

    /// Number of live jobs.
    pub fn job_count(&self) -> usize {
        self.data.jobs.len()
    }

    /// A fire by key.
    pub fn fire_by_key(&self, key: &FireKey) -> Option<&Fire> {
        self.keys.get(key).and_then(|seq| self.data.fires.get(seq))
    }

    /// Fires newest first, optionally with one status, with `seq` below `before`.
    pub fn fires_before(
        &self,
        before: Option<u64>,
        status: Option<FireStatus>,
    ) -> Box<dyn Iterator<Item = &Fire> + '_> {
        let before = before.unwrap_or(u64::MAX);
        match status {
            Some(st) => {
                Box::new(self.by_status.range((st, 0)..(st, before)).rev().map(move |(_, seq)| &self.data.fires[seq]))
            }
            None => Box::new(self.data.fires.range(..before).rev().map(|(_, f)| f)),
        }
    }

    /// A job's fires, oldest first.
    pub fn job_fires(&self, uid: JobUid) -> impl DoubleEndedIterator<Item = &Fire> + '_ {
        self.history.get(&uid).into_iter().flatten().map(move |seq| &self.data.fires[seq])
    }

    /// Fires with a given status, oldest first.
    pub fn fires_with_status(&self, status: FireStatus) -> impl Iterator<Item = &Fire> + '_ {
        self.by_status.range((status, 0)..=(status, u64::MAX)).map(move |(_, seq)| &self.data.fires[seq])
    }

    /// Number of fires with a given status.
    pub fn count_status(&self, status: FireStatus) -> usize {
        self.by_status.range((status, 0)..=(status, u64::MAX)).count()
    }

    pub(crate) fn due_jobs(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Job> + '_ {
        let now = now.timestamp_millis();
        self.due.iter().take_while(move |(due, _)| *due <= now).filter_map(move |(_, uid)| self.job_by_uid(*uid))
    }

    pub(crate) fn due_retries(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Fire> + '_ {
        let now = now.timestamp_millis();
        self.retries.iter().take_while(move |(at, _)| *at <= now).map(move |(_, seq)| &self.data.fires[seq])
    }

    /// The earliest instant at which a job or a retry falls due, for the ticker's sleep.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let job = self.due.first().map(|(ms, _)| *ms);
        let retry = self.retries.first().map(|(ms, _)| *ms);
        job.into_iter().chain(retry).min().and_then(DateTime::from_timestamp_millis)
    }
}

/// When a job's next fire is due: its instant plus the key's jitter. `None` when paused or done.
pub fn due_at(job: &Job) -> Option<DateTime<Utc>> {
    if job.spec.paused {
        return None;
    }
    let at = job.next_fire_at?;
    let jitter = job.spec.schedule.jitter.as_deref().and_then(|j| parse_duration(j).ok()).unwrap_or_default();
    let offset = jitter_offset(jitter, FireKey::scheduled(job.uid, at).as_str());
    Some(at + chrono::Duration::milliseconds(offset.as_millis() as i64))
}

fn new_fire(key: FireKey, job: &Job, scheduled_at: DateTime<Utc>, now: DateTime<Utc>, manual: bool) -> Fire {
    Fire {
        key,
        seq: 0,
        job_uid: job.uid,
        job_name: job.spec.name.clone(),
        scheduled_at,
        claimed_at: now,
        manual,
        status: FireStatus::Queued,
        attempt: 0,
        worker: None,
        term: 0,
        lease_until: None,
        next_attempt_at: None,
        budget_base: 0,
        budget_since: now,
        attempts: Vec::new(),
        note: None,
        finished_at: None,
    }
}

fn dispatch_fire(fire: &mut Fire, attempt: u32, assign: Assignment) -> Dispatch {
    fire.status = FireStatus::Dispatched;
    fire.attempt = attempt;
    fire.worker = Some(assign.worker);
    fire.term = assign.term;
    fire.lease_until = Some(assign.lease_until);
    fire.next_attempt_at = None;
    Dispatch {
        key: fire.key.clone(),
        attempt,
        worker: assign.worker,
        term: assign.term,
        lease_until: assign.lease_until,
    }
}

fn finish(fire: &mut Fire, status: FireStatus, now: DateTime<Utc>) {
    fire.status = status;
    fire.finished_at = Some(now);
    fire.next_attempt_at = None;
}
