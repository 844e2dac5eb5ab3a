//! This cluster's own HTTP API endpoints, which no job may target unless an `--allow-target`
//! rule names them: this node's listen and advertised addresses, and every member's advertised
//! address as its `Info` probe reports it.
//!
//! The membership holds gRPC addresses only, so members' HTTP addresses are learned by
//! probing: [`track_cluster_api`] runs for the node's lifetime (every second while some member
//! is unknown, then every [`STALE`] / 3), and the job handlers call [`refresh`] before they
//! check a target, so a create never races the first probe. Names are resolved when learned,
//! so that an address reached through another name still matches.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::literal_ip;
use super::rules::{canonical, classify, normal_name, AddressClass};
use crate::context::Context;
use crate::http::ApiError;

/// How long a learned member address is trusted before it is probed again.
pub const STALE: Duration = Duration::from_secs(60);
/// How long after a job write's probe of a member failed no job write probes it again (the
/// background tracker still does), so that a member that is down does not slow every create.
pub const RETRY_FAILED: Duration = Duration::from_secs(5);
/// Longest wait for resolving an endpoint's name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The host of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A wildcard listen address (`0.0.0.0`, `::`): every loopback and unspecified address.
    Any,
    /// An address.
    Ip(IpAddr),
    /// A name, with the addresses it resolved to when learned.
    Name(String, Vec<IpAddr>),
}

/// One `host:port` where this cluster's HTTP API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    text: String,
    host: Host,
    port: u16,
}

impl Endpoint {
    /// Reads `host:port` or `[v6]:port` (port 1 to 65535), without resolving a name.
    pub fn parse(addr: &str) -> Option<Endpoint> {
        let (host, port) = addr.trim().rsplit_once(':')?;
        let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        let host = match literal_ip(host) {
            Some(ip) if ip.is_unspecified() => Host::Any,
            Some(ip) => Host::Ip(canonical(ip)),
            None if !host.is_empty() && !host.contains([':', '[', ']', '/']) => {
                Host::Name(normal_name(host), Vec::new())
            }
            None => return None,
        };
        Some(Endpoint { text: addr.trim().to_string(), host, port })
    }

    /// Resolves a name endpoint's addresses (kept empty when the lookup fails).
    async fn resolve(mut self) -> Endpoint {
        if let Host::Name(name, ips) = &mut self.host {
            let lookup = tokio::net::lookup_host((name.as_str(), self.port));
            if let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                *ips = addrs.map(|a| canonical(a.ip())).collect();
            }
        }
        self
    }

    fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        port == self.port
            && match &self.host {
                Host::Any => matches!(classify(ip), AddressClass::Loopback | AddressClass::Unspecified),
                Host::Ip(a) => *a == ip,
                Host::Name(_, ips) => ips.contains(&ip),
            }
    }

    fn matches_name(&self, name: &str, port: u16) -> bool {
        port == self.port && matches!(&self.host, Host::Name(n, _) if n == name)
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// Endpoints by member id, with when they were learned.
    members: BTreeMap<u64, (Vec<Endpoint>, Instant)>,
    /// When a probe of a member last failed.
    failed: BTreeMap<u64, Instant>,
}

/// The API endpoints of this cluster's members, shared by the job handlers and the delivery
/// client of one node. A std lock: it is never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct ClusterApi(Arc<RwLock<Registry>>);

impl ClusterApi {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `member`'s endpoints (`host:port` each; unreadable ones are skipped), resolving
    /// names first.
    pub async fn learn(&self, member: u64, addrs: &[String]) {
        let parsed = addrs.iter().filter_map(|a| Endpoint::parse(a));
        let endpoints = futures::future::join_all(parsed.map(Endpoint::resolve)).await;
        let mut r = self.write();
        r.failed.remove(&member);
        r.members.insert(member, (endpoints, Instant::now()));
    }

    fn failed(&self, member: u64) {
        self.write().failed.insert(member, Instant::now());
    }

    /// Whether `member` should be probed now: never learned, or learned longer than [`STALE`]
    /// ago; unless `patient` is false and a job write's probe of it failed in the last
    /// [`RETRY_FAILED`].
    fn due(&self, member: u64, patient: bool) -> bool {
        let r = self.read();
        let stale = r.members.get(&member).is_none_or(|(_, at)| at.elapsed() > STALE);
        stale && (patient || r.failed.get(&member).is_none_or(|at| at.elapsed() > RETRY_FAILED))
    }

