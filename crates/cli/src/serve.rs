//! `belfry serve`: run one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Longest `--heartbeat-ms`: raft's timers are derived from it, and beyond this a leader's
/// failure would go unnoticed for minutes.
const MAX_HEARTBEAT_MS: u64 = 10_000;
/// Longest `--election-timeout-ms` (the maximum election timeout is twice it).
const MAX_ELECTION_TIMEOUT_MS: u64 = 60_000;
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
    /// Take the id from the host name instead: one more than the number it ends with
    /// (`belfry-0` is node 1), as a Kubernetes StatefulSet names its pods.
    #[arg(long, env = "BELFRY_ID_FROM_HOSTNAME", conflicts_with = "id")]
    pub id_from_hostname: bool,
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
    /// Build a snapshot after this many log entries since the last one (or a quarter of the
    /// state's jobs and fires, if more).
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
    /// How long a worker may take to start a delivery it was handed, in milliseconds, counted
    /// from the fire's instant.
    #[arg(long, env = "BELFRY_LEASE_MS", default_value_t = 5000)]
    pub lease_ms: u64,
    /// How far ahead of their instant, in milliseconds, the leader claims the fires of jobs
    /// that allow overlap (their workers hold the sends until the instant); 0 claims every
    /// fire once due. At most 10000.
    #[arg(long, env = "BELFRY_CLAIM_AHEAD_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub claim_ahead_ms: u64,
    /// Sends a worker runs at once (1 to 100000); more wait in its queue.
    #[arg(long, env = "BELFRY_MAX_CONCURRENT_SENDS", default_value_t = belfry_node::config::DEFAULT_MAX_CONCURRENT_SENDS as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_concurrent_sends: u64,
    /// Threads of the node's async runtime, 1 to 1024 (default: one per core the process may
    /// use). Nodes sharing a host share its cores: give each its part (three nodes on two cores
    /// run best with 1 each), or their threads preempt one another at every wake-up.
    #[arg(long, env = "BELFRY_RUNTIME_THREADS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub runtime_threads: Option<u64>,
    /// Largest clock difference assumed between nodes, in milliseconds (lease safety margin).
    #[arg(long, env = "BELFRY_MAX_CLOCK_SKEW_MS", default_value_t = 500)]
    pub max_clock_skew_ms: u64,
    /// Secret for `Belfry-Signature` on every delivery (HMAC-SHA256); unsigned when absent.
    /// Only from the environment (BELFRY_SIGNING_SECRET) or a config file: on the command line
    /// every local user could read it, so `belfry serve` refuses it there.
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

    // Peer TLS (docs/SECURITY.md).
    /// A directory made by `belfry certs`: its ca.pem, node-<id>.pem and node-<id>-key.pem
    /// are --peer-ca, --peer-cert and --peer-key.
    #[arg(long, env = "BELFRY_PEER_CERTS_DIR")]
    pub peer_certs_dir: Option<PathBuf>,
    /// The cluster CA certificate (PEM): every node's certificate must be signed by it.
    #[arg(long, env = "BELFRY_PEER_CA")]
    pub peer_ca: Option<PathBuf>,
    /// This node's certificate (PEM), naming node-<id>.belfry.
    #[arg(long, env = "BELFRY_PEER_CERT")]
    pub peer_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "BELFRY_PEER_KEY")]
    pub peer_key: Option<PathBuf>,
    /// Run gRPC between nodes in plaintext with no identity checks: any process that reaches
    /// a gRPC port can then act as a node. Only where no one else can reach those ports
    /// (loopback tests); logs a warning.
    #[arg(
        long,
        env = "BELFRY_INSECURE_PEER",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub insecure_peer: bool,
    /// TLS on the HTTP API: the server's certificate chain (PEM). With --http-tls-key.
    #[arg(long, env = "BELFRY_HTTP_TLS_CERT", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// The HTTP API certificate's private key (PEM).
    #[arg(long, env = "BELFRY_HTTP_TLS_KEY", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,

    // API access (docs/SECURITY.md).
    /// The bootstrap admin token (id `bootstrap`), at least 16 visible ASCII characters; API
    /// authentication is on once it (or --auth-file) is given. Prefer the environment variable
    /// or --auth-file: every local user can read a command line.
    #[arg(long, env = "BELFRY_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,
    /// A file whose first line is the bootstrap token (instead of BELFRY_BOOTSTRAP_TOKEN).
    #[arg(long, env = "BELFRY_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// Serve the API without tokens: whoever reaches the HTTP port may do anything. Required
    /// to start without a bootstrap token; logs a warning.
    #[arg(
        long,
        env = "BELFRY_NO_AUTH",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub no_auth: bool,
    /// Ask for a viewer token on /metrics too (open by default, for scrapers).
    #[arg(
        long,
        env = "BELFRY_METRICS_AUTH",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub metrics_auth: bool,
    /// Requests per second per API token on this node, and per client address for requests
    /// without a valid token (429 beyond); 0 turns the limit off.
    #[arg(long, env = "BELFRY_RATE_LIMIT", default_value_t = belfry_node::http::rate::DEFAULT_PER_SECOND)]
    pub rate_limit: u32,
    /// Requests a token (or address) may make at once before --rate-limit paces it.
    #[arg(long, env = "BELFRY_RATE_BURST", default_value_t = belfry_node::http::rate::DEFAULT_BURST)]
    pub rate_burst: u32,
    /// Most live jobs the cluster may hold; a create beyond is 409 `quota_exceeded`.
    #[arg(long, env = "BELFRY_MAX_JOBS", default_value_t = belfry_node::http::DEFAULT_MAX_JOBS)]
    pub max_jobs: u64,
    /// Serve the console's files from this folder, read at each request, instead of the copies
    /// built into the binary (for working on the console).
    #[arg(long, env = "BELFRY_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,
}

