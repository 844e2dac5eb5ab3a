//! History retention through the HTTP API of an in-process one-node cluster: a job keeps at
//! most `history.max_count` finished fires, and forgets one `history.max_age` after it
//! finished, at the next write the leader commits.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use belfry_core::api::{ExecutionList, ExecutionView, JobView};
use belfry_node::config::Config;
use belfry_node::node::Node;
use serde_json::json;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

/// Polls `probe` every 50 ms until it yields a value; panics after `timeout`.
async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
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

struct Harness {
    _node: Node,
    url: String,
    sink: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let (http_addr, grpc_addr) = (free_addr(), free_addr());
        let mut config = Config::new(1, http_addr, grpc_addr, dir.path().join("1"));
        config.initial_cluster = vec![(1, grpc_addr.to_string())];
        let node = Node::start(config).await.expect("the node starts");
        let (sink, _task) = belfry_node::sink::bind("127.0.0.1:0".parse().expect("addr"), Default::default())
            .await
            .expect("the sink binds");
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

    async fn create(&self, name: &str, history: serde_json::Value) -> JobView {
        let body = json!({
            "name": name, "schedule": {"cron": "0 0 1 1 *"},
            "target": {"url": format!("{}/{name}", self.sink)}, "history": history,
        });
        let r = self.http.post(format!("{}/v1/jobs", self.url)).json(&body).send().await.expect("create");
        assert_eq!(r.status(), 201);
        r.json().await.expect("a job view")
    }

    /// Triggers `name` and waits for the fire to succeed.
    async fn fire(&self, name: &str) -> String {
        let r = self.http.post(format!("{}/v1/jobs/{name}/trigger", self.url)).send().await.expect("trigger");
        let fire: ExecutionView = r.json().await.expect("an execution");
        let url = format!("{}/v1/executions/{}", self.url, fire.key);
        wait_for(Duration::from_secs(20), "the fire to succeed", || async {
            let f: ExecutionView = self.http.get(&url).send().await.ok()?.json().await.ok()?;
            (f.status == "succeeded").then_some(())
        })
        .await;
        fire.key
    }

    async fn history(&self, name: &str) -> Vec<String> {
        let url = format!("{}/v1/executions?job={name}", self.url);
        let list: ExecutionList = self.http.get(url).send().await.expect("list").json().await.expect("a list");
        list.executions.into_iter().map(|e| e.key).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_the_newest_max_count_fires() {
    let h = Harness::start().await;
    let job = h.create("counted", json!({"max_count": 2})).await;
    assert_eq!(job.history.max_count, Some(2));
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(h.fire("counted").await);
    }
    assert_eq!(h.history("counted").await, [keys[3].clone(), keys[2].clone()], "newest two, newest first");
    let r = h.http.get(format!("{}/v1/executions/{}", h.url, keys[0])).send().await.expect("get");
    assert_eq!(r.status(), 404, "the oldest fire is forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_forgets_fires_older_than_max_age_on_an_idle_cluster() {
    let h = Harness::start().await;
    h.create("aged", json!({"max_age": "1s"})).await;
    h.create("other", json!({})).await;
    let old = h.fire("aged").await;
    assert_eq!(h.history("aged").await, [old]);
    // Once a second has passed since it finished, the leader commits a write of its own that
    // forgets it, with no API write to carry it; the other job's history (no age limit) is
    // untouched.
    let kept = h.fire("other").await;
    wait_for(Duration::from_secs(10), "the aged fire to be forgotten", || async {
        h.history("aged").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(h.history("other").await, [kept]);
}
