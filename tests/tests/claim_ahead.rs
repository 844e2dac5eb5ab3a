//! Claiming ahead (docs/DESIGN.md, "Claiming ahead"): fires of jobs that allow overlap are
//! claimed before their instant and held by their workers until it; a leader killed while its
//! fires are held does not make them late; jobs with an overlap policy are claimed once due.

use std::time::Duration;

use belfry_tests::{by_key, wait_for, Cluster, Sink};
use chrono::{DateTime, Utc};

/// Creates `name`, every second from `start`, posting to the sink, with `overlap`.
async fn create(cluster: &Cluster, via: u64, sink: &Sink, name: &str, start: DateTime<Utc>, overlap: &str) {
    let body = serde_json::json!({
        "name": name,
        "schedule": {"every": "1s", "start_at": belfry_core::api::rfc3339(start)},
        "target": {"url": format!("{}/{name}", sink.url), "timeout": "5s"},
        "overlap": overlap,
    });
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(via))).json(&body).send().await.expect("create");
    assert_eq!(r.status(), 201, "create {name}: {}", r.text().await.unwrap_or_default());
}

/// The job's executions, newest first.
async fn executions(cluster: &Cluster, via: u64, job: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/v1/executions?job={job}&limit=100", cluster.url(via));
    let Ok(r) = cluster.http.get(url).send().await else { return vec![] };
    let Ok(page) = r.json::<serde_json::Value>().await else { return vec![] };
    page["executions"].as_array().cloned().unwrap_or_default()
}

fn instant(v: &serde_json::Value, field: &str) -> DateTime<Utc> {
    v[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_jobs_are_claimed_ahead_and_sent_at_their_instant_others_once_due() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).expect("an instant");
    create(&cluster, leader, &sink, "ahead", start, "allow").await;
    create(&cluster, leader, &sink, "at-instant", start, "forbid").await;

    let done = |v: &serde_json::Value| v["status"] == "succeeded";
    wait_for(Duration::from_secs(20), "4 fires of each job", || async {
        let a = executions(&cluster, leader, "ahead").await;
        let b = executions(&cluster, leader, "at-instant").await;
        (a.iter().filter(|v| done(v)).count() >= 4 && b.iter().filter(|v| done(v)).count() >= 4).then_some(())
    })
    .await?;

    for v in executions(&cluster, leader, "ahead").await.iter().filter(|v| done(v)) {
        let (claimed, scheduled) = (instant(v, "fired_at"), instant(v, "scheduled_at"));
        assert!(claimed < scheduled, "an allow job's fire is claimed before its instant: {v}");
        assert!(scheduled - claimed <= chrono::Duration::milliseconds(1000), "within the 1 s window: {v}");
    }
    for v in executions(&cluster, leader, "at-instant").await.iter().filter(|v| done(v)) {
        assert!(instant(v, "fired_at") >= instant(v, "scheduled_at"), "a forbid job's fire is claimed once due: {v}");
    }
    // A held send leaves at its instant, not before it (the sink shares the nodes' clock).
    let received = sink.received().await?;
    for r in received.iter().filter(|r| r.job == "ahead") {
        let scheduled: DateTime<Utc> = r.scheduled_at.parse()?;
        assert!(r.received_at_ms >= scheduled.timestamp_millis(), "sent before its instant: {r:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_held_by_workers_go_out_on_time_while_the_leader_is_replaced() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).expect("an instant");
    create(&cluster, follower, &sink, "held", start, "allow").await;
    wait_for(Duration::from_secs(20), "a first delivery", || async {
        (!sink.received().await.ok()?.is_empty()).then_some(())
    })
    .await?;

    // Wait until the leader has claimed a fire whose instant is still ahead, then kill it.
    let held = wait_for(Duration::from_secs(10), "a fire claimed ahead", || async {
        let now = Utc::now();
        executions(&cluster, follower, "held").await.into_iter().find(|v| {
            v["status"] == "dispatched"
                && instant(v, "scheduled_at") > now + chrono::Duration::milliseconds(300)
                && v["worker"].as_u64() != Some(leader)
        })
    })
    .await?;
    cluster.kill(leader);
    let key = held["key"].as_str().expect("a key").to_string();
    let scheduled = instant(&held, "scheduled_at");

    let survivors = cluster.live();
    cluster.wait_for_leader(&survivors, Duration::from_secs(15)).await?;
    let arrival = wait_for(Duration::from_secs(15), "the held fire's delivery", || async {
        sink.received().await.ok()?.into_iter().find(|r| r.key == key).map(|r| r.received_at_ms)
    })
    .await?;
    let lag = arrival - scheduled.timestamp_millis();
    // An election takes over a second here; a held fire does not wait for it.
    assert!((0..500).contains(&lag), "the held fire {key} arrived {lag} ms after its instant");

    // And it arrives once, its outcome committed by the new leader from the worker's ledger.
    let via = survivors[0];
    wait_for(Duration::from_secs(15), "the held fire's outcome committed", || async {
        let url = format!("{}/v1/executions/{key}", cluster.url(via));
        let v: serde_json::Value = cluster.http.get(url).send().await.ok()?.json().await.ok()?;
        (v["status"] == "succeeded").then_some(())
    })
    .await?;
    let received = sink.received().await?;
    assert_eq!(by_key(&received)[&key].len(), 1, "delivered once");
    Ok(())
}
