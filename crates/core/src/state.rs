//! The replicated state and apply(): the only code that changes it.
//!
//! apply() is total: whatever a command carries (a forged claim, a worker's report of a hostile
//! target's answer, a clock anywhere in chrono's range), it answers a [`Response`] and leaves
//! the indexes consistent with [`Data`] ([`State::check_indexes`]). Specs are bounded at
//! validation, instants from outside are clamped into the window of
//! `belfry_schedule::instant`, and all arithmetic on times and counters is checked or
//! saturating.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use belfry_schedule::instant::{clamp_instant, saturating_add};
use belfry_schedule::{jitter_offset, parse_duration, Schedule};
use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::command::{Command, Response};
use crate::error::ApplyError;
use crate::fire::{Fire, FireKey, FireStatus};
use crate::job::{Job, JobSpec, JobUid};

mod batch;
mod dead_letters;
mod fires;
mod indexes;
mod restore;
mod retention;
pub mod summary;
pub mod tokens;

use fires::new_fire;

/// History kept per job by default (DESIGN.md, "Job policies").
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
pub use retention::{DEFAULT_FINISHED_LIMIT, MAX_FINISHED_LIMIT};
/// Most missed instants a misfire decision walks through; beyond it the count is reported as a
/// lower bound, so a job paused for a month costs no more than this to resume.
pub const MAX_CATCH_UP: usize = 10_000;

/// What is replicated and snapshotted. Everything else in [`State`] is an index rebuilt from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Live jobs by name.
    pub jobs: BTreeMap<CompactString, Box<Job>>,
    /// Deleted jobs that still have unfinished fires, by uid: their fires still need the target.
    pub retired: BTreeMap<JobUid, Box<Job>>,
    /// Every fire kept, by sequence number (claim order).
    pub fires: BTreeMap<u64, Box<Fire>>,
    /// The next job uid to assign.
    pub next_uid: JobUid,
    /// The next fire sequence number to assign.
    pub next_seq: u64,
    /// Finished fires kept per job.
    pub history_limit: usize,
    /// Finished fires kept in all, across every job: past it the oldest go first, dead letters
    /// last (DESIGN.md, "History"). Defaulted so that snapshots and backups from before the
    /// cap still load.
    #[serde(default = "retention::default_finished_limit")]
    pub finished_limit: usize,
    /// API tokens by id (never the bootstrap token, which each node holds in memory).
    /// Defaulted so that snapshots and backups from before tokens existed still load.
    #[serde(default)]
    pub tokens: BTreeMap<String, tokens::Token>,
}

/// The state machine: [`Data`] plus indexes, and [`State::apply`].
#[derive(Debug, Clone)]
pub struct State {
    data: Data,
    names: HashMap<JobUid, CompactString>,
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
    /// How many fires in [`Data::fires`] are finished: held to [`Data::finished_limit`].
    finished: usize,
}

