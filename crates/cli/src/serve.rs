//! `belfry serve`: run one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// The default of `--learner-catch-up-timeout-ms`.
const CATCH_UP_MS: u64 = belfry_node::config::DEFAULT_LEARNER_CATCH_UP_TIMEOUT.as_millis() as u64;

/// Flags of `belfry serve`; each also reads `BELFRY_<FLAG>` from the environment, and
/// `--config FILE` supplies any of them from TOML (flags, then env, then the file).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A TOML file of settings (keys are flag names; see deploy/belfry.toml).
    #[arg(long, env = "BELFRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's raft id (unique in the cluster, never reused).
    #[arg(long, env = "BELFRY_ID", default_value_t = 1)]
    pub id: u64,
    /// HTTP API address to listen on.
    #[arg(long, env = "BELFRY_HTTP_ADDR", default_value = "127.0.0.1:7101")]
    pub http_addr: SocketAddr,
    /// gRPC address to listen on (raft, deliveries, forwarding).
    #[arg(long, env = "BELFRY_GRPC_ADDR", default_value = "127.0.0.1:7201")]
    pub grpc_addr: SocketAddr,
    /// Address peers use to reach this node's gRPC port, when it differs from --grpc-addr
    /// (containers listening on 0.0.0.0).
    #[arg(long, env = "BELFRY_ADVERTISE_GRPC_ADDR")]
    pub advertise_grpc_addr: Option<String>,
    /// Address others use to reach this node's HTTP API, when it differs from --http-addr.
    #[arg(long, env = "BELFRY_ADVERTISE_HTTP_ADDR")]
    pub advertise_http_addr: Option<String>,
    /// Where the node keeps its log, snapshots and delivery ledger.
    #[arg(long, env = "BELFRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The founding members, `id=grpc_host:port,...`; the same on every founding node.
    #[arg(long, env = "BELFRY_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// HTTP URL of any member of a running cluster to join as a new node.
    #[arg(long, env = "BELFRY_JOIN")]
    pub join: Option<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, env = "BELFRY_HEARTBEAT_MS", default_value_t = 250)]
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout in milliseconds (the upper bound is twice it).
    #[arg(long, env = "BELFRY_ELECTION_TIMEOUT_MS", default_value_t = 600)]
    pub election_timeout_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    #[arg(long, env = "BELFRY_SNAPSHOT_LOGS", default_value_t = 5000)]
    pub snapshot_logs: u64,
    /// Log entries kept behind the latest snapshot; older ones are purged.
    #[arg(long, env = "BELFRY_KEEP_LOGS", default_value_t = 1000)]
    pub keep_logs: u64,
    /// Entries a joining node may trail the leader's log by and still be promoted to voter.
    #[arg(long, env = "BELFRY_LEARNER_MAX_LAG", default_value_t = belfry_node::config::DEFAULT_LEARNER_MAX_LAG)]
    pub learner_max_lag: u64,
    /// How long a joining node may take to catch up, in milliseconds; then the add fails and
    /// the node is removed again.
    #[arg(long, env = "BELFRY_LEARNER_CATCH_UP_TIMEOUT_MS", default_value_t = CATCH_UP_MS)]
    pub learner_catch_up_timeout_ms: u64,
    /// How long a worker may take to start a delivery it was handed, in milliseconds.
    #[arg(long, env = "BELFRY_LEASE_MS", default_value_t = 5000)]
    pub lease_ms: u64,
    /// Largest clock difference assumed between nodes, in milliseconds (lease safety margin).
    #[arg(long, env = "BELFRY_MAX_CLOCK_SKEW_MS", default_value_t = 500)]
    pub max_clock_skew_ms: u64,
    /// Secret for `Belfry-Signature` on every delivery (HMAC-SHA256); unsigned when absent.
    /// Deprecated on the command line (visible in /proc/PID/cmdline): use
    /// --signing-secret-file, or the environment variable.
    #[arg(long, env = "BELFRY_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "BELFRY_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    // Egress policy and signing keys (docs/SECURITY.md).
    /// File of delivery signing keys, one per line: the first signs, every one adds a `v1=`
    /// signature (rotation). Read at start and on SIGHUP.
    #[arg(long, env = "BELFRY_SIGNING_SECRET_FILE")]
    pub signing_secret_file: Option<PathBuf>,
    /// Let deliveries reach loopback and private addresses (127/8, 10/8, 172.16/12,
    /// 192.168/16, 100.64/10, fc00::/7, ::1). This cluster's own API stays refused.
    #[arg(
        long,
        env = "BELFRY_ALLOW_PRIVATE_TARGETS",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub allow_private_targets: bool,
    /// Comma-separated CIDRs and host names (`*.domain`, optional `:port`) deliveries may
    /// reach although private or this cluster's API; link-local and metadata stay refused.
    #[arg(long, env = "BELFRY_ALLOW_TARGET")]
    pub allow_target: Option<String>,
    /// Comma-separated CIDRs and host names deliveries may never reach (wins over
    /// --allow-target).
    #[arg(long, env = "BELFRY_DENY_TARGET")]
    pub deny_target: Option<String>,
    /// Redirects a delivery follows (0 to 10), each hop checked like the first request; a
    /// redirect not followed is the attempt's (permanent) answer.
    #[arg(long, env = "BELFRY_FOLLOW_REDIRECTS", default_value_t = 0)]
    pub follow_redirects: u8,
}

