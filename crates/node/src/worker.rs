//! The worker: receives `Deliver` from the leader, admits it only when its own replica holds
//! the attempt as dispatched to it by that leader, records it in the ledger, sends what the
//! replica holds, records the outcome (docs/DESIGN.md, "The fire protocol": the steps admit,
//! record-start, send and record-outcome).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use belfry_core::protocol::{self, Admission, AdmitView, DeliverResult, LedgerRecord, Refusal};
use belfry_core::FireKey;
use chrono::{DateTime, Utc};

use crate::context::Context;
use crate::convert::{attempt, outcome, refusal_from_proto, refusal_to_proto};
use crate::delivery::{self, Delivery, DeliveryClient};
use crate::ledger::{Ledger, Record};
use crate::peer_tls::Caller;
use crate::proto::{deliver_reply, DeliverReply, DeliverRequest, DeliveryState, QueryDeliveryReply, Refused};

/// How long a `Deliver` waits for the worker's replica to apply the entry it names.
const APPLY_WAIT: Duration = Duration::from_secs(2);

/// An attempt the worker's replica holds as dispatched to it: what to send, and by when.
struct Admitted {
    delivery: Delivery,
    lease_until: DateTime<Utc>,
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

    fn refuse(&self, reason: Refusal, detail: &str) -> DeliverReply {
        self.ctx.metrics.fires_total.with_label_values(&["refused"]).inc();
        let refused =
            Refused { reason: refusal_to_proto(reason) as i32, detail: format!("{}: {detail}", reason.name()) };
        DeliverReply { result: Some(deliver_reply::Result::Refused(refused)) }
    }

    /// Handles one `Deliver` from `caller` (docs/DESIGN.md, the step admit; the decision is
    /// `belfry_core::protocol::admit`).
    ///
    /// The send runs in a task of its own: when the caller goes away mid-send (the leader was
    /// killed, or the RPC timed out), the send still finishes, its outcome reaches the ledger
    /// for the next leader's `QueryDelivery`, and the attempt stops counting as in flight.
    pub async fn deliver(self: &Arc<Self>, caller: &Caller, req: DeliverRequest) -> DeliverReply {
        // A zombie leader's request is refused before any waiting (a higher term may be one
        // this worker is about to learn from the entry it waits for).
        let seen = self.ctx.term();
        if req.term < seen {
            if let Err((reason, why)) = protocol::fence(req.term, seen) {
                return self.refuse(reason, &why);
            }
        }
        let applied = self.ctx.raft.wait(Some(APPLY_WAIT)).applied_index_at_least(Some(req.log_index), "deliver").await;
        if applied.is_err() {
            let why = format!("entry {} not applied here within {APPLY_WAIT:?}", req.log_index);
            return self.refuse(Refusal::NotDispatched, &why);
        }
        let (admission, delivery) = self.admit(caller, &req);
        let lease_until = match admission {
            Admission::Send { lease_until } => lease_until,
            Admission::Replay(attempt) => {
                return DeliverReply { result: Some(deliver_reply::Result::Outcome(outcome(&attempt))) };
            }
            Admission::Refuse(reason, why) => return self.refuse(reason, &why),
        };
        let Some(delivery) = delivery else {
            return self.refuse(Refusal::NotDispatched, "the job is gone");
        };
        if !self.ledger.claim(&req.key, req.attempt) {
            return self.refuse(Refusal::InProgress, "this worker is sending it");
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _claimed = Claimed { ledger: &this.ledger, key: &req.key, attempt: req.attempt };
            this.send(Admitted { delivery, lease_until }).await
        });
        match task.await {
            Ok(reply) => reply,
            // The send may have started; the leader settles it through the ledger.
            Err(e) => self.refuse(Refusal::InProgress, &format!("send task failed: {e}")),
        }
    }

    /// Gathers what the worker knows and asks `protocol::admit`; when it says send, also the
    /// request the replica holds (none when the job is gone).
    fn admit(&self, caller: &Caller, req: &DeliverRequest) -> (Admission, Option<Delivery>) {
        let seen = self.ctx.leader_seen();
        let ledger = match self.ledger.get(&req.key, req.attempt) {
            Ok(None) => LedgerRecord::None,
            Ok(Some(Record::Started { .. })) => LedgerRecord::Started,
            Ok(Some(Record::Finished { attempt })) => LedgerRecord::Finished(attempt),
            Err(_) => LedgerRecord::Unreadable,
        };
        let applied = self.ctx.shared.read();
        let fire = applied.state.fire_by_key(&FireKey(req.key.clone()));
        let view = AdmitView {
            me: self.ctx.id(),
            request_term: req.term,
            request_attempt: req.attempt,
            current_term: seen.term,
            sender_is_leader: seen.leader.is_some_and(|leader| caller.is(leader, self.ctx.id())),
            ledger,
            draining: self.draining.load(Ordering::SeqCst),
            fire,
        };
        let admission = protocol::admit(&view);
        if !matches!(admission, Admission::Send { .. }) {
            return (admission, None);
        }
        let delivery = fire.and_then(|fire| {
            let job = applied.state.job_by_uid(fire.job_uid)?;
            let t = &job.spec.target;
            Some(Delivery {
                key: req.key.clone(),
                attempt: req.attempt,
                job: fire.job_name.clone(),
                scheduled_at: fire.scheduled_at,
                method: t.method.clone(),
                url: t.url.clone(),
                headers: t.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                body: t.body.clone().unwrap_or_default().into_bytes(),
                timeout: t.timeout.0,
            })
        });
        (admission, delivery)
    }

    async fn send(&self, admitted: Admitted) -> DeliverReply {
        let Admitted { delivery: d, lease_until } = admitted;
        let now = Utc::now();
        if !protocol::may_start(now, lease_until) {
            return self.refuse(Refusal::LeaseExpired, "before the ledger write");
        }
        let started = Record::Started { at_ms: now.timestamp_millis() };
        if let Err(e) = self.ledger.put(&d.key, d.attempt, &started).await {
            return self.refuse(Refusal::LedgerError, &e.to_string());
        }
        // The lease is checked again after the fsync: the ledger write may have taken long.
        if !protocol::may_start(Utc::now(), lease_until) {
            return self.refuse(Refusal::LeaseExpired, "after the ledger write");
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

/// A reply as the protocol's [`DeliverResult`], with the refusal's words for the log. A
/// refusal this version does not know counts as unknown (the settle loop asks the ledger).
pub fn deliver_result(reply: DeliverReply) -> (DeliverResult, Option<String>) {
    match reply.result {
        Some(deliver_reply::Result::Outcome(o)) => (DeliverResult::Outcome(attempt(&o)), None),
        Some(deliver_reply::Result::Refused(r)) => {
            let result = refusal_from_proto(r.reason).map_or(DeliverResult::Unknown, DeliverResult::Refused);
            (result, Some(r.detail))
        }
        None => (DeliverResult::Unknown, Some("an empty reply".into())),
    }
}
