//! Process-level test harness: real `belfry serve` processes on ephemeral loopback ports, each
//! in its own temp data dir, killed when the [`Cluster`] is dropped; plus an in-process
//! recording sink ([`belfry_node::sink`]) and helpers to wait on conditions, never on time.
//! Every node runs with API authentication on and the bootstrap token [`TOKEN`], which the
//! shared client sends, and with peer TLS on, its certificates from [`certs_dir`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use belfry_core::api::ClusterView;
use belfry_node::sink::Received;

pub mod check;
mod ops;
pub mod verify;

/// The `belfry` binary built by this `cargo test` run (`BELFRY_BIN` overrides).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BELFRY_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps, the binary one level up; tools such as
    // belfry-bench sit beside it.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("executable dir");
    let beside = dir.join("belfry");
    let bin = if beside.exists() { beside } else { dir.parent().map(|d| d.join("belfry")).expect("target dir") };
    assert!(bin.exists(), "{} not found: run the tests with `cargo test --workspace`, which builds it", bin.display());
    bin
}

/// The bootstrap admin token of every node the harness starts (loopback test clusters only):
/// [`Cluster::http`] sends it, and so must a `belfry` CLI a test runs (`BELFRY_TOKEN`).
pub const TOKEN: &str = "bf_bootstrap_test-harness-loopback-only";

/// The rate limit the harness gives its nodes unless a test passes `--rate-limit` itself:
/// high enough that no functional test is throttled, so the limiter runs without shaping them.
const HARNESS_RATE_LIMIT: &str = "100000";

/// The peer certificates of every node the harness starts (`belfry certs` for nodes 1 to 9,
/// made once per test process): nodes talk mutual TLS, as in production.
pub fn certs_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir for certificates");
        let out = Command::new(binary())
            .args(["certs", "--nodes", "1-9", "--dir"])
            .arg(dir.path())
            .output()
            .expect("running belfry certs");
        assert!(out.status.success(), "belfry certs failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
    .path()
}

/// A client that sends [`TOKEN`] on every request.
pub fn http_client() -> reqwest::Client {
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("a header value");
    auth.set_sensitive(true);
    let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, auth)]);
    reqwest::Client::builder().default_headers(headers).build().expect("a reqwest client")
}

/// Reserves `n` free loopback ports. The listeners are closed just before use; the window for
/// another process to take one is small, and a node failing to bind fails the test loudly.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind :0")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

/// One node process.
pub struct NodeProc {
    /// Raft id.
    pub id: u64,
    /// HTTP address.
    pub http: SocketAddr,
    /// gRPC address.
    pub grpc: SocketAddr,
    data_dir: PathBuf,
    /// `--join` URL instead of `--initial-cluster` (nodes added to a running cluster).
    join: Option<String>,
    child: Option<Child>,
}

/// A cluster of node processes.
pub struct Cluster {
    /// The nodes, by position (id = index + 1).
    pub nodes: Vec<NodeProc>,
    initial: String,
    _dir: tempfile::TempDir,
    /// Shared HTTP client; it sends [`TOKEN`].
    pub http: reqwest::Client,
    /// Extra `belfry serve` flags for every node (e.g. `--snapshot-logs 50`).
    pub extra_args: Vec<String>,
    /// Whether nodes log with their own default filter rather than the harness's (which
    /// keeps openraft's errors, for failure messages).
    pub default_log: bool,
}

impl Cluster {
    /// Starts `n` nodes that form one cluster.
    pub fn start(n: usize) -> anyhow::Result<Cluster> {
        Cluster::start_with(n, &[])
    }

    /// Starts `n` nodes that form one cluster, each with the extra `belfry serve` flags.
    pub fn start_with(n: usize, extra_args: &[&str]) -> anyhow::Result<Cluster> {
        Cluster::start_in(n, extra_args, tempfile::tempdir()?, false)
    }

