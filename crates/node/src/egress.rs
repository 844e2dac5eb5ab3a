//! The egress policy: which addresses a job's deliveries may reach (docs/SECURITY.md, "Egress").
//!
//! Whoever can write a job chooses where the cluster sends a request from inside its own
//! network. Without a policy that makes belfry a proxy into that network: the cloud metadata
//! service (instance credentials), admin ports on loopback, and this cluster's own API (a job
//! aimed at `DELETE /v1/jobs/{name}` of its own cluster deletes jobs). The policy is applied
//! twice, by the same decision functions:
//!
//! - **At create and replace**, from the URL alone ([`EgressPolicy::check_url`], called by the
//!   job handlers through [`check_target`]): the scheme, literal addresses in every spelling the
//!   URL parser accepts (`2130706433`, `0x7f.1`, `0177.0.0.1` and `[::ffff:127.0.0.1]` all
//!   read as `127.0.0.1`), denied and metadata names, and this cluster's API endpoints. A job
//!   that could never be delivered is refused with a 400 naming `target.url`.
//! - **At send time**, on the addresses actually connected to: the delivery client resolves
//!   names through [`PolicyResolver`], which answers only with admitted addresses, so a name
//!   that resolves to a refused one — DNS rebinding included — is never connected to. Literal
//!   addresses skip DNS and are checked by [`EgressPolicy::check_url`] before each request,
//!   every redirect hop included.
//!
//! The decision for an address, in order: a `--deny-target` rule refuses (deny wins over
//! allow); an always-refused class ([`AddressClass::always_refused`]: link-local, cloud
//! metadata, unspecified, multicast, reserved and broadcast) refuses whatever else is set;
//! this cluster's API ([`ClusterApi`]) refuses unless an `--allow-target` rule names it; an
//! `--allow-target` rule admits; loopback and private ranges refuse unless the nodes run with
//! `--allow-private-targets`; anything else is admitted. An IPv6 address carrying an IPv4 one
//! (`::ffff:a.b.c.d` and the other forms of [`embedded_v4`]) is judged as that IPv4 address.
//! For a name: a deny rule or a metadata name refuses; an allow rule naming it admits every
//! address it resolves to except the always-refused ones; at create time `localhost` is judged
//! as `127.0.0.1` ([`EgressPolicy::check_new_target`]), at send time by what it resolves to.
//!
//! Left out, on purpose or for later:
//! - HTTP proxies: delivery clients ignore `HTTP_PROXY`/`HTTPS_PROXY`, since a proxy resolves
//!   names itself and the policy could no longer see the address.
//! - A node's own addresses on interfaces other than loopback and its advertised address,
//!   when it listens on `0.0.0.0`: they are covered by the private-range default only.
//! - Members' API addresses are learned by probing them ([`ClusterApi`]); a member never
//!   reached since this node started is not known to it.

mod cluster_api;
mod resolve;
mod rules;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use cluster_api::{check_target, check_targets, refresh, track_cluster_api, ClusterApi, Endpoint};
pub use resolve::PolicyResolver;
pub use rules::{
    canonical, classify, embedded_v4, is_localhost, normal_name, parse_rules, AddressClass, TargetRule,
    METADATA_ADDRESSES, METADATA_NAMES,
};

/// Most redirects `--follow-redirects` may ask for per delivery attempt.
pub const MAX_REDIRECTS: u8 = 10;

/// The settings of the policy, as the `belfry serve` flags give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressSettings {
    /// `--allow-private-targets`: admit loopback and private ranges.
    pub allow_private_targets: bool,
    /// `--allow-target`: addresses and names admitted even when private, or when they are this
    /// cluster's API.
    pub allow_targets: Vec<TargetRule>,
    /// `--deny-target`: addresses and names refused, whatever else admits them.
    pub deny_targets: Vec<TargetRule>,
    /// `--follow-redirects`: redirects followed per attempt (0 to [`MAX_REDIRECTS`]), each hop
    /// checked like the first request.
    pub follow_redirects: u8,
}

/// Where deliveries may go: the settings plus this cluster's API endpoints as learned so far.
/// Cheap to clone; clones share the endpoints.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    settings: Arc<EgressSettings>,
    api: ClusterApi,
}

/// Why the policy refuses a target. The text names the rule and the flag that would open it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only `http` and `https` are delivered.
    #[error("scheme {0:?} is not http or https")]
    Scheme(String),
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
    /// An address in an always-refused class.
    #[error("{target} is {class}, which is always refused")]
    AlwaysRefused {
        /// The address as written, and what it stands for when that differs.
        target: String,
        /// Its class.
        class: AddressClass,
    },
    /// A cloud metadata service's name.
    #[error("{0} is a cloud metadata service, which is always refused")]
    MetadataName(String),
    /// A loopback or private address, with neither `--allow-private-targets` nor a rule.
    #[error(
        "{target} is {class}, refused unless the nodes run with --allow-private-targets or an --allow-target \
         rule covers it"
    )]
    Private {
        /// The address (or `localhost` name) as written.
        target: String,
        /// Its class.
        class: AddressClass,
    },
    /// A `--deny-target` rule matched.
    #[error("{target} matches --deny-target {rule}")]
    Denied {
        /// The address or name.
        target: String,
        /// The rule, as written.
        rule: String,
    },
    /// This cluster's own HTTP API.
    #[error("{target} is this cluster's own API ({endpoint}), refused unless an --allow-target rule names it")]
    ClusterApi {
        /// The address or name, with its port.
        target: String,
        /// The member endpoint it matched.
        endpoint: String,
    },
}

