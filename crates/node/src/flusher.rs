//! One fsync at a time per sled database.
//!
//! sled 0.34 runs `flush_async` on its own small thread pool, where each flush waits for the
//! log buffer to become stable; many concurrent flushes can occupy every pool thread while the
//! write they wait for is queued behind them, and the node stalls. Serializing flushes avoids
//! it, and costs little: a flush makes everything written before it durable, so the writers
//! queued behind one flush are mostly covered by the next (group commit).

/// Serializes `flush_async` calls on one database.
pub struct Flusher {
    db: sled::Db,
    lock: tokio::sync::Mutex<()>,
}

impl Flusher {
    /// A flusher for `db`.
    pub fn new(db: sled::Db) -> Flusher {
        Flusher { db, lock: tokio::sync::Mutex::new(()) }
    }

    /// Makes every write issued before the call durable.
    pub async fn flush(&self) -> sled::Result<()> {
        let _one_at_a_time = self.lock.lock().await;
        // On tokio's blocking pool, not sled's own: sled writes sealed log buffers on its pool,
        // and a flush waiting there can hold the thread the write it waits for needs.
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(result) => result.map(|_| ()),
            Err(e) => Err(sled::Error::ReportableBug(format!("flush task failed: {e}"))),
        }
    }
}
