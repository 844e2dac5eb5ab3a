//! The worker: receives `Deliver` from the leader, admits it only when its own replica holds
//! the attempt as dispatched to it by that leader, records it in the ledger, sends what the
//! replica holds, records the outcome (docs/DESIGN.md, "The fire protocol": the steps admit,
//! record-start, send and record-outcome).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use belfry_core::{FireKey, FireStatus};
use chrono::Utc;

use crate::context::Context;
use crate::convert::{attempt, outcome};
use crate::delivery::{self, Delivery, DeliveryClient};
use crate::ledger::{Ledger, Record};
use crate::peer_tls::Caller;
use crate::proto::{deliver_reply, DeliverReply, DeliverRequest, DeliveryState, QueryDeliveryReply};

/// Refusal reasons; the dispatcher acts on the prefix.
pub mod refusal {
    /// The request's term is not the worker's current term: a deposed leader sent it, or one
    /// this worker does not know yet.
    pub const STALE_TERM: &str = "stale_term";
    /// The caller is not the leader this worker follows (its certificate names another node).
    pub const NOT_LEADER: &str = "not_leader";
    /// The worker's replica does not hold this attempt as dispatched to it in that term.
    pub const NOT_DISPATCHED: &str = "not_dispatched";
    /// The lease ran out before the send could start.
    pub const LEASE_EXPIRED: &str = "lease_expired";
    /// This attempt is being sent by this worker right now.
    pub const IN_PROGRESS: &str = "in_progress";
    /// The worker is shutting down and starts no new sends.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// The ledger could not be written, so the send was not started.
    pub const LEDGER: &str = "ledger_error";
}

/// How long a `Deliver` waits for the worker's replica to apply the entry it names.
const APPLY_WAIT: Duration = Duration::from_secs(2);

/// An attempt the worker's replica holds as dispatched to it: what to send, and by when.
struct Admitted {
    delivery: Delivery,
    lease_until_ms: i64,
}

/// The worker half of a node.
pub struct Worker {
    ctx: Arc<Context>,
    ledger: Ledger,
    http: DeliveryClient,
    draining: AtomicBool,
}

impl Worker {
    /// A worker sending through the node's egress policy.
    pub fn new(ctx: Arc<Context>, ledger: Ledger) -> Worker {
        let http = delivery::client(&ctx.config.egress);
        Worker { ctx, ledger, http, draining: AtomicBool::new(false) }
    }

    /// Stops starting new sends (in-flight ones finish).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Waits up to `deadline` for the sends in flight to finish; returns how many did not.
    /// Those are settled by the leader through this node's ledger once it is back, or sent
    /// again with the same key if it never comes back.
    pub async fn finish_in_flight(&self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now() + deadline;
        while self.ledger.in_flight_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ledger.in_flight_count()
    }

    fn refuse(&self, why: &str) -> DeliverReply {
        self.ctx.metrics.fires_total.with_label_values(&["refused"]).inc();
        DeliverReply { result: Some(deliver_reply::Result::Refused(why.to_string())) }
    }

