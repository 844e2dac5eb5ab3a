//! The belfry server: raft (openraft over sled and tonic), the leader's ticker and
//! dispatcher, the worker, the HTTP API, metrics and the console. See the `raft` module
//! for the replication layer and `belfry_core` for the state machine and fire protocol.

pub mod config;
pub mod context;
mod convert;
pub mod delivery;
pub mod dispatcher;
pub mod egress;
pub mod flusher;
mod grpc;
pub mod http;
pub mod ledger;
mod membership;
pub mod metrics;
pub mod node;
pub mod peer_tls;
pub mod raft;
pub mod restore;
pub mod sink;
mod ticker;
pub mod worker;

pub use config::Config;

/// belfry's version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use node::Node;

/// Generated gRPC types and services (proto/belfry.proto).
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("belfry.v1");
}
