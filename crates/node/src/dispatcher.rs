//! The leader's dispatcher, in three parts (docs/DESIGN.md, "The fire protocol"): the sender
//! here (the step dispatch: placement and `Deliver`, acting on each reply), the settler in
//! [`settle`] (the step settle), and the completion batcher in [`completions`] (the step
//! complete). The decisions are `belfry_core::protocol`'s; this is the IO around them.

mod backlog;
mod completions;
mod settle;

use completions::Pending;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belfry_core::protocol::{self, DeliverResult, ReplyAction};
use belfry_core::{Assignment, Attempt, Command, Completion, Dispatch, FireKey, OverlapPolicy, Redispatch, Response};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::context::Context;
use crate::peer_tls::Caller;
use crate::proto::worker_client::WorkerClient;
use crate::proto::{DeliverBatchReply, DeliverBatchRequest, DeliverItem};
use crate::raft::NodeId;
use crate::worker::{deliver_result, Worker};

/// How long a worker that failed an RPC is passed over.
const UNHEALTHY_FOR: Duration = Duration::from_secs(5);
/// Dispatches awaiting their reply beyond which the ticker claims nothing more, whatever the
/// workers' pace ([`Dispatcher::claim_budget`] keeps them to what drains in half a lease).
pub const MAX_OUTSTANDING: usize = 100_000;

/// Sends deliveries and commits their outcomes. Lives as long as the node; acts only while
/// the node leads.
pub struct Dispatcher {
    ctx: Arc<Context>,
    worker: Arc<Worker>,
    completions: mpsc::Sender<Pending>,
    // std Mutexes: held only for lookups and inserts, never across an `.await`.
    /// Dispatches a task of this node is sending: `(key, attempt, lease deadline in ms)`. A
    /// redispatch of the same attempt has a new lease, so it is a new entry.
    active: Mutex<HashSet<(FireKey, u32, i64)>>,
    /// Fires whose dispatch the settle loop is deciding.
    settling: Mutex<HashSet<(FireKey, u32)>>,
    unhealthy: Mutex<HashMap<NodeId, Instant>>,
    next_worker: AtomicUsize,
    /// How fast replies come ([`Dispatcher::claim_budget`]).
    reply_rate: backlog::ReplyRate,
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
            reply_rate: backlog::ReplyRate::new(),
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

    /// Sends the committed dispatches: one `DeliverBatch` per worker, in a task of its own.
    pub fn send_all(self: &Arc<Self>, dispatches: Vec<Dispatch>) {
        let mut batches: BTreeMap<(NodeId, u64), Vec<Dispatch>> = BTreeMap::new();
        {
            let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            for d in dispatches {
                if active.insert((d.key.clone(), d.attempt, d.lease_until.timestamp_millis())) {
                    self.ctx.metrics.fires_total.with_label_values(&["dispatched"]).inc();
                    batches.entry((d.worker, d.term)).or_default().push(d);
                }
            }
        }
        for ((worker, term), batch) in batches {
            let this = self.clone();
            tokio::spawn(async move { this.deliver_batch(worker, term, batch).await });
        }
    }

    /// How many dispatches of this leader await their reply: held for their instant, queued,
    /// or being sent.
    pub fn outstanding(&self) -> usize {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn done(&self, d: &Dispatch) {
        let id = (d.key.clone(), d.attempt, d.lease_until.timestamp_millis());
        if self.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            self.reply_rate.record();
        }
    }

    /// The `DeliverBatch` of `batch` (all to one worker, in `term`) and how long to wait for
    /// its last reply: the latest instant a send is held for, plus its attempt's timeout, the
    /// lease and a margin. The request names the attempts and an applied index at or past
    /// their dispatch; the worker sends what its own replica holds.
    fn request(&self, term: u64, batch: &[Dispatch]) -> (DeliverBatchRequest, Duration) {
        let applied = self.ctx.shared.read();
        let log_index = applied.last_applied.map(|l| l.index).unwrap_or(0);
        let now = Utc::now();
        let mut longest = Duration::ZERO;
        for d in batch {
            let hold = d.send_at.and_then(|t| (t - now).to_std().ok()).unwrap_or_default();
            let job = applied.state.fire_by_key(&d.key).and_then(|f| applied.state.job_by_uid(f.job_uid));
            let timeout = job.map(|j| j.spec.target.timeout.0).unwrap_or_default();
            longest = longest.max(hold + timeout);
        }
        let items = batch.iter().map(|d| DeliverItem { key: d.key.0.clone(), attempt: d.attempt }).collect();
        (DeliverBatchRequest { term, log_index, items }, longest + self.ctx.config.lease + Duration::from_secs(2))
    }

    async fn worker_client(&self, id: NodeId) -> Option<WorkerClient<tonic::transport::Channel>> {
        let addr = self.ctx.member_addr(id)?;
        self.ctx.channels.get(id, &addr).ok().map(WorkerClient::new)
    }