impl Default for State {
    fn default() -> Self {
        State::from_data(Data {
            history_limit: DEFAULT_HISTORY_LIMIT,
            finished_limit: DEFAULT_FINISHED_LIMIT,
            next_uid: 1,
            next_seq: 1,
            ..Data::default()
        })
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
            finished: 0,
        };
        for job in state.data.jobs.values() {
            state.names.insert(job.uid, job.spec.name.clone());
            state.due.extend(due_key(job));
        }
        for (seq, f) in &state.data.fires {
            state.keys.insert(f.key.clone(), *seq);
            state.by_status.insert((f.status, *seq));
            state.finished += usize::from(f.status.is_finished());
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
    /// Never panics: the command's instants are first clamped into the instant window
    /// ([`Command::clamped`]), and every refusal is a [`Response::Rejected`].
    pub fn apply(&mut self, index: u64, command: Command) -> Response {
        let command = command.clamped();
        if let Some(now) = command.now() {
            self.expire_history(now);
        }
        let result = match command {
            Command::CreateJob { spec, now, by, max_jobs } => self.create_job(spec, now, by, max_jobs),
            Command::CreateJobs { specs, now, by, max_jobs } => self.create_jobs(specs, now, by, max_jobs),
            Command::ReplaceJob { spec, if_version, now, by } => self.replace_job(spec, if_version, now, by),
            Command::DeleteJob { name } => self.delete_job(&name),
            Command::PauseJob { name, now, by } => self.set_paused(&name, true, now, by),
            Command::ResumeJob { name, now, by } => self.set_paused(&name, false, now, by),
            Command::TriggerJob { name, now, by } => self.trigger(index, &name, now, by),
            Command::Fire { now, claims, redispatches } => Ok(self.fire(now, claims, redispatches)),
            Command::Complete { now, completions } => Ok(self.complete(now, completions)),
            Command::Requeue { key, now, by } => self.requeue(&key, now, by),
            Command::RequeueDeadLetters { select, now, by } => self.requeue_selected(&select, now, by),
            Command::PurgeDeadLetters { select, .. } => self.purge_selected(&select),
            Command::Restore { data } => self.restore(*data),
            Command::CreateToken { id, role, name, secret_sha256, now, by } => {
                self.create_token(tokens::Token { id, role, name, secret_sha256, created_at: now, created_by: by })
            }
            Command::RevokeToken { id } => self.revoke_token(&id),
        };
        result.unwrap_or_else(|error| Response::Rejected { error })
    }

    // ---- jobs -------------------------------------------------------------------------------

    fn create_job(
        &mut self,
        spec: JobSpec,
        now: DateTime<Utc>,
        by: Option<String>,
        max_jobs: Option<u64>,
    ) -> Result<Response, ApplyError> {
        let schedule = spec.validate(now)?;
        if self.data.jobs.contains_key(&spec.name) {
            return Err(ApplyError::AlreadyExists { name: spec.name.to_string() });
        }
        if let Some(limit) = max_jobs.filter(|limit| self.data.jobs.len() as u64 >= *limit) {
            return Err(ApplyError::QuotaExceeded { what: "jobs".into(), limit });
        }
        let uid = self.take_uids(1)?;
        let job = new_job(uid, spec, &schedule, now, by);
        self.insert_job(job.clone());
        Ok(Response::Job { job: Box::new(job) })
    }

    /// Reserves `n` consecutive job uids and returns the first; refused, changing nothing, when
    /// fewer than that are left.
    fn take_uids(&mut self, n: u64) -> Result<JobUid, ApplyError> {
        let first = self.data.next_uid;
        self.data.next_uid =
            first.checked_add(n).ok_or_else(|| ApplyError::Conflict { message: "job uids are exhausted".into() })?;
        Ok(first)
    }

    /// Adds a new job (its name free) with its indexes.
    fn insert_job(&mut self, job: Job) {
        self.names.insert(job.uid, job.spec.name.clone());
        self.index_job(&job);
        self.data.jobs.insert(job.spec.name.clone(), Box::new(job));
    }

    fn replace_job(
        &mut self,
        spec: JobSpec,
        if_version: Option<u64>,
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Response, ApplyError> {
        let old = self.data.jobs.get(&spec.name).ok_or_else(|| ApplyError::job_not_found(&spec.name))?;
        if let Some(expected) = if_version.filter(|v| *v != old.version) {
            return Err(ApplyError::VersionMismatch { expected, current: old.version });
        }
        let schedule = crate::job::JobSpec::validate(&spec, old.created_at)?;
        let retention_changed = spec.history != old.spec.history;
        let schedule_changed = spec.schedule != old.spec.schedule;
        let mut job = Job { spec, ..Job::clone(old) };
        if schedule_changed {
            job.next_fire_at = schedule.first_at_or_after(now);
        }
        job.version = job.version.saturating_add(1);
        job.updated_at = now;
        job.updated_by = by.map(CompactString::from);
        let uid = job.uid;
        let response = Response::Job { job: Box::new(job.clone()) };
        self.store_job(job);
        if retention_changed {
            self.retention_changed(uid, now);
        }
        Ok(response)
    }

    /// Deletes a job. Its queued and retry-waiting fires are cancelled and, like its finished
    /// fires, forgotten with it; a dispatched fire finishes its current attempt under the
    /// retired job, and its completion never schedules another (a retry it would have earned
    /// ends it as cancelled, note "job deleted").
    fn delete_job(&mut self, name: &str) -> Result<Response, ApplyError> {
        let job = self.data.jobs.remove(name).ok_or_else(|| ApplyError::job_not_found(name))?;
        self.unindex_job(&job);
        self.names.remove(&job.uid);
        let seqs: Vec<u64> = self.history.get(&job.uid).into_iter().flatten().copied().collect();
        let mut in_flight = false;
        for seq in seqs {
            match self.data.fires.get(&seq).map(|f| f.status) {
                Some(FireStatus::Dispatched) => in_flight = true,
                // Finished fires go with the job. Queued and retry-waiting ones are cancelled:
                // no attempt of them starts any more, and they go with the job in this same
                // command, so the cancellation itself is never on record.
                Some(_) => self.remove_fire(seq),
                None => {}
            }
        }
        if in_flight {
            self.data.retired.insert(job.uid, job);
        }
        Ok(Response::Deleted)
    }

    fn set_paused(
        &mut self,
        name: &str,
        paused: bool,
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Response, ApplyError> {
        let mut job = Job::clone(self.data.jobs.get(name).ok_or_else(|| ApplyError::job_not_found(name))?);
        if job.spec.paused != paused {
            job.spec.paused = paused;
            job.version = job.version.saturating_add(1);
            job.updated_at = now;
            job.updated_by = by.map(CompactString::from);
            self.store_job(job.clone());
        }
        Ok(Response::Job { job: Box::new(job) })
    }

    fn trigger(
        &mut self,
        index: u64,
        name: &str,
        now: DateTime<Utc>,
        by: Option<String>,
    ) -> Result<Response, ApplyError> {
        let job = self.data.jobs.get(name).ok_or_else(|| ApplyError::job_not_found(name))?;
        let key = FireKey::manual(job.uid, index);
        if self.keys.contains_key(&key) {
            return Err(ApplyError::Conflict { message: format!("execution {key} exists already") });
        }
        let mut fire = new_fire(key.clone(), job.uid, job.spec.name.clone(), now, now, true);
        fire.triggered_by = by;
        self.insert_fire(fire);
        Ok(Response::Triggered { key })
    }

    /// Replaces a live job by `job` (same uid), keeping the due index in step.
    fn store_job(&mut self, job: Job) {
        self.update_job(job.uid, |slot| *slot = job);
    }

    /// Sets a live job's `next_fire_at` in place, keeping the due index in step.
    fn set_next_fire(&mut self, uid: JobUid, next: Option<DateTime<Utc>>) {
        self.update_job(uid, |job| job.next_fire_at = next);
    }

    /// Changes a live job in place, moving its entry in the due index with it.
    fn update_job(&mut self, uid: JobUid, change: impl FnOnce(&mut Job)) {
        let Some(job) = self.names.get(&uid).and_then(|name| self.data.jobs.get_mut(name)) else { return };
        if let Some(key) = due_key(job) {
            self.due.remove(&key);
        }
        change(job);
        if let Some(key) = due_key(job) {
            self.due.insert(key);
        }
    }

    fn index_job(&mut self, job: &Job) {
        if let Some(key) = due_key(job) {
            self.due.insert(key);
        }
    }

    fn unindex_job(&mut self, job: &Job) {
        if let Some(key) = due_key(job) {
            self.due.remove(&key);
        }
    }

    // ---- reads ------------------------------------------------------------------------------

    /// A live job by name.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.data.jobs.get(name).map(|j| &**j)
    }

    /// Whether `uid` is a live (not deleted) job.
    pub fn is_live(&self, uid: JobUid) -> bool {
        self.names.contains_key(&uid)
    }

    /// A live or retired job by uid.
    pub fn job_by_uid(&self, uid: JobUid) -> Option<&Job> {
        match self.names.get(&uid) {
            Some(name) => self.data.jobs.get(name).map(|j| &**j),
            None => self.data.retired.get(&uid).map(|j| &**j),
        }
    }

    /// Live jobs in name order, starting after `after`.
    pub fn jobs_after<'a>(&'a self, after: Option<&str>) -> impl Iterator<Item = &'a Job> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.data.jobs.range::<str, _>((start, Bound::Unbounded)).map(|(_, j)| &**j)
    }

