//! The worker: receives `Deliver` from the leader, fences it, records it in the ledger, sends
//! it, records the outcome (docs/DESIGN.md, "The fire protocol": the steps admit,
//! record-start, send and record-outcome).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::context::Context;
use crate::convert::{attempt, instant, outcome};
use crate::delivery::{self, Delivery};
use crate::ledger::{Ledger, Record};
use crate::proto::{deliver_reply, DeliverReply, DeliverRequest, DeliveryState, QueryDeliveryReply};

/// Refusal reasons; the dispatcher acts on the prefix.
pub mod refusal {
    /// The request's term is below the highest this node has seen: a deposed leader sent it.
    pub const STALE_TERM: &str = "stale_term";
    /// The lease ran out before the send could start.
    pub const LEASE_EXPIRED: &str = "lease_expired";
    /// This attempt is being sent by this worker right now.
    pub const IN_PROGRESS: &str = "in_progress";
    /// The worker is shutting down and starts no new sends.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// The ledger could not be written, so the send was not started.
    pub const LEDGER: &str = "ledger_error";
}

/// The worker half of a node.
pub struct Worker {
    ctx: Arc<Context>,
    ledger: Ledger,
    http: reqwest::Client,
    draining: AtomicBool,
}

impl Worker {
    /// A worker sending with a shared connection pool.
    pub fn new(ctx: Arc<Context>, ledger: Ledger) -> Worker {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(32)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("belfry/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
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

    /// Handles one `Deliver`.
    ///
    /// The send runs in a task of its own: when the caller goes away mid-send (the leader was
    /// killed, or the RPC timed out), the send still finishes, its outcome reaches the ledger
    /// for the next leader's `QueryDelivery`, and the attempt stops counting as in flight.
    pub async fn deliver(self: &Arc<Self>, req: DeliverRequest) -> DeliverReply {
        let term = self.ctx.term();
        if req.term < term {
            return self.refuse(&format!("{}: request term {} < current term {term}", refusal::STALE_TERM, req.term));
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
        if !self.ledger.claim(&req.key, req.attempt) {
            return self.refuse(refusal::IN_PROGRESS);
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _claimed = Claimed { ledger: &this.ledger, key: &req.key, attempt: req.attempt };
            this.send(&req).await
        });
        match task.await {
            Ok(reply) => reply,
            // The send may have started; the leader settles it through the ledger.
            Err(e) => self.refuse(&format!("{}: send task failed: {e}", refusal::IN_PROGRESS)),
        }
    }

    async fn send(&self, req: &DeliverRequest) -> DeliverReply {
        let now = Utc::now();
        if now.timestamp_millis() > req.lease_until_ms {
            return self.refuse(refusal::LEASE_EXPIRED);
        }
        let started = Record::Started { at_ms: now.timestamp_millis() };
        if let Err(e) = self.ledger.put(&req.key, req.attempt, &started).await {
            return self.refuse(&format!("{}: {e}", refusal::LEDGER));
        }
        // The lease is checked again after the fsync: the ledger write may have taken long.
        if Utc::now().timestamp_millis() > req.lease_until_ms {
            return self.refuse(refusal::LEASE_EXPIRED);
        }
        let d = Delivery {
            key: req.key.clone(),
            attempt: req.attempt,
            job: req.job.clone(),
            scheduled_at: instant(req.scheduled_at_ms),
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: req.body.clone(),
            timeout: Duration::from_millis(req.timeout_ms),
            signing_secret: (!req.signing_secret.is_empty()).then(|| req.signing_secret.clone()),
        };
        let m = &self.ctx.metrics;
        m.deliveries_in_flight.inc();
        let lag = (now - d.scheduled_at).num_milliseconds().max(0) as f64 / 1000.0;
        m.fire_lag.observe(lag);
        let result = delivery::send(&self.http, &d, self.ctx.id()).await;
        m.deliveries_in_flight.dec();
        m.delivery_duration.observe(result.duration_ms() as f64 / 1000.0);
        let class = serde_json::to_value(result.class).ok().and_then(|v| v.as_str().map(str::to_string));
        m.fires_total.with_label_values(&[class.as_deref().unwrap_or("unknown")]).inc();
        tracing::debug!(key = %d.key, attempt = d.attempt, status = ?result.http_status, "delivered");
        if let Err(e) = self.ledger.put(&req.key, req.attempt, &Record::Finished { attempt: result.clone() }).await {
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
