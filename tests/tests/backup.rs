//! `belfry backup` from one cluster, `belfry restore` into a fresh one: the same jobs (uids,
//! versions, schedules, paused flags) and the same history.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use belfry_core::api::{Backup, ExecutionList, JobView};
use belfry_tests::{binary, wait_for, Cluster, Sink};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

async fn backup_of(cluster: &Cluster, id: u64) -> anyhow::Result<Backup> {
    Ok(cluster.http.get(format!("{}/v1/backup", cluster.url(id))).send().await?.error_for_status()?.json().await?)
}

fn belfry(args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let out = Command::new(binary()).args(args).current_dir(dir).env("BELFRY_TOKEN", belfry_tests::TOKEN).output()?;
    anyhow::ensure!(out.status.success(), "belfry {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_fresh_cluster_with_identical_jobs_and_history() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let source = Cluster::start(3)?;
    source.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let api = |path: &str| format!("{}{path}", source.url(2));
    for (name, paused) in [("alpha", false), ("beta", true), ("gamma", false)] {
        let body = json!({
            "name": name,
            "schedule": {"cron": "0 3 * * MON-FRI", "timezone": "Europe/Berlin"},
            "target": {"url": format!("{}/{name}", sink.url)},
            "paused": paused,
        });
        let r = source.http.post(api("/v1/jobs")).json(&body).send().await?;
        anyhow::ensure!(r.status() == 201, "{}", r.text().await?);
    }
    // History: two manual fires of alpha, delivered.
    for _ in 0..2 {
        let r = source.http.post(api("/v1/jobs/alpha/trigger")).send().await?;
        anyhow::ensure!(r.status().is_success(), "{}", r.text().await?);
    }
    wait_for(SETTLE, "two succeeded fires of alpha", || async {
        let list: ExecutionList =
            source.http.get(api("/v1/executions?job=alpha")).send().await.ok()?.json().await.ok()?;
        (list.executions.iter().filter(|e| e.status == "succeeded").count() == 2).then_some(())
    })
    .await?;

    let work = tempfile::tempdir()?;
    let file = work.path().join("cluster.backup");
    let out =
        belfry(&["backup", "--endpoint", &source.url(3), "--out", file.to_str().expect("utf-8 path")], work.path())?;
    assert!(out.contains("3 jobs"), "{out}");
    let taken = belfry_node::restore::read_backup(&file)?;
    assert_eq!(taken.data.fires.len(), 2);

    let target = Cluster::start_prepared(3, |dir| {
        belfry(
            &["restore", file.to_str().expect("utf-8 path"), "--data-dir", dir.to_str().expect("utf-8")],
            work.path(),
        )
        .map(|_| ())
    })?;
    target.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let restored = wait_for(SETTLE, "the restored state on node 3", || async {
        let b = backup_of(&target, 3).await.ok()?;
        (b.data.jobs.len() == 3).then_some(b)
    })
    .await?;
    assert_eq!(restored.data.jobs, taken.data.jobs, "jobs identical, uids and versions included");
    assert_eq!(restored.data.fires, taken.data.fires, "history identical, keys included");
    assert_eq!(restored.data.next_uid, taken.data.next_uid);
    let beta: JobView = target.http.get(format!("{}/v1/jobs/beta", target.url(2))).send().await?.json().await?;
    assert!(beta.paused);

    // A data dir that holds a node's state is refused.
    let refused = Command::new(binary())
        .args(["restore", file.to_str().expect("utf-8 path"), "--data-dir"])
        .arg(target.data_dir(1))
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already holds a node's state"));
    Ok(())
}
