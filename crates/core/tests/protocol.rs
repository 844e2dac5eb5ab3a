//! Golden scripts of the fire protocol's distributed decisions (`belfry_core::protocol`), on
//! fires made by the real state machine: claim → dispatch → the worker's admission → the
//! leader's reaction to the reply → complete, and settle after a failover.
//!
//! Times are seconds after 2026-01-01T00:00:00Z. A fire is named by its job: `NAME` is the
//! job's latest fire. Commands:
//!
//! - `create NAME every=D [start=SECS] [overlap=POLICY] now=SECS`: a job (`D` like `10s`)
//! - `tick now=SECS [ahead=SECS] [worker=N] [term=N] [lease=SECS]`: claim what is due (and,
//!   with `ahead`, what falls due within that many seconds: a claim ahead), dispatched to
//!   `worker` in `term` with a lease of `lease` seconds (default 5)
//! - `redispatch NAME worker=N term=N now=SECS [lease=SECS]`: a new dispatch of the attempt
//! - `complete NAME class=success|retryable|permanent now=SECS`: commit the attempt's outcome
//! - `admit NAME me=N term=N current=N [attempt=N] [sender=leader|other]
//!   [ledger=none|started|finished|unreadable] [draining=true]`: the worker's decision
//! - `reply outcome=CLASS | refused=NAME | not_sent | unknown [current=false]`: the leader's
//!   reaction (`current=false`: the reply answers a dispatch that has been replaced)
//! - `settle NAME ledger=finished|finished-empty|started|unknown|unreachable [in_flight=true]
//!   now=SECS [skew=MS] [timeout=SECS]`: the settle decision, by the leader's clock `now`
//! - `start NAME now=SECS`: whether the worker may start the send at `now` by its own clock
//! - `release NAME now=SECS`: what the worker does with the admitted (perhaps held) send at
//!   `now` by its own clock
//! - `place me=N members=1,2,3 [healthy=2,3] turn=N`: the worker for a new dispatch
//! - `fires`: every fire with its status, attempt, worker, term and lease
//!
//! Each script file is one `#[test]`, so a failure names its script.

use std::error::Error;
use std::fmt::Write as _;

use belfry_core::protocol::{self, AdmitView, DeliverResult, LedgerAnswer, LedgerRecord, Refusal, Unsettled};
use belfry_core::{Assignment, Attempt, Claim, Command, Completion, Fire, Redispatch, Response, ResultClass};
use chrono::{DateTime, Duration, Utc};
use goldenscript::Command as Line;

mod common;
use common::{arg, at, base, num, show};

fn flag(line: &Line, key: &str) -> Result<bool, Box<dyn Error>> {
    num(line, key, Some(false))
}

fn ids(list: &str) -> Result<Vec<u64>, Box<dyn Error>> {
    list.split(',').filter(|s| !s.is_empty()).map(|s| Ok(s.parse()?)).collect()
}

fn class(name: &str) -> Result<ResultClass, Box<dyn Error>> {
    Ok(serde_json::from_value(name.into())?)
}

fn attempt(number: u32, class: ResultClass, worker: u64, t: DateTime<Utc>) -> Attempt {
    let http_status = match class {
        ResultClass::Success => Some(200),
        ResultClass::Retryable => Some(503),
        ResultClass::Permanent => Some(404),
    };
    Attempt {
        number,
        worker,
        started_at: t,
        finished_at: t,
        class,
        http_status,
        error: None,
        body_excerpt: None,
        retry_after_ms: None,
    }
}

#[derive(Default)]
struct Runner {
    log: common::Replica,
}

impl Runner {
    fn apply(&mut self, command: Command) -> Response {
        self.log.apply(command)
    }

    /// The latest fire of the job named by the line's first argument.
    fn fire(&self, line: &Line) -> Result<Fire, Box<dyn Error>> {
        let name = line.args.first().filter(|a| a.key.is_none()).ok_or("a job name is required")?.value.as_str();
        let job = self.log.state.job(name).ok_or_else(|| format!("no job {name}"))?;
        Ok(self.log.state.job_fires(job.uid).next_back().ok_or_else(|| format!("{name} has no fire"))?.clone())
    }

    fn assign(line: &Line, now: DateTime<Utc>) -> Result<Assignment, Box<dyn Error>> {
        let lease: f64 = num(line, "lease", Some(5.0))?;
        Ok(Assignment {
            worker: num(line, "worker", Some(2))?,
            term: num(line, "term", Some(1))?,
            lease_until: now + Duration::milliseconds((lease * 1000.0) as i64),
        })
    }