/// A send refused by the policy: the error the delivery client's resolver fails with, found
/// again in the transport error's source chain to record a `Permanent` outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocked by egress policy: {0}")]
pub struct Blocked(pub Refusal);

impl EgressPolicy {
    /// A policy with `settings`; `follow_redirects` must be at most [`MAX_REDIRECTS`].
    pub fn new(settings: EgressSettings) -> Result<EgressPolicy, String> {
        if settings.follow_redirects > MAX_REDIRECTS {
            return Err(format!("--follow-redirects: at most {MAX_REDIRECTS}"));
        }
        Ok(EgressPolicy { settings: Arc::new(settings), api: ClusterApi::default() })
    }

    /// The default policy with loopback and private ranges admitted: `belfry dev` and tests,
    /// whose targets are on loopback.
    pub fn allowing_private() -> EgressPolicy {
        let settings = EgressSettings { allow_private_targets: true, ..EgressSettings::default() };
        EgressPolicy { settings: Arc::new(settings), api: ClusterApi::default() }
    }

    /// The settings.
    pub fn settings(&self) -> &EgressSettings {
        &self.settings
    }

    /// Redirects to follow per attempt.
    pub fn max_redirects(&self) -> u8 {
        self.settings.follow_redirects
    }

    /// This cluster's API endpoints, shared by every clone of this policy.
    pub fn cluster_api(&self) -> &ClusterApi {
        &self.api
    }

    /// Checks what the URL alone tells: scheme, a literal address, or a name (without looking
    /// it up), at the URL's port.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(Refusal::NoHost)?;
        match literal_ip(host) {
            Some(ip) => self.check_ip(ip, port, false),
            None => self.check_name(host, port).map(|_| ()),
        }
    }

    /// [`EgressPolicy::check_url`] for a job being created or replaced, which also judges a
    /// `localhost` name as `127.0.0.1` rather than leave it to the lookup at send time.
    pub fn check_new_target(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        self.check_url(url)?;
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host_str() {
            Some(name) if is_localhost(name) => {
                let named = self.check_name(name, port)?;
                let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
                self.check_ip(loopback, port, named).map_err(|r| r.naming(&normal_name(name)))
            }
            _ => Ok(()),
        }
    }

    /// Checks a host name at `port` before it is looked up. `Ok(true)` when an
    /// `--allow-target` rule names it: its addresses are then admitted unless always refused.
    pub fn check_name(&self, name: &str, port: u16) -> Result<bool, Refusal> {
        let name = normal_name(name);
        if let Some(rule) = self.settings.deny_targets.iter().find(|r| r.matches_name(&name, port)) {
            return Err(Refusal::Denied { target: name, rule: rule.to_string() });
        }
        if METADATA_NAMES.contains(&name.as_str()) {
            return Err(Refusal::MetadataName(name));
        }
        let allowed = self.settings.allow_targets.iter().any(|r| r.matches_name(&name, port));
        if !allowed {
            if let Some(endpoint) = self.api.matches_name(&name, port) {
                return Err(Refusal::ClusterApi { target: format!("{name}:{port}"), endpoint });
            }
        }
        Ok(allowed)
    }

    /// Checks an address about to be connected to at `port`; `named` when an allow rule named
    /// the host it was looked up for ([`EgressPolicy::check_name`]).
    pub fn check_ip(&self, ip: IpAddr, port: u16, named: bool) -> Result<(), Refusal> {
        let target = shown(ip);
        if let Some(rule) = self.settings.deny_targets.iter().find(|r| r.matches_ip(ip, port)) {
            return Err(Refusal::Denied { target, rule: rule.to_string() });
        }
        let class = classify(ip);
        if class.always_refused() {
            return Err(Refusal::AlwaysRefused { target, class });
        }
        let allowed = named || self.settings.allow_targets.iter().any(|r| r.matches_ip(ip, port));
        if !allowed {
            if let Some(endpoint) = self.api.matches_ip(ip, port) {
                return Err(Refusal::ClusterApi { target: format!("{target} port {port}"), endpoint });
            }
            if class.private() && !self.settings.allow_private_targets {
                return Err(Refusal::Private { target, class });
            }
        }
        Ok(())
    }
}

impl Refusal {
    /// The same refusal shown for the name it was reached through (`localhost`).
    fn naming(self, name: &str) -> Refusal {
        let target = format!("{name} (127.0.0.1)");
        match self {
            Refusal::Private { class, .. } => Refusal::Private { target, class },
            Refusal::AlwaysRefused { class, .. } => Refusal::AlwaysRefused { target, class },
            Refusal::Denied { rule, .. } => Refusal::Denied { target, rule },
            Refusal::ClusterApi { endpoint, .. } => Refusal::ClusterApi { target, endpoint },
            other => other,
        }
    }
}

/// The address a URL host names, when it is one: `url` has already turned every IPv4 spelling
/// into dotted form and put IPv6 addresses in brackets.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<IpAddr>().ok(),
    }
}

/// An address for a message: as written, plus the IPv4 address it carries when that differs.
fn shown(ip: IpAddr) -> String {
    match canonical(ip) {
        c if c != ip => format!("{ip} ({c})"),
        _ => ip.to_string(),
    }
}
