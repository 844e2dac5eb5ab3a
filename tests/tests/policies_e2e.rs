//! Job policies on real processes against a scripted sink: retries with growing delays, a 404
//! that dead-letters at once, a 429's `Retry-After`, and the dead-letter queue's requeue and
//! purge through the API, with the `belfry_dead_letters` gauge following along.

use std::time::Duration;

use belfry_core::api::{DeadLetterResult, ExecutionList, ExecutionView};
use belfry_core::{HumanDuration, RetryPolicy};
use belfry_node::sink::Answer;
use belfry_tests::{wait_for, Cluster, Sink};
use chrono::{DateTime, Utc};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

/// Short backoffs so a test takes seconds: 400 ms doubling, at most 5 s.
fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: HumanDuration(Duration::from_millis(400)),
        max_backoff: HumanDuration::secs(5),
        max_age: HumanDuration::secs(60),
    }
}

/// Creates a job that only fires when triggered (its cron falls on New Year), posting to
/// `path` on the sink, and triggers it; returns the fire's key.
async fn trigger_job(
    cluster: &Cluster,
    sink: &Sink,
    name: &str,
    path: &str,
    policy: RetryPolicy,
) -> anyhow::Result<String> {
    let body = json!({
        "name": name,
        "schedule": {"cron": "0 0 1 1 *"},
        "target": {"url": format!("{}{path}", sink.url), "timeout": "5s"},
        "retry": policy,
    });
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(1))).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "create {name}: {}", r.text().await?);
    let r = cluster.http.post(format!("{}/v1/jobs/{name}/trigger", cluster.url(1))).send().await?;
    anyhow::ensure!(r.status() == 202, "trigger {name}: {}", r.text().await?);
    let fire: ExecutionView = r.json().await?;
    assert!(fire.manual && fire.key.contains(":manual:"), "a trigger has a manual key of its own: {}", fire.key);
    Ok(fire.key)
}

async fn script(sink: &Sink, answer: &str) -> anyhow::Result<()> {
    let answer: Answer = answer.parse().map_err(anyhow::Error::msg)?;
    let r = reqwest::Client::new().post(format!("{}/_sink/answers", sink.url)).json(&answer).send().await?;
    anyhow::ensure!(r.status().is_success(), "scripting the sink: {}", r.status());
    Ok(())
}

async fn execution(cluster: &Cluster, key: &str) -> anyhow::Result<ExecutionView> {
    let r = cluster.http.get(format!("{}/v1/executions/{key}", cluster.url(1))).send().await?;
    Ok(r.error_for_status()?.json().await?)
}

/// Waits until fire `key` reaches `status`.
async fn settled(cluster: &Cluster, key: &str, status: &str) -> anyhow::Result<ExecutionView> {
    wait_for(SETTLE, &format!("fire {key} to be {status}"), || async {
        execution(cluster, key).await.ok().filter(|f| f.status == status)
    })
    .await
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("RFC 3339").with_timezone(&Utc)
}

/// Milliseconds between the end of each attempt and the start of the next.
fn gaps(fire: &ExecutionView) -> Vec<i64> {
    let log = fire.attempt_log.as_ref().expect("an execution's detail has its attempts");
    log.windows(2).map(|w| (instant(&w[1].started_at) - instant(&w[0].finished_at)).num_milliseconds()).collect()
}

