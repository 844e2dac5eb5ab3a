//! Batch create ([`Command::CreateJobs`](crate::Command::CreateJobs)): many jobs in one entry, all or none.
//!
//! The API validated the batch against the state it read, but another write may have landed
//! between that read and this entry (a job created under one of the names, jobs that used up the
//! `max_jobs` room), and a forwarded entry is not trusted anyway. So apply checks everything
//! again, against the state as it is at this index, before it changes anything: each spec is
//! valid, its name is free and not given twice in the batch, the batch fits under `max_jobs`,
//! and enough uids are left. The first spec that fails refuses the batch, named by its index
//! ([`ApplyError::Item`]); only once all pass are the jobs inserted, by steps that cannot fail.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{new_job, State};
use crate::command::{CreatedJob, Response, MAX_BATCH_JOBS};
use crate::error::ApplyError;
use crate::job::JobSpec;

impl State {
    pub(super) fn create_jobs(
        &mut self,
        specs: Vec<JobSpec>,
        now: DateTime<Utc>,
        by: Option<String>,
        max_jobs: Option<u64>,
    ) -> Result<Response, ApplyError> {
        if specs.is_empty() || specs.len() > MAX_BATCH_JOBS {
            return Err(ApplyError::invalid("jobs", format!("must hold 1 to {MAX_BATCH_JOBS} job specs")));
        }
        let mut schedules = Vec::with_capacity(specs.len());
        let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            schedules.push(spec.validate(now).map_err(|e| e.at(index))?);
            if self.data.jobs.contains_key(&spec.name) {
                return Err(ApplyError::AlreadyExists { name: spec.name.to_string() }.at(index));
            }
            if let Some(first) = first_at.insert(&spec.name, index) {
                let message = format!("job {} is also at index {first} of the batch", spec.name);
                return Err(ApplyError::invalid("name", message).at(index));
            }
        }
        let count = specs.len() as u64;
        if let Some(limit) = max_jobs {
            let room = limit.saturating_sub(self.data.jobs.len() as u64);
            if count > room {
                // The first spec past the room; `room < count <= MAX_BATCH_JOBS`, so it fits a usize.
                let index = usize::try_from(room).unwrap_or(0);
                return Err(ApplyError::QuotaExceeded { what: "jobs".into(), limit }.at(index));
            }
        }
        let first_uid = self.take_uids(count)?;
        // Everything is checked: from here on nothing can fail, so the batch applies whole.
        let mut created = Vec::with_capacity(specs.len());
        for ((spec, schedule), uid) in specs.into_iter().zip(&schedules).zip(first_uid..) {
            let job = new_job(uid, spec, schedule, now, by.clone());
            created.push(CreatedJob { name: job.spec.name.to_string(), uid, next_fire_at: job.next_fire_at });
            self.insert_job(job);
        }
        Ok(Response::Created { jobs: created })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::{Command, Data};

    /// A batch create without a writer.
    fn batch(specs: Vec<JobSpec>, max_jobs: Option<u64>) -> Command {
        Command::CreateJobs { specs, now: now(), by: None, max_jobs }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().expect("a valid instant")
    }

