//! The API's error contract at the edges a one-node cluster's HTTP server shows: every bad
//! query parameter, path parameter, method and body is a `{"error": {"code", "message",
//! "field"}}` answer naming the part at fault; and history filters select a job by its
//! identity, not by its name.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use belfry_core::api::{ExecutionList, ExecutionView};
use belfry_node::sink::Answer;
use serde_json::json;
use support::{expect_error, wait_for, Harness};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_400_naming_the_parameter() {
    let h = Harness::start().await;
    let cases = [
        ("/v1/jobs?limit=-1", "limit"),
        ("/v1/jobs?limit=abc", "limit"),
        ("/v1/jobs?limit=", "limit"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=1001", "limit"),
        ("/v1/jobs?limit=1&limit=2", "limit"),
        ("/v1/jobs?paused=maybe", "paused"),
        ("/v1/jobs?limt=5", "limt"),
        ("/v1/jobs?cursor=%ff", "cursor"),
        ("/v1/jobs/any/upcoming?count=-1", "count"),
        ("/v1/jobs/any/upcoming?count=0", "count"),
        ("/v1/jobs/any/upcoming?count=1001", "count"),
        ("/v1/jobs/any/upcoming?cnt=3", "cnt"),
        ("/v1/executions?status=bogus", "status"),
        ("/v1/executions?cursor=zz", "cursor"),
        ("/v1/executions?limit=abc", "limit"),
        ("/v1/executions?job=%ff", "job"),
        ("/v1/executions?jobs=a", "jobs"),
        ("/v1/dead-letters?status=bogus", "status"),
        ("/v1/dead-letters?status=succeeded", "status"),
        ("/v1/dead-letters?limit=-1", "limit"),
        ("/v1/dead-letters?lim=1", "lim"),
    ];
    for (path, field) in cases {
        expect_error(h.http.get(format!("{}{path}", h.url)), 400, "invalid", Some(field)).await;
    }
    let remove = h.http.delete(format!("{}/v1/cluster/members/2?force=maybe", h.url));
    expect_error(remove, 400, "invalid", Some("force")).await;
    // The accepted forms still work.
    for path in ["/v1/jobs?limit=1000&paused=false", "/v1/dead-letters?status=dead_lettered", "/v1/executions?"] {
        let r = h.http.get(format!("{}{path}", h.url)).send().await.expect("an answer");
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_path_parameters_are_400_naming_the_parameter() {
    let h = Harness::start().await;
    let url = &h.url;
    let cases = [
        (h.http.delete(format!("{url}/v1/cluster/members/abc")), "id"),
        (h.http.delete(format!("{url}/v1/cluster/members/-1")), "id"),
        (h.http.get(format!("{url}/v1/jobs/%ff")), "name"),
        (h.http.post(format!("{url}/v1/jobs/a%ffb/pause")), "name"),
        (h.http.get(format!("{url}/v1/executions/%ff")), "key"),
        (h.http.post(format!("{url}/v1/dead-letters/%fe/requeue")), "key"),
    ];
    for (request, field) in cases {
        expect_error(request, 400, "invalid", Some(field)).await;
    }
    // A well-formed name of no job is still a 404.
    expect_error(h.http.get(format!("{url}/v1/jobs/%C3%A9t%C3%A9")), 404, "not_found", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let h = Harness::start().await;
    let jobs = format!("{}/v1/jobs", h.url);
    for method in [reqwest::Method::PATCH, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = h.http.request(method.clone(), &jobs).send().await.expect("an answer");
        let allow = r.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(methods.contains(&"GET") && methods.contains(&"POST"), "{method}: Allow {allow:?}");
        expect_error(h.http.request(method, &jobs), 405, "method_not_allowed", None).await;
    }
    expect_error(h.http.post(format!("{}/healthz", h.url)), 405, "method_not_allowed", None).await;
    expect_error(h.http.get(format!("{}/v1/nothing", h.url)), 404, "not_found", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_on_every_route() {
    let h = Harness::start().await;
    let big = "x".repeat(belfry_node::http::MAX_REQUEST_BYTES + 1);
    let spec =
        json!({"name": "big", "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/", "body": big}});
    expect_error(h.http.post(format!("{}/v1/jobs", h.url)).json(&spec), 413, "too_large", None).await;
    // A route that never reads its body answers an oversized one the same way.
    let ignored = h.http.post(format!("{}/v1/jobs/big/pause", h.url)).body(big.clone());
    expect_error(ignored, 413, "too_large", None).await;
    expect_error(h.http.get(format!("{}/healthz", h.url)).body(big), 413, "too_large", None).await;
    let r = h.http.get(format!("{}/v1/jobs/big", h.url)).send().await.expect("an answer");
    assert_eq!(r.status(), 404, "the refused create changed nothing");
}

/// A target that holds each request until released, then answers 404 (a permanent failure).
async fn gate() -> (String, Arc<Notify>, Arc<Notify>) {
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (a, r) = (arrived.clone(), release.clone());
    let hold = move || {
        let (a, r) = (a.clone(), r.clone());
        async move {
            a.notify_one();
            r.notified().await;
            StatusCode::NOT_FOUND
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/gate", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/gate", post(hold))).await });
    (url, arrived, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_follow_the_job_not_its_name() {
    let dead = Answer { path: "/dead".into(), status: 404, times: None, retry_after: None };
    let h = Harness::with_answers(vec![dead]).await;
    let list = |route: &'static str, job: &'static str| {
        let url = format!("{}/v1/{route}{job}", h.url);
        let http = h.http.clone();
        async move {
            let r = http.get(&url).send().await.expect("an answer");
            assert_eq!(r.status(), 200, "{url}");
            let list: ExecutionList = r.json().await.expect("a list");
            list.executions.into_iter().map(|e| e.key).collect::<Vec<_>>()
        }
    };

    // The first job of the name is deleted while its fire is being delivered: that fire
    // outlives it until it finishes.
    let (target, arrived, release) = gate().await;
    let spec = json!({"name": "again", "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": target}});
    let r = h.http.post(format!("{}/v1/jobs", h.url)).json(&spec).send().await.expect("create");
    assert_eq!(r.status(), 201);
    let r = h.http.post(format!("{}/v1/jobs/again/trigger", h.url)).send().await.expect("trigger");
    let old: ExecutionView = r.json().await.expect("an execution");
    tokio::time::timeout(Duration::from_secs(20), arrived.notified()).await.expect("the delivery started");
    let r = h.http.delete(format!("{}/v1/jobs/again", h.url)).send().await.expect("delete");
    assert_eq!(r.status(), 204);
    expect_error(h.http.get(format!("{}/v1/executions?job=again", h.url)), 404, "not_found", Some("job")).await;
    expect_error(h.http.get(format!("{}/v1/dead-letters?job=again", h.url)), 404, "not_found", Some("job")).await;

    // A new job of the same name has none of the old one's fires, though they are kept.
    h.create("again", "dead", json!({})).await;
    assert!(list("executions", "?job=again").await.is_empty());
    assert!(list("executions", "").await.contains(&old.key), "the old fire is still in the history");
    assert!(list("dead-letters", "?job=again").await.is_empty());
    // Once finished, the old fire goes with its job.
    release.notify_one();
    let url = format!("{}/v1/executions/{}", h.url, old.key);
    wait_for(Duration::from_secs(20), "the old fire to finish", || async {
        (h.http.get(&url).send().await.ok()?.status() == 404).then_some(())
    })
    .await;
    let new = h.fire("again", "dead_lettered").await;
    assert_eq!(list("executions", "?job=again").await, [new.as_str()]);
    assert_eq!(list("dead-letters", "?job=again").await, [new]);
}