    /// Sends `batch` to `worker` and acts on each reply as it comes; what gets none by the end
    /// of the stream is unknown (or, when the worker could not be reached at all, not sent).
    async fn deliver_batch(self: &Arc<Self>, worker: NodeId, term: u64, batch: Vec<Dispatch>) {
        let (req, timeout) = self.request(term, &batch);
        let total = batch.len();
        let mut pending: HashMap<(String, u32), Dispatch> =
            batch.into_iter().map(|d| ((d.key.0.clone(), d.attempt), d)).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ended = if worker == self.ctx.id() {
            let local = self.worker.clone();
            tokio::spawn(async move {
                let caller = Caller::Local;
                local.deliver_batch(&caller, req, tx).await
            });
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(reply)) => self.on_item(&mut pending, worker, reply).await,
                    Ok(None) => break Ok(()),
                    Err(_) => break Err(RpcError::Unknown("no reply in time".into())),
                }
            }
        } else {
            match self.worker_client(worker).await {
                Some(mut client) => {
                    let mut request = tonic::Request::new(req);
                    request.set_timeout(timeout);
                    match tokio::time::timeout_at(deadline, client.deliver_batch(request)).await {
                        Ok(Ok(replies)) => {
                            let mut replies = replies.into_inner();
                            loop {
                                match tokio::time::timeout_at(deadline, replies.message()).await {
                                    Ok(Ok(Some(reply))) => self.on_item(&mut pending, worker, reply).await,
                                    Ok(Ok(None)) => break Ok(()),
                                    Ok(Err(status)) => break Err(classify(status)),
                                    Err(_) => break Err(RpcError::Unknown("no reply in time".into())),
                                }
                            }
                        }
                        Ok(Err(status)) => Err(classify(status)),
                        Err(_) => Err(RpcError::Unknown("no answer in time".into())),
                    }
                }
                None => Err(RpcError::NotSent(format!("worker {worker} is not a member"))),
            }
        };
        let none_answered = pending.len() == total;
        for d in pending.into_values() {
            let result = match &ended {
                Err(RpcError::NotSent(e)) if none_answered => {
                    tracing::info!(key = %d.key, worker, error = %e, "worker unreachable; dispatching elsewhere");
                    DeliverResult::NotSent
                }
                Err(RpcError::NotSent(e) | RpcError::Unknown(e)) => {
                    tracing::warn!(key = %d.key, worker, error = %e, "deliver RPC failed");
                    DeliverResult::Unknown
                }
                Ok(()) => {
                    tracing::warn!(key = %d.key, worker, "the worker's replies ended without this one");
                    DeliverResult::Unknown
                }
            };
            self.act(&d, result).await;
        }
    }

    /// One reply of a batch: acts on it for the dispatch it names (a reply naming none is
    /// ignored: the worker answers only what it was sent).
    async fn on_item(
        self: &Arc<Self>,
        pending: &mut HashMap<(String, u32), Dispatch>,
        worker: NodeId,
        reply: DeliverBatchReply,
    ) {
        let Some(d) = pending.remove(&(reply.key, reply.attempt)) else { return };
        let (result, detail) = match reply.reply {
            Some(reply) => deliver_result(reply),
            None => (DeliverResult::Unknown, Some("an empty reply".into())),
        };
        if let Some(detail) = detail {
            tracing::info!(key = %d.key, worker, reason = %detail, "delivery refused");
        }
        self.act(&d, result).await;
    }

    /// Carries out `protocol::on_reply` for `d`; a redispatch runs in a task of its own, so
    /// one reply's raft commit does not hold up the replies behind it.
    async fn act(self: &Arc<Self>, d: &Dispatch, result: DeliverResult) {
        let (current, awaited) = self.standing(d);
        match protocol::on_reply(result, current) {
            ReplyAction::Commit(a) => {
                self.complete(&d.key, a, awaited).await;
            }
            ReplyAction::Redispatch => {
                self.mark_unhealthy(d.worker);
                let (this, key, attempt, term) = (self.clone(), d.key.clone(), d.attempt, d.term);
                tokio::spawn(async move { this.redispatch(key, attempt, term).await });
            }
            ReplyAction::Settle { mark_unhealthy } => {
                if mark_unhealthy {
                    self.mark_unhealthy(d.worker);
                }
            }
        }
        self.done(d);
    }

    /// Hands an outcome to the completion batcher; `urgent`: [`Pending::urgent`].
    async fn complete(&self, key: &FireKey, attempt: Attempt, urgent: bool) {
        let _ = self.completions.send(Pending { completion: Completion { key: key.clone(), attempt }, urgent }).await;
    }

    /// Whether `d` is still the current dispatch of its fire in this node's state, and whether
    /// something waits for its outcome to commit ([`Pending::urgent`]): one read of the state.
    fn standing(&self, d: &Dispatch) -> (bool, bool) {
        let applied = self.ctx.shared.read();
        let Some(fire) = applied.state.fire_by_key(&d.key) else { return (false, false) };
        (fire.is_dispatch(d.attempt, d.worker, d.lease_until), awaited(&applied.state, fire))
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

/// Whether something waits for `fire`'s outcome to commit: the next fire of a job that does
/// not allow overlap looks at this one's status, and a manual trigger is being watched.
fn awaited(state: &belfry_core::State, fire: &belfry_core::Fire) -> bool {
    let overlap = state.job_by_uid(fire.job_uid).map(|j| j.spec.overlap);
    fire.manual || overlap.is_some_and(|o| o != OverlapPolicy::Allow)
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
