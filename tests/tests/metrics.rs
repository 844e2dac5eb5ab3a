//! Every metric DESIGN.md names is exported by every node, with a help text.

use std::time::Duration;

use belfry_tests::Cluster;

/// Metrics every node exports.
const EVERY_NODE: &[&str] = &[
    "belfry_fires_total",
    "belfry_fire_lag_seconds",
    "belfry_delivery_duration_seconds",
    "belfry_deliveries_in_flight",
    "belfry_dead_letters",
    "belfry_jobs",
    "belfry_raft_term",
    "belfry_raft_is_leader",
    "belfry_raft_commit_index",
    "belfry_raft_applied_index",
    "belfry_leader_changes_total",
    "belfry_http_requests_total",
    "belfry_http_request_duration_seconds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_metric_is_on_every_node() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let body = serde_json::json!({"name": "m", "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/"}});
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(1))).json(&body).send().await?;
    assert_eq!(r.status(), 201);
    for id in [1, 2, 3] {
        // One API request first, so the request metrics have a series.
        cluster.http.get(format!("{}/v1/jobs", cluster.url(id))).send().await?.error_for_status()?;
        let text = cluster.http.get(format!("{}/metrics", cluster.url(id))).send().await?.text().await?;
        let mut expected: Vec<&str> = EVERY_NODE.to_vec();
        if id == leader {
            expected.push("belfry_raft_follower_lag_entries");
        }
        for name in expected {
            assert!(text.contains(&format!("# HELP {name} ")), "node {id} lacks help for {name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "node {id} lacks {name}");
        }
        assert!(text.contains("belfry_jobs 1"), "node {id} counts the job:\n{text}");
        let is_leader = format!("belfry_raft_is_leader {}", u8::from(id == leader));
        assert!(text.contains(&is_leader), "node {id}: {is_leader}");
    }
    Ok(())
}

/// Every metric the Grafana dashboard queries is one belfry exports.
#[test]
fn the_dashboard_queries_only_exported_metrics() -> anyhow::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/belfry.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "panels for fires, lag, dead letters, leaders, follower lag, API");
    let mut queried = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("belfry_") {
                    let name = format!("belfry_{name}");
                    let base = name.trim_end_matches("_bucket");
                    let known = EVERY_NODE.contains(&base) || base == "belfry_raft_follower_lag_entries";
                    assert!(known, "{:?} queries unknown metric {name}", panel["title"]);
                    queried += 1;
                }
            }
        }
    }
    assert!(queried >= 10);
    Ok(())
}
