//! The settler: every second, the leader decides the dispatched fires no task of its own is
//! sending (a new leader's inheritance, a lost RPC) through the workers' ledgers
//! (docs/DESIGN.md, the step settle; the decision is `belfry_core::protocol::settle`).

use std::sync::Arc;
use std::time::Duration;

use belfry_core::protocol::{self, LedgerAnswer, SettleAction, Unsettled};
use belfry_core::{Fire, FireKey, FireStatus};
use chrono::Utc;

use super::Dispatcher;
use crate::convert::attempt;
use crate::proto::{DeliveryState, QueryDeliveryReply, QueryDeliveryRequest};
use crate::raft::NodeId;

/// Dispatched fires decided per round at most.
const SETTLE_BATCH: usize = 1000;

impl Dispatcher {
    /// While this node leads in `term`: every second, settles dispatched fires that no task of
    /// this leader is sending and whose lease has run out, and at once those an earlier leader
    /// dispatched.
    pub async fn settle_loop(self: Arc<Self>, term: u64) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self.ctx.is_leader() && self.ctx.term() == term {
            tick.tick().await;
            for fire in self.unsettled(term) {
                let id = (fire.key.clone(), fire.attempt);
                let fresh = self.settling.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
                if fresh {
                    let this = self.clone();
                    tokio::spawn(async move {
                        this.settle(&fire, term).await;
                        this.settling.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    });
                }
            }
        }
    }

    /// The dispatched fires to decide this round: not sent by a task of this leader, not being
    /// decided, and either dispatched in an earlier term or past their lease.
    fn unsettled(&self, term: u64) -> Vec<Fire> {
        let now = Utc::now();
        let skew = self.skew();
        let applied = self.ctx.shared.read();
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let settling = self.settling.lock().unwrap_or_else(|e| e.into_inner());
        applied
            .state
            .fires_with_status(FireStatus::Dispatched)
            .filter(|f| {
                let lease = f.lease_until.map(|l| l.timestamp_millis()).unwrap_or(0);
                !active.contains(&(f.key.clone(), f.attempt, lease)) && !settling.contains(&(f.key.clone(), f.attempt))
            })
            .filter(|f| {
                let view = Unsettled {
                    lease_until: f.lease_until,
                    attempt_timeout: chrono::Duration::zero(),
                    max_clock_skew: skew,
                };
                f.term < term || view.lease_passed(now)
            })
            .take(SETTLE_BATCH)
            .cloned()
            .collect()
    }

    fn skew(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.ctx.config.max_clock_skew).unwrap_or(chrono::Duration::MAX)
    }

    async fn query(&self, worker: NodeId, key: &FireKey, attempt_no: u32) -> Result<QueryDeliveryReply, String> {
        if worker == self.ctx.id() {
            return Ok(self.worker.query(&key.0, attempt_no));
        }
        let mut client = self.worker_client(worker).await.ok_or("not a member")?;
        let mut request = tonic::Request::new(QueryDeliveryRequest { key: key.0.clone(), attempt: attempt_no });
        request.set_timeout(Duration::from_secs(2));
        client.query_delivery(request).await.map(|r| r.into_inner()).map_err(|s| s.to_string())
    }

    /// Asks the worker's ledger about `fire` and carries out `protocol::settle`'s decision.
    async fn settle(self: &Arc<Self>, fire: &Fire, term: u64) {
        let worker = fire.worker.unwrap_or(self.ctx.id());
        let answer = match self.query(worker, &fire.key, fire.attempt).await {
            Ok(reply) => ledger_answer(reply),
            Err(e) => {
                tracing::debug!(key = %fire.key, worker, error = %e, "ledger query failed");
                LedgerAnswer::Unreachable
            }
        };
        let timeout = self.ctx.shared.read().state.job_by_uid(fire.job_uid).map(|j| j.spec.target.timeout.chrono());
        let view = Unsettled {
            lease_until: fire.lease_until,
            attempt_timeout: timeout.unwrap_or_default(),
            max_clock_skew: self.skew(),
        };
        // Decided only while the dispatch asked about is still the fire's current one.
        let standing = fire.worker.zip(fire.lease_until).and_then(|(worker, lease)| {
            let applied = self.ctx.shared.read();
            let now =
                applied.state.fire_by_key(&fire.key).filter(|now| now.is_dispatch(fire.attempt, worker, lease))?;
            Some(super::awaited(&applied.state, now))
        });
        let Some(awaited) = standing else { return };
        match protocol::settle(&view, answer, Utc::now()) {
            SettleAction::Commit(a) => {
                self.complete(&fire.key, a, awaited).await;
            }
            SettleAction::ResendSameWorker => {
                self.redispatch_to(fire.key.clone(), fire.attempt, term, Some(worker)).await;
            }
            SettleAction::ResendElsewhere { mark_unhealthy } => {
                if mark_unhealthy {
                    tracing::info!(key = %fire.key, worker, "worker unreachable past the lease; dispatching again");
                    self.mark_unhealthy(worker);
                }
                self.redispatch(fire.key.clone(), fire.attempt, term).await;
            }
            SettleAction::Wait => {}
        }
    }
}

/// A `QueryDelivery` reply as the protocol's [`LedgerAnswer`]. A state this version does not
/// know counts as started: never as "never sent".
fn ledger_answer(reply: QueryDeliveryReply) -> LedgerAnswer {
    match DeliveryState::try_from(reply.state) {
        Ok(DeliveryState::Finished) => LedgerAnswer::Finished(reply.outcome.as_ref().map(attempt)),
        Ok(DeliveryState::Unknown) => LedgerAnswer::Unknown { in_flight: reply.in_flight },
        Ok(DeliveryState::Started) | Ok(DeliveryState::Unspecified) | Err(_) => {
            LedgerAnswer::Started { in_flight: reply.in_flight }
        }
    }
}