    /// Live jobs whose names start with `prefix`, in name order, starting after `after`.
    pub fn jobs_with_prefix<'a>(&'a self, prefix: &'a str, after: Option<&str>) -> impl Iterator<Item = &'a Job> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        self.data
            .jobs
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(_, j)| &**j)
            .take_while(move |j| j.spec.name.starts_with(prefix))
    }

    /// Number of live jobs.
    pub fn job_count(&self) -> usize {
        self.data.jobs.len()
    }

    /// A fire by key.
    pub fn fire_by_key(&self, key: &FireKey) -> Option<&Fire> {
        self.keys.get(key).and_then(|seq| self.data.fires.get(seq)).map(|f| &**f)
    }

    /// Fires newest first, optionally with one status, with `seq` below `before`.
    pub fn fires_before(
        &self,
        before: Option<u64>,
        status: Option<FireStatus>,
    ) -> Box<dyn Iterator<Item = &Fire> + '_> {
        let before = before.unwrap_or(u64::MAX);
        match status {
            Some(st) => Box::new(
                self.by_status
                    .range((st, 0)..(st, before))
                    .rev()
                    .filter_map(move |(_, seq)| self.data.fires.get(seq).map(|f| &**f)),
            ),
            None => Box::new(self.data.fires.range(..before).rev().map(|(_, f)| &**f)),
        }
    }

    /// A job's fires, oldest first.
    pub fn job_fires(&self, uid: JobUid) -> impl DoubleEndedIterator<Item = &Fire> + '_ {
        self.history.get(&uid).into_iter().flatten().filter_map(move |seq| self.data.fires.get(seq).map(|f| &**f))
    }

    /// Fires with a given status, oldest first.
    pub fn fires_with_status(&self, status: FireStatus) -> impl Iterator<Item = &Fire> + '_ {
        self.by_status
            .range((status, 0)..=(status, u64::MAX))
            .filter_map(move |(_, seq)| self.data.fires.get(seq).map(|f| &**f))
    }

    /// Number of fires with a given status.
    pub fn count_status(&self, status: FireStatus) -> usize {
        self.by_status.range((status, 0)..=(status, u64::MAX)).count()
    }

    /// Jobs due at or before `until`, with the instant they are due (unix ms), soonest first.
    pub(crate) fn due_jobs_with_instant(&self, until: DateTime<Utc>) -> impl Iterator<Item = (i64, &Job)> + '_ {
        let until = until.timestamp_millis();
        self.due
            .iter()
            .take_while(move |(due, _)| *due <= until)
            .filter_map(move |(due, uid)| self.job_by_uid(*uid).map(|job| (*due, job)))
    }

    pub(crate) fn due_retries(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Fire> + '_ {
        let now = now.timestamp_millis();
        self.retries
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .filter_map(move |(_, seq)| self.data.fires.get(seq).map(|f| &**f))
    }

    /// The earliest instant at which a job or a retry falls due, for the ticker's sleep.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let job = self.due.first().map(|(ms, _)| *ms);
        let retry = self.retries.first().map(|(ms, _)| *ms);
        job.into_iter().chain(retry).min().and_then(DateTime::from_timestamp_millis)
    }

    /// The earliest instant `t` at which `due_ahead(t, t + lookahead)` holds a claim or a
    /// retry, for the ticker's sleep: a job that may overlap is claimable `lookahead` before it
    /// is due, any other job and every retry once due.
    pub fn next_claimable(&self, lookahead: chrono::TimeDelta) -> Option<DateTime<Utc>> {
        let lookahead_ms = lookahead.num_milliseconds().max(0);
        let mut best = self.retries.first().map(|(ms, _)| *ms);
        for (due, job) in self.due_jobs_with_instant(DateTime::<Utc>::MAX_UTC) {
            if best.is_some_and(|b| b <= due.saturating_sub(lookahead_ms)) {
                // Sorted by due instant: no later job can be claimable sooner.
                break;
            }
            let at = if job.spec.overlap == crate::job::OverlapPolicy::Allow {
                due.saturating_sub(lookahead_ms)
            } else {
                due
            };
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best.and_then(DateTime::from_timestamp_millis)
    }
}

