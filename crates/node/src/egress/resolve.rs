//! The delivery client's DNS resolver: looks a name up, then answers only with the addresses
//! the policy admits, so what is checked is exactly what is connected to (a name that
//! resolves to a refused address at send time — DNS rebinding — is never connected to).
//!
//! reqwest hands a resolver the host name alone; the policy also needs the port (an
//! `--allow-target host:port` rule, this cluster's API at `host:port`), so each resolver is
//! made for one destination port and the delivery client keeps one HTTP client per port.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::{Blocked, EgressPolicy};

/// Resolves names for connections to one port, filtered by an [`EgressPolicy`].
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: EgressPolicy,
    port: u16,
}

impl PolicyResolver {
    /// A resolver for connections to `port`.
    pub fn new(policy: EgressPolicy, port: u16) -> PolicyResolver {
        PolicyResolver { policy, port }
    }

    /// The admitted addresses of `host`: a refusal of the name itself, or of every address it
    /// resolved to, is a [`Blocked`] error (the first address's reason); refused addresses
    /// among admitted ones are dropped.
    pub async fn admitted(&self, host: &str) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let named = self.policy.check_name(host, self.port).map_err(Blocked)?;
        let mut refused = None;
        let mut kept = Vec::new();
        for addr in tokio::net::lookup_host((host, self.port)).await? {
            match self.policy.check_ip(addr.ip(), self.port, named) {
                Ok(()) => kept.push(addr),
                Err(r) => {
                    refused.get_or_insert(r);
                }
            }
        }
        match (kept.is_empty(), refused) {
            (true, Some(r)) => Err(Box::new(Blocked(r.resolved_from(host)))),
            _ => Ok(kept),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.admitted(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl super::Refusal {
    /// The same refusal, saying which name led to the address.
    fn resolved_from(self, host: &str) -> super::Refusal {
        use super::Refusal::*;
        let via = |target: String| format!("{host} resolves to {target}");
        match self {
            AlwaysRefused { target, class } => AlwaysRefused { target: via(target), class },
            Private { target, class } => Private { target: via(target), class },
            Denied { target, rule } => Denied { target: via(target), rule },
            ClusterApi { target, endpoint } => ClusterApi { target: via(target), endpoint },
            other => other,
        }
    }
}
