//! `belfry-bench`: measures a 3-node loopback cluster of release binaries.
//!
//! ```text
//! cargo build --release -p belfry-cli -p belfry-tests
//! target/release/belfry-bench --jobs 500 --seconds 30 --writers 8
//! ```
//!
//! Two phases: API writes (creating `--jobs` jobs from `--writers` concurrent clients through
//! a follower), then firing (every job every second for `--seconds`, into an in-process
//! recording sink). Prints one Markdown table of the figures for docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use belfry_tests::{by_key, wait_for, Cluster, Sink};
use chrono::{DateTime, Utc};

struct Args {
    jobs: usize,
    seconds: i64,
    writers: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { jobs: 500, seconds: 30, writers: 8 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--jobs" => args.jobs = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--writers" => args.writers = value.parse()?,
            other => anyhow::bail!("unknown flag {other} (use --jobs, --seconds, --writers)"),
        }
    }
    anyhow::ensure!(args.jobs > 0 && args.seconds > 0 && args.writers > 0, "all values must be positive");
    Ok(args)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let sink = Sink::start(Duration::ZERO).await?;
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let via = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");

    // Phase 1: writes. Jobs start firing well after the phase ends.
    let fire_from = DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).expect("valid instant");
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let (http, url, sink_url) = (cluster.http.clone(), cluster.url(via), sink.url.clone());
        let names: Vec<usize> = (w..args.jobs).step_by(args.writers).collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in names {
                let body = serde_json::json!({
                    "name": format!("bench-{i:05}"),
                    "schedule": {"every": "1s", "start_at": belfry_core::api::rfc3339(fire_from)},
                    "target": {"url": format!("{sink_url}/bench"), "timeout": "5s"},
                });
                let t = Instant::now();
                let r = http.post(format!("{url}/v1/jobs")).json(&body).send().await?;
                anyhow::ensure!(r.status() == 201, "create: {}", r.text().await?);
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(latencies)
        }));
    }
    let mut write_ms = Vec::new();
    for t in tasks {
        write_ms.extend(t.await??);
    }
    let write_secs = began.elapsed().as_secs_f64();
    write_ms.sort_by(f64::total_cmp);

    // Phase 2: firing. Move every job's start to the next whole second + 2 s.
    let start = DateTime::from_timestamp(Utc::now().timestamp() + 3, 0).expect("valid instant");
    for i in 0..args.jobs {
        let name = format!("bench-{i:05}");
        let body = serde_json::json!({
            "name": name,
            "schedule": {"every": "1s", "start_at": belfry_core::api::rfc3339(start),
                         "end_at": belfry_core::api::rfc3339(start + chrono::Duration::seconds(args.seconds - 1))},
            "target": {"url": format!("{}/bench", sink.url), "timeout": "5s"},
        });
        let r = cluster.http.put(format!("{}/v1/jobs/{name}", cluster.url(via))).json(&body).send().await?;
        anyhow::ensure!(r.status() == 200, "replace: {}", r.text().await?);
    }
    let expected = args.jobs * args.seconds as usize;
    let deadline = Duration::from_secs(args.seconds as u64 + 60);
    wait_for(deadline, "every fire delivered", || async {
        (sink.received().await.ok()?.len() >= expected).then_some(())
    })
    .await?;
    let received = sink.received().await?;
    let keys = by_key(&received);
    let duplicates = keys.values().filter(|v| v.len() > 1).count();
    let mut lag_ms: Vec<f64> = received
        .iter()
        .filter_map(|r| {
            let scheduled = DateTime::parse_from_rfc3339(&r.scheduled_at).ok()?.timestamp_millis();
            Some((r.received_at_ms - scheduled) as f64)
        })
        .collect();
    lag_ms.sort_by(f64::total_cmp);

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| API writes (create job, through a follower, {} clients) | {:.0}/s |",
        args.writers,
        write_ms.len() as f64 / write_secs
    );
    println!(
        "| write latency p50 / p99 | {:.1} ms / {:.1} ms |",
        percentile(&write_ms, 0.5),
        percentile(&write_ms, 0.99)
    );
    println!("| fires due ({} jobs every 1 s for {} s) | {expected} |", args.jobs, args.seconds);
    println!("| delivered (distinct keys) / duplicates | {} / {duplicates} |", keys.len());
    println!(
        "| fire lag (sink arrival - scheduled) p50 / p99 / max | {:.0} ms / {:.0} ms / {:.0} ms |",
        percentile(&lag_ms, 0.5),
        percentile(&lag_ms, 0.99),
        lag_ms.last().copied().unwrap_or(f64::NAN)
    );
    anyhow::ensure!(keys.len() == expected && duplicates == 0, "lost or duplicated fires");
    Ok(())
}
