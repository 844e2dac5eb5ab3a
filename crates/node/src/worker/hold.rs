//! The worker's send queue: admitted sends wait here for their instant (a fire claimed ahead)
//! and for a free slot, in one timer structure, and at most `max_sends` run at once.
//!
//! Each held send is recorded in the ledger as started and claimed in its in-flight set
//! before it gets here, so a leader asking about it (`QueryDelivery`) waits for it: a held
//! send is neither started nor lost. It is released by `belfry_core::protocol::release`, by
//! this worker's clock: at its instant, and never after its lease (one queued past its lease
//! is refused, and the leader sends it elsewhere).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use belfry_core::protocol::{self, Refusal, Release};
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::context::Context;
use crate::convert::outcome;
use crate::delivery::{Delivery, DeliveryClient};
use crate::ledger::Ledger;
use crate::proto::{deliver_reply, DeliverBatchReply, DeliverReply};

use super::refused;

/// An attempt claimed in the ledger's in-flight set, released when dropped: when its send
/// finishes, when it is refused, or when the queue goes away.
pub struct Claimed {
    ledger: Arc<Ledger>,
    key: String,
    attempt: u32,
}

impl Claimed {
    /// Claims `key`'s `attempt` in `ledger`'s in-flight set; `None` if it is already there.
    pub fn claim(ledger: &Arc<Ledger>, key: &str, attempt: u32) -> Option<Claimed> {
        ledger.claim(key, attempt).then(|| Claimed { ledger: ledger.clone(), key: key.to_string(), attempt })
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.ledger.release(&self.key, self.attempt);
    }
}

/// An admitted send: what to send, when, by when, and where its reply goes.
pub struct Admitted {
    pub delivery: Delivery,
    pub lease_until: DateTime<Utc>,
    pub send_at: Option<DateTime<Utc>>,
    /// Held for its `Drop`, which ends the in-flight claim.
    pub _claimed: Claimed,
    pub reply: mpsc::UnboundedSender<DeliverBatchReply>,
}

impl Admitted {
    fn answer(&self, reply: DeliverReply) {
        // The leader may have gone: the outcome is in the ledger for its successor.
        let _ = self.reply.send(DeliverBatchReply {
            key: self.delivery.key.clone(),
            attempt: self.delivery.attempt,
            reply: Some(reply),
        });
    }

    /// The instant the send may start, in unix ms.
    fn start_ms(&self) -> i64 {
        self.send_at.map(|t| t.timestamp_millis()).unwrap_or(i64::MIN)
    }
}

/// What a send needs besides the attempt: shared by the queue and its send tasks.
pub struct Sender {
    pub ctx: Arc<Context>,
    pub ledger: Arc<Ledger>,
    pub http: DeliveryClient,
}

/// Starts the queue's task; sends to the returned channel enqueue.
pub fn start(sender: Arc<Sender>, max_sends: usize) -> mpsc::UnboundedSender<Admitted> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(sender, rx, Arc::new(Semaphore::new(max_sends.max(1)))));
    tx
}

/// The queue: a map ordered by start instant, one timer for its first entry.
async fn run(sender: Arc<Sender>, mut rx: mpsc::UnboundedReceiver<Admitted>, slots: Arc<Semaphore>) {
    let mut held: BTreeMap<(i64, u64), Admitted> = BTreeMap::new();
    let mut seq = 0u64;
    loop {
        let now_ms = Utc::now().timestamp_millis();
        while let Some(entry) = held.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let admitted = entry.remove();
            // Waits while `max_sends` are running: the queue is the backpressure.
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            release(&sender, admitted, permit);
        }
        sender.ctx.metrics.deliveries_held.set(held.len() as i64);
        let wake = held.first_key_value().map(|((ms, _), _)| *ms);
        let sleep = async {
            match wake {
                Some(ms) => {
                    let wait = u64::try_from(ms.saturating_sub(Utc::now().timestamp_millis())).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            item = rx.recv() => match item {
                Some(admitted) => {
                    seq += 1;
                    held.insert((admitted.start_ms(), seq), admitted);
                    // Take whatever else is already queued before looking at the clock again.
                    while let Ok(admitted) = rx.try_recv() {
                        seq += 1;
                        held.insert((admitted.start_ms(), seq), admitted);
                    }
                }
                None => return,
            },
            _ = sleep => {}
        }
    }
}

/// Starts `admitted` in a task of its own, or refuses it when its lease has run out.
fn release(sender: &Arc<Sender>, admitted: Admitted, permit: OwnedSemaphorePermit) {
    // `Hold` here means an instant less than a millisecond away (the queue reads the clock in
    // whole milliseconds): the send starts now.
    if protocol::release(Utc::now(), admitted.send_at, admitted.lease_until) == Release::Expired {
        sender.ctx.metrics.fires_total.with_label_values(&["refused"]).inc();
        admitted.answer(refused(Refusal::LeaseExpired, "held or queued past the lease"));
        return;
    }
    let sender = sender.clone();
    tokio::spawn(async move {
        let reply = send(&sender, &admitted, permit).await;
        admitted.answer(reply);
    });
}

/// Sends the attempt (its ledger record says started already) in its send slot `permit`,
/// frees the slot, and records the outcome.
async fn send(sender: &Sender, admitted: &Admitted, permit: OwnedSemaphorePermit) -> DeliverReply {
    let d = &admitted.delivery;
    let m = &sender.ctx.metrics;
    m.deliveries_in_flight.inc();
    let lag = (Utc::now() - d.scheduled_at).num_milliseconds().max(0) as f64 / 1000.0;
    m.fire_lag.observe(lag);
    let result = sender.http.send(d, sender.ctx.config.signer.as_ref(), sender.ctx.id()).await;
    m.deliveries_in_flight.dec();
    m.delivery_duration.observe(result.duration_ms() as f64 / 1000.0);
    let class = serde_json::to_value(result.class).ok().and_then(|v| v.as_str().map(str::to_string));
    m.fires_total.with_label_values(&[class.as_deref().unwrap_or("unknown")]).inc();
    tracing::debug!(key = %d.key, attempt = d.attempt, status = ?result.http_status, "delivered");
    // The slot bounds sends, not ledger writes: the next send need not wait for this fsync.
    drop(permit);
    if let Err(e) = sender.ledger.put_outcome(&d.key, d.attempt, &result).await {
        // The send happened; the outcome still goes back to the leader, which commits it.
        tracing::error!(key = %d.key, error = %e, "ledger write after send failed");
    }
    DeliverReply { result: Some(deliver_reply::Result::Outcome(outcome(&result))) }
}