/// A job as created at `now` by `by`, from a spec already validated into `schedule`.
fn new_job(uid: JobUid, spec: JobSpec, schedule: &Schedule, now: DateTime<Utc>, by: Option<String>) -> Job {
    Job {
        uid,
        next_fire_at: schedule.first_at_or_after(now),
        spec,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: by.clone().map(CompactString::from),
        updated_by: by.map(CompactString::from),
    }
}

/// The job's entry in the due index.
fn due_key(job: &Job) -> Option<(i64, JobUid)> {
    due_at(job).map(|due| (due.timestamp_millis(), job.uid))
}

/// When a job's next fire is due: its instant plus the key's jitter, saturating at the end of
/// the instant window. `None` when paused or done.
pub fn due_at(job: &Job) -> Option<DateTime<Utc>> {
    if job.spec.paused {
        return None;
    }
    let at = job.next_fire_at?;
    let jitter = job.spec.schedule.jitter.as_deref().and_then(|j| parse_duration(j).ok()).unwrap_or_default();
    let offset = jitter_offset(jitter, FireKey::scheduled(job.uid, at).as_str());
    let offset = chrono::TimeDelta::from_std(offset).unwrap_or(chrono::TimeDelta::MAX);
    Some(saturating_add(clamp_instant(at), offset))
}
