//! Golden-script tests of the fire protocol's state machine.
//!
//! Times are seconds after 2026-01-01T00:00:00Z (`now=90` is 00:01:30), printed the same way.
//! Commands:
//!
//! - `create NAME [every=D] [cron=EXPR] [tz=ZONE] [at=SECS] [overlap=P] [misfire=P] [grace=D]
//!   [attempts=N] [paused=true] now=SECS`
//! - `replace NAME [same keys as create] [if_version=N] now=SECS`
//! - `tick now=SECS [worker=N] [term=N]`: propose what [`State::due`] reports, apply it
//! - `claim NAME at=SECS now=SECS`: a raw claim, as a stale or duplicate leader might send
//! - `complete KEY attempt=N status=CODE|error [retry_after=MS] now=SECS`
//! - `pause NAME now=SECS`, `resume NAME now=SECS`, `delete NAME`, `trigger NAME now=SECS`
//! - `requeue KEY now=SECS`, `redispatch KEY attempt=N worker=N [term=N] now=SECS`
//! - `dlq-requeue|dlq-purge [keys=K1,K2] [job=NAME] [all=true] now=SECS`: bulk commands
//! - `create` also takes `history_count=N history_age=D` (retention)
//! - `finished-limit N`: the cluster-wide limit on finished fires (`Data::finished_limit`,
//!   which no command changes: the state is rebuilt from its data with the new limit, as a
//!   restore would seed it)
//! - `jobs`, `fires [NAME]`, `retired`: print the state (`retired`: deleted jobs whose last
//!   fire is still in flight)
//!
//! After every command the harness checks [`State::check_indexes`]. Each script file is one
//! `#[test]` (named after it), so a failure names its script.

use std::error::Error;
use std::fmt::Write as _;

use belfry_core::{
    Assignment, Attempt, Claim, Command, Completion, DeadLetterSelector, FireKey, HttpTarget, JobSpec, Redispatch,
    Response, ResultClass,
};
use belfry_schedule::ScheduleSpec;
use chrono::{DateTime, Duration, Utc};
use goldenscript::Command as Line;

mod common;
use common::{at, num, pos, show};

#[derive(Default)]
struct Runner {
    log: common::Replica,
}

impl Runner {
    fn apply(&mut self, command: Command) -> Response {
        self.log.apply(command)
    }

    fn spec(&self, line: &Line, name: &str, now: DateTime<Utc>) -> Result<JobSpec, Box<dyn Error>> {
        let mut schedule = ScheduleSpec::default();
        let mut spec = JobSpec {
            name: name.into(),
            schedule: ScheduleSpec::default(),
            target: HttpTarget {
                url: "http://sink.test/hook".into(),
                method: "POST".into(),
                headers: Default::default(),
                body: None,
                timeout: belfry_core::HumanDuration::secs(5),
            },
            overlap: Default::default(),
            misfire: Default::default(),
            retry: Default::default(),
            history: Default::default(),
            paused: false,
        };
        let _ = now;
        for arg in line.args.iter().skip(1) {
            let v = arg.value.as_str();
            match arg.key.as_deref() {
                Some("every") => schedule.every = Some(v.into()),
                Some("cron") => schedule.cron = Some(v.into()),
                Some("tz") => schedule.timezone = Some(v.into()),
                Some("at") => schedule.at = Some(belfry_core::api::rfc3339(at(v.parse()?)).into()),
                Some("start") => schedule.start_at = Some(belfry_core::api::rfc3339(at(v.parse()?)).into()),
                Some("jitter") => schedule.jitter = Some(v.into()),
                Some("overlap") => spec.overlap = serde_json::from_value(v.into())?,
                Some("misfire") => spec.misfire.policy = serde_json::from_value(v.into())?,
                Some("grace") => spec.misfire.grace = serde_json::from_value(v.into())?,
                Some("attempts") => spec.retry.max_attempts = v.parse()?,
                Some("max_age") => spec.retry.max_age = serde_json::from_value(v.into())?,
                Some("backoff") => spec.retry.initial_backoff = serde_json::from_value(v.into())?,
                Some("history_count") => spec.history.max_count = Some(v.parse()?),
                Some("history_age") => spec.history.max_age = Some(serde_json::from_value(v.into())?),
                Some("url") => spec.target.url = v.into(),
                Some("paused") => spec.paused = v.parse()?,
                Some("now") | Some("if_version") => {}
                _ => return Err(format!("unknown argument {}", arg.name()).into()),
            }
        }
        spec.schedule = schedule;
        Ok(spec)
    }

