//! The HTTP API's error contract and paging on a one-node process cluster: every error is
//! `{"error": {"code", "message", "field"}}` with the right status, and lists page with cursors.

use std::time::Duration;

use belfry_core::api::{ErrorBody, ExecutionList, JobList, JobView};
use belfry_tests::{wait_for, Cluster};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn job(name: &str) -> Value {
    json!({"name": name, "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": "http://127.0.0.1:9/x"}})
}

/// Sends `request` and checks the status, the error code and the field of the answer.
async fn expect_error(
    request: reqwest::RequestBuilder,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) -> anyhow::Result<ErrorBody> {
    let r = request.send().await?;
    assert_eq!(r.status(), status);
    let text = r.text().await?;
    let body: ErrorBody = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{e}: {text}"))?;
    assert_eq!(body.error.code, code, "{text}");
    assert_eq!(body.error.field.as_deref(), field, "{text}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_status_code_and_field() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.wait_for_leader(&[1], Duration::from_secs(20)).await?;
    let url = cluster.url(1);
    let http = &cluster.http;
    let jobs = format!("{url}/v1/jobs");

    // 400 with the field and the exact part at fault.
    let mut bad = job("c");
    bad["schedule"]["cron"] = json!("61 * * * *");
    let e =
        expect_error(http.post(&jobs).json(&bad), StatusCode::BAD_REQUEST, "invalid", Some("schedule.cron")).await?;
    assert!(e.error.message.contains("minute 61 out of range 0-59"), "{e:?}");
    let mut bad = job("u");
    bad["target"]["url"] = json!("ftp://example.com/");
    expect_error(http.post(&jobs).json(&bad), StatusCode::BAD_REQUEST, "invalid", Some("target.url")).await?;
    expect_error(http.post(&jobs).json(&job("Bad Name")), StatusCode::BAD_REQUEST, "invalid", Some("name")).await?;
    let mut bad = job("r");
    bad["retry"] = json!({"max_attempts": "three"});
    expect_error(http.post(&jobs).json(&bad), StatusCode::BAD_REQUEST, "invalid", Some("retry.max_attempts")).await?;
    let mut bad = job("h");
    bad["history"] = json!({"max_count": 0});
    expect_error(http.post(&jobs).json(&bad), StatusCode::BAD_REQUEST, "invalid", Some("history.max_count")).await?;
    let not_json = http.post(&jobs).header("content-type", "application/json").body("not json");
    expect_error(not_json, StatusCode::BAD_REQUEST, "invalid", Some("body")).await?;
    let preview = http.post(format!("{url}/v1/schedule/preview")).json(&json!({"schedule": {"every": "soon"}}));
    expect_error(preview, StatusCode::BAD_REQUEST, "invalid", Some("schedule.every")).await?;

    // 404 for a missing job, execution, route.
    expect_error(http.get(format!("{jobs}/nope")), StatusCode::NOT_FOUND, "not_found", None).await?;
    expect_error(http.get(format!("{url}/v1/executions/1:2")), StatusCode::NOT_FOUND, "not_found", None).await?;
    expect_error(http.get(format!("{url}/v1/nothing")), StatusCode::NOT_FOUND, "not_found", None).await?;

    // 201, then 409 for a duplicate name.
    let r = http.post(&jobs).json(&job("a")).send().await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let a: JobView = r.json().await?;
    expect_error(http.post(&jobs).json(&job("a")), StatusCode::CONFLICT, "already_exists", None).await?;

    // 413 over the request limit.
    let mut huge = job("big");
    huge["target"]["body"] = json!("x".repeat(300 * 1024));
    expect_error(http.post(&jobs).json(&huge), StatusCode::PAYLOAD_TOO_LARGE, "too_large", None).await?;

    // PUT with If-Match: a stale version is 409 and changes nothing; the current one applies.
    let mut changed = job("a");
    changed["retry"] = json!({"max_attempts": 5});
    let put = |version: &str| http.put(format!("{jobs}/a")).header("If-Match", version).json(&changed);
    expect_error(put("7"), StatusCode::CONFLICT, "version_mismatch", None).await?;
    expect_error(put("seven"), StatusCode::BAD_REQUEST, "invalid", Some("If-Match")).await?;
    // A read's ETag is what If-Match takes.
    let read = http.get(format!("{jobs}/a")).send().await?;
    let etag = read.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(etag, format!("\"{}\"", a.version));
    let r = put(&etag).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let updated: JobView = r.json().await?;
    assert_eq!((updated.version, updated.retry.max_attempts), (a.version + 1, 5));
    assert_eq!(etag, format!("\"{}\"", updated.version), "a write answers the new version's ETag");
    expect_error(put(&a.version.to_string()), StatusCode::CONFLICT, "version_mismatch", None).await?;
    let renamed = http.put(format!("{jobs}/a")).json(&job("b"));
    expect_error(renamed, StatusCode::BAD_REQUEST, "invalid", Some("name")).await?;

    // Paging parameters are checked.
    expect_error(http.get(format!("{jobs}?limit=0")), StatusCode::BAD_REQUEST, "invalid", Some("limit")).await?;
    let bad_cursor = http.get(format!("{url}/v1/executions?cursor=zz"));
    expect_error(bad_cursor, StatusCode::BAD_REQUEST, "invalid", Some("cursor")).await?;
    let bad_status = http.get(format!("{url}/v1/executions?status=done"));
    expect_error(bad_status, StatusCode::BAD_REQUEST, "invalid", Some("status")).await?;

    // Dead-letter commands: a selector needs exactly one of keys, job, all.
    let requeue = http.post(format!("{url}/v1/dead-letters/requeue")).json(&json!({"job": "a", "all": true}));
    expect_error(requeue, StatusCode::BAD_REQUEST, "invalid", Some("body")).await?;
    let purge = http.post(format!("{url}/v1/dead-letters/purge")).json(&json!({"job": "nope"}));
    expect_error(purge, StatusCode::NOT_FOUND, "not_found", None).await?;

    // Delete is 204, then 404.
    assert_eq!(http.delete(format!("{jobs}/a")).send().await?.status(), StatusCode::NO_CONTENT);
    expect_error(http.delete(format!("{jobs}/a")), StatusCode::NOT_FOUND, "not_found", None).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_executions_page_with_cursors_and_filters() -> anyhow::Result<()> {
    let cluster = Cluster::start(1)?;
    cluster.wait_for_leader(&[1], Duration::from_secs(20)).await?;
    let url = cluster.url(1);
    let http = &cluster.http;
    for name in ["j1", "j2", "j3", "j4", "j5"] {
        let r = http.post(format!("{url}/v1/jobs")).json(&job(name)).send().await?;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    for name in ["j2", "j4"] {
        http.post(format!("{url}/v1/jobs/{name}/pause")).send().await?.error_for_status()?;
    }

    // Jobs: name order, two per page, every job exactly once.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http.get(format!("{url}/v1/jobs")).query(&[("limit", "2")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: JobList = req.send().await?.error_for_status()?.json().await?;
        assert!(page.jobs.len() <= 2);
        names.extend(page.jobs.into_iter().map(|j| j.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(names, ["j1", "j2", "j3", "j4", "j5"]);
    let paused: JobList = http.get(format!("{url}/v1/jobs?paused=true")).send().await?.json().await?;
    assert_eq!(paused.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["j2", "j4"]);

    // Executions: three triggers of j1 and one of j3 (their target refuses connections, so
    // they retry; the filters do not care). Newest first, paged, filtered by job and status.
    let mut keys = Vec::new();
    for name in ["j1", "j3", "j1", "j1"] {
        let r = http.post(format!("{url}/v1/jobs/{name}/trigger")).send().await?;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let fire: belfry_core::api::ExecutionView = r.json().await?;
        assert!(!keys.contains(&fire.key), "every trigger has its own key");
        keys.push(fire.key);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http.get(format!("{url}/v1/executions")).query(&[("limit", "1"), ("job", "j1")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: ExecutionList = req.send().await?.error_for_status()?.json().await?;
        seen.extend(page.executions.into_iter().map(|e| e.key));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = [&keys[3], &keys[2], &keys[0]].into_iter().cloned().collect();
    assert_eq!(seen, expected, "j1's fires, newest first, each once");
    let none: ExecutionList =
        http.get(format!("{url}/v1/executions?status=succeeded&job=j1")).send().await?.json().await?;
    assert!(none.executions.is_empty(), "nothing succeeds against a closed port: {none:?}");
    // Every fire leaves `queued` once the leader dispatches it; the status filter follows.
    wait_for(Duration::from_secs(10), "no queued fires", || async {
        let l: ExecutionList =
            http.get(format!("{url}/v1/executions?status=queued")).send().await.ok()?.json().await.ok()?;
        l.executions.is_empty().then_some(())
    })
    .await?;
    Ok(())
}
