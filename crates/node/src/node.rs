//! Starting and stopping a node: storage, raft, gRPC and HTTP servers, ticker, dispatcher.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use belfry_core::FireStatus;
use openraft::{BasicNode, ServerState};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::context::Context;
use crate::dispatcher::Dispatcher;
use crate::flusher::Flusher;
use crate::grpc::Services;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::proto::{cluster_server::ClusterServer, raft_server::RaftServer, worker_server::WorkerServer};
use crate::raft::log_store::LogStore;
use crate::raft::network::{Channels, Contacts, Network, RpcTimeouts, MAX_MESSAGE_BYTES};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::Raft;
use crate::worker::Worker;

/// A running node. Dropping it does not stop it: call [`Node::shutdown`].
pub struct Node {
    ctx: Arc<Context>,
    worker: Arc<Worker>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The bound HTTP address (useful when the configured port was 0).
    pub http_addr: std::net::SocketAddr,
    /// The bound gRPC address.
    pub grpc_addr: std::net::SocketAddr,
}

impl Node {
    /// Opens the data dir, starts raft and every server, and forms or joins the cluster.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let db = sled::Config::new()
            .path(config.data_dir.join("sled"))
            .mode(sled::Mode::LowSpace)
            .cache_capacity(64 * 1024 * 1024)
            // belfry flushes explicitly (one at a time, see `flusher`); sled's periodic flusher
            // running beside those flushes has been seen to stall them.
            .flush_every_ms(None)
            .open()
            .with_context(|| format!("opening storage in {} (is another node using it?)", config.data_dir.display()))?;
        let flusher = Arc::new(Flusher::new(db.clone()));
        let log = LogStore::open(&db, flusher.clone())?;
        let sm = StateMachineStore::open(&db, &config.data_dir.join("snapshots"), &flusher)
            .await
            .map_err(|e| anyhow::anyhow!("restoring state: {e}"))?;
        let shared = sm.shared();
        let volume = crate::raft::compaction::LogVolume {
            appended: log.appended_bytes(),
            snapshot: sm.snapshot_bytes(),
            sizes: log.entry_sizes(),
        };
        let ledger = Ledger::open(&db, flusher)?;

        // Sizes and timeouts are chosen in `crate::raft` (see its documentation).
        let raft_config = crate::raft::raft_config(&config)?;
        let channels = Channels::new(config.peer_tls.clone());
        let contacts = Contacts::default();
        let network = Network::new(channels.clone(), contacts.clone(), RpcTimeouts::from_config(&config));
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm).await?;

        let grpc_listener =
            TcpListener::bind(config.grpc_addr).await.with_context(|| format!("binding gRPC {}", config.grpc_addr))?;
        let http_listener =
            TcpListener::bind(config.http_addr).await.with_context(|| format!("binding HTTP {}", config.http_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let ctx = Arc::new(Context {
            config,
            raft,
            shared,
            channels,
            metrics: Metrics::new(),
            contacts,
            hold: Default::default(),
            changes: Default::default(),
        });
        let worker = Arc::new(Worker::new(ctx.clone(), ledger));
        let dispatcher = Dispatcher::start(ctx.clone(), worker.clone());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let services = Services::new(ctx.clone(), worker.clone());
        let mut grpc_stop = stop_rx.clone();
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &ctx.config.peer_tls {
            server = server.tls_config(tls.server()).context("peer TLS (--peer-cert, --peer-key)")?;
        } else {
            tracing::warn!(
                "peer TLS is off (--insecure-peer): any process that reaches the gRPC port can act as a node"
            );
        }
        tasks.push(tokio::spawn(async move {
            let incoming = tokio_stream_listener(grpc_listener);
            let result = server
                .add_service(
                    RaftServer::new(services.clone())
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                )
                .add_service(WorkerServer::new(services.clone()))
                .add_service(
                    ClusterServer::new(services)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = grpc_stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "gRPC server failed");
            }
        }));

        let app = crate::http::router(ctx.clone());
        let http_limits = crate::http::HttpLimits::default();
        tasks.push(tokio::spawn(crate::http::serve(
            http_listener,
            app,
            http_limits,
            ctx.config.http_tls.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::egress::track_cluster_api(ctx.clone(), http_addr, stop_rx.clone())));

        tasks.push(tokio::spawn(crate::ticker::run(ctx.clone(), dispatcher, stop_rx.clone())));
        tasks.push(tokio::spawn(worker.clone().rotate_ledger(stop_rx.clone())));
        tasks.push(tokio::spawn(crate::raft::compaction::run(
            ctx.raft.clone(),
            ctx.shared.clone(),
            ctx.config.snapshot_logs,
            volume,
            stop_rx.clone(),
        )));

        form_cluster(&ctx).await?;
        crate::restore::apply_staged(&ctx)?;
        tracing::info!(node = ctx.id(), http = %http_addr, grpc = %grpc_addr, "node started");
        Ok(Node { ctx, worker, stop, tasks, http_addr, grpc_addr })
    }

    /// The shared context (for tests and `belfry dev`).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Resolves when raft has stopped on this node for good (a storage failure, or an entry
    /// this replica cannot apply), with the reason. The process should then exit: it can
    /// neither lead nor follow.
    pub async fn stopped(&self) -> String {
        let mut metrics = self.ctx.raft.metrics();
        let fatal = match metrics.wait_for(|m| m.running_state.is_err()).await {
            Ok(m) => m.running_state.clone().err().map(|e| e.to_string()),
            Err(_) => None,
        };
        self.ctx.shared.halted().or(fatal).unwrap_or_else(|| "raft stopped".into())
    }

    /// Stops the node gracefully: a leader hands leadership to the most caught-up voter
    /// first; the worker starts no new sends and waits (up to `SEND_DRAIN`) for those in
    /// flight; then the servers close and raft shuts down. Sends still running at the end
    /// are settled by the leader through this node's ledger.
    pub async fn shutdown(self) {
        if self.ctx.is_leader() && crate::membership::voters(&self.ctx).len() > 1 {
            match tokio::time::timeout(HANDOVER, crate::membership::transfer(&self.ctx, None)).await {
                Ok(Ok(leader)) => {
                    tracing::info!(node = self.ctx.id(), leader, "handed leadership over before stopping")
                }
                Ok(Err(e)) => tracing::warn!(node = self.ctx.id(), error = %e, "could not hand leadership over"),
                Err(_) => tracing::warn!(node = self.ctx.id(), "leadership handover timed out"),
            }
        }
        self.worker.drain();
        let left = self.worker.finish_in_flight(SEND_DRAIN).await;
        if left > 0 {
            tracing::warn!(node = self.ctx.id(), sends = left, "stopping with sends in flight");
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let _ = self.ctx.raft.shutdown().await;
        tracing::info!(node = self.ctx.id(), "node stopped");
    }
}

/// How long a stopping leader tries to hand leadership over.
const HANDOVER: Duration = Duration::from_secs(8);
/// How long a stopping worker waits for its sends in flight.
const SEND_DRAIN: Duration = Duration::from_secs(10);

fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((next, listener))
    })
}

