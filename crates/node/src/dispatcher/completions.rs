//! The completion batcher: worker outcomes committed in batches, one log entry per batch
//! (docs/DESIGN.md, the step complete).

use std::sync::Arc;
use std::time::Duration;

use belfry_core::{Command, Completion, FireKey, FireStatus};
use chrono::Utc;
use tokio::sync::mpsc;

use crate::context::Context;

/// Completions committed per log entry at most.
pub const COMPLETION_BATCH: usize = 1000;
/// How long the first outcome of a batch waits for others. Outcomes are off every fire's
/// critical path (the send has happened), so a few milliseconds here turn hundreds of log
/// entries a second under steady load into a few dozen.
const LINGER: Duration = Duration::from_millis(10);

/// Collects worker outcomes from `rx` and commits them in batches.
pub async fn commit_completions(ctx: Arc<Context>, mut rx: mpsc::Receiver<Completion>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < COMPLETION_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(c)) => batch.push(c),
                Ok(None) | Err(_) => break,
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
