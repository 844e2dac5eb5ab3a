//! The leader's dispatcher, in three parts (docs/DESIGN.md, "The fire protocol"): the sender
//! here (the step dispatch: placement and `Deliver`, acting on each reply), the settler in
//! [`settle`] (the step settle), and the completion batcher in [`completions`] (the step
//! complete). The decisions are `belfry_core::protocol`'s; this is the IO around them.

mod completions;
mod settle;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belfry_core::protocol::{self, DeliverResult, ReplyAction};
use belfry_core::{Assignment, Command, Completion, Dispatch, FireKey, Redispatch, Response};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::peer_tls::Caller;
use crate::proto::worker_client::WorkerClient;
use crate::proto::DeliverRequest;
use crate::raft::NodeId;
use crate::worker::{deliver_result, Worker};

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
        tokio::spawn(completions::commit_completions(ctx, rx));
        d
    }

    /// Picks a worker (`protocol::place`): followers that answered raft within two election
    /// timeouts and failed no RPC lately, in turn; the leader itself only when none has.
    pub fn assignment(&self, term: u64, now: DateTime<Utc>) -> Assignment {
        let me = self.ctx.id();
        let members: Vec<NodeId> = {
            let metrics = self.ctx.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().nodes().map(|(id, _)| *id).collect()
        };
        let answering = 2 * self.ctx.config.election_timeout;
        let worker = {
            let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|e| e.into_inner());
            unhealthy.retain(|_, since| since.elapsed() < UNHEALTHY_FOR);
            let healthy =
                |id: NodeId| !unhealthy.contains_key(&id) && self.ctx.contacts.since(id).is_some_and(|d| d < answering);
            protocol::place(me, &members, healthy, self.next_worker.fetch_add(1, Ordering::Relaxed))
        };
        let lease = chrono::Duration::from_std(self.ctx.config.lease).unwrap_or(chrono::Duration::MAX);
        let lease_until = now.checked_add_signed(lease).unwrap_or(DateTime::<Utc>::MAX_UTC);
        Assignment { worker, term, lease_until }
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
        let result = match reply {
            Ok(reply) => {
                let (result, detail) = deliver_result(reply);
                if let Some(detail) = detail {
                    tracing::info!(key = %d.key, worker = d.worker, reason = %detail, "delivery refused");
                }
                result
            }
            Err(RpcError::NotSent(e)) => {
                tracing::info!(key = %d.key, worker = d.worker, error = %e, "worker unreachable; dispatching elsewhere");
                DeliverResult::NotSent
            }
            Err(RpcError::Unknown(e)) => {
                tracing::warn!(key = %d.key, worker = d.worker, error = %e, "deliver RPC failed");
                DeliverResult::Unknown
            }
        };
        match protocol::on_reply(result, self.is_current(d)) {
            ReplyAction::Commit(a) => {
                let _ = self.completions.send(Completion { key: d.key.clone(), attempt: a }).await;
            }
            ReplyAction::Redispatch => {
                self.mark_unhealthy(d.worker);
                self.redispatch(d.key.clone(), d.attempt, d.term).await;
            }
            ReplyAction::Settle { mark_unhealthy } => {
                if mark_unhealthy {
                    self.mark_unhealthy(d.worker);
                }
            }
        }
    }

    /// Whether `d` is still the current dispatch of its fire in this node's state.
    fn is_current(&self, d: &Dispatch) -> bool {
        let applied = self.ctx.shared.read();
        applied.state.fire_by_key(&d.key).is_some_and(|f| f.is_dispatch(d.attempt, d.worker, d.lease_until))
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