/// Initializes a new cluster from `--initial-cluster` (or alone), or joins through `--join`.
/// On restart the node is already initialized and this does nothing.
async fn form_cluster(ctx: &Arc<Context>) -> anyhow::Result<()> {
    if ctx.raft.is_initialized().await? {
        return Ok(());
    }
    let config = &ctx.config;
    if let Some(url) = &config.join {
        join(ctx, url.clone());
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> = if config.initial_cluster.is_empty() {
        [(config.id, BasicNode::new(config.advertise_grpc.clone()))].into()
    } else {
        config.initial_cluster.iter().map(|(id, addr)| (*id, BasicNode::new(addr.clone()))).collect()
    };
    if !members.contains_key(&config.id) {
        anyhow::bail!("--initial-cluster does not include this node's id {}", config.id);
    }
    // Every founding node initializes with the same set; all but one get NotAllowed, which
    // means the cluster exists already.
    if let Err(e) = ctx.raft.initialize(members).await {
        tracing::debug!(error = %e, "initialize: cluster already formed");
    }
    Ok(())
}

/// Asks the cluster at `url` to add this node, until it has or this node is a voter. An
/// attempt may take as long as the leader lets a learner catch up; after a refusal or an
/// unreachable cluster the next one waits longer, up to [`JOIN_BACKOFF_MAX`].
fn join(ctx: &Arc<Context>, url: String) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let body = serde_json::json!({
            "id": ctx.id(),
            "grpc_addr": ctx.config.advertise_grpc,
            "http_addr": ctx.config.advertise_http,
        });
        let endpoint = format!("{}/v1/cluster/members", url.trim_end_matches('/'));
        // The leader's share: the catch-up wait plus the membership changes around it.
        let attempt = ctx.config.learner_catch_up_timeout.saturating_add(Duration::from_secs(60));
        let mut backoff = Duration::from_secs(1);
        loop {
            if crate::membership::voters(&ctx).contains(&ctx.id()) {
                return;
            }
            let mut request = client.post(&endpoint).json(&body).timeout(attempt);
            // Members check API tokens like any client; every node holds the bootstrap token.
            if let crate::http::ApiAuth::Tokens { bootstrap } = &ctx.config.auth {
                request = request.bearer_auth(bootstrap.expose());
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(node = ctx.id(), via = %url, "joined the cluster");
                    return;
                }
                Ok(r) => {
                    let status = r.status();
                    let reason: String = r.text().await.unwrap_or_default().chars().take(300).collect();
                    tracing::warn!(%status, %reason, retry_in = ?backoff, "join refused; retrying");
                }
                Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "join failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(JOIN_BACKOFF_MAX);
        }
    });
}

/// The longest wait between two join attempts.
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Refreshes the gauges read from raft and the state, before a scrape.
pub fn refresh_gauges(ctx: &Context) {
    let m = ctx.raft.metrics().borrow().clone();
    let metrics = &ctx.metrics;
    metrics.raft_term.set(m.current_term as i64);
    metrics.raft_is_leader.set(i64::from(m.state == ServerState::Leader));
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0) as i64;
    metrics.raft_applied_index.set(applied);
    metrics.raft_commit_index.set(applied);
    metrics.raft_follower_lag.reset();
    if let Some(replication) = &m.replication {
        let last = m.last_log_index.unwrap_or(0);
        for (id, matched) in replication {
            let lag = last.saturating_sub(matched.map(|l| l.index).unwrap_or(0));
            metrics.raft_follower_lag.with_label_values(&[&id.to_string()]).set(lag as i64);
        }
    }
    let applied = ctx.shared.read();
    metrics.jobs.set(applied.state.job_count() as i64);
    metrics.dead_letters.set(applied.state.count_status(FireStatus::DeadLettered) as i64);
}