async fn dead_letter_gauge(cluster: &Cluster) -> anyhow::Result<i64> {
    let text = cluster.http.get(format!("{}/metrics", cluster.url(1))).send().await?.text().await?;
    let line = text.lines().find(|l| l.starts_with("belfry_dead_letters ")).expect("the gauge is exported");
    Ok(line["belfry_dead_letters ".len()..].trim().parse::<f64>()? as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_targets_are_retried_with_growing_delays_or_dead_lettered_at_once() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    script(&sink, "/flaky=500x2").await?;
    script(&sink, "/gone=404").await?;
    script(&sink, "/busy=429x1@2").await?;
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;

    let flaky = trigger_job(&cluster, &sink, "flaky", "/flaky", retry(5)).await?;
    let gone = trigger_job(&cluster, &sink, "gone", "/gone", retry(5)).await?;
    let busy = trigger_job(&cluster, &sink, "busy", "/busy", retry(5)).await?;

    // Two 500s then a 200: three attempts, one success, each wait at least the backoff the
    // policy draws for it (which doubles), and no more than a ticker round beyond it.
    let fire = settled(&cluster, &flaky, "succeeded").await?;
    let log = fire.attempt_log.clone().unwrap_or_default();
    let statuses: Vec<Option<u16>> = log.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)], "{fire:?}");
    assert_eq!(log.iter().filter(|a| a.result == "success").count(), 1);
    let backoffs: Vec<i64> = (1..=2).map(|n| belfry_core::retry::backoff_ms(&retry(5), n, &flaky)).collect();
    let gaps = gaps(&fire);
    for (gap, backoff) in gaps.iter().zip(&backoffs) {
        assert!(*gap >= *backoff && *gap < backoff + 1500, "gap {gap} ms for backoff {backoff} ms: {gaps:?}");
    }
    assert!(backoffs[1] >= backoffs[0] && gaps[1] >= 400, "delays grow: {gaps:?} for {backoffs:?}");
    let sent: Vec<String> = sink.received().await?.into_iter().filter(|r| r.key == flaky).map(|r| r.attempt).collect();
    assert_eq!(sent, ["1", "2", "3"], "one request per attempt, numbered, under one key");

    // A 404 dead-letters after the first attempt, with no retry.
    let fire = settled(&cluster, &gone, "dead_lettered").await?;
    assert_eq!((fire.attempts, fire.http_status), (1, Some(404)), "{fire:?}");
    assert!(fire.note.as_deref().is_some_and(|n| n.contains("permanent")), "{fire:?}");
    let dead: ExecutionList =
        cluster.http.get(format!("{}/v1/dead-letters?job=gone", cluster.url(2))).send().await?.json().await?;
    assert_eq!(dead.executions.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), [gone.as_str()]);

    // A 429 with Retry-After: 2 waits at least 2 s although the backoff is 400 ms at most.
    let fire = settled(&cluster, &busy, "succeeded").await?;
    let gaps = self::gaps(&fire);
    assert_eq!(gaps.len(), 1, "{fire:?}");
    assert!(gaps[0] >= 2000, "the second attempt came {} ms after a Retry-After of 2 s", gaps[0]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_requeued_under_their_key_and_purged_and_counted() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    // The first request to /fixed is refused; after the "fix" it succeeds.
    script(&sink, "/fixed=404x1").await?;
    script(&sink, "/broken=410").await?;
    let cluster = Cluster::start(1)?;
    cluster.wait_for_leader(&[1], SETTLE).await?;
    let url = cluster.url(1);

    let fixed = trigger_job(&cluster, &sink, "fixed", "/fixed", retry(1)).await?;
    settled(&cluster, &fixed, "dead_lettered").await?;
    let broken: Vec<String> = {
        let first = trigger_job(&cluster, &sink, "broken", "/broken", retry(1)).await?;
        let r = cluster.http.post(format!("{url}/v1/jobs/broken/trigger")).send().await?;
        let second: ExecutionView = r.error_for_status()?.json().await?;
        vec![first, second.key]
    };
    for key in &broken {
        settled(&cluster, key, "dead_lettered").await?;
    }
    assert_eq!(dead_letter_gauge(&cluster).await?, 3);

    // A bulk requeue naming a live key or an unknown one changes nothing.
    let r = cluster
        .http
        .post(format!("{url}/v1/dead-letters/requeue"))
        .json(&json!({"keys": [fixed, "9:9"]}))
        .send()
        .await?;
    assert_eq!(r.status(), 404, "{}", r.text().await?);
    let r = cluster.http.post(format!("{url}/v1/dead-letters/requeue")).json(&json!({})).send().await?;
    assert_eq!(r.status(), 400);

    // Requeue by job: the fire is delivered again under the same key, attempt 2, and succeeds.
    let r = cluster.http.post(format!("{url}/v1/dead-letters/requeue")).json(&json!({"job": "fixed"})).send().await?;
    let done: DeadLetterResult = r.error_for_status()?.json().await?;
    assert_eq!(done.keys, std::slice::from_ref(&fixed));
    let fire = settled(&cluster, &fixed, "succeeded").await?;
    assert_eq!(fire.attempts, 2);
    let sent: Vec<(String, u16)> =
        sink.received().await?.into_iter().filter(|r| r.key == fixed).map(|r| (r.attempt, r.status)).collect();
    assert_eq!(sent, [("1".to_string(), 404), ("2".to_string(), 200)], "same key, next attempt");
    assert_eq!(dead_letter_gauge(&cluster).await?, 2);

    // Purge one by key: gone from the history and the gauge.
    let r = cluster.http.delete(format!("{url}/v1/dead-letters/{}", broken[0])).send().await?;
    assert_eq!(r.status(), 204);
    let r = cluster.http.get(format!("{url}/v1/executions/{}", broken[0])).send().await?;
    assert_eq!(r.status(), 404);
    let r = cluster.http.delete(format!("{url}/v1/dead-letters/{fixed}")).send().await?;
    assert_eq!(r.status(), 409, "a fire that is not a dead letter is not purged");
    // The rest by job, through the CLI.
    let out = std::process::Command::new(belfry_tests::binary())
        .args(["--endpoint", &url, "-o", "json", "dlq", "purge", "--job", "broken"])
        .env("BELFRY_TOKEN", belfry_tests::TOKEN)
        .output()?;
    assert!(out.status.success(), "belfry dlq purge: {}", String::from_utf8_lossy(&out.stderr));
    let done: DeadLetterResult = serde_json::from_slice(&out.stdout)?;
    assert_eq!(done.keys, broken[1..]);
    assert_eq!(dead_letter_gauge(&cluster).await?, 0);
    let dead: ExecutionList = cluster.http.get(format!("{url}/v1/dead-letters")).send().await?.json().await?;
    assert!(dead.executions.is_empty(), "{dead:?}");
    Ok(())
}