    /// Handles one `Deliver` from `caller` (docs/DESIGN.md, the step admit).
    ///
    /// The send runs in a task of its own: when the caller goes away mid-send (the leader was
    /// killed, or the RPC timed out), the send still finishes, its outcome reaches the ledger
    /// for the next leader's `QueryDelivery`, and the attempt stops counting as in flight.
    pub async fn deliver(self: &Arc<Self>, caller: &Caller, req: DeliverRequest) -> DeliverReply {
        if let Err(why) = self.check_sender(caller, &req).await {
            return self.refuse(&why);
        }
        match self.ledger.get(&req.key, req.attempt) {
            Ok(Some(Record::Finished { attempt })) => {
                return DeliverReply { result: Some(deliver_reply::Result::Outcome(outcome(&attempt))) };
            }
            Ok(_) => {}
            Err(e) => return self.refuse(&format!("{}: {e}", refusal::LEDGER)),
        }
        if self.draining.load(Ordering::SeqCst) {
            return self.refuse(refusal::SHUTTING_DOWN);
        }
        let admitted = match self.dispatched(&req) {
            Ok(a) => a,
            Err(why) => return self.refuse(&format!("{}: {why}", refusal::NOT_DISPATCHED)),
        };
        if !self.ledger.claim(&req.key, req.attempt) {
            return self.refuse(refusal::IN_PROGRESS);
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _claimed = Claimed { ledger: &this.ledger, key: &req.key, attempt: req.attempt };
            this.send(admitted).await
        });
        match task.await {
            Ok(reply) => reply,
            // The send may have started; the leader settles it through the ledger.
            Err(e) => self.refuse(&format!("{}: send task failed: {e}", refusal::IN_PROGRESS)),
        }
    }

    /// The term fence and the sender's identity: the request's term must be this worker's
    /// current term once it has applied the entry the request names, and the caller must be
    /// that term's leader.
    async fn check_sender(&self, caller: &Caller, req: &DeliverRequest) -> Result<(), String> {
        let seen = self.ctx.term();
        if req.term < seen {
            return Err(format!("{}: request term {} < current term {seen}", refusal::STALE_TERM, req.term));
        }
        let applied = self.ctx.raft.wait(Some(APPLY_WAIT)).applied_index_at_least(Some(req.log_index), "deliver").await;
        if applied.is_err() {
            return Err(format!(
                "{}: entry {} not applied here within {APPLY_WAIT:?}",
                refusal::NOT_DISPATCHED,
                req.log_index
            ));
        }
        let now = self.ctx.leader_seen();
        if req.term != now.term {
            return Err(format!("{}: request term {} != current term {}", refusal::STALE_TERM, req.term, now.term));
        }
        match now.leader {
            Some(leader) if caller.is(leader, self.ctx.id()) => Ok(()),
            leader => {
                Err(format!("{}: the sender is not the leader of term {} ({leader:?})", refusal::NOT_LEADER, now.term))
            }
        }
    }

    /// What this worker's replica holds for the attempt: it must be the fire's current attempt,
    /// dispatched to this worker in the request's term.
    fn dispatched(&self, req: &DeliverRequest) -> Result<Admitted, String> {
        let applied = self.ctx.shared.read();
        let key = FireKey(req.key.clone());
        let fire = applied.state.fire_by_key(&key).ok_or("no such fire")?;
        if fire.status != FireStatus::Dispatched || fire.attempt != req.attempt {
            return Err(format!("the fire is {:?} at attempt {}", fire.status, fire.attempt));
        }
        if fire.worker != Some(self.ctx.id()) || fire.term != req.term {
            return Err(format!("attempt {} is dispatched to {:?} in term {}", fire.attempt, fire.worker, fire.term));
        }
        let job = applied.state.job_by_uid(fire.job_uid).ok_or("the job is gone")?;
        let t = &job.spec.target;
        let delivery = Delivery {
            key: req.key.clone(),
            attempt: req.attempt,
            job: fire.job_name.clone(),
            scheduled_at: fire.scheduled_at,
            method: t.method.clone(),
            url: t.url.clone(),
            headers: t.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: t.body.clone().unwrap_or_default().into_bytes(),
            timeout: t.timeout.0,
        };
        Ok(Admitted { delivery, lease_until_ms: fire.lease_until.map(|l| l.timestamp_millis()).unwrap_or(0) })
    }

    async fn send(&self, admitted: Admitted) -> DeliverReply {
        let Admitted { delivery: d, lease_until_ms } = admitted;
        let now = Utc::now();
        if now.timestamp_millis() > lease_until_ms {
            return self.refuse(refusal::LEASE_EXPIRED);
        }
        let started = Record::Started { at_ms: now.timestamp_millis() };
        if let Err(e) = self.ledger.put(&d.key, d.attempt, &started).await {
            return self.refuse(&format!("{}: {e}", refusal::LEDGER));
        }
        // The lease is checked again after the fsync: the ledger write may have taken long.
        if Utc::now().timestamp_millis() > lease_until_ms {
            return self.refuse(refusal::LEASE_EXPIRED);
        }
        let m = &self.ctx.metrics;
        m.deliveries_in_flight.inc();
        let lag = (now - d.scheduled_at).num_milliseconds().max(0) as f64 / 1000.0;
        m.fire_lag.observe(lag);
        let result = self.http.send(&d, self.ctx.config.signer.as_ref(), self.ctx.id()).await;
        m.deliveries_in_flight.dec();
        m.delivery_duration.observe(result.duration_ms() as f64 / 1000.0);
        let class = serde_json::to_value(result.class).ok().and_then(|v| v.as_str().map(str::to_string));
        m.fires_total.with_label_values(&[class.as_deref().unwrap_or("unknown")]).inc();
        tracing::debug!(key = %d.key, attempt = d.attempt, status = ?result.http_status, "delivered");
        if let Err(e) = self.ledger.put(&d.key, d.attempt, &Record::Finished { attempt: result.clone() }).await {
            // The send happened; the outcome still goes back to the leader, which commits it.
            tracing::error!(key = %d.key, error = %e, "ledger write after send failed");
        }
        DeliverReply { result: Some(deliver_reply::Result::Outcome(outcome(&result))) }
    }

    /// Answers `QueryDelivery` from the ledger.
    pub fn query(&self, key: &str, attempt_no: u32) -> QueryDeliveryReply {
        let in_flight = self.ledger.in_flight(key, attempt_no);
        match self.ledger.get(key, attempt_no) {
            Ok(Some(Record::Finished { attempt: a })) => {
                QueryDeliveryReply { state: DeliveryState::Finished as i32, outcome: Some(outcome(&a)), in_flight }
            }
            Ok(Some(Record::Started { .. })) => {
                QueryDeliveryReply { state: DeliveryState::Started as i32, outcome: None, in_flight }
            }
            Ok(None) => QueryDeliveryReply { state: DeliveryState::Unknown as i32, outcome: None, in_flight },
            // An unreadable ledger must not look like "never sent": report it as started.
            Err(_) => QueryDeliveryReply { state: DeliveryState::Started as i32, outcome: None, in_flight: true },
        }
    }
}

/// An attempt claimed in the ledger's in-flight set, released when dropped (even by a panic).
struct Claimed<'a> {
    ledger: &'a Ledger,
    key: &'a str,
    attempt: u32,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.ledger.release(self.key, self.attempt);
    }
}

/// A reply's outcome as an attempt, when it has one.
pub fn reply_attempt(reply: &DeliverReply) -> Option<belfry_core::Attempt> {
    match &reply.result {
        Some(deliver_reply::Result::Outcome(o)) => Some(attempt(o)),
        _ => None,
    }
}
