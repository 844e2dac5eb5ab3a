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
/// critical path (the send has happened), so waiting here turns hundreds of log entries a
/// second under steady load into ten, each of them a fsync on every node.
const LINGER: Duration = Duration::from_millis(100);

/// A worker's outcome on its way to the log.
pub struct Pending {
    pub completion: Completion,
    /// Someone waits for it: the next fire of a job that does not allow overlap is skipped
    /// or buffered until this one is complete, and a manual trigger is being watched. Such a
    /// completion is committed with whatever is queued, without lingering.
    pub urgent: bool,
}

/// Collects worker outcomes from `rx` and commits them in batches.
pub async fn commit_completions(ctx: Arc<Context>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let batch = gather(&mut rx, first, LINGER).await;
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

/// The batch that starts with `first`: what else arrives within `linger` of it, up to
/// [`COMPLETION_BATCH`]; once an urgent one is in, only what is queued already.
async fn gather(rx: &mut mpsc::Receiver<Pending>, first: Pending, linger: Duration) -> Vec<Completion> {
    let mut urgent = first.urgent;
    let mut batch = vec![first.completion];
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < COMPLETION_BATCH {
        let next = match rx.try_recv() {
            Ok(p) => Some(p),
            Err(_) if urgent => None,
            Err(_) => tokio::time::timeout_at(until, rx.recv()).await.ok().flatten(),
        };
        let Some(p) = next else { break };
        urgent |= p.urgent;
        batch.push(p.completion);
    }
    batch
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

#[cfg(test)]
mod tests {
    use belfry_core::{Attempt, ResultClass};

    use super::*;

    fn pending(n: u32, urgent: bool) -> Pending {
        let attempt = Attempt {
            number: 1,
            worker: 2,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            class: ResultClass::Success,
            http_status: Some(200),
            error: None,
            body_excerpt: None,
            retry_after_ms: None,
        };
        Pending { completion: Completion { key: FireKey(format!("1:{n}")), attempt }, urgent }
    }

    fn keys(batch: &[Completion]) -> Vec<String> {
        batch.iter().map(|c| c.key.0.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_within_the_linger_share_a_batch_and_later_ones_start_the_next() {
        let (tx, mut rx) = mpsc::channel(16);
        let feed = tokio::spawn(async move {
            for (n, after_ms) in [(2, 40), (3, 40), (4, 40)] {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                tx.send(pending(n, false)).await.expect("send");
            }
        });
        let first = gather(&mut rx, pending(1, false), Duration::from_millis(100)).await;
        assert_eq!(keys(&first), ["1:1", "1:2", "1:3"], "40 and 80 ms are inside the linger, 120 ms is not");
        let next = rx.recv().await.expect("the fourth");
        assert_eq!(keys(&gather(&mut rx, next, Duration::from_millis(100)).await), ["1:4"]);
        feed.await.expect("feed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_outcome_goes_with_what_is_queued_without_lingering() {
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(pending(2, false)).await.expect("send");
        let began = tokio::time::Instant::now();
        let batch = gather(&mut rx, pending(1, true), Duration::from_millis(100)).await;
        assert_eq!(keys(&batch), ["1:1", "1:2"]);
        assert_eq!(began.elapsed(), Duration::ZERO, "no wait for an urgent batch");

        // An urgent one arriving during the linger ends it.
        let feed = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(pending(4, true)).await.expect("send");
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(pending(5, false)).await.expect("send");
        });
        let began = tokio::time::Instant::now();
        let batch = gather(&mut rx, pending(3, false), Duration::from_millis(100)).await;
        assert_eq!(keys(&batch), ["1:3", "1:4"]);
        assert_eq!(began.elapsed(), Duration::from_millis(30));
        feed.await.expect("feed");
    }
}
