//! Exactly-once checks over what the sink received for the jobs [`create_jobs`] made: every
//! instant in a window arrived, none twice, none that is not an instant of a known job, each with
//! the delivery headers DESIGN.md names.
//!
//! [`create_jobs`]: crate::create_jobs

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use belfry_node::sink::Received;

use crate::{by_key, wait_for, Cluster, Sink};

/// What arrived, for the test's log line.
#[derive(Debug)]
pub struct Delivered {
    /// Deliveries received in all (any job, any instant).
    pub deliveries: usize,
    /// Keys that had to arrive.
    pub expected: usize,
    /// Fire lag (received − scheduled) percentiles and maximum, in milliseconds.
    pub lag_p50_ms: i64,
    /// 99th percentile of the lag.
    pub lag_p99_ms: i64,
    /// Largest lag.
    pub lag_max_ms: i64,
    /// Keys delivered a second time because every worker was killed while sending them.
    pub redelivered: usize,
}

/// How long before a kill a delivery may have arrived and still be in flight on its worker
/// (its outcome not yet in the worker's ledger).
const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(1);

/// The idempotency keys of every 1 s instant of the jobs `uids` from `start` through `cutoff`.
pub fn expected_keys(uids: &BTreeMap<String, u64>, start: DateTime<Utc>, cutoff: DateTime<Utc>) -> Vec<String> {
    let mut keys = Vec::new();
    for uid in uids.values() {
        let mut t = start;
        while t <= cutoff {
            keys.push(format!("{uid}:{}", t.timestamp_millis()));
            t += chrono::Duration::seconds(1);
        }
    }
    keys
}

/// Waits (up to `timeout`) until every instant of the every-1 s jobs `uids` from `start`
/// through `cutoff` has arrived at `sink`, then asserts that no key arrived twice and that every
/// delivery is a first attempt of a known job at one of its instants with matching headers.
/// On a miss it prints what the cluster says about the first missing keys.
pub async fn exactly_once(
    cluster: &Cluster,
    sink: &Sink,
    uids: &BTreeMap<String, u64>,
    start: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    timeout: Duration,
) -> anyhow::Result<Delivered> {
    check(cluster, sink, uids, start, cutoff, timeout, None).await
}

/// [`exactly_once`], for a run in which every worker was SIGKILLed at `killed_at`: a fire
/// whose first delivery arrived just before the kill may have been cut off before its worker
/// recorded the outcome, and may come a second time — with the same key, as GUARANTEES.md
/// allows. Any other repeat fails.
pub async fn exactly_once_but_killed_sends(
    cluster: &Cluster,
    sink: &Sink,
    uids: &BTreeMap<String, u64>,
    (start, cutoff): (DateTime<Utc>, DateTime<Utc>),
    timeout: Duration,
    killed_at: DateTime<Utc>,
) -> anyhow::Result<Delivered> {
    check(cluster, sink, uids, start, cutoff, timeout, Some(killed_at)).await
}

/// Whether `deliveries` of one key are a repeat a kill of every worker at `killed_at` explains.
pub fn cut_off_by_kill(deliveries: &[&Received], killed_at: Option<DateTime<Utc>>) -> bool {
    let Some(killed_at) = killed_at else { return false };
    let first = deliveries.iter().map(|r| r.received_at_ms).min().unwrap_or(i64::MAX);
    let kill_ms = killed_at.timestamp_millis();
    deliveries.len() == 2 && first <= kill_ms && first >= (killed_at - IN_FLIGHT).timestamp_millis()
}