    /// Whether every one of `members` has been learned.
    fn knows(&self, members: impl IntoIterator<Item = u64>) -> bool {
        let r = self.read();
        members.into_iter().all(|m| r.members.contains_key(&m))
    }

    /// The endpoint that `ip` at `port` is, if any.
    pub fn matches_ip(&self, ip: IpAddr, port: u16) -> Option<String> {
        let r = self.read();
        let mut all = r.members.values().flat_map(|(e, _)| e);
        all.find(|e| e.matches_ip(ip, port)).map(|e| e.text.clone())
    }

    /// The endpoint that the name `name` (normalised) at `port` is, if any.
    pub fn matches_name(&self, name: &str, port: u16) -> Option<String> {
        let r = self.read();
        let mut all = r.members.values().flat_map(|(e, _)| e);
        all.find(|e| e.matches_name(name, port)).map(|e| e.text.clone())
    }
}

/// This node's own endpoints: the bound listen address (when known), the configured one and
/// the advertised one.
fn own_addresses(ctx: &Context, bound: Option<SocketAddr>) -> Vec<String> {
    let mut addrs: Vec<String> = bound.into_iter().map(|a| a.to_string()).collect();
    addrs.push(ctx.config.http_addr.to_string());
    addrs.push(ctx.config.advertise_http.clone());
    addrs
}

/// The other members, with their gRPC addresses.
fn peers(ctx: &Context) -> Vec<(u64, String)> {
    let metrics = ctx.raft.metrics();
    let m = metrics.borrow();
    m.membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != ctx.id())
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect()
}

/// Learns the API endpoints of this node (once) and of every member that is due a probe.
/// `patient` is the background tracker, which probes every member due; a job write
/// (`patient` false) skips a member its own probe found down in the last [`RETRY_FAILED`], so a
/// member that is down costs job writes at most one probe timeout in that time.
pub async fn refresh(ctx: &Context, patient: bool) {
    let api = ctx.config.egress.cluster_api();
    if !api.knows([ctx.id()]) {
        api.learn(ctx.id(), &own_addresses(ctx, None)).await;
    }
    let due = peers(ctx).into_iter().filter(|(id, _)| api.due(*id, patient));
    let probes = due.map(|(id, grpc)| async move {
        match crate::membership::probe(ctx, id, &grpc).await {
            Ok(info) => api.learn(id, &[info.http_addr]).await,
            Err(_) if !patient => api.failed(id),
            Err(_) => {}
        }
    });
    futures::future::join_all(probes).await;
}

/// Keeps this node's view of the cluster's API endpoints current until `stop` is raised.
/// `bound` is the HTTP listener's address (its port is the real one when the configured
/// port was 0).
pub async fn track_cluster_api(ctx: Arc<Context>, bound: SocketAddr, mut stop: watch::Receiver<bool>) {
    ctx.config.egress.cluster_api().learn(ctx.id(), &own_addresses(&ctx, Some(bound))).await;
    loop {
        refresh(&ctx, true).await;
        let known = ctx.config.egress.cluster_api().knows(peers(&ctx).into_iter().map(|(id, _)| id));
        let pause = if known { STALE / 3 } else { Duration::from_secs(1) };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The create-time check of a job target, for the job handlers: refreshes the endpoints that
/// are due, then refuses what the URL alone shows the policy refuses, as a 400 naming
/// `target.url`. A URL that does not parse is left to the spec's validation.
pub async fn check_target(ctx: &Context, url: &str) -> Result<(), ApiError> {
    let Ok(url) = reqwest::Url::parse(url) else { return Ok(()) };
    refresh(ctx, false).await;
    refuse_new_target(ctx, &url)
}

/// [`check_target`] for the targets of a batch, with one refresh for all: the answer for each
/// URL, in order.
pub async fn check_targets<'a>(ctx: &Context, urls: impl IntoIterator<Item = &'a str>) -> Vec<Result<(), ApiError>> {
    refresh(ctx, false).await;
    let check = |url: &str| match reqwest::Url::parse(url) {
        Ok(url) => refuse_new_target(ctx, &url),
        Err(_) => Ok(()),
    };
    urls.into_iter().map(check).collect()
}

fn refuse_new_target(ctx: &Context, url: &reqwest::Url) -> Result<(), ApiError> {
    ctx.config
        .egress
        .check_new_target(url)
        .map_err(|refusal| ApiError::invalid("target.url", format!("refused by the egress policy: {refusal}")))
}
