//! The bad-input suite: what a client, a webhook target or a membership request sends must
//! never crash, wedge or fork the cluster. Each case is sent to a real 3-node cluster of
//! `belfry serve` processes; afterwards every node must be ready and take a write, and again
//! after every node is killed and restarted (a poison entry in the log would crash the replay).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use belfry_core::api::{ClusterView, ErrorBody, ExecutionList, ExecutionView};
use belfry_tests::{free_ports, wait_for, Cluster, Sink};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READY: Duration = Duration::from_secs(30);

/// Starts a 3-node cluster and waits until it is ready.
async fn cluster() -> anyhow::Result<Cluster> {
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], READY).await?;
    cluster.assert_healthy("start").await?;
    Ok(cluster)
}

/// Checks the answer is `status` with an error body in the contract shape naming `field`.
async fn expect_error(r: reqwest::Response, status: StatusCode, field: Option<&str>) -> anyhow::Result<ErrorBody> {
    let got = r.status();
    let text = r.text().await?;
    anyhow::ensure!(got == status, "expected {status}, got {got}: {text}");
    let body: ErrorBody =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("not the error shape ({e}): {text}"))?;
    anyhow::ensure!(!body.error.code.is_empty() && !body.error.message.is_empty(), "empty code or message: {text}");
    if let Some(field) = field {
        anyhow::ensure!(body.error.field.as_deref() == Some(field), "expected field {field}: {text}");
    }
    Ok(body)
}