async fn check(
    cluster: &Cluster,
    sink: &Sink,
    uids: &BTreeMap<String, u64>,
    start: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    timeout: Duration,
    killed_at: Option<DateTime<Utc>>,
) -> anyhow::Result<Delivered> {
    let expected = expected_keys(uids, start, cutoff);
    let waited = wait_for(timeout, "every expected fire", || async {
        let received = sink.received().await.ok()?;
        let keys = by_key(&received);
        expected.iter().all(|k| keys.contains_key(k)).then_some(received)
    })
    .await;
    let received = match waited {
        Ok(r) => r,
        Err(e) => {
            let got = sink.received().await?;
            let keys = by_key(&got);
            let missing: Vec<&String> = expected.iter().filter(|k| !keys.contains_key(*k)).collect();
            for k in missing.iter().take(5) {
                for id in cluster.live() {
                    let url = format!("{}/v1/executions/{k}", cluster.url(id));
                    if let Ok(r) = cluster.http.get(url).send().await {
                        eprintln!("missing {k}, node {id} says: {}", r.text().await.unwrap_or_default());
                        break;
                    }
                }
            }
            return Err(e.context(format!("{} of {} expected fires missing", missing.len(), expected.len())));
        }
    };

    let keys = by_key(&received);
    let repeated: Vec<_> = keys.iter().filter(|(_, v)| v.len() > 1).collect();
    let redelivered = repeated.iter().filter(|(_, v)| cut_off_by_kill(v, killed_at)).count();
    let duplicates: Vec<_> = repeated
        .iter()
        .filter(|(_, v)| !cut_off_by_kill(v, killed_at))
        .map(|(k, v)| (k.to_string(), v.len()))
        .collect();
    anyhow::ensure!(duplicates.is_empty(), "delivered more than once: {duplicates:?}");
    let names: BTreeMap<u64, &String> = uids.iter().map(|(n, u)| (*u, n)).collect();
    for r in &received {
        let (uid, ms) = r.key.split_once(':').ok_or_else(|| anyhow::anyhow!("key {} is not uid:ms", r.key))?;
        let Some(name) = names.get(&uid.parse::<u64>()?) else {
            continue; // another job of the test (e.g. one-off jobs it checks itself)
        };
        anyhow::ensure!(&r.job == *name, "Belfry-Job of {} is {}, not {name}", r.key, r.job);
        anyhow::ensure!(r.path == format!("/{name}"), "path of {} is {}", r.key, r.path);
        let scheduled = DateTime::parse_from_rfc3339(&r.scheduled_at)?.with_timezone(&Utc);
        anyhow::ensure!(scheduled.timestamp_millis().to_string() == ms, "Belfry-Scheduled-At of {}", r.key);
        anyhow::ensure!((scheduled - start).num_milliseconds() % 1000 == 0, "{} is not a schedule instant", r.key);
        anyhow::ensure!(scheduled >= start, "{} is before the schedule's start", r.key);
        anyhow::ensure!(r.attempt == "1", "{} is attempt {}", r.key, r.attempt);
    }
    let mut lags: Vec<i64> = received
        .iter()
        .filter_map(|r| Some(r.received_at_ms - DateTime::parse_from_rfc3339(&r.scheduled_at).ok()?.timestamp_millis()))
        .collect();
    lags.sort_unstable();
    let at = |q: usize| lags.get((lags.len() * q / 100).min(lags.len().saturating_sub(1))).copied().unwrap_or(0);
    Ok(Delivered {
        deliveries: received.len(),
        expected: expected.len(),
        lag_p50_ms: at(50),
        lag_p99_ms: at(99),
        lag_max_ms: lags.last().copied().unwrap_or(0),
        redelivered,
    })
}

/// Waits until the sink has a fire of any job scheduled after `t`: the schedule has moved past
/// `t`, so a window ending at `t` is complete but for deliveries in flight.
pub async fn wait_scheduled_past(sink: &Sink, t: DateTime<Utc>, timeout: Duration) -> anyhow::Result<()> {
    wait_for(timeout, "fires scheduled past the cutoff", || async {
        let received = sink.received().await.ok()?;
        received.iter().any(|r| DateTime::parse_from_rfc3339(&r.scheduled_at).is_ok_and(|s| s > t)).then_some(())
    })
    .await
}
