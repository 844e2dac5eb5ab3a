//! Overload degrades to lateness, never to a second send (docs/DESIGN.md, "Backpressure"): a
//! burst several leases' worth of sends deep, on workers that send 4 at a time to a slow
//! target, is delivered once per key, each fire dispatched once, none refused for a lease
//! that ran out while it queued.

use std::collections::BTreeMap;
use std::time::Duration;

use belfry_core::api::rfc3339;
use belfry_tests::{by_key, wait_for, Cluster, Sink};
use chrono::Utc;
use serde_json::{json, Value};

/// Jobs due at the same instant.
const JOBS: usize = 300;
/// How long the sink takes to answer each request.
const SINK_DELAY: Duration = Duration::from_millis(100);

/// The `belfry_fires_total` counters of node `id`, by outcome.
async fn fires_total(cluster: &Cluster, id: u64) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = cluster.http.get(format!("{}/metrics", cluster.url(id))).send().await?.text().await?;
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("belfry_fires_total{")) {
        let outcome = line.split("outcome=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
        let value: f64 = line.rsplit(' ').next().unwrap_or("0").parse()?;
        counts.insert(outcome.to_string(), value as u64);
    }
    Ok(counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_deeper_than_the_lease_is_late_but_sent_once() -> anyhow::Result<()> {
    // Two workers, 4 sends each at a time, 100 ms a send: 80 sends a second. 300 at once is
    // 3.75 s of sending; with a 2 s lease, claiming them all would leave most queued past it.
    let cluster = Cluster::start_with(3, &["--max-concurrent-sends", "4", "--lease-ms", "2000"])?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let sink = Sink::start(SINK_DELAY).await?;
    let instant = Utc::now() + chrono::Duration::seconds(3);
    let jobs: Vec<Value> = (0..JOBS)
        .map(|i| {
            json!({
                "name": format!("burst-{i:03}"),
                "schedule": {"every": "1h", "start_at": rfc3339(instant)},
                "target": {"url": format!("{}/burst", sink.url)},
            })
        })
        .collect();
    let r =
        cluster.http.post(format!("{}/v1/jobs:batch", cluster.url(leader))).json(&json!({"jobs": jobs})).send().await?;
    anyhow::ensure!(r.status() == 201, "batch create: {}", r.text().await?);

    let received = wait_for(Duration::from_secs(60), "every fire of the burst", || async {
        let received = sink.received().await.ok()?;
        (by_key(&received).len() >= JOBS).then_some(received)
    })
    .await?;
    let keys = by_key(&received);
    let repeated: Vec<_> = keys.iter().filter(|(_, r)| r.len() > 1).map(|(k, _)| k).collect();
    assert!(repeated.is_empty(), "keys delivered twice: {repeated:?}");

    let leader_counts = fires_total(&cluster, leader).await?;
    assert_eq!(
        leader_counts.get("dispatched").copied(),
        Some(JOBS as u64),
        "each fire dispatched once: {leader_counts:?}"
    );
    for id in [1, 2, 3] {
        let counts = fires_total(&cluster, id).await?;
        assert_eq!(counts.get("refused").copied().unwrap_or(0), 0, "node {id} refused sends: {counts:?}");
    }
    // Late, as overload must be: the last send started well after the instant.
    let last = received.iter().map(|r| r.received_at_ms).max().expect("deliveries");
    let took = last - instant.timestamp_millis();
    assert!(took > 2000, "the burst took {took} ms");
    Ok(())
}
