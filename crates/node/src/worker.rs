//! The worker: receives `Deliver` from the leader, admits it only when its own replica holds
//! the attempt as dispatched to it by that leader, records it in the ledger, sends what the
//! replica holds, records the outcome (docs/DESIGN.md, "The fire protocol": the steps admit,
//! record-start, send and record-outcome).

mod hold;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use belfry_core::protocol::{self, Admission, AdmitView, DeliverResult, LedgerRecord, Refusal, Release};
use belfry_core::{FireKey, FireStatus};
use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::context::Context;
use crate::convert::{attempt, outcome, refusal_from_proto, refusal_to_proto};
use crate::delivery::{self, Delivery};
use crate::ledger::{Ledger, Record, ROTATE_EVERY};
use crate::peer_tls::Caller;
use crate::proto::{
    deliver_reply, DeliverBatchReply, DeliverBatchRequest, DeliverItem, DeliverReply, DeliverRequest, DeliveryState,
    QueryDeliveryReply, Refused,
};
use hold::{Admitted, Claimed};

/// How long a `Deliver` waits for the worker's replica to apply the entry it names.
const APPLY_WAIT: Duration = Duration::from_secs(2);

/// The worker half of a node.
pub struct Worker {
    ctx: Arc<Context>,
    ledger: Arc<Ledger>,
    queue: mpsc::UnboundedSender<Admitted>,
    draining: AtomicBool,
}

/// A refusal as a reply.
fn refused(reason: Refusal, detail: &str) -> DeliverReply {
    let refused = Refused { reason: refusal_to_proto(reason) as i32, detail: format!("{}: {detail}", reason.name()) };
    DeliverReply { result: Some(deliver_reply::Result::Refused(refused)) }
}

impl Worker {
    /// A worker sending through the node's egress policy, at most `max_concurrent_sends` at
    /// once. Starts its send queue, so it must be made inside the runtime.
    pub fn new(ctx: Arc<Context>, ledger: Ledger) -> Worker {
        let ledger = Arc::new(ledger);
        let http = delivery::client(&ctx.config.egress, ctx.config.max_concurrent_sends);
        let sender = hold::Sender { ctx: ctx.clone(), ledger: ledger.clone(), http };
        let queue = hold::start(Arc::new(sender), ctx.config.max_concurrent_sends);
        Worker { ctx, ledger, queue, draining: AtomicBool::new(false) }
    }

