//! `Command::Restore`: seeding an empty cluster from a backup. A backup is a file from outside,
//! so it is held to what apply() itself could have produced: every job's spec passes today's
//! validation, every instant lies in the instant window, every text is within its bound and
//! every counter far from overflow. Anything else is refused, naming the part at fault.

use belfry_schedule::instant::in_window;
use chrono::{DateTime, Utc};

use super::retention::MAX_FINISHED_LIMIT;
use super::{Data, State};
use crate::command::{Response, MAX_ACTOR_BYTES};
use crate::error::ApplyError;
use crate::fire::{Fire, MAX_BODY_EXCERPT_BYTES, MAX_ERROR_BYTES};
use crate::job::{Job, MAX_HISTORY_COUNT};

/// Largest counter a backup may carry (`next_uid`, `next_seq`, a job's `version`): 2^53, the
/// largest integer every JSON reader (JavaScript's included) holds exactly, and far enough
/// from `u64::MAX` that counting up from it never overflows.
pub const MAX_COUNTER: u64 = 1 << 53;

impl State {
    /// Replaces an empty state with a backup's. Refused once the cluster holds anything, so a
    /// restore can never overwrite live jobs or history, and refused for data this build could
    /// not have produced.
    pub(super) fn restore(&mut self, data: Data) -> Result<Response, ApplyError> {
        if !self.data.jobs.is_empty() || !self.data.retired.is_empty() || !self.data.fires.is_empty() {
            return Err(ApplyError::Conflict { message: "restore needs an empty cluster; this one has jobs".into() });
        }
        if !self.data.tokens.is_empty() {
            return Err(ApplyError::Conflict { message: "restore needs an empty cluster; this one has tokens".into() });
        }
        check_data(&data)?;
        *self = State::from_data(data);
        self.cap_finished();
        Ok(Response::None)
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid { field: field.into(), message: message.into() }
}

fn check_data(data: &Data) -> Result<(), ApplyError> {
    let most = usize::try_from(MAX_HISTORY_COUNT).unwrap_or(usize::MAX);
    if data.history_limit == 0 || data.history_limit > most {
        return Err(invalid("data.history_limit", format!("must be between 1 and {MAX_HISTORY_COUNT}")));
    }
    if data.finished_limit == 0 || data.finished_limit > MAX_FINISHED_LIMIT {
        return Err(invalid("data.finished_limit", format!("must be between 1 and {MAX_FINISHED_LIMIT}")));
    }
    for (field, value) in [("data.next_uid", data.next_uid), ("data.next_seq", data.next_seq)] {
        if value > MAX_COUNTER {
            return Err(invalid(field, format!("must be at most {MAX_COUNTER}")));
        }
    }
    let max_uid = data.jobs.values().chain(data.retired.values()).map(|j| j.uid).max().unwrap_or(0);
    if data.next_uid <= max_uid {
        return Err(invalid("data", "next_uid must be above every job uid"));
    }
    if data.fires.keys().next_back().is_some_and(|seq| *seq >= data.next_seq) {
        return Err(invalid("data", "next_seq must be above every fire sequence number"));
    }
    let mut uids = std::collections::BTreeSet::new();
    for (name, job) in &data.jobs {
        if *name != job.spec.name {
            return Err(invalid("data", "jobs must be keyed by their name"));
        }
        check_job(&format!("data.jobs.{name}"), job)?;
        if !uids.insert(job.uid) {
            return Err(invalid(format!("data.jobs.{name}"), format!("uid {} is used twice", job.uid)));
        }
    }
    for (uid, job) in &data.retired {
        let at = format!("data.retired.{uid}");
        if *uid != job.uid {
            return Err(invalid(at, "retired jobs must be keyed by their uid"));
        }
        check_job(&at, job)?;
        if !uids.insert(job.uid) {
            return Err(invalid(at, format!("uid {uid} is used twice")));
        }
        if !data.fires.values().any(|f| f.job_uid == *uid && !f.status.is_finished()) {
            return Err(invalid(at, "a retired job must have an unfinished fire"));
        }
    }
    super::tokens::check_tokens(&data.tokens)?;
    let mut keys = std::collections::BTreeSet::new();
    for (seq, fire) in &data.fires {
        let at = format!("data.fires.{seq}");
        if fire.seq != *seq {
            return Err(invalid(at, "fires must be keyed by their seq"));
        }
        if !uids.contains(&fire.job_uid) {
            return Err(invalid(at, format!("job uid {} is neither a job nor a retired job", fire.job_uid)));
        }
        if !keys.insert(&fire.key) {
            return Err(invalid(at, format!("key {} is used twice", fire.key)));
        }
        check_fire(&at, fire)?;
    }
    Ok(())
}

fn check_job(at: &str, job: &Job) -> Result<(), ApplyError> {
    job.spec.validate(job.created_at).map_err(|e| match e {
        ApplyError::Invalid { field, message } => invalid(format!("{at}.spec.{field}"), message),
        other => other,
    })?;
    if job.version > MAX_COUNTER {
        return Err(invalid(format!("{at}.version"), format!("must be at most {MAX_COUNTER}")));
    }
    check_actors(at, [job.created_by.as_deref(), job.updated_by.as_deref()])?;
    check_instants(at, [Some(job.created_at), Some(job.updated_at), job.next_fire_at])
}

fn check_fire(at: &str, fire: &Fire) -> Result<(), ApplyError> {
    let instants = [fire.lease_until, fire.send_at, fire.next_attempt_at, fire.finished_at];
    check_instants(at, [Some(fire.scheduled_at), Some(fire.claimed_at), Some(fire.budget_since)])?;
    check_instants(at, instants)?;
    check_actors(at, [fire.triggered_by.as_deref(), fire.requeued_by.as_deref()])?;
    for attempt in &fire.attempts {
        check_instants(at, [Some(attempt.started_at), Some(attempt.finished_at)])?;
        if attempt.error.as_ref().is_some_and(|e| e.len() > MAX_ERROR_BYTES) {
            return Err(invalid(at, format!("an attempt's error is longer than {MAX_ERROR_BYTES} bytes")));
        }
        if attempt.body_excerpt.as_ref().is_some_and(|b| b.len() > MAX_BODY_EXCERPT_BYTES) {
            return Err(invalid(
                at,
                format!("an attempt's body excerpt is longer than {MAX_BODY_EXCERPT_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

fn check_instants<const N: usize>(at: &str, instants: [Option<DateTime<Utc>>; N]) -> Result<(), ApplyError> {
    if instants.into_iter().flatten().all(in_window) {
        Ok(())
    } else {
        Err(invalid(at, "has an instant outside years 1970 to 9999"))
    }
}

fn check_actors<const N: usize>(at: &str, actors: [Option<&str>; N]) -> Result<(), ApplyError> {
    if actors.into_iter().flatten().all(|by| by.len() <= MAX_ACTOR_BYTES) {
        Ok(())
    } else {
        Err(invalid(at, format!("names a writer longer than {MAX_ACTOR_BYTES} bytes")))
    }
}