/// Whether `--signing-secret` (not `--signing-secret-file`) is on the command line `argv`,
/// where every local user can read it.
pub fn secret_on_command_line(argv: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    argv.into_iter().any(|a| a == "--signing-secret" || a.to_string_lossy().starts_with("--signing-secret="))
}

/// Installs the log subscriber: text by default, JSON lines with `--log-format json`.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BELFRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

impl ServeArgs {
    /// The node configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<belfry_node::Config> {
        let mut c = belfry_node::Config::new(self.id, self.http_addr, self.grpc_addr, self.data_dir.clone());
        c.advertise_grpc = self.advertise_grpc_addr.clone().unwrap_or_else(|| self.grpc_addr.to_string());
        c.advertise_http = self.advertise_http_addr.clone().unwrap_or_else(|| self.http_addr.to_string());
        if let Some(ic) = &self.initial_cluster {
            c.initial_cluster = belfry_node::config::parse_initial_cluster(ic)
                .map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?;
        }
        c.join = self.join.clone();
        c.heartbeat = std::time::Duration::from_millis(self.heartbeat_ms);
        c.election_timeout = std::time::Duration::from_millis(self.election_timeout_ms);
        if self.election_timeout_ms <= self.heartbeat_ms.saturating_mul(2) {
            anyhow::bail!("--election-timeout-ms must be more than twice --heartbeat-ms");
        }
        c.snapshot_logs = self.snapshot_logs;
        c.keep_logs = self.keep_logs;
        if self.learner_catch_up_timeout_ms == 0 {
            anyhow::bail!("--learner-catch-up-timeout-ms must be positive");
        }
        c.learner_max_lag = self.learner_max_lag;
        c.learner_catch_up_timeout = std::time::Duration::from_millis(self.learner_catch_up_timeout_ms);
        c.lease = std::time::Duration::from_millis(self.lease_ms);
        c.max_clock_skew = std::time::Duration::from_millis(self.max_clock_skew_ms);
        c.signing_secret = self.signing_secret.clone();
        self.egress_and_signing(&mut c)?;
        Ok(c)
    }

    /// The egress policy and the signing keys these flags describe.
    fn egress_and_signing(&self, c: &mut belfry_node::Config) -> anyhow::Result<()> {
        use belfry_node::egress::{parse_rules, EgressPolicy, EgressSettings};
        let rules = |flag: &str, list: &Option<String>| {
            parse_rules(list.as_deref().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        let settings = EgressSettings {
            allow_private_targets: self.allow_private_targets,
            allow_targets: rules("--allow-target", &self.allow_target)?,
            deny_targets: rules("--deny-target", &self.deny_target)?,
            follow_redirects: self.follow_redirects,
        };
        c.egress = EgressPolicy::new(settings).map_err(anyhow::Error::msg)?;
        c.signer = match (&self.signing_secret_file, &self.signing_secret) {
            (Some(_), Some(_)) => {
                anyhow::bail!("--signing-secret-file and --signing-secret (BELFRY_SIGNING_SECRET): give one")
            }
            (Some(file), None) => Some(belfry_node::delivery::Signer::from_file(file)?),
            (None, Some(secret)) => Some(belfry_node::delivery::Signer::from_secret(secret)),
            (None, None) => None,
        };
        // Workers still take the signing key from the Deliver RPC.
        c.signing_secret = c.signer.as_ref().and_then(|s| s.primary_secret());
        Ok(())
    }
}

/// Runs one node until SIGINT or SIGTERM, then shuts it down and returns.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let args = match &args.config {
        Some(file) => crate::config_file::apply(file, crate::config_file::serve_argv())?,
        None => args,
    };
    init_logging(&args.log_format);
    if secret_on_command_line(std::env::args_os()) {
        tracing::warn!(
            "--signing-secret on the command line is deprecated: every local user can read it in /proc/PID/cmdline; \
             use --signing-secret-file or BELFRY_SIGNING_SECRET"
        );
    }
    let config = args.config()?;
    if let Some(signer) = &config.signer {
        tracing::info!(keys = ?signer.key_ids(), "deliveries are signed");
        signer.reload_on_sighup();
    }
    let node = belfry_node::Node::start(config).await?;
    let stopped = tokio::select! {
        () = wait_for_signal() => None,
        why = node.stopped() => Some(why),
    };
    if let Some(why) = stopped {
        tracing::error!(reason = %why, "raft stopped on this node; exiting");
        node.shutdown().await;
        anyhow::bail!("raft stopped on this node: {why}");
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
