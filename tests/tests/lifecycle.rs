//! A node's life on real processes: SIGTERM on the leader hands leadership over and loses no
//! acknowledged write; a node that was down while the log was purged catches up by snapshot;
//! a node without a quorum answers writes with 503 and a retry hint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use belfry_core::api::{ErrorBody, JobList};
use belfry_tests::{wait_for, Cluster};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

fn job(name: &str) -> serde_json::Value {
    json!({"name": name, "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/x"}})
}

async fn job_names(cluster: &Cluster, id: u64) -> anyhow::Result<Vec<String>> {
    let r = cluster.http.get(format!("{}/v1/jobs?limit=1000", cluster.url(id))).send().await?;
    let list: JobList = r.error_for_status()?.json().await?;
    Ok(list.jobs.into_iter().map(|j| j.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_first_and_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let via = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");

    // A writer through a follower, recording every name the cluster acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, http, url) = (acked.clone(), stop.clone(), cluster.http.clone(), cluster.url(via));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w-{i:05}");
                i += 1;
                let sent = http.post(format!("{url}/v1/jobs")).json(&job(&name)).send().await;
                if sent.is_ok_and(|r| r.status() == 201) {
                    acked.lock().expect("lock").push(name);
                }
            }
        })
    };
    wait_for(Duration::from_secs(10), "some acknowledged writes", || async {
        (acked.lock().expect("lock").len() >= 20).then_some(())
    })
    .await?;

    let status = cluster.terminate(leader, Duration::from_secs(30)).await?;
    assert!(status.success(), "the leader exits 0 on SIGTERM: {status}");
    let log = cluster.log(leader);
    assert!(log.contains("handed leadership over before stopping"), "no handover in the log:\n{log}");
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster.wait_for_leader(&others, SETTLE).await?;

    let before = acked.lock().expect("lock").len();
    wait_for(Duration::from_secs(20), "writes acknowledged by the new leader", || async {
        (acked.lock().expect("lock").len() >= before + 20).then_some(())
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    writer.await?;

    let acked = acked.lock().expect("lock").clone();
    for id in others {
        let names = job_names(&cluster, id).await?;
        let missing: Vec<&String> = acked.iter().filter(|n| !names.contains(n)).collect();
        assert!(missing.is_empty(), "node {id} (leader {new_leader}) lacks acknowledged jobs {missing:?}");
    }
    // The stopped node comes back with everything and follows.
    cluster.start_node(leader)?;
    wait_for(SETTLE, "the restarted node to have every acknowledged job", || async {
        let names = job_names(&cluster, leader).await.ok()?;
        acked.iter().all(|n| names.contains(n)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_while_the_log_was_purged_catches_up_by_snapshot() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(3, &["--snapshot-logs", "20", "--keep-logs", "5"])?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let down = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let down_at = cluster.status(down).await?.applied_index;
    cluster.kill(down);

    for i in 0..60 {
        let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(leader))).json(&job(&format!("s-{i:02}"))).send();
        let r = r.await?;
        anyhow::ensure!(r.status() == 201, "create s-{i:02}: {}", r.text().await?);
    }
    let purged = cluster.status(leader).await?.purged_index.unwrap_or(0);
    assert!(purged > down_at, "the leader purged past node {down}'s log ({purged} <= {down_at})");

    cluster.start_node(down)?;
    let view = wait_for(SETTLE, "the restarted node to install a snapshot", || async {
        let v = cluster.status(down).await.ok()?;
        v.snapshot_index.is_some_and(|s| s > down_at).then_some(v)
    })
    .await?;
    assert!(view.applied_index >= view.snapshot_index.unwrap_or(0));
    let names = job_names(&cluster, down).await?;
    assert_eq!(names.len(), 60, "{names:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_get_503_with_a_retry_hint() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let survivor = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    for id in [1, 2, 3] {
        if id != survivor {
            cluster.kill(id);
        }
    }
    wait_for(SETTLE, "the survivor to lose its leader", || async {
        cluster.status(survivor).await.ok()?.leader.is_none().then_some(())
    })
    .await?;

    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(survivor))).json(&job("lost")).send().await?;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: ErrorBody = r.json().await?;
    assert_eq!(body.error.code, "no_leader", "{body:?}");

    // Nothing was written: with the quorum back, the job does not exist.
    for id in [1, 2, 3] {
        if id != survivor {
            cluster.start_node(id)?;
        }
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let r = cluster.http.get(format!("{}/v1/jobs/lost", cluster.url(survivor))).send().await?;
    assert_eq!(r.status(), 404);
    Ok(())
}