fn job(name: &str, url: &str) -> Value {
    json!({"name": name, "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": url}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_specs_are_refused_with_their_field_and_change_nothing() -> anyhow::Result<()> {
    let mut cluster = cluster().await?;
    let jobs = format!("{}/v1/jobs", cluster.url(2));
    let huge = "100000000000d";
    let cases: Vec<(&str, Value)> = vec![
        ("schedule.jitter", json!({"schedule": {"every": "10s", "jitter": "18446744073709551615ms"}})),
        ("schedule.jitter", json!({"schedule": {"every": "10s", "jitter": "1000000000d"}})),
        ("schedule.every", json!({"schedule": {"every": huge}})),
        ("schedule.at", json!({"schedule": {"at": "+10000-01-01T00:00:00Z"}})),
        ("retry.max_age", json!({"retry": {"max_age": huge}})),
        ("retry.initial_backoff", json!({"retry": {"initial_backoff": huge, "max_backoff": huge}})),
        ("retry.max_backoff", json!({"retry": {"max_backoff": huge}})),
        ("history.max_age", json!({"history": {"max_age": huge}})),
        ("misfire.grace", json!({"misfire": {"grace": huge}})),
        ("target.url", json!({"target": {"url": "http://127.0.0.1:9/a b"}})),
        ("target.url", json!({"target": {"url": "http://127.0.0.1:9/a\r\nX-Injected: 1"}})),
        ("target.url", json!({"target": {"url": "http:///nohost"}})),
        ("target.body", json!({"target": {"url": "http://127.0.0.1:9/", "body": "x".repeat(64 * 1024 + 1)}})),
        (
            "target.headers",
            json!({"target": {"url": "http://127.0.0.1:9/", "headers": (0..100).map(|i| (format!("x-h{i}"), Value::from("v".repeat(1024)))).collect::<serde_json::Map<_, _>>()}}),
        ),
    ];
    for (i, (field, patch)) in cases.iter().enumerate() {
        let mut spec = job(&format!("poison-{i}"), "http://127.0.0.1:9/x");
        for (section, value) in patch.as_object().expect("object") {
            spec[section] = value.clone();
        }
        let r = cluster.http.post(&jobs).json(&spec).send().await?;
        // A schedule field may be reported as the schedule object's field or the whole body's.
        let e = expect_error(r, StatusCode::BAD_REQUEST, None).await?;
        let got = e.error.field.clone().unwrap_or_default();
        assert!(
            got == *field || (field.ends_with("headers") && got.starts_with("target.headers")),
            "case {i} ({field}): refused naming {got:?}: {}",
            e.error.message
        );
    }
    let list: Value = cluster.http.get(&jobs).send().await?.json().await?;
    let names: Vec<&str> = list["jobs"].as_array().into_iter().flatten().filter_map(|j| j["name"].as_str()).collect();
    assert!(names.iter().all(|n| !n.starts_with("poison-")), "a refused spec was stored: {names:?}");
    cluster.assert_healthy("poison specs").await?;
    cluster.restart_all()?;
    cluster.assert_healthy("a full restart after poison specs").await
}

/// A webhook target that answers with hostile values.
async fn hostile_target() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    async fn answer(uri: axum::http::Uri, _headers: HeaderMap) -> Response {
        let retry_after = |value: &str| {
            Response::builder()
                .status(AxumStatus::SERVICE_UNAVAILABLE)
                .header("retry-after", value)
                .body(Body::empty())
                .expect("response")
        };
        match uri.path() {
            "/retry-after-huge" => retry_after("10000000000000"),
            "/retry-after-date" => retry_after("Fri, 31 Dec 9999 23:59:59 GMT"),
            "/retry-after-garbage" => retry_after("-1e99, soon"),
            "/huge-body" => {
                // 100 MiB, produced chunk by chunk: the target never holds it, and belfry must not.
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures::stream::repeat(chunk).take(1600).map(Ok::<_, std::io::Error>);
                Response::builder().status(AxumStatus::OK).body(Body::from_stream(stream)).expect("response")
            }
            _ => Response::builder().status(AxumStatus::OK).body(Body::empty()).expect("response"),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(any(answer));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

/// Creates a job aimed at `url`, triggers it, and waits until its fire has an attempt on record.
async fn trigger_once(cluster: &Cluster, name: &str, url: &str, retry: Value) -> anyhow::Result<ExecutionView> {
    let mut spec = job(name, url);
    spec["retry"] = retry;
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(1))).json(&spec).send().await?;
    anyhow::ensure!(r.status() == 201, "create {name}: {}", r.text().await?);
    let r = cluster.http.post(format!("{}/v1/jobs/{name}/trigger", cluster.url(1))).send().await?;
    anyhow::ensure!(r.status() == 202, "trigger {name}: {}", r.text().await?);
    let fire: ExecutionView = r.json().await?;
    let url = format!("{}/v1/executions/{}", cluster.url(1), fire.key);
    wait_for(Duration::from_secs(30), &format!("an attempt of {name}"), || async {
        let e: ExecutionView = cluster.http.get(&url).send().await.ok()?.json().await.ok()?;
        (e.attempts >= 1 && e.status != "dispatched").then_some(e)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_target_answers_cannot_hurt_the_cluster() -> anyhow::Result<()> {
    let mut cluster = cluster().await?;
    let (target, _task) = hostile_target().await?;
    let peaks: Vec<u64> = (1..=3).map(|id| cluster.peak_rss_kib(id)).collect::<anyhow::Result<_>>()?;

    let retry = json!({"max_attempts": 3, "initial_backoff": "1s", "max_backoff": "1s"});
    for (name, path) in
        [("ra-huge", "/retry-after-huge"), ("ra-date", "/retry-after-date"), ("ra-garbage", "/retry-after-garbage")]
    {
        let e = trigger_once(&cluster, name, &format!("{target}{path}"), retry.clone()).await?;
        assert_eq!(e.http_status, Some(503), "{name}: {e:?}");
        assert!(
            matches!(e.status.as_str(), "retry_waiting" | "dead_lettered"),
            "{name}: a 503 with Retry-After must wait or dead-letter, got {e:?}"
        );
        if let Some(next) = &e.next_attempt_at {
            let next = chrono::DateTime::parse_from_rfc3339(next)?;
            let fired = chrono::DateTime::parse_from_rfc3339(&e.fired_at)?;
            assert!(next - fired <= chrono::Duration::days(1), "{name}: Retry-After not clamped: {e:?}");
        }
        cluster.assert_healthy(name).await?;
    }

    let e = trigger_once(&cluster, "huge-body", &format!("{target}/huge-body"), retry.clone()).await?;
    assert_eq!(e.status, "succeeded", "{e:?}");
    let full: Value =
        cluster.http.get(format!("{}/v1/executions/{}", cluster.url(1), e.key)).send().await?.json().await?;
    let excerpt = full["attempt_log"]
        .as_array()
        .and_then(|a| a.last())
        .map(|a| a["body_excerpt"].as_str().map(str::len).unwrap_or(0));
    assert!(excerpt.unwrap_or(0) <= 1024, "the excerpt kept {excerpt:?} bytes");
    for (i, id) in (1..=3).enumerate() {
        let grown = cluster.peak_rss_kib(id)?.saturating_sub(peaks[i]);
        assert!(grown < 48 * 1024, "node {id}'s peak RSS grew by {grown} KiB reading a 100 MiB answer");
    }
    cluster.assert_healthy("a 100 MiB answer").await?;

    cluster.restart_all()?;
    cluster.assert_healthy("a full restart after hostile answers").await?;
    let r = cluster.http.get(format!("{}/v1/executions/{}", cluster.url(3), e.key)).send().await?;
    assert_eq!(r.status(), StatusCode::OK, "the fire's record survives the restart");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_traps_are_refused_and_leave_the_membership_alone() -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let members = format!("{}/v1/cluster/members", cluster.url(2));
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_ports(1)[0]));
    let traps = [
        json!({"id": 9, "grpc_addr": "127.0.0.1:0"}),
        json!({"id": 9, "grpc_addr": "no-such-host.invalid:7000"}),
        json!({"id": 9, "grpc_addr": "127.0.0.1"}),
        json!({"id": 9, "grpc_addr": nobody.to_string()}),
        json!({"id": 10, "grpc_addr": cluster.grpc_addr(2).to_string()}),
        json!({"id": 0, "grpc_addr": nobody.to_string()}),
    ];
    for trap in &traps {
        let r = cluster.http.post(&members).json(trap).timeout(Duration::from_secs(90)).send().await?;
        let status = r.status();
        let text = r.text().await?;
        assert!(status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE, "{trap}: {status} {text}");
        let _: ErrorBody = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{trap}: {e}: {text}"))?;
        let view: ClusterView = cluster.status(1).await?;
        let ids: Vec<u64> = view.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1, 2, 3], "{trap} changed the membership");
    }
    let r = cluster.http.delete(format!("{}/v1/cluster/members/abc", cluster.url(1))).send().await?;
    expect_error(r, StatusCode::BAD_REQUEST, Some("id")).await?;
    cluster.assert_healthy("membership traps").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_malformed_clients_are_cut_off_and_block_no_one() -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let addr = cluster.nodes[0].http;
    // Half-open requests: an unfinished header block, and a body shorter than announced.
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let head = if i % 2 == 0 {
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_string()
        } else {
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"na"
                .to_string()
        };
        s.write_all(head.as_bytes()).await?;
        sockets.push(s);
    }
    // While they hang, the node answers everyone else.
    cluster.assert_healthy("200 half-open connections").await?;
    // Each is closed by the server (EOF or reset), with or without an answer.
    let closed = futures::future::join_all(sockets.into_iter().map(|mut s| async move {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }))
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} of 200 half-open connections still open after 60 s");

    // Every error, including the HTTP layer's own, is in the contract shape.
    let url = cluster.url(1);
    let http = &cluster.http;
    expect_error(http.patch(format!("{url}/v1/jobs")).send().await?, StatusCode::METHOD_NOT_ALLOWED, None).await?;
    expect_error(http.get(format!("{url}/v1/jobs?limit=-1")).send().await?, StatusCode::BAD_REQUEST, Some("limit"))
        .await?;
    expect_error(http.get(format!("{url}/v1/jobs?limit=abc")).send().await?, StatusCode::BAD_REQUEST, Some("limit"))
        .await?;
    let r = http.get(format!("{url}/v1/dead-letters?status=bogus")).send().await?;
    expect_error(r, StatusCode::BAD_REQUEST, Some("status")).await?;
    let r = http.get(format!("{url}/v1/jobs/a%ffb")).send().await?;
    expect_error(r, StatusCode::BAD_REQUEST, None).await?;
    let r = http.get(format!("{url}/v1/jobs/{}", "a".repeat(20_000))).send().await?;
    expect_error(r, StatusCode::URI_TOO_LONG, None).await?;
    let mut many = reqwest::header::HeaderMap::new();
    for i in 0..200 {
        many.insert(reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes())?, "v".repeat(300).parse()?);
    }
    let r = http.get(format!("{url}/v1/jobs")).headers(many).send().await?;
    expect_error(r, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, None).await?;
    cluster.assert_healthy("malformed requests").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_job_stops_its_retries_and_a_recreated_job_shows_none_of_its_fires() -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let sink = Sink::start(Duration::ZERO).await?;
    let http = &cluster.http;
    let url = cluster.url(1);
    let r = http
        .post(format!("{}/_sink/answers", sink.url))
        .json(&json!({"path": "/doomed", "status": 503}))
        .send()
        .await?;
    assert!(r.status().is_success());
    let mut spec = job("doomed", &format!("{}/doomed", sink.url));
    spec["retry"] = json!({"max_attempts": 50, "initial_backoff": "1s", "max_backoff": "1s"});
    assert_eq!(http.post(format!("{url}/v1/jobs")).json(&spec).send().await?.status(), StatusCode::CREATED);
    let fire: ExecutionView = http.post(format!("{url}/v1/jobs/doomed/trigger")).send().await?.json().await?;
    let sink = &sink;
    let attempts_to = |path: &'static str| async move {
        anyhow::Ok(sink.received().await?.iter().filter(|d| d.path == path).count())
    };
    wait_for(Duration::from_secs(30), "a second attempt", || async {
        (attempts_to("/doomed").await.ok()? >= 2).then_some(())
    })
    .await?;
    assert_eq!(http.delete(format!("{url}/v1/jobs/doomed")).send().await?.status(), StatusCode::NO_CONTENT);
    let at_delete = attempts_to("/doomed").await?;

    // The same name again, and a witness that fires every second: once it has fired three
    // times, more than two of the old job's backoffs have passed.
    let mut again = job("doomed", &format!("{}/doomed-again", sink.url));
    again["paused"] = json!(true);
    assert_eq!(http.post(format!("{url}/v1/jobs")).json(&again).send().await?.status(), StatusCode::CREATED);
    let witness =
        json!({"name": "witness", "schedule": {"every": "1s"}, "target": {"url": format!("{}/witness", sink.url)}});
    assert_eq!(http.post(format!("{url}/v1/jobs")).json(&witness).send().await?.status(), StatusCode::CREATED);
    wait_for(Duration::from_secs(30), "three witness fires", || async {
        (attempts_to("/witness").await.ok()? >= 3).then_some(())
    })
    .await?;
    let after = attempts_to("/doomed").await?;
    // One attempt may have been in flight when the delete committed; none may start after.
    assert!(after <= at_delete + 1, "{} attempts of the deleted job were sent after its delete", after - at_delete);

    let list: ExecutionList = http.get(format!("{url}/v1/executions?job=doomed")).send().await?.json().await?;
    assert!(
        list.executions.iter().all(|e| e.key != fire.key),
        "the recreated job lists the deleted job's fire {}",
        fire.key
    );
    let old = http.get(format!("{url}/v1/executions/{}", fire.key)).send().await?;
    if old.status() == StatusCode::OK {
        let e: ExecutionView = old.json().await?;
        assert_eq!(e.status, "cancelled", "{e:?}");
    }
    cluster.assert_healthy("deleting a retrying job").await
}
