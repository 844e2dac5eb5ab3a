//! What an operator's log file shows of a healthy start: nodes that come up one after another
//! (each briefly unable to reach the others), elect a leader and deliver, log no ERROR, and
//! write no terminal colour codes into a file.

use std::time::Duration;

use belfry_tests::{wait_for, Cluster, Sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_start_logs_no_error_and_no_colour() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let cluster = Cluster::start_with_default_log(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    let spec = serde_json::json!({
        "name": "tick",
        "schedule": {"every": "1s"},
        "target": {"url": format!("{}/tick", sink.url)}
    });
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(leader))).json(&spec).send().await?;
    anyhow::ensure!(r.status() == 201, "create: {}", r.text().await?);
    wait_for(Duration::from_secs(20), "two deliveries", || async {
        (sink.received().await.ok()?.len() >= 2).then_some(())
    })
    .await?;
    for id in 1..=3 {
        let log = cluster.log(id);
        assert!(log.contains("node started"), "node {id} logged its start:\n{log}");
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "node {id} logged errors:\n{}", errors.join("\n"));
        assert!(!log.contains('\u{1b}'), "node {id} wrote colour codes to its log file");
    }
    Ok(())
}
