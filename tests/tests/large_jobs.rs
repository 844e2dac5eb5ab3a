//! Jobs of the largest size the API accepts, in a realistic number, on real processes:
//! replication, a snapshot of tens of MiB for a follower that fell behind the purged log,
//! leadership transfers and a leader SIGKILL all settle within seconds.

use std::time::{Duration, Instant};

use belfry_core::job::{MAX_BODY_BYTES, MAX_HEADERS_BYTES, MAX_HEADER_VALUE_BYTES};
use belfry_tests::{wait_for, Cluster};
use futures::StreamExt;
use serde_json::json;

/// Jobs created: about 25 MiB of state at the largest spec.
const JOBS: usize = 300;
/// How long the leader and term must hold still to count as stable.
const STABLE: Duration = Duration::from_secs(2);
/// How long a change of leader may take to become stable (election, plus `STABLE`).
const SETTLE: Duration = Duration::from_secs(10);

/// A job at the size limits: the largest body and headers, scheduled far in the future so
/// it never fires during the test.
fn largest_job(i: usize) -> serde_json::Value {
    let per_header = MAX_HEADERS_BYTES / 4;
    let headers: serde_json::Map<String, serde_json::Value> = (0..4)
        .map(|h| {
            let name = format!("x-pad-{h}");
            let value = "v".repeat((per_header - name.len()).min(MAX_HEADER_VALUE_BYTES));
            (name, json!(value))
        })
        .collect();
    json!({
        "name": format!("large-{i:03}"),
        "schedule": {"every": "1h", "start_at": "2099-01-01T00:00:00Z"},
        "target": {"url": "http://127.0.0.1:9/hook", "body": "b".repeat(MAX_BODY_BYTES), "headers": headers}
    })
}

/// Creates job `i` through node `via`. A create cut off by a leader change (503) is sent
/// again; a repeat may then find the first attempt committed (409), which counts as created.
async fn create_largest(cluster: &Cluster, via: u64, i: usize) -> anyhow::Result<()> {
    let url = format!("{}/v1/jobs", cluster.url(via));
    let body = largest_job(i);
    let mut attempts = 0;
    wait_for(Duration::from_secs(30), &format!("job {i} created"), || {
        attempts += 1;
        let first = attempts == 1;
        let (url, body) = (&url, &body);
        async move {
            let r = cluster.http.post(url).json(body).send().await.ok()?;
            match r.status().as_u16() {
                201 => Some(()),
                409 if !first => Some(()),
                503 => None,
                other => panic!("create {i}: {other} {}", r.text().await.unwrap_or_default()),
            }
        }
    })
    .await
}

/// A small write through `via`, which must succeed at the first try.
async fn write(cluster: &Cluster, via: u64, name: &str) -> anyhow::Result<()> {
    let body = json!({"name": name, "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/x"}});
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(via))).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "write {name} through node {via}: {}", r.text().await?);
    Ok(())
}

/// The `belfry_jobs` gauge of node `id`: the jobs in its applied state.
async fn jobs_on(cluster: &Cluster, id: u64) -> anyhow::Result<u64> {
    let text = cluster.http.get(format!("{}/metrics", cluster.url(id))).send().await?.text().await?;
    let line = text.lines().find(|l| l.starts_with("belfry_jobs ")).ok_or_else(|| anyhow::anyhow!("no belfry_jobs"))?;
    Ok(line.trim_start_matches("belfry_jobs ").trim().parse::<f64>()? as u64)
}

fn other_than(among: &[u64], not: u64) -> u64 {
    among.iter().copied().find(|id| *id != not).expect("another node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_jobs_by_the_hundred_keep_leadership_stable() -> anyhow::Result<()> {
    let started = Instant::now();
    // One snapshot during the creates, and a log purged to just behind it.
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "200", "--keep-logs", "10"])?;
    let all = [1, 2, 3];
    let (leader, _) = cluster.wait_stable_leader(&all, STABLE, Duration::from_secs(20)).await?;

    // A follower that is down for every create comes back behind the purged log: only a
    // snapshot of the whole state can catch it up.
    let behind = other_than(&all, leader);
    let behind_at = cluster.status(behind).await?.applied_index;
    cluster.kill(behind);
    let live: Vec<u64> = all.iter().copied().filter(|id| *id != behind).collect();
    // A few creates in flight at once: the leader appends them while earlier ones replicate.
    let creates = futures::stream::iter((0..JOBS).map(|i| create_largest(&cluster, leader, i)));
    let created: Vec<anyhow::Result<()>> = creates.buffer_unordered(4).collect().await;
    created.into_iter().collect::<anyhow::Result<()>>()?;
    let created = started.elapsed();
    let leader = cluster.wait_for_leader(&live, SETTLE).await?;
    wait_for(Duration::from_secs(30), "the leader to purge the log behind its snapshot", || async {
        let purged = cluster.status(leader).await.ok()?.purged_index?;
        (purged > behind_at).then_some(())
    })
    .await?;
    cluster.start_node(behind)?;
    cluster.wait_ready(behind, Duration::from_secs(60)).await?;
    assert_eq!(jobs_on(&cluster, behind).await?, JOBS as u64, "node {behind} has every job after the snapshot");
    let caught_up = started.elapsed();

    let mut current = cluster.wait_stable_leader(&all, STABLE, SETTLE).await?;
    for round in 0..3 {
        let (leader, term) = current;
        let url = format!("{}/v1/cluster/transfer-leadership", cluster.url(leader));
        let r = cluster.http.post(url).json(&json!({})).send().await?;
        assert_eq!(r.status(), 200, "transfer {round}: {}", r.text().await?);
        let (next, next_term) = cluster.wait_stable_leader(&all, STABLE, SETTLE).await?;
        assert!(next != leader && next_term > term, "transfer {round}: {leader}@{term} -> {next}@{next_term}");
        write(&cluster, other_than(&all, next), &format!("after-transfer-{round}")).await?;
        current = (next, next_term);
    }

    let (leader, term) = current;
    cluster.kill(leader);
    let rest: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    let (next, next_term) = cluster.wait_stable_leader(&rest, STABLE, SETTLE).await?;
    assert!(next_term > term, "a new term after the kill: {next_term} vs {term}");
    write(&cluster, other_than(&rest, next), "after-kill").await?;
    eprintln!(
        "{JOBS} jobs created in {created:?}, node {behind} caught up at {caught_up:?}, done at {:?}",
        started.elapsed()
    );
    Ok(())
}
