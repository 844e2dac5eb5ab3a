//! The core of the chaos suite on processes (no Docker), under load from every-1 s jobs: the
//! leader killed several times in a row, the leader killed while its sends are in flight, a
//! leader paused and resumed (the zombie), and every node killed at once while writes are
//! acknowledged. After each, every fire that was due arrived
//! exactly once, and every acknowledged write survived.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use belfry_tests::{check, create_jobs, wait_for, Cluster, Sink, JOBS};
use chrono::{DateTime, Utc};

const SETTLE: Duration = Duration::from_secs(20);

/// A cluster with [`JOBS`] every-1 s jobs, each of which has fired at least `fires` times.
async fn firing_cluster(sink: &Sink) -> anyhow::Result<(Cluster, BTreeMap<String, u64>, DateTime<Utc>)> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).expect("a valid instant");
    let (uids, start) = create_jobs(&cluster, leader, sink, start).await?;
    fired_after(sink, Utc::now()).await?;
    Ok((cluster, uids, start))
}

/// Waits until every job has a delivery received after `t`.
async fn fired_after(sink: &Sink, t: DateTime<Utc>) -> anyhow::Result<()> {
    wait_for(SETTLE, "a delivery of every job", || async {
        let received = sink.received().await.ok()?;
        let jobs: std::collections::BTreeSet<&str> =
            received.iter().filter(|r| r.received_at_ms > t.timestamp_millis()).map(|r| r.job.as_str()).collect();
        (jobs.len() >= JOBS).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_leader_kills_in_a_row_lose_and_repeat_nothing() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let (mut cluster, uids, start) = firing_cluster(&sink).await?;
    for round in 1..=3 {
        let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
        let killed_at = Utc::now();
        cluster.kill(leader);
        let survivors = cluster.live();
        let new_leader = cluster.wait_for_leader(&survivors, SETTLE).await?;
        assert_ne!(new_leader, leader, "round {round}");
        fired_after(&sink, killed_at).await.map_err(|e| e.context(format!("firing after kill {round}")))?;
        cluster.restart(leader)?;
        cluster.wait_ready(leader, SETTLE).await?;
    }
    let cutoff = Utc::now() + chrono::Duration::seconds(2);
    check::wait_scheduled_past(&sink, cutoff, SETTLE).await?;
    let delivered = check::exactly_once(&cluster, &sink, &uids, start, cutoff, SETTLE).await?;
    eprintln!("{delivered:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_while_its_sends_are_in_flight_leaves_none_behind() -> anyhow::Result<()> {
    // The sink answers after 1.5 s, so every kill cuts off Deliver RPCs whose sends are running
    // on the workers; each must still finish once and be settled by the next leader.
    let sink = Sink::start(Duration::from_millis(1500)).await?;
    let (mut cluster, uids, start) = firing_cluster(&sink).await?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let killed_at = Utc::now();
    cluster.kill(leader);
    let survivors = cluster.live();
    cluster.wait_for_leader(&survivors, SETTLE).await?;
    fired_after(&sink, killed_at).await?;
    let cutoff = killed_at + chrono::Duration::seconds(3);
    check::wait_scheduled_past(&sink, cutoff, SETTLE).await?;
    let delivered = check::exactly_once(&cluster, &sink, &uids, start, cutoff, SETTLE).await?;
    eprintln!("{delivered:?}");
    // Every send cut off from its leader still finished, and its outcome was committed.
    let new_leader = cluster.wait_for_leader(&survivors, SETTLE).await?;
    let expected = check::expected_keys(&uids, start, cutoff);
    let url = format!("{}/v1/executions?status=succeeded&limit=1000", cluster.url(new_leader));
    wait_for(SETTLE, "every fire in the window recorded as succeeded", || async {
        let list: belfry_core::api::ExecutionList = cluster.http.get(&url).send().await.ok()?.json().await.ok()?;
        let done: std::collections::BTreeSet<String> = list.executions.into_iter().map(|e| e.key).collect();
        expected.iter().all(|k| done.contains(k)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_gets_no_send_out_when_it_resumes() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let (cluster, uids, start) = firing_cluster(&sink).await?;
    let zombie = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != zombie).collect();

    let paused_at = Utc::now();
    cluster.signal(zombie, "STOP")?;
    let outcome = async {
        let new_leader = cluster.wait_for_leader(&others, SETTLE).await?;
        fired_after(&sink, paused_at).await?;
        // The pause lasts 5 s from its start (the scenario's fault, not a wait for a condition).
        let elapsed = (Utc::now() - paused_at).to_std().unwrap_or_default();
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(elapsed)).await;
        anyhow::Ok(new_leader)
    }
    .await;
    cluster.signal(zombie, "CONT")?;
    let new_leader = outcome?;

    // The old leader learns the new term and follows; it sends nothing of its own.
    let resumed_at = Utc::now();
    let agreed = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    assert_ne!(agreed, zombie, "the resumed node did not take leadership back by itself");
    assert_eq!(agreed, new_leader);
    let cutoff = resumed_at + chrono::Duration::seconds(3);
    check::wait_scheduled_past(&sink, cutoff, SETTLE).await?;
    let delivered = check::exactly_once(&cluster, &sink, &uids, start, cutoff, SETTLE).await?;
    eprintln!("{delivered:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_node_at_once_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let (mut cluster, uids, start) = firing_cluster(&sink).await?;

    // A writer creates one-off jobs, due 2 s ahead, through every node in turn, and keeps the
    // names the cluster acknowledged with a 201.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let urls: Vec<String> = (1..=3).map(|id| cluster.url(id)).collect();
        let (http, sink_url) = (cluster.http.clone(), sink.url.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("once-{i:04}");
                let at = belfry_core::api::rfc3339(Utc::now() + chrono::Duration::seconds(2));
                let body = serde_json::json!({
                    "name": name, "schedule": {"at": at}, "target": {"url": format!("{sink_url}/{name}")}
                });
                let sent = http.post(format!("{}/v1/jobs", urls[i % 3])).json(&body).timeout(Duration::from_secs(3));
                match sent.send().await {
                    Ok(r) if r.status() == 201 => acknowledged.lock().expect("lock").push(name),
                    // Refused or cut off: not acknowledged, so free to be lost. Back off a little
                    // while the cluster is down rather than spin.
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
                i += 1;
            }
        })
    };
    wait_for(SETTLE, "a few acknowledged one-off jobs", || async {
        (acknowledged.lock().expect("lock").len() >= 5).then_some(())
    })
    .await?;

    let killed_at = Utc::now();
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    let acked_before_kill = acknowledged.lock().expect("lock").len();
    for id in [1, 2, 3] {
        cluster.restart(id)?;
    }
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let restarted_at = Utc::now();
    wait_for(SETTLE, "writes acknowledged again after the restart", || async {
        (acknowledged.lock().expect("lock").len() >= acked_before_kill + 5).then_some(())
    })
    .await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await?;

    let acknowledged = acknowledged.lock().expect("lock").clone();
    for id in [1, 2, 3] {
        cluster.wait_ready(id, SETTLE).await?;
        let jobs: belfry_core::api::JobList =
            cluster.http.get(format!("{}/v1/jobs?limit=1000", cluster.url(id))).send().await?.json().await?;
        let names: std::collections::BTreeSet<&str> = jobs.jobs.iter().map(|j| j.name.as_str()).collect();
        let lost: Vec<&String> = acknowledged.iter().filter(|n| !names.contains(n.as_str())).collect();
        assert!(lost.is_empty(), "node {id} lost acknowledged jobs {lost:?}");
    }
    // Every acknowledged one-off job fired exactly once.
    let received = wait_for(SETTLE, "a delivery of every acknowledged one-off job", || async {
        let received = sink.received().await.ok()?;
        let jobs: std::collections::BTreeSet<&str> = received.iter().map(|r| r.job.as_str()).collect();
        acknowledged.iter().all(|n| jobs.contains(n.as_str())).then_some(received)
    })
    .await?;
    for name in &acknowledged {
        let of_job: Vec<_> = received.iter().filter(|r| &r.job == name).collect();
        assert!(
            of_job.len() == 1 || check::cut_off_by_kill(&of_job, Some(killed_at)),
            "one-off job {name} delivered {} times: {of_job:?}",
            of_job.len()
        );
    }

    // Killing every node kills every worker, possibly in the middle of a send: those fires may
    // come twice, with the same key; nothing else may.
    let cutoff = restarted_at + chrono::Duration::seconds(3);
    check::wait_scheduled_past(&sink, cutoff, SETTLE).await?;
    let delivered =
        check::exactly_once_but_killed_sends(&cluster, &sink, &uids, (start, cutoff), SETTLE, killed_at).await?;
    eprintln!("{} one-off jobs acknowledged; {delivered:?}", acknowledged.len());
    Ok(())
}