    /// Rotates the ledger every [`ROTATE_EVERY`] until `stop` turns true. A record is still
    /// needed while this replica holds its attempt as the fire's current dispatch (the outcome
    /// is not committed: a leader may ask); once the outcome is committed nobody asks again.
    pub async fn rotate_ledger(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ROTATE_EVERY) => {}
                _ = stop.changed() => return,
            }
            let (ledger, ctx) = (self.ledger.clone(), self.ctx.clone());
            // Off the runtime's threads: it reads every record of the oldest generation.
            let rotated = tokio::task::spawn_blocking(move || {
                let needed = |key: &str, attempt: u32| {
                    let applied = ctx.shared.read();
                    let fire = applied.state.fire_by_key(&FireKey(key.to_string()));
                    fire.is_some_and(|f| f.attempt == attempt && f.status == FireStatus::Dispatched)
                };
                tokio::runtime::Handle::current().block_on(ledger.rotate(needed))
            })
            .await;
            match rotated {
                Ok(Ok((dropped, carried))) => tracing::debug!(dropped, carried, "ledger rotated"),
                Ok(Err(e)) => tracing::warn!(error = %e, "ledger rotation failed; the old records stay"),
                Err(e) => tracing::warn!(error = %e, "ledger rotation task failed"),
            }
        }
    }

    /// Stops starting new sends (in-flight ones finish).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Waits up to `deadline` for the sends held or in flight to finish; returns how many did
    /// not. Those are settled by the leader through this node's ledger once it is back, or
    /// sent again with the same key if it never comes back.
    pub async fn finish_in_flight(&self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now() + deadline;
        while self.ledger.in_flight_count() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ledger.in_flight_count()
    }

    fn refuse(&self, reason: Refusal, detail: &str) -> DeliverReply {
        self.ctx.metrics.fires_total.with_label_values(&["refused"]).inc();
        refused(reason, detail)
    }

    /// Handles one `Deliver`: a batch of one.
    pub async fn deliver(self: &Arc<Self>, caller: &Caller, req: DeliverRequest) -> DeliverReply {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let batch = DeliverBatchRequest {
            term: req.term,
            log_index: req.log_index,
            items: vec![DeliverItem { key: req.key, attempt: req.attempt }],
        };
        self.deliver_batch(caller, batch, tx).await;
        match rx.recv().await {
            Some(DeliverBatchReply { reply: Some(reply), .. }) => reply,
            // The send may have started; the leader settles it through the ledger.
            _ => self.refuse(Refusal::InProgress, "the send queue went away"),
        }
    }

    /// Handles a `DeliverBatch` from `caller` (docs/DESIGN.md, the step admit; each item's
    /// decision is `belfry_core::protocol::admit`): refusals and recorded outcomes are answered
    /// on `out` at once, and every admitted attempt is recorded as started in the ledger (one
    /// fsync for the batch) and queued, to be sent at its instant and answered on `out`.
    ///
    /// The sends do not depend on the caller: when it goes away (the leader was killed, or
    /// the RPC timed out), held and running sends still happen, their outcomes reach the
    /// ledger for the next leader's `QueryDelivery`, and they stop counting as in flight.
    pub async fn deliver_batch(
        self: &Arc<Self>,
        caller: &Caller,
        req: DeliverBatchRequest,
        out: mpsc::UnboundedSender<DeliverBatchReply>,
    ) {
        let answer = |item: DeliverItem, reply: DeliverReply| {
            let _ = out.send(DeliverBatchReply { key: item.key, attempt: item.attempt, reply: Some(reply) });
        };
        // A zombie leader's request is refused before any waiting (a higher term may be one
        // this worker is about to learn from the entry it waits for).
        let seen = self.ctx.term();
        if req.term < seen {
            if let Err((reason, why)) = protocol::fence(req.term, seen) {
                for item in req.items {
                    answer(item, self.refuse(reason, &why));
                }
                return;
            }
        }
        let applied = self.ctx.raft.wait(Some(APPLY_WAIT)).applied_index_at_least(Some(req.log_index), "deliver").await;
        if applied.is_err() {
            let why = format!("entry {} not applied here within {APPLY_WAIT:?}", req.log_index);
            for item in req.items {
                answer(item, self.refuse(Refusal::NotDispatched, &why));
            }
            return;
        }
        let now = Utc::now();
        let mut admitted = Vec::new();
        for item in req.items {
            let (admission, delivery) = self.admit(caller, req.term, &item);
            let (lease_until, send_at) = match admission {
                Admission::Send { lease_until, send_at } => (lease_until, send_at),
                Admission::Replay(attempt) => {
                    answer(item, DeliverReply { result: Some(deliver_reply::Result::Outcome(outcome(&attempt))) });
                    continue;
                }
                Admission::Refuse(reason, why) => {
                    answer(item, self.refuse(reason, &why));
                    continue;
                }
            };
            let Some(delivery) = delivery else {
                answer(item, self.refuse(Refusal::NotDispatched, "the job is gone"));
                continue;
            };
            let Some(claimed) = Claimed::claim(&self.ledger, &item.key, item.attempt) else {
                answer(item, self.refuse(Refusal::InProgress, "this worker is holding or sending it"));
                continue;
            };
            if protocol::release(now, send_at, lease_until) == Release::Expired {
                answer(item, self.refuse(Refusal::LeaseExpired, "before the ledger write"));
                continue;
            }
            admitted.push(Admitted { delivery, lease_until, send_at, _claimed: claimed, reply: out.clone() });
        }
        if admitted.is_empty() {
            return;
        }
        let records: Vec<(&str, u32, Record)> = admitted
            .iter()
            .map(|a| {
                let at_ms = a.send_at.unwrap_or(now).timestamp_millis();
                (a.delivery.key.as_str(), a.delivery.attempt, Record::Started { at_ms })
            })
            .collect();
        if let Err(e) = self.ledger.put_many(&records).await {
            for a in admitted {
                let item = DeliverItem { key: a.delivery.key.clone(), attempt: a.delivery.attempt };
                answer(item, self.refuse(Refusal::LedgerError, &e.to_string()));
            }
            return;
        }
        for a in admitted {
            if let Err(mpsc::error::SendError(a)) = self.queue.send(a) {
                // Only at shutdown: recorded as started, so the leader waits out its lease.
                let item = DeliverItem { key: a.delivery.key.clone(), attempt: a.delivery.attempt };
                answer(item, self.refuse(Refusal::ShuttingDown, "the send queue is closed"));
            }
        }
    }

    /// Gathers what the worker knows and asks `protocol::admit`; when it says send, also the
    /// request the replica holds (none when the job is gone).
    fn admit(&self, caller: &Caller, term: u64, item: &DeliverItem) -> (Admission, Option<Delivery>) {
        let seen = self.ctx.leader_seen();
        let ledger = match self.ledger.get(&item.key, item.attempt) {
            Ok(None) => LedgerRecord::None,
            Ok(Some(Record::Started { .. })) => LedgerRecord::Started,
            Ok(Some(Record::Finished { attempt })) => LedgerRecord::Finished(attempt),
            Err(_) => LedgerRecord::Unreadable,
        };
        let applied = self.ctx.shared.read();
        let fire = applied.state.fire_by_key(&FireKey(item.key.clone()));
        let view = AdmitView {
            me: self.ctx.id(),
            request_term: term,
            request_attempt: item.attempt,
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
                key: item.key.clone(),
                attempt: item.attempt,
                job: fire.job_name.to_string(),
                scheduled_at: fire.scheduled_at,
                method: t.method.to_string(),
                url: t.url.to_string(),
                headers: t.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: t.body.as_deref().unwrap_or_default().as_bytes().to_vec(),
                timeout: t.timeout.0,
            })
        });
        (admission, delivery)
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
