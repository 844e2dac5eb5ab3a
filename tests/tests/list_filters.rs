//! What the console reads, on a 3-node process cluster, asked through a follower: the job list's
//! name-prefix search, its paused and failing filters with their `total` and `matching`
//! counts across pages, each job's `last_status`, and `/v1/stats` counting the fires a sink
//! received, by the second they finished, with their lag.

use std::collections::BTreeSet;
use std::time::Duration;

use belfry_core::api::{JobList, JobView, StatsView};
use belfry_tests::{wait_for, Cluster, Sink};
use serde_json::{json, Value};

fn job(name: &str, url: &str) -> Value {
    json!({"name": name, "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": url}})
}

async fn list(cluster: &Cluster, node: u64, query: &str) -> anyhow::Result<JobList> {
    let r = cluster.http.get(format!("{}/v1/jobs?{query}", cluster.url(node))).send().await?;
    anyhow::ensure!(r.status().is_success(), "GET /v1/jobs?{query}: {}", r.status());
    Ok(r.json().await?)
}

/// Every page of `query` (two jobs a page), with the counts of each page.
async fn walk(cluster: &Cluster, node: u64, query: &str) -> anyhow::Result<(Vec<String>, BTreeSet<(usize, usize)>)> {
    let (mut names, mut counts, mut cursor) = (Vec::new(), BTreeSet::new(), None::<String>);
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = list(cluster, node, &format!("{query}&limit=2{after}")).await?;
        names.extend(page.jobs.iter().map(|j| j.name.clone()));
        counts.insert((page.total, page.matching));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((names, counts)),
        }
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: String) -> Option<T> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// A job's `last_status` and `failing`, once it has a last status.
async fn last_status(http: &reqwest::Client, url: &str, name: &str) -> Option<(String, Option<bool>)> {
    let view: JobView = get_json(http, format!("{url}/v1/jobs/{name}")).await?;
    view.last_status.map(|s| (s, view.failing))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_searches_by_prefix_filters_and_counts_on_every_page() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let sink = Sink::start(Duration::ZERO).await?;
    let url = cluster.url(follower);
    let http = &cluster.http;
    // "ab" sorts between "a" and "a0"-less names, and "b" after every "a...": a prefix that
    // started its range at the wrong place would show or drop them.
    for name in ["a", "a-1", "a-2", "a-3", "ab", "b-1", "b-2"] {
        let r = http.post(format!("{url}/v1/jobs")).json(&job(name, &format!("{}/ok", sink.url))).send().await?;
        anyhow::ensure!(r.status() == 201, "create {name}: {}", r.status());
    }
    http.post(format!("{url}/v1/jobs/a-2/pause")).send().await?.error_for_status()?;

    let (names, counts) = walk(&cluster, follower, "prefix=a-").await?;
    assert_eq!(names, ["a-1", "a-2", "a-3"]);
    assert_eq!(counts, BTreeSet::from([(7, 3)]), "total and matching on every page");
    let (names, _) = walk(&cluster, follower, "prefix=a").await?;
    assert_eq!(names, ["a", "a-1", "a-2", "a-3", "ab"]);
    let (names, counts) = walk(&cluster, follower, "prefix=a&paused=false").await?;
    assert_eq!(names, ["a", "a-1", "a-3", "ab"]);
    assert_eq!(counts, BTreeSet::from([(7, 4)]));
    let (names, _) = walk(&cluster, follower, "paused=true").await?;
    assert_eq!(names, ["a-2"]);
    let (names, counts) = walk(&cluster, follower, "prefix=c").await?;
    assert!(names.is_empty());
    assert_eq!(counts, BTreeSet::from([(7, 0)]));
    // A cursor before the prefix's range starts at the range; one past it ends the walk.
    let page = list(&cluster, follower, "prefix=b&cursor=a-9").await?;
    assert_eq!(page.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["b-1", "b-2"]);
    assert!(list(&cluster, follower, "prefix=a&cursor=b").await?.jobs.is_empty());
    let too_long = http.get(format!("{url}/v1/jobs?prefix={}", "x".repeat(129))).send().await?;
    assert_eq!(too_long.status(), 400);

    // A job whose one attempt fails is failing, with a dead letter as its last status; one
    // that succeeded is not.
    let mut broken = job("broken", &format!("{}/fail", sink.url));
    broken["retry"] = json!({"max_attempts": 1});
    let script = json!({"path": "/fail", "status": 500});
    http.post(format!("{}/_sink/answers", sink.url)).json(&script).send().await?.error_for_status()?;
    http.post(format!("{url}/v1/jobs")).json(&broken).send().await?.error_for_status()?;
    for name in ["broken", "b-1"] {
        http.post(format!("{url}/v1/jobs/{name}/trigger")).send().await?.error_for_status()?;
    }
    let last = |name: &'static str| last_status(http, &url, name);
    let broken_last = wait_for(Duration::from_secs(20), "broken's fire to finish", || last("broken")).await?;
    assert_eq!(broken_last, ("dead_lettered".to_string(), Some(true)));
    let ok_last = wait_for(Duration::from_secs(20), "b-1's fire to finish", || last("b-1")).await?;
    assert_eq!(ok_last, ("succeeded".to_string(), Some(false)));
    let (names, counts) = walk(&cluster, follower, "failing=true").await?;
    assert_eq!(names, ["broken"]);
    assert_eq!(counts, BTreeSet::from([(8, 1)]));
    let (names, _) = walk(&cluster, follower, "failing=false&prefix=b").await?;
    assert_eq!(names, ["b-1", "b-2"]);
    let jobs = list(&cluster, follower, "prefix=a-1").await?.jobs;
    assert_eq!((jobs[0].last_status.as_deref(), jobs[0].failing), (None, Some(false)), "never fired");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_each_second_of_the_last_minute_the_same_on_every_node() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let sink = Sink::start(Duration::ZERO).await?;
    let url = cluster.url(1);
    let mut spec = job("tick", &format!("{}/tick", sink.url));
    spec["schedule"] = json!({"every": "1s"});
    cluster.http.post(format!("{url}/v1/jobs")).json(&spec).send().await?.error_for_status()?;
    wait_for(Duration::from_secs(20), "five deliveries", || async {
        (sink.received().await.ok()?.len() >= 5).then_some(())
    })
    .await?;
    cluster.http.post(format!("{url}/v1/jobs/tick/pause")).send().await?.error_for_status()?;
    let delivered = wait_for(Duration::from_secs(20), "the last fire to finish", || async {
        let dispatched: Value =
            get_json(&cluster.http, format!("{url}/v1/executions?job=tick&status=dispatched")).await?;
        let done = dispatched["executions"].as_array().is_some_and(|e| e.is_empty());
        if done {
            Some(sink.received().await.ok()?.len())
        } else {
            None
        }
    })
    .await?;

    let mut answers = Vec::new();
    for node in [1, 2, 3] {
        let stats: StatsView =
            cluster.http.get(format!("{}/v1/stats?seconds=60", cluster.url(node))).send().await?.json().await?;
        assert_eq!(stats.seconds.len(), 60);
        assert_eq!(stats.window_seconds, 60);
        answers.push(stats);
    }
    let succeeded: u32 = answers[0].seconds.iter().map(|s| s.succeeded).sum();
    assert_eq!(succeeded as usize, delivered, "every delivery counted once, in the second it finished");
    assert!(answers[0].seconds.iter().all(|s| s.failed == 0 && s.dead_lettered == 0));
    let with_lag: Vec<_> = answers[0].seconds.iter().filter_map(|s| s.lag_p99_ms).collect();
    assert!(!with_lag.is_empty() && with_lag.iter().all(|ms| (0..1000).contains(ms)), "{with_lag:?}");
    // The same replicated fires on every node (the windows may differ by a second at the edge).
    let counts = |s: &StatsView| s.seconds.iter().map(|s| (s.at.clone(), s.succeeded)).collect::<BTreeSet<_>>();
    for other in &answers[1..] {
        let (a, b) = (counts(&answers[0]), counts(other));
        let common: Vec<_> = a.iter().filter(|x| b.iter().any(|y| y.0 == x.0)).collect();
        assert!(common.iter().all(|x| b.contains(x)), "nodes disagree on a second");
    }
    for bad in ["0", "301", "x"] {
        let r = cluster.http.get(format!("{url}/v1/stats?seconds={bad}")).send().await?;
        assert_eq!(r.status(), 400, "seconds={bad}");
    }
    Ok(())
}
