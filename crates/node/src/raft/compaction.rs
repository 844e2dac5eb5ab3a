//! When a node snapshots its state.
//!
//! A snapshot costs time in proportion to the state (every job and fire is written out), so a
//! fixed interval of `--snapshot-logs` entries makes a large state pay over and over: with a
//! million jobs, a snapshot every 5,000 entries would write the whole state for every 5,000
//! fires. Instead a node snapshots once the entries since its last snapshot reach
//! `--snapshot-logs` or a quarter of the items in its state (jobs and fires), whichever is
//! more; writing the state out then costs each entry at most the writing of four items. The
//! log a restart replays stays at most that long.
//!
//! Entries are not all alike, though: a batch of a thousand creates is one entry and half a
//! megabyte. So a snapshot is also due once the log written since the last one reaches a
//! quarter of that snapshot's size (and at least [`MIN_LOG_BYTES`]): a restart then replays at
//! most that much log after reading the snapshot (replaying a byte of log costs about twice
//! reading a byte of snapshot), and the log on disk stays well below the snapshot. Creating a
//! million jobs in batches snapshots about a dozen times instead of never (by entries, 250,000
//! batches would be due).
//!
//! Behind a snapshot openraft keeps `--keep-logs` entries, for followers briefly behind. sled
//! holds the values it has written in memory, whatever its cache size, so a thousand batches
//! of creates kept there are half a gigabyte of RAM. So after each snapshot the log is also
//! purged down to [`KEEP_LOG_BYTES`] behind it, counted over the entries this node appended
//! (a restart reads none of the older ones back).
//!
//! openraft's own policy is off ([`openraft::SnapshotPolicy::Never`]); [`run`] asks it for a
//! snapshot when one is due. A request while one is being built is ignored by openraft.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::state_machine::Shared;
use super::Raft;

/// Items of state per log entry between snapshots: a snapshot is due after `items / 4` entries.
pub const ITEMS_PER_ENTRY: u64 = 4;

/// How often the condition is checked.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Log bytes below which no snapshot is due by size, however small the last one.
pub const MIN_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes of log kept behind a snapshot, whatever `--keep-logs` allows.
pub const KEEP_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// What the log and the snapshot weigh, as the log and snapshot stores count them.
pub struct LogVolume {
    /// Bytes of entries appended since the node started.
    pub appended: Arc<AtomicU64>,
    /// The current snapshot's size.
    pub snapshot: Arc<AtomicU64>,
    /// The size of each entry appended since the node started, by index.
    pub sizes: super::log_store::EntrySizes,
}

/// The last index to purge so that the entries kept up to a snapshot at `snapshot` weigh at
/// most `budget` bytes: walking back from the snapshot, the first entry past the budget and
/// everything before it go. `None` while what is known fits.
pub fn purge_point(sizes: &BTreeMap<u64, u64>, snapshot: u64, budget: u64) -> Option<u64> {
    let mut kept = 0u64;
    for (&index, &size) in sizes.range(..=snapshot).rev() {
        kept = kept.saturating_add(size);
        if kept > budget {
            return Some(index);
        }
    }
    None
}

/// The share of the last snapshot's size the log may reach before the next snapshot: 1/4.
pub const LOG_SHARE_OF_SNAPSHOT: u64 = 4;

/// Whether `log_bytes` written since the last snapshot reach a quarter of its size
/// (`snapshot_bytes`), and [`MIN_LOG_BYTES`].
pub fn outweighs(log_bytes: u64, snapshot_bytes: u64) -> bool {
    log_bytes >= (snapshot_bytes / LOG_SHARE_OF_SNAPSHOT).max(MIN_LOG_BYTES)
}

/// The entries since the last snapshot after which the next one is due.
pub fn threshold(snapshot_logs: u64, items: u64) -> u64 {
    snapshot_logs.max(items / ITEMS_PER_ENTRY).max(1)
}

/// Whether a node that applied up to `applied`, with its last snapshot at `snapshot`, should
/// snapshot now.
pub fn due(applied: u64, snapshot: u64, threshold: u64) -> bool {
    applied.saturating_sub(snapshot) >= threshold
}

/// Asks raft for a snapshot whenever one is due, until `stop`. The log's bytes are counted
/// from the last snapshot this node saw finish (or from its start: the log a restart replays is
/// not weighed again).
pub async fn run(
    raft: Raft,
    shared: Arc<Shared>,
    snapshot_logs: u64,
    volume: LogVolume,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_snapshot = None;
    let mut bytes_mark = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (applied, snapshot) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (m.last_applied.map_or(0, |l| l.index), m.snapshot.map_or(0, |l| l.index))
        };
        let appended = volume.appended.load(Ordering::Relaxed);
        if seen_snapshot != Some(snapshot) {
            seen_snapshot = Some(snapshot);
            bytes_mark = appended;
            let point = purge_point(&volume.sizes.lock().unwrap_or_else(|e| e.into_inner()), snapshot, KEEP_LOG_BYTES);
            if let Some(upto) = point {
                if let Err(e) = raft.trigger().purge_log(upto).await {
                    tracing::warn!(error = %e, "could not ask for a purge");
                    return;
                }
            }
        }
        let heavy = outweighs(appended.saturating_sub(bytes_mark), volume.snapshot.load(Ordering::Relaxed));
        let items = {
            let applied = shared.read();
            let data = applied.state.data();
            (data.jobs.len() + data.retired.len() + data.fires.len()) as u64
        };
        if heavy || due(applied, snapshot, threshold(snapshot_logs, items)) {
            if let Err(e) = raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "could not ask for a snapshot");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_state_snapshots_every_snapshot_logs_entries() {
        assert_eq!(threshold(5000, 0), 5000);
        assert_eq!(threshold(5000, 19_999), 5000);
        assert!(!due(4999, 0, threshold(5000, 10)));
        assert!(due(15_000, 10_000, threshold(5000, 10)));
    }

    #[test]
    fn a_large_state_snapshots_after_a_quarter_of_its_items_in_entries() {
        let million = threshold(5000, 1_000_000);
        assert_eq!(million, 250_000);
        assert!(!due(249_999, 0, million));
        assert!(due(250_000, 0, million));
    }

    #[test]
    fn a_log_of_a_quarter_of_the_snapshot_and_over_the_floor_is_due() {
        assert!(!outweighs(MIN_LOG_BYTES - 1, 0), "below the floor");
        assert!(outweighs(MIN_LOG_BYTES, 0));
        assert!(!outweighs(149_000_000, 600_000_000), "under a quarter of a 600 MB snapshot");
        assert!(outweighs(150_000_000, 600_000_000));
    }

    #[test]
    fn the_log_kept_behind_a_snapshot_stops_at_the_byte_budget() {
        let sizes: BTreeMap<u64, u64> = (1..=10).map(|i| (i, 100)).collect();
        assert_eq!(purge_point(&sizes, 8, 250), Some(6), "7 and 8 fit, 6 would pass 250");
        assert_eq!(purge_point(&sizes, 8, 800), None, "all eight fit");
        assert_eq!(purge_point(&sizes, 8, 799), Some(1));
        assert_eq!(purge_point(&sizes, 8, 0), Some(8), "nothing kept: the snapshot's own entry goes too");
        assert_eq!(purge_point(&BTreeMap::new(), 8, 0), None, "no sizes known (before a restart)");
    }

    #[test]
    fn no_threshold_is_zero_and_a_snapshot_ahead_of_applied_is_not_due() {
        assert_eq!(threshold(0, 0), 1);
        assert!(!due(10, 20, 1));
    }
}
