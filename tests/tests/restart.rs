//! Killing every node at once and starting them again loses no job and no history.

use std::time::Duration;

use belfry_core::api::ExecutionList;
use belfry_tests::{create_jobs, wait_for, Cluster, Sink, JOBS};
use chrono::{DateTime, Utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_keeps_jobs_and_history() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 1, 0).unwrap();
    create_jobs(&cluster, leader, &sink, start).await?;

    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
    let http = cluster.http.clone();
    let history_of = |id: u64| {
        let url = format!("{}/v1/executions?status=succeeded&limit=1000", urls[id as usize - 1]);
        let http = http.clone();
        async move {
            let list: ExecutionList = http.get(url).send().await.ok()?.json().await.ok()?;
            Some(list.executions.into_iter().map(|e| e.key).collect::<std::collections::BTreeSet<_>>())
        }
    };
    let before = wait_for(Duration::from_secs(20), "40 succeeded fires", || async {
        history_of(leader).await.filter(|h| h.len() >= 40)
    })
    .await?;

    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id)?;
    }
    cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    for id in [1, 2, 3] {
        cluster.wait_ready(id, Duration::from_secs(20)).await?;
        let jobs: belfry_core::api::JobList =
            cluster.http.get(format!("{}/v1/jobs?limit=1000", cluster.url(id))).send().await?.json().await?;
        assert_eq!(jobs.jobs.len(), JOBS, "jobs on node {id} after restart");
        let after = history_of(id).await.expect("history readable");
        let missing: Vec<_> = before.difference(&after).collect();
        assert!(missing.is_empty(), "node {id} lost history entries {missing:?}");
    }
    Ok(())
}