    fn spec(name: &str) -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"}
        }))
        .expect("a valid spec")
    }

    fn specs(names: &[&str]) -> Vec<JobSpec> {
        names.iter().map(|n| spec(n)).collect()
    }

    /// Applies `command` at `index` and returns its refusal, checking that it changed nothing.
    fn refused(state: &mut State, index: u64, command: Command) -> ApplyError {
        let before = state.data().clone();
        let response = state.apply(index, command);
        assert_eq!(state.data(), &before, "a refused batch changed the state");
        state.check_indexes().expect("indexes consistent");
        match response {
            Response::Rejected { error } => error,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_creates_every_job_in_order_with_consecutive_uids() {
        let mut state = State::default();
        let command = Command::CreateJobs {
            specs: specs(&["c", "a", "b"]),
            now: now(),
            by: Some("editor000001".into()),
            max_jobs: Some(3),
        };
        let Response::Created { jobs } = state.apply(1, command) else { panic!("not created") };
        let names: Vec<(&str, u64)> = jobs.iter().map(|j| (j.name.as_str(), j.uid)).collect();
        assert_eq!(names, [("c", 1), ("a", 2), ("b", 3)]);
        assert!(jobs.iter().all(|j| j.next_fire_at == Some(now())), "every 1m starts at creation");
        let a = state.job("a").expect("created");
        assert_eq!((a.uid, a.version, a.created_by.as_deref()), (2, 1, Some("editor000001")));
        assert_eq!(state.job_count(), 3);
        assert_eq!(state.data().next_uid, 4);
        state.check_indexes().expect("indexes consistent");
    }

    #[test]
    fn an_invalid_spec_refuses_the_batch_naming_its_index_and_field() {
        let mut state = State::default();
        let mut all = specs(&["a", "b", "c"]);
        all[2].schedule.every = Some("soon".into());
        let error = refused(&mut state, 1, batch(all, None));
        let ApplyError::Item { index: 2, error } = error else { panic!("{error:?}") };
        assert!(matches!(*error, ApplyError::Invalid { ref field, .. } if field == "schedule.every"), "{error:?}");
    }

    #[test]
    fn a_name_taken_before_the_batch_applies_refuses_it_whole() {
        let mut state = State::default();
        state.apply(1, Command::CreateJob { spec: spec("b"), now: now(), by: None, max_jobs: None });
        let error = refused(&mut state, 2, batch(specs(&["a", "b", "c"]), None));
        assert_eq!(error, ApplyError::AlreadyExists { name: "b".into() }.at(1));
        assert!(state.job("a").is_none() && state.job("c").is_none());
    }

    #[test]
    fn a_name_given_twice_is_refused_at_its_second_place() {
        let mut state = State::default();
        let error = refused(&mut state, 1, batch(specs(&["a", "b", "a"]), None));
        let ApplyError::Item { index: 2, error } = error else { panic!("{error:?}") };
        assert!(
            matches!(*error, ApplyError::Invalid { ref field, ref message }
            if field == "name" && message.contains("index 0")),
            "{error:?}"
        );
    }

    #[test]
    fn the_job_cap_counts_the_whole_batch_and_names_the_first_spec_past_it() {
        let mut state = State::default();
        state.apply(1, Command::CreateJob { spec: spec("x"), now: now(), by: None, max_jobs: None });
        let error = refused(&mut state, 2, batch(specs(&["a", "b", "c"]), Some(3)));
        assert_eq!(error, ApplyError::QuotaExceeded { what: "jobs".into(), limit: 3 }.at(2));
        let full = refused(&mut state, 3, batch(specs(&["a"]), Some(1)));
        assert_eq!(full, ApplyError::QuotaExceeded { what: "jobs".into(), limit: 1 }.at(0));
        assert!(matches!(state.apply(4, batch(specs(&["a", "b"]), Some(3))), Response::Created { .. }));
        assert_eq!(state.job_count(), 3);
    }

    #[test]
    fn empty_and_oversized_batches_are_refused() {
        let mut state = State::default();
        let error = refused(&mut state, 1, batch(Vec::new(), None));
        assert!(matches!(error, ApplyError::Invalid { ref field, .. } if field == "jobs"), "{error:?}");
        let names: Vec<String> = (0..=MAX_BATCH_JOBS).map(|i| format!("j{i}")).collect();
        let many: Vec<JobSpec> = names.iter().map(|n| spec(n)).collect();
        let error = refused(&mut state, 2, batch(many, None));
        assert!(matches!(error, ApplyError::Invalid { ref field, .. } if field == "jobs"), "{error:?}");
        let most: Vec<JobSpec> = names[..MAX_BATCH_JOBS].iter().map(|n| spec(n)).collect();
        assert!(
            matches!(state.apply(3, batch(most, None)), Response::Created { jobs } if jobs.len() == MAX_BATCH_JOBS)
        );
    }

    #[test]
    fn a_forwarded_batch_is_taken_and_restamped_with_the_leaders_clock() {
        let later = now() + chrono::TimeDelta::hours(1);
        let forwarded = batch(specs(&["a"]), Some(3)).forwarded(later);
        assert!(matches!(forwarded, Some(Command::CreateJobs { now, max_jobs: Some(3), .. }) if now == later));
    }

    #[test]
    fn a_batch_needing_more_uids_than_are_left_changes_nothing() {
        let data = Data { next_uid: u64::MAX - 1, ..State::default().data().clone() };
        let mut state = State::from_data(data);
        let error = refused(&mut state, 1, batch(specs(&["a", "b"]), None));
        assert!(matches!(error, ApplyError::Conflict { .. }), "{error:?}");
        assert!(matches!(state.apply(2, batch(specs(&["a"]), None)), Response::Created { .. }));
    }
}
