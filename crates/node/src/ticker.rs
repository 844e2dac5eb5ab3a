//! The ticker: while this node leads, claims due fires in batches and hands the committed
//! dispatches to the dispatcher. One index over `next_fire_at`
//! ([`belfry_core::State::due_ahead`]), no task or timer per job.
//!
//! Fires of jobs that allow overlap are claimed ahead (docs/DESIGN.md, "Claiming ahead"): up
//! to `claim_ahead` before their instant, refilled when the next unclaimed one is half that
//! away, so under steady load a claim entry covers half a window of fires and the commit and
//! the hop to the worker happen before the instant, not after it.

use std::sync::Arc;
use std::time::Duration;

use belfry_core::{Claim, Command, Redispatch, Response};
use chrono::Utc;
use openraft::ServerState;
use tokio::sync::watch;

use crate::context::Context;
use crate::dispatcher::Dispatcher;

/// Claims per log entry at most.
const BATCH: usize = 1000;
/// Longest sleep between two looks at the state, whatever it says is next.
const MAX_IDLE: Duration = Duration::from_millis(500);
/// How soon the ticker looks again while the backpressure budget holds claims back.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(20);

/// Runs until `stop` turns true: waits for leadership, then leads.
pub async fn run(ctx: Arc<Context>, dispatcher: Arc<Dispatcher>, mut stop: watch::Receiver<bool>) {
    let mut server = ctx.raft.server_metrics();
    let mut last_leader = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let (state, term, leader) = {
            let m = server.borrow_and_update();
            (m.state, m.vote.leader_id().term, m.current_leader)
        };
        if leader != last_leader {
            ctx.metrics.leader_changes.inc();
            tracing::info!(node = ctx.id(), term, leader = ?leader, "leader changed");
            last_leader = leader;
        }
        if state == ServerState::Leader {
            lead(&ctx, &dispatcher, term, &mut stop).await;
            continue;
        }
        tokio::select! {
            _ = server.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

async fn lead(ctx: &Arc<Context>, dispatcher: &Arc<Dispatcher>, term: u64, stop: &mut watch::Receiver<bool>) {
    // The state is complete only once this term's first entry is applied; until then an
    // inherited claim could look unclaimed.
    if ctx.raft.ensure_linearizable().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    }
    tracing::info!(node = ctx.id(), term, "leading: ticker started");
    tokio::spawn(dispatcher.clone().settle_loop(term));
    let mut expired_at = None;
    let lookahead = chrono::Duration::from_std(ctx.config.claim_ahead).unwrap_or_default();
    while ctx.is_leader() && ctx.term() == term && !*stop.borrow() {
        let now = Utc::now();
        let ahead = now.checked_add_signed(lookahead).unwrap_or(now);
        // Backpressure: claim no more than the workers finish in half a lease; beyond that the
        // sends would queue on the workers until their leases ran out. The fires wait here
        // instead, late but never sent twice.
        let budget = dispatcher.claim_budget();
        let limit = budget.min(BATCH);
        let (due, next, expiry) = {
            let applied = ctx.shared.read();
            let due = if limit == 0 { Default::default() } else { applied.state.due_ahead(now, ahead, limit) };
            (due, applied.state.next_claimable(lookahead / 2), applied.state.next_expiry())
        };
        // Held back by the budget: nothing claimed, or as many as it allowed, fewer than a
        // full entry. Otherwise the budget took nothing away.
        let constrained = limit == 0 || (limit < BATCH && due.claims.len() >= limit);
        // History ages out at a write; an idle cluster gets one (an empty claim batch) when the
        // oldest kept fire passes its job's `history.max_age`. At most one a second.
        let expire =
            expiry.is_some_and(|t| t <= now) && expired_at.is_none_or(|at| now - at >= chrono::Duration::seconds(1));
        if due.is_empty() && expire {
            expired_at = Some(now);
            if let Err(e) = ctx.propose_as_leader(Command::Fire { now, claims: vec![], redispatches: vec![] }).await {
                tracing::warn!(term, error = %e, "history expiry proposal failed");
            }
        }
        if !due.is_empty() {
            let full = due.claims.len() == BATCH && !constrained;
            let claims = due
                .claims
                .into_iter()
                .map(|(job_uid, scheduled_at)| Claim {
                    job_uid,
                    scheduled_at,
                    assign: dispatcher.assignment(term, now),
                })
                .collect();
            let redispatches = due
                .redispatches
                .into_iter()
                .map(|(key, attempt)| Redispatch { key, attempt, assign: dispatcher.assignment(term, now) })
                .collect();
            match ctx.propose_as_leader(Command::Fire { now, claims, redispatches }).await {
                Ok((_, Response::Dispatches { dispatches })) => dispatcher.send_all(dispatches),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(term, error = %e, "claim proposal failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if full {
                continue;
            }
        }
        let wake = match (next, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = wake.map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)).unwrap_or(MAX_IDLE).min(MAX_IDLE);
        // Held back by the budget: look again soon, as replies free it.
        let wait = if constrained { wait.min(BACKPRESSURE_POLL) } else { wait };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.shared.changed.notified() => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!(node = ctx.id(), term, "ticker stopped");
}