    fn dispatches(out: &mut String, response: &Response) -> Result<(), Box<dyn Error>> {
        match response {
            Response::Dispatches { dispatches } if dispatches.is_empty() => writeln!(out, "nothing dispatched")?,
            Response::Dispatches { dispatches } => {
                for d in dispatches {
                    let lease = show(d.lease_until);
                    let held = d.send_at.map(|t| format!(" send_at={}", show(t))).unwrap_or_default();
                    writeln!(
                        out,
                        "dispatch {} attempt={} worker={} term={} lease={lease}{held}",
                        d.key, d.attempt, d.worker, d.term
                    )?;
                }
            }
            Response::Rejected { error } => writeln!(out, "rejected: {error}")?,
            other => writeln!(out, "{other:?}")?,
        }
        Ok(())
    }
}

impl goldenscript::Runner for Runner {
    fn run(&mut self, line: &Line) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        let now = || -> Result<DateTime<Utc>, Box<dyn Error>> { Ok(at(num(line, "now", None)?)) };
        match line.name.as_str() {
            "create" => {
                let name = line.args.first().filter(|a| a.key.is_none()).ok_or("a job name is required")?;
                let now = now()?;
                let mut schedule = serde_json::json!({"every": arg(line, "every").unwrap_or("10s")});
                if let Some(start) = arg(line, "start") {
                    schedule["start_at"] = belfry_core::api::rfc3339(at(start.parse()?)).into();
                }
                let mut spec = serde_json::json!({"name": name.value, "schedule": schedule, "target": {"url": "http://sink.test/hook"}});
                if let Some(overlap) = arg(line, "overlap") {
                    spec["overlap"] = overlap.into();
                }
                let spec = serde_json::from_value(spec)?;
                match self.apply(Command::CreateJob { spec, now, by: None, max_jobs: None }) {
                    Response::Job { job } => {
                        writeln!(out, "job {} next={}", job.spec.name, job.next_fire_at.map(show).unwrap_or_default())?
                    }
                    other => writeln!(out, "{other:?}")?,
                }
            }
            "tick" => {
                let now = now()?;
                let assign = Runner::assign(line, now)?;
                let ahead = now + Duration::milliseconds((num::<f64>(line, "ahead", Some(0.0))? * 1000.0) as i64);
                let due = self.log.state.due_ahead(now, ahead, 100);
                let claims = due
                    .claims
                    .into_iter()
                    .map(|(job_uid, scheduled_at)| Claim { job_uid, scheduled_at, assign })
                    .collect();
                let redispatches =
                    due.redispatches.into_iter().map(|(key, attempt)| Redispatch { key, attempt, assign }).collect();
                let response = self.apply(Command::Fire { now, claims, redispatches });
                Runner::dispatches(&mut out, &response)?;
            }
            "redispatch" => {
                let now = now()?;
                let fire = self.fire(line)?;
                let assign = Runner::assign(line, now)?;
                let redispatch = Redispatch { key: fire.key.clone(), attempt: fire.attempt, assign };
                let response = self.apply(Command::Fire { now, claims: vec![], redispatches: vec![redispatch] });
                Runner::dispatches(&mut out, &response)?;
            }
            "complete" => {
                let now = now()?;
                let fire = self.fire(line)?;
                let class = class(arg(line, "class").unwrap_or("success"))?;
                let worker = fire.worker.unwrap_or(0);
                let completion =
                    Completion { key: fire.key.clone(), attempt: attempt(fire.attempt, class, worker, now) };
                self.apply(Command::Complete { now, completions: vec![completion] });
                let after = self.fire(line)?;
                writeln!(out, "{} {:?} attempt={}", after.key, after.status, after.attempt)?;
            }
            "admit" => {
                let fire = self.fire(line)?;
                let ledger = match arg(line, "ledger").unwrap_or("none") {
                    "none" => LedgerRecord::None,
                    "started" => LedgerRecord::Started,
                    "finished" => LedgerRecord::Finished(attempt(fire.attempt, ResultClass::Success, 0, base())),
                    "unreadable" => LedgerRecord::Unreadable,
                    other => return Err(format!("unknown ledger={other}").into()),
                };
                let view = AdmitView {
                    me: num(line, "me", None)?,
                    request_term: num(line, "term", None)?,
                    request_attempt: num(line, "attempt", Some(fire.attempt))?,
                    current_term: num(line, "current", None)?,
                    sender_is_leader: arg(line, "sender").unwrap_or("leader") == "leader",
                    ledger,
                    draining: flag(line, "draining")?,
                    fire: Some(&fire),
                };
                match protocol::admit(&view) {
                    protocol::Admission::Send { lease_until, send_at: None } => {
                        writeln!(out, "send (lease {})", show(lease_until))?
                    }
                    protocol::Admission::Send { lease_until, send_at: Some(at) } => {
                        writeln!(out, "send from {} (lease {})", show(at), show(lease_until))?
                    }
                    protocol::Admission::Replay(a) => {
                        writeln!(out, "replay the recorded outcome of attempt {}", a.number)?
                    }
                    protocol::Admission::Refuse(r, why) => writeln!(out, "refuse {}: {why}", r.name())?,
                }
            }
            "reply" => {
                let result = if let Some(c) = arg(line, "outcome") {
                    DeliverResult::Outcome(attempt(1, class(c)?, 2, base()))
                } else if let Some(name) = arg(line, "refused") {
                    DeliverResult::Refused(Refusal::from_name(name).ok_or_else(|| format!("no refusal {name}"))?)
                } else if line.args.iter().any(|a| a.value == "not_sent") {
                    DeliverResult::NotSent
                } else if line.args.iter().any(|a| a.value == "unknown") {
                    DeliverResult::Unknown
                } else {
                    return Err("reply needs outcome=, refused=, not_sent or unknown".into());
                };
                match protocol::on_reply(result, num(line, "current", Some(true))?) {
                    protocol::ReplyAction::Commit(a) => writeln!(out, "commit {:?}", a.class)?,
                    protocol::ReplyAction::Redispatch => {
                        writeln!(out, "pass the worker over and redispatch elsewhere")?
                    }
                    protocol::ReplyAction::Settle { mark_unhealthy } => {
                        writeln!(out, "leave to settle (pass the worker over: {mark_unhealthy})")?
                    }
                }
            }
            "settle" => {
                let fire = self.fire(line)?;
                let in_flight = flag(line, "in_flight")?;
                let answer = match arg(line, "ledger").ok_or("ledger= is required")? {
                    "finished" => LedgerAnswer::Finished(Some(attempt(fire.attempt, ResultClass::Success, 2, base()))),
                    "finished-empty" => LedgerAnswer::Finished(None),
                    "started" => LedgerAnswer::Started { in_flight },
                    "unknown" => LedgerAnswer::Unknown { in_flight },
                    "unreachable" => LedgerAnswer::Unreachable,
                    other => return Err(format!("unknown ledger={other}").into()),
                };
                let view = Unsettled {
                    lease_until: fire.lease_until,
                    attempt_timeout: Duration::seconds(num(line, "timeout", Some(5))?),
                    max_clock_skew: Duration::milliseconds(num(line, "skew", Some(500))?),
                };
                match protocol::settle(&view, answer, now()?) {
                    protocol::SettleAction::Commit(a) => {
                        writeln!(out, "commit attempt {} without resending", a.number)?
                    }
                    protocol::SettleAction::ResendSameWorker => writeln!(out, "resend through the same worker now")?,
                    protocol::SettleAction::ResendElsewhere { mark_unhealthy } => {
                        writeln!(out, "resend elsewhere (pass the worker over: {mark_unhealthy})")?
                    }
                    protocol::SettleAction::Wait => writeln!(out, "wait")?,
                }
            }
            "start" => {
                let fire = self.fire(line)?;
                let lease = fire.lease_until.ok_or("the fire has no lease")?;
                let verdict = if protocol::may_start(now()?, lease) { "may start" } else { "too late: lease_expired" };
                writeln!(out, "{verdict} (lease {})", show(lease))?;
            }
            "release" => {
                let fire = self.fire(line)?;
                let lease = fire.lease_until.ok_or("the fire has no lease")?;
                match protocol::release(now()?, fire.send_at, lease) {
                    protocol::Release::Hold(until) => writeln!(out, "hold until {}", show(until))?,
                    protocol::Release::Start => writeln!(out, "start the send")?,
                    protocol::Release::Expired => writeln!(out, "refuse lease_expired: nothing was sent")?,
                }
            }
            "place" => {
                let members = ids(arg(line, "members").ok_or("members= is required")?)?;
                let healthy = match arg(line, "healthy") {
                    Some(list) => ids(list)?,
                    None => members.clone(),
                };
                let worker = protocol::place(
                    num(line, "me", None)?,
                    &members,
                    |id| healthy.contains(&id),
                    num(line, "turn", Some(0))?,
                );
                writeln!(out, "worker {worker}")?;
            }
            "fires" => {
                let statuses =
                    ["queued", "dispatched", "retry_waiting", "succeeded", "dead_lettered", "skipped", "cancelled"];
                for status in statuses.into_iter().filter_map(belfry_core::FireStatus::parse) {
                    for f in self.log.state.fires_with_status(status) {
                        let lease = f.lease_until.map(show).unwrap_or("none".into());
                        let held = f.send_at.map(|t| format!(" send_at={}", show(t))).unwrap_or_default();
                        writeln!(
                            out,
                            "{} {:?} attempt={} worker={:?} term={} lease={lease}{held}",
                            f.key, f.status, f.attempt, f.worker, f.term
                        )?;
                    }
                }
            }
            other => return Err(format!("unknown command {other}").into()),
        }
        Ok(out)
    }
}

scripts! {
    Runner,
    "tests/protocol-scripts",
    admission => "admission",
    replies => "replies",
    settle_after_failover => "settle-after-failover",
    placement => "placement",
    lease_and_skew => "lease-and-skew",
    held_send => "held-send",
}
