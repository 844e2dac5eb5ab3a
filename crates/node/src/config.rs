//! A node's configuration, as the binary's flags produce it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Raft node id.
    pub id: u64,
    /// HTTP API listen address.
    pub http_addr: SocketAddr,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP address others use to reach this node.
    pub advertise_http: String,
    /// gRPC address peers use to reach this node (its address in the raft membership).
    pub advertise_grpc: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Founding members `(id, grpc address)`; empty for a single node or a joining one.
    pub initial_cluster: Vec<(u64, String)>,
    /// HTTP URL of a member to join through.
    pub join: Option<String>,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Minimum election timeout (the maximum is twice it).
    pub election_timeout: Duration,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
    /// Log entries kept behind a snapshot (so a briefly lagging follower needs no snapshot).
    pub keep_logs: u64,
    /// How long a worker may take to start a delivery, from its instant.
    pub lease: Duration,
    /// How far ahead of their instant the leader claims fires whose job allows overlap; their
    /// workers hold the sends until the instant. Zero claims every fire once due.
    pub claim_ahead: Duration,
    /// Sends a worker runs at once; more wait in its queue (and count against their lease).
    pub max_concurrent_sends: usize,
    /// Largest clock difference assumed between nodes.
    pub max_clock_skew: Duration,
    /// Mutual TLS between nodes (`--peer-ca`, `--peer-cert`, `--peer-key`); `None` runs
    /// gRPC in plaintext (`--insecure-peer`).
    pub peer_tls: Option<crate::peer_tls::PeerTls>,
    /// TLS on the HTTP API (`--http-tls-cert`, `--http-tls-key`); `None` serves plaintext.
    pub http_tls: Option<crate::http::HttpTls>,
    /// How many entries a learner may trail the leader's log by and still count as caught
    /// up, so that promoting it to voter cannot stall commits behind its catch-up.
    pub learner_max_lag: u64,
    /// How long an added node may take to catch up before the add fails and the learner is
    /// removed again.
    pub learner_catch_up_timeout: Duration,
    /// Where deliveries may go (`--allow-private-targets`, `--allow-target`, `--deny-target`,
    /// `--follow-redirects`), shared by the job API's create-time check and the worker's
    /// delivery client (docs/SECURITY.md, "Egress").
    pub egress: crate::egress::EgressPolicy,
    /// The keys that sign deliveries (`--signing-secret-file`, or one key from
    /// `BELFRY_SIGNING_SECRET`), reloaded on SIGHUP; `None`: deliveries are unsigned. While
    /// Each node reads its own keys: no signing key ever crosses the network.
    pub signer: Option<crate::delivery::Signer>,
    // API access (docs/SECURITY.md).
    /// Token checks: off, or on with this node's bootstrap admin token. Off here; `belfry
    /// serve` refuses to start without a token unless `--no-auth` says so.
    pub auth: crate::http::ApiAuth,
    /// Whether `/metrics` needs a viewer token (open by default, for scrapers).
    pub metrics_auth: bool,
    /// Requests per token, and per client address without a valid token; `None` for no limit
    /// (the default here, for in-process tests; `belfry serve` has
    /// [`crate::http::RateLimit::default`]).
    pub rate_limit: Option<crate::http::RateLimit>,
    /// Most live jobs the cluster may hold; this node's creates carry it.
    pub max_jobs: u64,
    /// Where the console's files come from (`--console-dir`; embedded by default).
    pub console: crate::http::ConsoleFiles,
}

/// Default of [`Config::learner_max_lag`]: under two full AppendEntries batches
/// ([`crate::raft::MAX_APPEND_ENTRIES`] each), which a live learner closes within a couple of
/// round trips, and loose enough that a learner keeping up with a steady write load (which
/// always trails by what is in flight) still qualifies. A learner that never answered has no
/// match index and cannot qualify at any lag.
pub const DEFAULT_LEARNER_MAX_LAG: u64 = 100;

/// Default of [`Config::learner_catch_up_timeout`]: long enough to stream a snapshot of tens
/// of MiB and the log after it over a slow link.
pub const DEFAULT_LEARNER_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The default claim-ahead window: fires are claimed between half of it and all of it before
/// their instant, two claim entries a second under steady load.
pub const DEFAULT_CLAIM_AHEAD: Duration = Duration::from_millis(1000);

/// The default bound on a worker's concurrent sends (and its idle connections per target).
pub const DEFAULT_MAX_CONCURRENT_SENDS: usize = 512;

impl Config {
    /// A configuration with the defaults of `belfry serve`, for tests and `belfry dev`.
    pub fn new(id: u64, http_addr: SocketAddr, grpc_addr: SocketAddr, data_dir: PathBuf) -> Config {
        Config {
            id,
            http_addr,
            grpc_addr,
            advertise_http: http_addr.to_string(),
            advertise_grpc: grpc_addr.to_string(),
            data_dir,
            initial_cluster: Vec::new(),
            join: None,
            heartbeat: Duration::from_millis(250),
            election_timeout: Duration::from_millis(600),
            snapshot_logs: 5000,
            keep_logs: 1000,
            lease: Duration::from_secs(5),
            claim_ahead: DEFAULT_CLAIM_AHEAD,
            max_concurrent_sends: DEFAULT_MAX_CONCURRENT_SENDS,
            max_clock_skew: Duration::from_millis(500),
            peer_tls: None,
            http_tls: None,
            learner_max_lag: DEFAULT_LEARNER_MAX_LAG,
            learner_catch_up_timeout: DEFAULT_LEARNER_CATCH_UP_TIMEOUT,
            egress: crate::egress::EgressPolicy::default(),
            signer: None,
            auth: crate::http::ApiAuth::Off,
            metrics_auth: false,
            rate_limit: None,
            max_jobs: crate::http::DEFAULT_MAX_JOBS,
            console: crate::http::ConsoleFiles::Embedded,
        }
    }
}

/// Parses `--initial-cluster` (`1=host:port,2=host:port`).
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(u64, String)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (id, addr) = part.trim().split_once('=').ok_or_else(|| format!("{part:?}: expected id=host:port"))?;
            let id: u64 = id.parse().map_err(|_| format!("{part:?}: node id must be a number"))?;
            if !addr.contains(':') {
                return Err(format!("{part:?}: address must be host:port"));
            }
            Ok((id, addr.to_string()))
        })
        .collect()
}