/// Whether `--signing-secret` (not `--signing-secret-file`) is on the command line `argv`,
/// where every local user can read it.
pub fn secret_on_command_line(argv: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    argv.into_iter().any(|a| a == "--signing-secret" || a.to_string_lossy().starts_with("--signing-secret="))
}

/// Installs the log subscriber: text by default, JSON lines with `--log-format json`.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BELFRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft=warn,openraft::core=off,openraft::replication=off,sled=warn,h2=warn,tower=warn,hyper=warn",
        )
    });
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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
        check_raft_timing(self.heartbeat_ms, self.election_timeout_ms, self.learner_catch_up_timeout_ms)?;
        c.snapshot_logs = self.snapshot_logs;
        c.keep_logs = self.keep_logs;
        c.learner_max_lag = self.learner_max_lag;
        c.learner_catch_up_timeout = std::time::Duration::from_millis(self.learner_catch_up_timeout_ms);
        c.lease = std::time::Duration::from_millis(self.lease_ms);
        c.claim_ahead = std::time::Duration::from_millis(self.claim_ahead_ms);
        c.max_concurrent_sends = usize::try_from(self.max_concurrent_sends).unwrap_or(usize::MAX);
        c.max_clock_skew = std::time::Duration::from_millis(self.max_clock_skew_ms);
        self.egress_and_signing(&mut c)?;
        self.api_access(&mut c)?;
        c.peer_tls = self.peer_tls()?;
        if let (Some(cert), Some(key)) = (&self.http_tls_cert, &self.http_tls_key) {
            c.http_tls = Some(belfry_node::http::HttpTls::load(cert, key).map_err(anyhow::Error::msg)?);
        }
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
        Ok(())
    }
}

