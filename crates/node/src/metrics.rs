//! Prometheus metrics (DESIGN.md, "Metrics"). Counters and histograms are updated where things
//! happen; gauges of raft and state are refreshed when `/metrics` is scraped.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets from 1 ms to 10 min: fire lag and delivery times span both.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Every metric a node exports.
#[allow(missing_docs)]
pub struct Metrics {
    registry: Registry,
    pub fires_total: IntCounterVec,
    pub fire_lag: Histogram,
    pub delivery_duration: Histogram,
    pub deliveries_in_flight: IntGauge,
    pub deliveries_held: IntGauge,
    pub dead_letters: IntGauge,
    pub jobs: IntGauge,
    pub raft_term: IntGauge,
    pub raft_is_leader: IntGauge,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_follower_lag: IntGaugeVec,
    pub leader_changes: IntCounter,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
}

impl Metrics {
    /// Registers every metric in a registry of its own.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            fires_total: IntCounterVec::new(
                Opts::new(
                    "belfry_fires_total",
                    "Fire events by outcome: dispatched (leader), success, retryable, permanent, refused (worker).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            fire_lag: Histogram::with_opts(
                HistogramOpts::new("belfry_fire_lag_seconds", "Delivery start minus the scheduled instant.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            delivery_duration: Histogram::with_opts(
                HistogramOpts::new("belfry_delivery_duration_seconds", "Duration of one HTTP delivery attempt.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            deliveries_in_flight: IntGauge::new(
                "belfry_deliveries_in_flight",
                "HTTP deliveries this node is sending now.",
            )
            .expect("valid metric"),
            deliveries_held: IntGauge::new(
                "belfry_deliveries_held",
                "Sends this node holds for their instant (claimed ahead) or for a free send slot.",
            )
            .expect("valid metric"),
            dead_letters: IntGauge::new("belfry_dead_letters", "Fires in the dead-letter queue.")
                .expect("valid metric"),
            jobs: IntGauge::new("belfry_jobs", "Jobs defined.").expect("valid metric"),
            raft_term: IntGauge::new("belfry_raft_term", "Current raft term.").expect("valid metric"),
            raft_is_leader: IntGauge::new("belfry_raft_is_leader", "1 when this node is the leader.")
                .expect("valid metric"),
            raft_commit_index: IntGauge::new("belfry_raft_commit_index", "Highest log index known committed.")
                .expect("valid metric"),
            raft_applied_index: IntGauge::new("belfry_raft_applied_index", "Highest log index applied.")
                .expect("valid metric"),
            raft_follower_lag: IntGaugeVec::new(
                Opts::new("belfry_raft_follower_lag_entries", "Entries each follower is behind (leader only)."),
                &["follower"],
            )
            .expect("valid metric"),
            leader_changes: IntCounter::new("belfry_leader_changes_total", "Leader changes seen by this node.")
                .expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new("belfry_http_requests_total", "HTTP API requests by route and status."),
                &["route", "status"],
            )
            .expect("valid metric"),
            http_duration: HistogramVec::new(
                HistogramOpts::new("belfry_http_request_duration_seconds", "HTTP API request duration.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            registry,
        };
        // Every outcome is exported from the start, at zero, so dashboards and alerts see it.
        for outcome in ["dispatched", "success", "retryable", "permanent", "refused"] {
            m.fires_total.with_label_values(&[outcome]);
        }
        let r = &m.registry;
        let all: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.fires_total.clone()),
            Box::new(m.fire_lag.clone()),
            Box::new(m.delivery_duration.clone()),
            Box::new(m.deliveries_in_flight.clone()),
            Box::new(m.deliveries_held.clone()),
            Box::new(m.dead_letters.clone()),
            Box::new(m.jobs.clone()),
            Box::new(m.raft_term.clone()),
            Box::new(m.raft_is_leader.clone()),
            Box::new(m.raft_commit_index.clone()),
            Box::new(m.raft_applied_index.clone()),
            Box::new(m.raft_follower_lag.clone()),
            Box::new(m.leader_changes.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_duration.clone()),
        ];
        for c in all {
            r.register(c).expect("metric names are unique");
        }
        m
    }

    /// The text exposition of every metric, with its content type.
    pub fn render(&self) -> (String, String) {
        let encoder = TextEncoder::new();
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        (encoder.format_type().to_string(), String::from_utf8_lossy(&buf).into_owned())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