    fn print(&self, out: &mut String, response: &Response) -> Result<(), Box<dyn Error>> {
        match response {
            Response::None => writeln!(out, "ok")?,
            Response::Deleted => writeln!(out, "deleted")?,
            Response::Job { job } => writeln!(
                out,
                "job {} uid={} version={} next={}",
                job.spec.name,
                job.uid,
                job.version,
                job.next_fire_at.map(show).unwrap_or("none".into())
            )?,
            Response::Dispatches { dispatches } if dispatches.is_empty() => writeln!(out, "nothing dispatched")?,
            Response::Dispatches { dispatches } => {
                for d in dispatches {
                    writeln!(out, "dispatch {} attempt={} worker={} term={}", d.key, d.attempt, d.worker, d.term)?;
                }
            }
            Response::Created { jobs } => {
                for job in jobs {
                    let next = job.next_fire_at.map(show).unwrap_or("none".into());
                    writeln!(out, "job {} uid={} version=1 next={next}", job.name, job.uid)?;
                }
            }
            Response::Triggered { key } => writeln!(out, "triggered {key}")?,
            Response::Fires { keys } if keys.is_empty() => writeln!(out, "no fires")?,
            Response::Fires { keys } => {
                writeln!(out, "fires {}", keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" "))?
            }
            Response::Token { token } => writeln!(out, "token {} role={}", token.id, token.role)?,
            Response::Rejected { error } => writeln!(out, "rejected: {error}")?,
        }
        Ok(())
    }
}

