//! What the in-process API tests share: a one-node cluster on ephemeral ports with a
//! recording sink, and waiting on a condition.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use belfry_core::api::{ErrorBody, ExecutionView, JobView};
use belfry_node::config::Config;
use belfry_node::node::Node;
use belfry_node::sink::Answer;
use serde_json::json;

/// A port nobody listens on yet.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

/// Polls `probe` every 50 ms until it yields a value; panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A ready one-node cluster and a sink.
pub struct Harness {
    _node: Node,
    /// The node's base URL.
    pub url: String,
    /// The sink's base URL.
    pub sink: String,
    /// A client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts the node and a sink answering 200 everywhere.
    pub async fn start() -> Harness {
        Harness::with_answers(Vec::new()).await
    }

    /// Starts the node and a sink with scripted `answers`.
    pub async fn with_answers(answers: Vec<Answer>) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let (http_addr, grpc_addr) = (free_addr(), free_addr());
        let mut config = Config::new(1, http_addr, grpc_addr, dir.path().join("1"));
        config.initial_cluster = vec![(1, grpc_addr.to_string())];
        // The sink is on loopback.
        config.egress = belfry_node::egress::EgressPolicy::allowing_private();
        let node = Node::start(config).await.expect("the node starts");
        let addr = "127.0.0.1:0".parse().expect("addr");
        let (sink, _task) =
            belfry_node::sink::bind_scripted(addr, Default::default(), answers).await.expect("the sink binds");
        let h = Harness {
            url: format!("http://{}", node.http_addr),
            _node: node,
            sink: format!("http://{sink}"),
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let ready = format!("{}/readyz", h.url);
        wait_for(Duration::from_secs(20), "the node to be ready", || async {
            h.http.get(&ready).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        h
    }

    /// Creates a job delivering to the sink at `/{path}`, with `extra` fields merged in.
    pub async fn create(&self, name: &str, path: &str, extra: serde_json::Value) -> JobView {
        let mut body = json!({
            "name": name, "schedule": {"cron": "0 0 1 1 *"},
            "target": {"url": format!("{}/{path}", self.sink)},
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.http.post(format!("{}/v1/jobs", self.url)).json(&body).send().await.expect("create");
        assert_eq!(r.status(), 201, "creating {name}");
        r.json().await.expect("a job view")
    }

    /// Triggers `name` and waits for the fire to reach `status`; returns its key.
    pub async fn fire(&self, name: &str, status: &str) -> String {
        let r = self.http.post(format!("{}/v1/jobs/{name}/trigger", self.url)).send().await.expect("trigger");
        assert_eq!(r.status(), 202, "triggering {name}");
        let fire: ExecutionView = r.json().await.expect("an execution");
        let url = format!("{}/v1/executions/{}", self.url, fire.key);
        wait_for(Duration::from_secs(20), &format!("the fire to be {status}"), || async {
            let f: ExecutionView = self.http.get(&url).send().await.ok()?.json().await.ok()?;
            (f.status == status).then_some(())
        })
        .await;
        fire.key
    }
}

/// Sends `request` and checks the status, then the error shape: `code` and `field`.
pub async fn expect_error(request: reqwest::RequestBuilder, status: u16, code: &str, field: Option<&str>) {
    let what = format!("{request:?}");
    let r = request.send().await.expect("an answer");
    assert_eq!(r.status().as_u16(), status, "{what}");
    let text = r.text().await.expect("a body");
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not the error shape ({e}): {text:?}"));
    assert_eq!(body.error.code, code, "{what}: {text}");
    assert_eq!(body.error.field.as_deref(), field, "{what}: {text}");
    assert!(!body.error.message.is_empty(), "{what}: {text}");
}