/// The node id of a host named `<name>-<ordinal>`: the ordinal plus one (ids start at 1).
pub fn id_from_hostname(host: &str) -> Result<u64, String> {
    let ordinal = host.rsplit_once('-').map_or(host, |(_, n)| n);
    ordinal
        .parse::<u64>()
        .ok()
        .filter(|_| ordinal.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| format!("host name {host:?} does not end with -<number>"))
}

/// Runs one node until SIGINT or SIGTERM, then shuts it down and returns.
/// The flags with the config file's settings filled in and the id taken from the host name
/// when asked: read before the runtime starts, which `--runtime-threads` sizes.
pub fn resolve(args: ServeArgs) -> anyhow::Result<ServeArgs> {
    let mut args = match &args.config {
        Some(file) => crate::config_file::apply(file, crate::config_file::serve_argv())?,
        None => args,
    };
    if args.id_from_hostname {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .map_err(|_| anyhow::anyhow!("--id-from-hostname: the host name cannot be read"))?;
        args.id = id_from_hostname(host.trim()).map_err(|e| anyhow::anyhow!("--id-from-hostname: {e}"))?;
    }
    Ok(args)
}

/// Runs a node with `args` from [`resolve`] until a signal stops it.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    if secret_on_command_line(std::env::args_os()) {
        anyhow::bail!(
            "--signing-secret on the command line is refused: every local user can read it in /proc/PID/cmdline; \
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

impl ServeArgs {
    /// The peer certificates these flags name; `None` with `--insecure-peer`. Without either
    /// the node refuses to start.
    fn peer_tls(&self) -> anyhow::Result<Option<belfry_node::peer_tls::PeerTls>> {
        let dir = self.peer_certs_dir.as_ref();
        let pick = |flag: &Option<PathBuf>, file: String| flag.clone().or_else(|| dir.map(|d| d.join(file)));
        let ca = pick(&self.peer_ca, "ca.pem".into());
        let cert = pick(&self.peer_cert, format!("node-{}.pem", self.id));
        let key = pick(&self.peer_key, format!("node-{}-key.pem", self.id));
        match (ca, cert, key, self.insecure_peer) {
            (None, None, None, true) => Ok(None),
            (Some(_), _, _, true) | (_, Some(_), _, true) | (_, _, Some(_), true) => {
                anyhow::bail!("--insecure-peer and peer certificates: give one")
            }
            (Some(ca), Some(cert), Some(key), false) => {
                Ok(Some(belfry_node::peer_tls::PeerTls::load(self.id, &ca, &cert, &key)?))
            }
            (None, None, None, false) => anyhow::bail!(
                "no peer certificates: give --peer-certs-dir (make one with `belfry certs`) or --peer-ca, --peer-cert \
                 and --peer-key (see docs/SECURITY.md), or pass --insecure-peer to run gRPC between nodes in plaintext"
            ),
            _ => anyhow::bail!("--peer-ca, --peer-cert and --peer-key go together (or --peer-certs-dir for all three)"),
        }
    }

    /// Authentication, rate limits and the job cap these flags describe. Without a bootstrap
    /// token the node refuses to start unless `--no-auth` is given.
    fn api_access(&self, c: &mut belfry_node::Config) -> anyhow::Result<()> {
        use belfry_node::http::{ApiAuth, BootstrapToken, RateLimit};
        let from_file = match &self.auth_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--auth-file {}: {e}", path.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
        };
        let token = match (&self.bootstrap_token, from_file) {
            (Some(_), Some(_)) => anyhow::bail!("--auth-file and --bootstrap-token (BELFRY_BOOTSTRAP_TOKEN): give one"),
            (Some(token), None) => Some(BootstrapToken::new(token).map_err(anyhow::Error::msg)?),
            (None, Some(line)) => Some(BootstrapToken::new(&line).map_err(|e| anyhow::anyhow!("--auth-file: {e}"))?),
            (None, None) => None,
        };
        c.auth = match (token, self.no_auth) {
            (Some(_), true) => anyhow::bail!("--no-auth and a bootstrap token: give one"),
            (Some(bootstrap), false) => ApiAuth::Tokens { bootstrap },
            (None, true) => ApiAuth::Off,
            (None, false) => anyhow::bail!(
                "no bootstrap token: set BELFRY_BOOTSTRAP_TOKEN or --auth-file (see docs/SECURITY.md), or pass \
                 --no-auth to serve the API to anyone who can reach it"
            ),
        };
        c.metrics_auth = self.metrics_auth;
        c.rate_limit = match (self.rate_limit, self.rate_burst) {
            (0, _) => None,
            (_, 0) => anyhow::bail!("--rate-burst must be positive when --rate-limit is"),
            (rate, burst) => RateLimit::new(rate, burst),
        };
        if self.max_jobs == 0 {
            anyhow::bail!("--max-jobs must be positive");
        }
        c.max_jobs = self.max_jobs;
        c.console = console_files(self.console_dir.as_deref())?;
        Ok(())
    }
}

