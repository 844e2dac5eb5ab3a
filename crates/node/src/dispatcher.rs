//! The leader's dispatcher: sends committed dispatches to workers, commits their outcomes, and
//! settles fires whose dispatch it did not see finish (after a failover, a lost worker or a
//! broken RPC) through the workers' ledgers (docs/DESIGN.md, "The fire protocol": the steps
//! dispatch, complete and settle).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belfry_core::{Assignment, Command, Completion, Dispatch, Fire, FireKey, FireStatus, Redispatch, Response};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::convert::attempt;
use crate::peer_tls::Caller;
use crate::proto::worker_client::WorkerClient;
use crate::proto::{deliver_reply, DeliverRequest, DeliveryState, QueryDeliveryReply, QueryDeliveryRequest};
use crate::raft::NodeId;
use crate::worker::{refusal, reply_attempt, Worker};

/// Completions committed per log entry at most.
const COMPLETION_BATCH: usize = 1000;
/// How long a worker that failed an RPC is passed over.
const UNHEALTHY_FOR: Duration = Duration::from_secs(5);

/// Sends deliveries and commits their outcomes. Lives as long as the node; acts only while
/// the node leads.
pub struct Dispatcher {
    ctx: Arc<Context>,
    worker: Arc<Worker>,
    completions: mpsc::Sender<Completion>,
    // std Mutexes: held only for lookups and inserts, never across an `.await`.
    /// Dispatches a task of this node is sending: `(key, attempt, lease deadline in ms)`. A
    /// redispatch of the same attempt has a new lease, so it is a new entry.
    active: Mutex<HashSet<(FireKey, u32, i64)>>,
    /// Fires whose dispatch the settle loop is deciding.
    settling: Mutex<HashSet<(FireKey, u32)>>,
    unhealthy: Mutex<HashMap<NodeId, Instant>>,
    next_worker: AtomicUsize,
}

impl Dispatcher {
    /// A dispatcher and the task that batches completions into `Complete` entries.
    pub fn start(ctx: Arc<Context>, worker: Arc<Worker>) -> Arc<Dispatcher> {
        let (tx, rx) = mpsc::channel(10_000);
        let d = Arc::new(Dispatcher {
            ctx: ctx.clone(),
            worker,
            completions: tx,
            active: Mutex::new(HashSet::new()),
            settling: Mutex::new(HashSet::new()),
            unhealthy: Mutex::new(HashMap::new()),
            next_worker: AtomicUsize::new(0),
        });
        tokio::spawn(commit_completions(ctx, rx));
        d
    }

    /// Picks a worker: healthy followers in turn; the leader itself only when it is alone.
    pub fn assignment(&self, term: u64, now: DateTime<Utc>) -> Assignment {
        let me = self.ctx.id();
        let members: Vec<NodeId> = {
            let metrics = self.ctx.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().nodes().map(|(id, _)| *id).filter(|id| *id != me).collect()
        };
        // A follower that has not answered raft for a while is down or paused: a `Deliver` to it
        // would hang until its lease ran out.
        let answering = 2 * self.ctx.config.election_timeout;
        let healthy: Vec<NodeId> = {
            let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
            unhealthy.retain(|_, since| since.elapsed() < UNHEALTHY_FOR);
            members
                .iter()
                .copied()
                .filter(|id| !unhealthy.contains_key(id))
                .filter(|id| self.ctx.contacts.since(*id).is_some_and(|d| d < answering))
                .collect()
        };
        let worker = if healthy.is_empty() {
            me
        } else {
            healthy[self.next_worker.fetch_add(1, Ordering::Relaxed) % healthy.len()]
        };
        let lease = self.ctx.config.lease;
        Assignment { worker, term, lease_until: now + chrono::Duration::milliseconds(lease.as_millis() as i64) }
    }