impl goldenscript::Runner for Runner {
    fn run(&mut self, line: &Line) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        let now = || -> Result<DateTime<Utc>, Box<dyn Error>> { Ok(at(num(line, "now", None)?)) };
        let response = match line.name.as_str() {
            "create" => {
                let now = now()?;
                let spec = self.spec(line, pos(line)?, now)?;
                self.apply(Command::CreateJob { spec, now, by: None, max_jobs: None })
            }
            "replace" => {
                let now = now()?;
                let spec = self.spec(line, pos(line)?, now)?;
                let if_version = line
                    .args
                    .iter()
                    .find(|a| a.key.as_deref() == Some("if_version"))
                    .map(|a| a.value.parse())
                    .transpose()?;
                self.apply(Command::ReplaceJob { spec, if_version, now, by: None })
            }
            "tick" => {
                let now = now()?;
                let assign = Assignment {
                    worker: num(line, "worker", Some(2))?,
                    term: num(line, "term", Some(1))?,
                    lease_until: now + Duration::seconds(10),
                };
                let due = self.log.state.due(now, 100);
                let claims = due
                    .claims
                    .into_iter()
                    .map(|(job_uid, scheduled_at)| Claim { job_uid, scheduled_at, assign })
                    .collect();
                let redispatches =
                    due.redispatches.into_iter().map(|(key, attempt)| Redispatch { key, attempt, assign }).collect();
                self.apply(Command::Fire { now, claims, redispatches })
            }
            "claim" => {
                let now = now()?;
                let job = self.log.state.job(pos(line)?).ok_or("no such job")?;
                let assign = Assignment {
                    worker: 2,
                    term: num(line, "term", Some(1))?,
                    lease_until: now + Duration::seconds(10),
                };
                let claim = Claim { job_uid: job.uid, scheduled_at: at(num(line, "at", None)?), assign };
                self.apply(Command::Fire { now, claims: vec![claim], redispatches: vec![] })
            }
            "redispatch" => {
                let now = now()?;
                let assign = Assignment {
                    worker: num(line, "worker", None)?,
                    term: num(line, "term", Some(1))?,
                    lease_until: now + Duration::seconds(10),
                };
                let r = Redispatch { key: FireKey(pos(line)?.into()), attempt: num(line, "attempt", None)?, assign };
                self.apply(Command::Fire { now, claims: vec![], redispatches: vec![r] })
            }
            "complete" => {
                let now = now()?;
                let status =
                    line.args.iter().find(|a| a.key.as_deref() == Some("status")).ok_or("status= is required")?;
                let (class, http_status, error) = match status.value.parse::<u16>() {
                    Ok(code) => (ResultClass::of_status(code), Some(code), None),
                    Err(_) => (ResultClass::Retryable, None, Some(status.value.clone())),
                };
                let attempt = Attempt {
                    number: num(line, "attempt", None)?,
                    worker: 2,
                    started_at: now - Duration::milliseconds(100),
                    finished_at: now,
                    class,
                    http_status,
                    error,
                    body_excerpt: None,
                    retry_after_ms: line
                        .args
                        .iter()
                        .find(|a| a.key.as_deref() == Some("retry_after"))
                        .map(|a| a.value.parse())
                        .transpose()?,
                };
                self.apply(Command::Complete {
                    now,
                    completions: vec![Completion { key: FireKey(pos(line)?.into()), attempt }],
                })
            }
            "pause" => self.apply(Command::PauseJob { name: pos(line)?.into(), now: now()?, by: None }),
            "resume" => self.apply(Command::ResumeJob { name: pos(line)?.into(), now: now()?, by: None }),
            "delete" => self.apply(Command::DeleteJob { name: pos(line)?.into() }),
            "requeue" => self.apply(Command::Requeue { key: FireKey(pos(line)?.into()), now: now()?, by: None }),
            "trigger" => self.apply(Command::TriggerJob { name: pos(line)?.into(), now: now()?, by: None }),
            "dlq-requeue" | "dlq-purge" => {
                let mut select = DeadLetterSelector::default();
                for arg in &line.args {
                    match arg.key.as_deref() {
                        Some("keys") => select.keys = Some(arg.value.split(',').map(|k| FireKey(k.into())).collect()),
                        Some("job") => select.job = Some(arg.value.clone()),
                        Some("all") => select.all = arg.value.parse()?,
                        Some("now") => {}
                        _ => return Err(format!("unknown argument {}", arg.name()).into()),
                    }
                }
                let now = now()?;
                if line.name == "dlq-requeue" {
                    self.apply(Command::RequeueDeadLetters { select, now, by: None })
                } else {
                    self.apply(Command::PurgeDeadLetters { select, now })
                }
            }
            "finished-limit" => {
                let limit: usize = pos(line)?.parse()?;
                let data = belfry_core::Data { finished_limit: limit, ..self.log.state.data().clone() };
                self.log.state = belfry_core::State::from_data(data);
                writeln!(out, "finished limit {limit}")?;
                return Ok(out);
            }
            "retired" => {
                let retired = &self.log.state.data().retired;
                if retired.is_empty() {
                    writeln!(out, "no retired jobs")?;
                }
                for job in retired.values() {
                    writeln!(out, "retired {} {}", job.uid, job.spec.name)?;
                }
                return Ok(out);
            }
            "jobs" => {
                for job in self.log.state.jobs_after(None) {
                    writeln!(
                        out,
                        "{} uid={} version={} paused={} next={}",
                        job.spec.name,
                        job.uid,
                        job.version,
                        job.spec.paused,
                        job.next_fire_at.map(show).unwrap_or("none".into())
                    )?;
                }
                return Ok(out);
            }
            "fires" => {
                let filter = line.args.first().map(|a| a.value.clone());
                let mut fires: Vec<_> = self.log.state.fires_before(None, None).collect();
                fires.reverse();
                for f in fires.into_iter().filter(|f| filter.as_ref().is_none_or(|n| *n == f.job_name)) {
                    write!(
                        out,
                        "{} {} at={} status={} attempt={}",
                        f.key,
                        f.job_name,
                        show(f.scheduled_at),
                        f.status.as_str(),
                        f.attempt
                    )?;
                    if let Some(next) = f.next_attempt_at {
                        write!(out, " next_attempt={}", show(next))?;
                    }
                    if let Some(note) = &f.note {
                        write!(out, " note={note:?}")?;
                    }
                    writeln!(out)?;
                }
                return Ok(out);
            }
            other => return Err(format!("unknown command {other}").into()),
        };
        self.print(&mut out, &response)?;
        Ok(out)
    }
}

scripts! {
    Runner,
    "tests/scripts",
    claims => "claims",
    dead_letters => "dead-letters",
    deletes => "deletes",
    jobs => "jobs",
    policies => "policies",
    retention => "retention",
}