    fn start_in(
        n: usize,
        extra_args: &[&str],
        mut dir: tempfile::TempDir,
        default_log: bool,
    ) -> anyhow::Result<Cluster> {
        if std::env::var_os("BELFRY_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("cluster data in {}", dir.path().display());
        }
        let ports = free_ports(2 * n);
        let nodes: Vec<NodeProc> = (0..n)
            .map(|i| NodeProc {
                id: i as u64 + 1,
                http: SocketAddr::from(([127, 0, 0, 1], ports[2 * i])),
                grpc: SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1])),
                data_dir: dir.path().join(format!("n{}", i + 1)),
                join: None,
                child: None,
            })
            .collect();
        let initial = nodes.iter().map(|n| format!("{}={}", n.id, n.grpc)).collect::<Vec<_>>().join(",");
        let extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        let mut cluster = Cluster { nodes, initial, _dir: dir, http: http_client(), extra_args, default_log };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Like [`Cluster::start`], with every node logging as `belfry serve` does by default (no
    /// `BELFRY_LOG`), to a file: what an operator's log file would show.
    pub fn start_with_default_log(n: usize) -> anyhow::Result<Cluster> {
        Cluster::start_in(n, &[], tempfile::tempdir()?, true)
    }

    /// Like [`Cluster::start`], but runs `prepare` on node 1's (empty) data dir first.
    pub fn start_prepared(n: usize, prepare: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let first = dir.path().join("n1");
        prepare(&first)?;
        Cluster::start_in(n, &[], dir, false)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.data_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.data_dir.join("node.log"))?;
        let formation = match &node.join {
            Some(url) => ["--join", url.as_str()],
            None => ["--initial-cluster", self.initial.as_str()],
        };
        let mut command = Command::new(binary());
        if self.default_log {
            command.env_remove("BELFRY_LOG").env_remove("NO_COLOR");
        } else {
            command
                .env("BELFRY_LOG", std::env::var("BELFRY_TEST_LOG").unwrap_or_else(|_| "info,openraft=error".into()));
        }
        let child = command
            .args(["serve", "--id", &node.id.to_string()])
            .args(["--http-addr", &node.http.to_string(), "--grpc-addr", &node.grpc.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(formation)
            .args(&self.extra_args)
            // The sink is on loopback; `--allow-private-targets=false` tests the default.
            .env("BELFRY_ALLOW_PRIVATE_TARGETS", "true")
            // A test's own flags (`--rate-limit 2`, `--bootstrap-token …`) win over these.
            .env("BELFRY_BOOTSTRAP_TOKEN", TOKEN)
            .env("BELFRY_PEER_CERTS_DIR", certs_dir())
            .env("BELFRY_RATE_LIMIT", HARNESS_RATE_LIMIT)
            .env("BELFRY_RATE_BURST", HARNESS_RATE_LIMIT)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning belfry serve")?;
        node.child = Some(child);
        Ok(())
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize - 1];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts node `id` with its data dir.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill(id);
        self.spawn(id as usize - 1)
    }

    /// Base URL of node `id`.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.nodes[id as usize - 1].http)
    }

    /// The log of node `id`, for failure messages.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.nodes[id as usize - 1].data_dir.join("node.log")).unwrap_or_default()
    }

    /// `GET /v1/cluster` from node `id`.
    pub async fn status(&self, id: u64) -> anyhow::Result<ClusterView> {
        let r = self.http.get(format!("{}/v1/cluster", self.url(id))).timeout(Duration::from_secs(2)).send().await?;
        Ok(r.error_for_status()?.json().await?)
    }

    /// Waits until every live node in `among` names the same leader (also in `among`).
    pub async fn wait_for_leader(&self, among: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        wait_for(timeout, "a leader agreed by every live node", || async {
            let mut seen = None;
            for id in among {
                let leader = self.status(*id).await.ok()?.leader?;
                if !among.contains(&leader) || seen.is_some_and(|s| s != leader) {
                    return None;
                }
                seen = Some(leader);
            }
            seen
        })
        .await
    }

    /// Waits until `/readyz` on node `id` answers 200: it has a leader and has applied
    /// everything the leader had committed when it asked.
    pub async fn wait_ready(&self, id: u64, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.url(id));
        wait_for(timeout, &format!("node {id} ready"), || async {
            let r = self.http.get(&url).timeout(Duration::from_secs(2)).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await
    }

    /// Ids of the nodes whose process is running.
    pub fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Polls `probe` every 50 ms until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An in-process recording sink.
pub struct Sink {
    /// Its base URL.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    /// Starts a sink on an ephemeral port.
    pub async fn start(delay: Duration) -> anyhow::Result<Sink> {
        let (addr, task) =
            belfry_node::sink::bind("127.0.0.1:0".parse()?, belfry_node::sink::SinkOptions { delay }).await?;
        Ok(Sink { url: format!("http://{addr}"), task })
    }

    /// Everything received so far.
    pub async fn received(&self) -> anyhow::Result<Vec<Received>> {
        Ok(reqwest::get(format!("{}/_sink/deliveries", self.url)).await?.json().await?)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deliveries grouped by idempotency key.
pub fn by_key(received: &[Received]) -> BTreeMap<String, Vec<&Received>> {
    let mut map: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in received {
        map.entry(r.key.clone()).or_default().push(r);
    }
    map
}

/// Jobs the cluster tests create.
pub const JOBS: usize = 20;

/// Creates [`JOBS`] jobs every 1 s from `start`, each posting to `sink`, through node `via`, in
/// one batch (one committed entry, so every job gets the same first instant); returns their
/// uids by name and that first instant: `start`, or a later second when the batch committed
/// after `start` on a slow machine (the jobs then begin at the next second).
pub async fn create_jobs(
    cluster: &Cluster,
    via: u64,
    sink: &Sink,
    start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(BTreeMap<String, u64>, chrono::DateTime<chrono::Utc>)> {
    let specs: Vec<serde_json::Value> = (0..JOBS)
        .map(|i| {
            let name = format!("job-{i:02}");
            serde_json::json!({
                "name": name,
                "schedule": {"every": "1s", "start_at": belfry_core::api::rfc3339(start)},
                "target": {"url": format!("{}/{name}", sink.url), "timeout": "5s"}
            })
        })
        .collect();
    let r = cluster
        .http
        .post(format!("{}/v1/jobs:batch", cluster.url(via)))
        .json(&serde_json::json!({"jobs": specs}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "create {JOBS} jobs through node {via}: {}", r.text().await?);
    let created: belfry_core::api::BatchCreated = r.json().await?;
    let mut first = start;
    for job in &created.jobs {
        let next = job.next_fire_at.as_deref().ok_or_else(|| anyhow::anyhow!("{} has no next fire", job.name))?;
        first = first.max(next.parse()?);
    }
    Ok((created.jobs.into_iter().map(|j| (j.name, j.uid)).collect(), first))
}

impl Cluster {
    /// The leader and term every node in `among` names right now, when they all agree on a
    /// leader that is itself in `among`.
    pub async fn agreed_leader(&self, among: &[u64]) -> Option<(u64, u64)> {
        let mut seen = None;
        for id in among {
            let view = self.status(*id).await.ok()?;
            let now = (view.leader?, view.term);
            if !among.contains(&now.0) || seen.is_some_and(|s| s != now) {
                return None;
            }
            seen = Some(now);
        }
        seen
    }

    /// Waits until every node in `among` has named the same leader in the same term for
    /// `hold` without a change (polled every 50 ms); returns that leader and term.
    pub async fn wait_stable_leader(
        &self,
        among: &[u64],
        hold: Duration,
        timeout: Duration,
    ) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + timeout;
        let mut since: Option<((u64, u64), Instant)> = None;
        loop {
            let now = self.agreed_leader(among).await;
            since = match (now, since) {
                (Some(now), Some((before, from))) if now == before => {
                    if from.elapsed() >= hold {
                        return Ok(now);
                    }
                    Some((before, from))
                }
                (Some(now), _) => Some((now, Instant::now())),
                (None, _) => None,
            };
            if Instant::now() > deadline {
                bail!("no leader stable for {hold:?} among {among:?} within {timeout:?} (last agreed: {since:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `id`'s process answers `/healthz` (it serves; it may have no leader).
    pub async fn wait_healthy(&self, id: u64, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.url(id));
        wait_for(timeout, &format!("node {id} serving"), || async {
            let r = self.http.get(&url).timeout(Duration::from_secs(1)).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await
    }
}