    fn mark_unhealthy(&self, id: NodeId) {
        self.unhealthy.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Instant::now());
    }

    /// Sends each committed dispatch in a task of its own.
    pub fn send_all(self: &Arc<Self>, dispatches: Vec<Dispatch>) {
        for d in dispatches {
            let id = (d.key.clone(), d.attempt, d.lease_until.timestamp_millis());
            let first = self.active.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
            if !first {
                continue;
            }
            self.ctx.metrics.fires_total.with_label_values(&["dispatched"]).inc();
            let this = self.clone();
            tokio::spawn(async move {
                this.deliver(&d).await;
                this.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        }
    }

    /// The `Deliver` of `d` and the attempt's timeout. The request names the attempt and an
    /// applied index at or past its dispatch; the worker sends what its own replica holds.
    fn request(&self, d: &Dispatch) -> Option<(DeliverRequest, Duration)> {
        let applied = self.ctx.shared.read();
        let fire = applied.state.fire_by_key(&d.key)?;
        let job = applied.state.job_by_uid(fire.job_uid)?;
        let log_index = applied.last_applied.map(|l| l.index).unwrap_or(0);
        let req = DeliverRequest { key: d.key.0.clone(), attempt: d.attempt, term: d.term, log_index };
        Some((req, job.spec.target.timeout.0))
    }

    async fn worker_client(&self, id: NodeId) -> Option<WorkerClient<tonic::transport::Channel>> {
        let addr = self.ctx.member_addr(id)?;
        self.ctx.channels.get(id, &addr).ok().map(WorkerClient::new)
    }

    async fn deliver(self: &Arc<Self>, d: &Dispatch) {
        let Some((req, attempt_timeout)) = self.request(d) else { return };
        let timeout = attempt_timeout + self.ctx.config.lease + Duration::from_secs(2);
        let reply = if d.worker == self.ctx.id() {
            Ok(self.worker.deliver(&Caller::Local, req).await)
        } else {
            match self.worker_client(d.worker).await {
                Some(mut client) => {
                    let mut request = tonic::Request::new(req);
                    request.set_timeout(timeout);
                    client.deliver(request).await.map(|r| r.into_inner()).map_err(classify)
                }
                None => Err(RpcError::NotSent(format!("worker {} is not a member", d.worker))),
            }
        };
        match reply {
            Ok(reply) => {
                if let Some(a) = reply_attempt(&reply) {
                    let _ = self.completions.send(Completion { key: d.key.clone(), attempt: a }).await;
                } else if let Some(deliver_reply::Result::Refused(why)) = reply.result {
                    tracing::info!(key = %d.key, worker = d.worker, reason = %why, "delivery refused");
                    if !why.starts_with(refusal::STALE_TERM) && !why.starts_with(refusal::IN_PROGRESS) {
                        // Refused before any send: safe to hand to another worker at once.
                        self.mark_unhealthy(d.worker);
                        self.redispatch(d.key.clone(), d.attempt, d.term).await;
                    }
                }
            }
            Err(RpcError::NotSent(e)) => {
                // The connection could not be made, so the request never left: another worker
                // can take it at once.
                tracing::info!(key = %d.key, worker = d.worker, error = %e, "worker unreachable; dispatching elsewhere");
                self.mark_unhealthy(d.worker);
                self.redispatch(d.key.clone(), d.attempt, d.term).await;
            }
            Err(RpcError::Unknown(e)) => {
                // The send may or may not have happened: the settle loop asks the ledger once the
                // lease has run out.
                tracing::warn!(key = %d.key, worker = d.worker, error = %e, "deliver RPC failed");
                self.mark_unhealthy(d.worker);
            }
        }
    }

    /// Commits a new dispatch of the same attempt to another worker and sends it.
    async fn redispatch(self: &Arc<Self>, key: FireKey, attempt_no: u32, term: u64) {
        self.redispatch_to(key, attempt_no, term, None).await
    }

    /// Commits a new dispatch of the same attempt, to `worker` or to the next healthy one, and
    /// sends it.
    async fn redispatch_to(self: &Arc<Self>, key: FireKey, attempt_no: u32, term: u64, worker: Option<NodeId>) {
        if !self.ctx.is_leader() || self.ctx.term() != term {
            return;
        }
        let now = Utc::now();
        let mut assign = self.assignment(term, now);
        if let Some(worker) = worker {
            assign.worker = worker;
        }
        let command =
            Command::Fire { now, claims: vec![], redispatches: vec![Redispatch { key, attempt: attempt_no, assign }] };
        if let Ok((_, Response::Dispatches { dispatches })) = self.ctx.propose_as_leader(command).await {
            self.send_all(dispatches);
        }
    }

    /// While this node leads in `term`: every second, settles dispatched fires that no task of
    /// this leader is sending and whose lease has run out, and at once those an earlier leader
    /// dispatched (see [`Dispatcher::settle`]).
    pub async fn settle_loop(self: Arc<Self>, term: u64) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while self.ctx.is_leader() && self.ctx.term() == term {
            tick.tick().await;
            let now = Utc::now();
            let skew = chrono::Duration::milliseconds(self.ctx.config.max_clock_skew.as_millis() as i64);
            let candidates: Vec<Fire> = {
                let applied = self.ctx.shared.read();
                let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
                let settling = self.settling.lock().unwrap_or_else(|e| e.into_inner());
                applied
                    .state
                    .fires_with_status(FireStatus::Dispatched)
                    .filter(|f| {
                        let lease = f.lease_until.map(|l| l.timestamp_millis()).unwrap_or(0);
                        !active.contains(&(f.key.clone(), f.attempt, lease))
                            && !settling.contains(&(f.key.clone(), f.attempt))
                    })
                    .filter(|f| f.term < term || f.lease_until.is_none_or(|l| l + skew < now))
                    .take(1000)
                    .cloned()
                    .collect()
            };
            for fire in candidates {
                let id = (fire.key.clone(), fire.attempt);
                let fresh = self.settling.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
                if fresh {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let lease_passed = fire.lease_until.is_none_or(|l| l + skew < Utc::now());
                        this.settle(&fire, term, lease_passed).await;
                        this.settling.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    });
                }
            }
        }
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

    /// Decides a dispatched fire whose sender is gone: commit the ledger's outcome, wait for a
    /// send in progress, or dispatch the same attempt again once no send can still start.
    ///
    /// Before the lease has run out (a fire an earlier leader dispatched and may still send, say
    /// a paused one), the only safe move is to the same worker: its ledger claims an attempt
    /// before sending, so two `Deliver`s of one attempt there send at most once, and a refusal
    /// as in progress leaves the fire to the lease rule.
    async fn settle(self: &Arc<Self>, fire: &Fire, term: u64, lease_passed: bool) {
        let worker = fire.worker.unwrap_or(self.ctx.id());
        match self.query(worker, &fire.key, fire.attempt).await {
            Ok(reply) => match DeliveryState::try_from(reply.state) {
                Ok(DeliveryState::Finished) => {
                    if let Some(o) = reply.outcome {
                        let _ = self.completions.send(Completion { key: fire.key.clone(), attempt: attempt(&o) }).await;
                    }
                }
                Ok(DeliveryState::Started) if reply.in_flight => {}
                Ok(DeliveryState::Unknown) if !lease_passed && !reply.in_flight => {
                    self.redispatch_to(fire.key.clone(), fire.attempt, term, Some(worker)).await
                }
                _ if !lease_passed => {}
                // Never started, and its lease has passed, so it never will: send it again.
                // Or started and interrupted (the worker restarted mid-send): the one duplicate
                // the protocol allows, under the same key.
                _ => self.redispatch(fire.key.clone(), fire.attempt, term).await,
            },
            Err(e) => {
                // Unreachable: a send may have started before the lease ran out; once the lease,
                // the attempt timeout and the clock skew have all passed, none is still running.
                let timeout =
                    self.ctx.shared.read().state.job_by_uid(fire.job_uid).map(|j| j.spec.target.timeout.chrono());
                let skew = chrono::Duration::milliseconds(self.ctx.config.max_clock_skew.as_millis() as i64);
                let deadline = fire.lease_until.unwrap_or_default() + timeout.unwrap_or_default() + skew;
                if Utc::now() > deadline {
                    tracing::info!(key = %fire.key, worker, error = %e, "worker unreachable past the lease; dispatching again");
                    self.mark_unhealthy(worker);
                    self.redispatch(fire.key.clone(), fire.attempt, term).await;
                }
            }
        }
    }
}

