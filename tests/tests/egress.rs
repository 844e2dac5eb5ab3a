//! The egress policy and header redaction on real `belfry serve` processes: SSRF targets and
//! this cluster's own API are refused when a job is written (400 `target.url`), private
//! ranges only with `--allow-private-targets`, and credential headers never leave the API
//! while a get, edit, put round trip keeps them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use belfry_core::api::{ErrorBody, ExecutionView, JobList, JobView};
use belfry_tests::{binary, wait_for, Cluster, Sink};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn job(name: &str, url: &str) -> Value {
    json!({"name": name, "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": url, "method": "DELETE"}})
}

/// Sends `request`, expects a 400 naming `field`, and returns the message.
async fn refused(request: reqwest::RequestBuilder, field: &str) -> anyhow::Result<String> {
    let r = request.send().await?;
    let status = r.status();
    let text = r.text().await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body: ErrorBody = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{e}: {text}"))?;
    assert_eq!((body.error.code.as_str(), body.error.field.as_deref()), ("invalid", Some(field)), "{text}");
    Ok(body.error.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_link_local_and_this_clusters_api_are_refused_at_create() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    let http = &cluster.http;
    let jobs = format!("{}/v1/jobs", cluster.url(1));
    let r = http.post(&jobs).json(&job("victim", &format!("{}/hook", sink.url))).send().await?;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await?);

    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://0.0.0.0:7101/",
        "http://[::]/",
        "http://224.0.0.1/",
    ] {
        let message = refused(http.post(&jobs).json(&job("ssrf", url)), "target.url").await?;
        assert!(message.contains("egress policy") && message.contains("always refused"), "{url}: {message}");
    }

    // Every member's API, however it is spelled, through whichever node takes the write.
    for (via, target) in [(1u64, 1usize), (1, 2), (2, 3), (3, 1)] {
        let port = cluster.nodes[target - 1].http.port();
        for host in ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"] {
            let url = format!("http://{host}:{port}/v1/jobs/victim");
            let create = http.post(format!("{}/v1/jobs", cluster.url(via))).json(&job("ssrf", &url));
            let message = refused(create, "target.url").await?;
            assert!(message.contains("own API") && message.contains("--allow-target"), "{url} via {via}: {message}");
        }
    }
    // A replace is checked like a create.
    let put = http.put(format!("{jobs}/victim")).json(&job("victim", "http://169.254.169.254/"));
    refused(put, "target.url").await?;

    let r = http.get(format!("{jobs}/victim")).send().await?;
    assert_eq!(r.status(), StatusCode::OK, "the victim job is untouched");
    let victim: JobView = r.json().await?;
    assert!(victim.target.url.starts_with(&sink.url), "{victim:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_unless_the_flag_allows_them() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--allow-private-targets=false"])?;
    cluster.wait_for_leader(&[1], Duration::from_secs(20)).await?;
    let http = &cluster.http;
    let jobs = format!("{}/v1/jobs", cluster.url(1));
    for url in [
        "http://127.0.0.1:2375/containers/json",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://localhost:8080/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fc00::1]/",
    ] {
        let message = refused(http.post(&jobs).json(&job("private", url)), "target.url").await?;
        assert!(message.contains("--allow-private-targets"), "{url}: {message}");
    }
    let r = http.post(&jobs).json(&job("public", "https://example.com/hook")).send().await?;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await?);
    Ok(())
}

/// A target that keeps the headers of every request it gets.
async fn recording_target() -> anyhow::Result<(String, Arc<Mutex<Vec<HeaderMap>>>)> {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        keep.lock().expect("lock").push(headers);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_headers_are_redacted_and_survive_a_get_edit_put() -> anyhow::Result<()> {
    let (target, seen) = recording_target().await?;
    let cluster = Cluster::start(1)?;
    cluster.wait_for_leader(&[1], Duration::from_secs(20)).await?;
    let http = &cluster.http;
    let jobs = format!("{}/v1/jobs", cluster.url(1));
    let spec = json!({
        "name": "hook", "schedule": {"cron": "0 0 1 1 *"},
        "target": {"url": target, "headers": {"Authorization": "Bearer s3cret", "X-Api-Key": "k-123", "X-Team": "ops"}},
    });
    let r = http.post(&jobs).json(&spec).send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: JobView = r.json().await?;

    let get: JobView = http.get(format!("{jobs}/hook")).send().await?.json().await?;
    let list: JobList = http.get(&jobs).send().await?.json().await?;
    for view in [&created, &get, &list.jobs[0]] {
        let h = &view.target.headers;
        assert_eq!((h["Authorization"].as_str(), h["X-Api-Key"].as_str()), ("<redacted>", "<redacted>"), "{view:?}");
        assert_eq!(h["X-Team"], "ops");
    }
    let shown = std::process::Command::new(binary())
        .args(["--endpoint", &cluster.url(1), "job", "get", "hook"])
        .env_remove("BELFRY_ENDPOINT")
        .env("BELFRY_TOKEN", belfry_tests::TOKEN)
        .output()?;
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success() && stdout.contains("<redacted>"), "{stdout}");
    assert!(!stdout.contains("s3cret") && !stdout.contains("k-123"), "{stdout}");

    // Get, edit, put: the placeholders keep the stored values.
    let mut edited = serde_json::to_value(&get)?;
    let put_body = json!({
        "name": "hook", "schedule": edited["schedule"].take(),
        "target": {"url": target, "headers": edited["target"]["headers"].take(), "body": "edited"},
    });
    let r = http.put(format!("{jobs}/hook")).json(&put_body).send().await?;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await?);
    let put: JobView = r.json().await?;
    assert_eq!(put.target.headers["Authorization"], "<redacted>");
    assert_eq!(put.target.body.as_deref(), Some("edited"));

    let r = http.post(format!("{jobs}/hook/trigger")).send().await?;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let fire: ExecutionView = r.json().await?;
    let execution = format!("{}/v1/executions/{}", cluster.url(1), fire.key);
    wait_for(Duration::from_secs(20), "the fire to succeed", || async {
        let f: ExecutionView = http.get(&execution).send().await.ok()?.json().await.ok()?;
        (f.status == "succeeded").then_some(())
    })
    .await?;
    let headers = seen.lock().expect("lock").last().cloned().expect("a delivery");
    assert_eq!(headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer s3cret"));
    assert_eq!(headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some("k-123"));

    // A placeholder with nothing stored behind it, or in a new job, is refused.
    let mut unknown = put_body.clone();
    unknown["target"]["headers"]["X-Other-Token"] = json!("<redacted>");
    let message = refused(http.put(format!("{jobs}/hook")).json(&unknown), "target.headers").await?;
    assert!(message.contains("X-Other-Token"), "{message}");
    let mut new = put_body.clone();
    new["name"] = json!("fresh");
    refused(http.post(&jobs).json(&new), "target.headers").await?;
    Ok(())
}
