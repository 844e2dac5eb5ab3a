//! Group commit: one fsync at a time per sled database, shared by every writer waiting.
//!
//! sled 0.34 runs `flush_async` on its own small thread pool, where each flush waits for the
//! log buffer to become stable; many concurrent flushes can occupy every pool thread while the
//! write they wait for is queued behind them, and the node stalls. So flushes run one at a
//! time, and a writer whose write an earlier flush already covered does not flush again: each
//! writer takes a ticket after its write, each flush records the last ticket issued before it
//! began, and a writer returns as soon as a flush that began after its ticket has finished.
//! A hundred sends that start in the same tick cost one or two fsyncs, not a hundred; writers
//! that can wait a little ([`Flusher::flush_within`]) share one fsync per linger.

use std::sync::atomic::{AtomicU64, Ordering};

/// Serializes and shares `flush` calls on one database.
pub struct Flusher {
    db: sled::Db,
    /// Tickets issued: one per write that asked to be made durable.
    issued: AtomicU64,
    /// The last ticket covered by a finished flush; held while a flush runs.
    durable: tokio::sync::Mutex<u64>,
    /// Flushes performed.
    performed: AtomicU64,
}

impl Flusher {
    /// A flusher for `db`.
    pub fn new(db: sled::Db) -> Flusher {
        Flusher { db, issued: AtomicU64::new(0), durable: tokio::sync::Mutex::new(0), performed: AtomicU64::new(0) }
    }

    /// Makes every write issued before the call durable.
    pub async fn flush(&self) -> sled::Result<()> {
        let ticket = self.ticket();
        self.flush_to(ticket).await
    }

    /// Like [`Flusher::flush`] for a writer that can wait up to `linger` for its fsync: every
    /// such writer in the same `linger` shares one, so a write rate of hundreds a second costs
    /// at most one fsync per `linger` (and none when another flush covers it meanwhile).
    pub async fn flush_within(&self, linger: std::time::Duration) -> sled::Result<()> {
        // The ticket is taken now, after the write: a flush that begins while this writer
        // waits covers it, and it returns without one of its own.
        let ticket = self.ticket();
        tokio::time::sleep(linger).await;
        self.flush_to(ticket).await
    }

    fn ticket(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn flush_to(&self, ticket: u64) -> sled::Result<()> {
        let mut durable = self.durable.lock().await;
        if *durable >= ticket {
            // A flush that began after this writer's write has finished.
            return Ok(());
        }
        // Every ticket up to here was taken after its write: this flush covers them all.
        let covers = self.issued.load(Ordering::SeqCst);
        // On tokio's blocking pool, not sled's own: sled writes sealed log buffers on its pool,
        // and a flush waiting there can hold the thread the write it waits for needs.
        let db = self.db.clone();
        self.performed.fetch_add(1, Ordering::Relaxed);
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(Ok(_)) => {
                *durable = covers;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(sled::Error::ReportableBug(format!("flush task failed: {e}"))),
        }
    }

    /// How many fsyncs this flusher has run.
    pub fn performed(&self) -> u64 {
        self.performed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_waiting_behind_a_flush_share_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("sled");
        let flusher = Arc::new(Flusher::new(db.clone()));
        // A flush is running (the lock is held) while 64 writers write and ask for theirs.
        let running = flusher.durable.lock().await;
        let writers: Vec<_> = (0..64u32)
            .map(|i| {
                let (db, flusher) = (db.clone(), flusher.clone());
                tokio::spawn(async move {
                    db.insert(i.to_be_bytes(), b"x".to_vec()).expect("insert");
                    flusher.flush().await.expect("flush");
                })
            })
            .collect();
        while flusher.issued.load(Ordering::SeqCst) < 64 {
            tokio::task::yield_now().await;
        }
        drop(running);
        for w in writers {
            w.await.expect("writer");
        }
        assert_eq!(flusher.performed(), 1, "one fsync covers every writer that queued behind the running one");
        assert_eq!(*flusher.durable.lock().await, 64);

        // A write after that needs a flush of its own.
        db.insert(b"late", b"x".to_vec()).expect("insert");
        flusher.flush().await.expect("flush");
        assert_eq!(flusher.performed(), 2);
        assert_eq!(*flusher.durable.lock().await, 65);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_that_may_linger_share_one_fsync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = sled::open(dir.path()).expect("sled");
        let flusher = Arc::new(Flusher::new(db.clone()));
        // 32 writers write within one linger of each other (all before the first wakes).
        let writers: Vec<_> = (0..32u32)
            .map(|i| {
                let (db, flusher) = (db.clone(), flusher.clone());
                db.insert(i.to_be_bytes(), b"x".to_vec()).expect("insert");
                tokio::spawn(async move { flusher.flush_within(std::time::Duration::from_secs(1)).await })
            })
            .collect();
        for w in writers {
            w.await.expect("writer").expect("flush");
        }
        assert_eq!(flusher.performed(), 1, "the first writer's fsync covers the other 31");
        assert_eq!(*flusher.durable.lock().await, 32);
    }
}