/// A failed `Deliver` RPC: either it certainly never reached the worker, or nobody knows.
enum RpcError {
    NotSent(String),
    Unknown(String),
}

/// A refused TCP connection means the request was never sent; anything else may have been.
fn classify(status: tonic::Status) -> RpcError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&status);
    let mut chain = status.message().to_string();
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    if status.code() == tonic::Code::Unavailable
        && (chain.contains("tcp connect error") || chain.contains("Connection refused"))
    {
        RpcError::NotSent(chain)
    } else {
        RpcError::Unknown(chain)
    }
}

/// Collects worker outcomes and commits them in batches, one log entry per batch.
async fn commit_completions(ctx: Arc<Context>, mut rx: mpsc::Receiver<Completion>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETION_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let keys: Vec<FireKey> = batch.iter().map(|c| c.key.clone()).collect();
        match ctx.propose(Command::Complete { now: Utc::now(), completions: batch }).await {
            Ok(_) => log_dead_letters(&ctx, &keys),
            // Not lost: the outcomes are in the workers' ledgers, and the next leader's settle
            // loop commits them from there.
            Err(e) => tracing::warn!(count = n, error = %e, "could not commit completions"),
        }
    }
}

/// One line per fire the committed completions dead-lettered.
fn log_dead_letters(ctx: &Context, keys: &[FireKey]) {
    let applied = ctx.shared.read();
    for key in keys {
        if let Some(fire) = applied.state.fire_by_key(key).filter(|f| f.status == FireStatus::DeadLettered) {
            let status = fire.attempts.last().and_then(|a| a.http_status);
            tracing::warn!(
                node = ctx.id(),
                job = %fire.job_name,
                key = %fire.key,
                attempts = fire.attempt,
                http_status = ?status,
                "fire dead-lettered"
            );
        }
    }
}