/// Refuses raft timing flags that would stall or break raft's timers.
fn check_raft_timing(heartbeat_ms: u64, election_timeout_ms: u64, catch_up_ms: u64) -> anyhow::Result<()> {
    if heartbeat_ms == 0 || heartbeat_ms > MAX_HEARTBEAT_MS {
        anyhow::bail!("--heartbeat-ms must be between 1 and {MAX_HEARTBEAT_MS}");
    }
    if election_timeout_ms > MAX_ELECTION_TIMEOUT_MS {
        anyhow::bail!("--election-timeout-ms must be at most {MAX_ELECTION_TIMEOUT_MS}");
    }
    if election_timeout_ms <= heartbeat_ms.saturating_mul(2) {
        anyhow::bail!("--election-timeout-ms must be more than twice --heartbeat-ms");
    }
    if catch_up_ms == 0 {
        anyhow::bail!("--learner-catch-up-timeout-ms must be positive");
    }
    Ok(())
}

#[cfg(test)]
mod raft_timing_tests {
    use super::check_raft_timing;

    #[test]
    fn raft_timing_flags_are_bounded_and_named_when_refused() {
        assert!(check_raft_timing(250, 600, 60_000).is_ok());
        for (heartbeat, election, catch_up, flag) in [
            (0, 600, 60_000, "--heartbeat-ms"),
            (u64::MAX / 2, u64::MAX, 60_000, "--heartbeat-ms"),
            (250, 600_000, 60_000, "--election-timeout-ms"),
            (250, 500, 60_000, "--election-timeout-ms"),
            (250, 600, 0, "--learner-catch-up-timeout-ms"),
        ] {
            let err = check_raft_timing(heartbeat, election, catch_up).expect_err(flag).to_string();
            assert!(err.contains(flag), "{err}");
        }
    }
}

#[cfg(test)]
mod id_tests {
    use super::id_from_hostname;

    #[test]
    fn a_statefulset_pod_name_gives_its_ordinal_plus_one() {
        assert_eq!(id_from_hostname("belfry-0"), Ok(1));
        assert_eq!(id_from_hostname("my-belfry-12"), Ok(13));
        for bad in ["belfry", "belfry-", "belfry-x", "belfry-+1", "b-18446744073709551615", ""] {
            assert!(id_from_hostname(bad).is_err(), "{bad}");
        }
    }
}

/// The console's files: a `--console-dir` holding `index.html`, or the built-in copies.
pub fn console_files(dir: Option<&std::path::Path>) -> anyhow::Result<belfry_node::http::ConsoleFiles> {
    match dir {
        None => Ok(belfry_node::http::ConsoleFiles::Embedded),
        Some(d) if belfry_node::http::console_dir_has_shell(d) => {
            Ok(belfry_node::http::ConsoleFiles::Dir(d.to_path_buf()))
        }
        Some(d) => anyhow::bail!("--console-dir {}: no index.html there", d.display()),
    }
}
