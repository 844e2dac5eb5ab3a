//! The workers' HTTP client: every connection through the egress policy's resolver, literal
//! addresses and redirect hops checked before each request, redirects followed only as far
//! as `--follow-redirects` says.
//!
//! reqwest's resolver sees the host name but not the port, and the policy needs both, so the
//! client keeps one `reqwest::Client` (and connection pool) per destination port, each with a
//! resolver for that port; at most [`MAX_CACHED_PORTS`] are kept, and a send to yet another
//! port builds a client for that send alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode, Url};

use super::{clip, request, Delivery, Outcome, Signer};
use crate::egress::{Blocked, EgressPolicy, PolicyResolver};

/// How long connecting (DNS included) may take, within the attempt's own timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most destination ports with a pooled client of their own: the ports of real targets are
/// few (80, 443, a handful more); beyond this, sends still work, unpooled.
pub const MAX_CACHED_PORTS: usize = 64;

/// Sends deliveries under an [`EgressPolicy`]. Cheap to clone; clones share the pools.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    policy: EgressPolicy,
    /// Idle connections kept per host: as many as sends may run at once, so a burst reuses
    /// the connections of the last one instead of opening new ones.
    idle_per_host: usize,
    clients: Arc<Mutex<HashMap<u16, reqwest::Client>>>,
}

/// The client a worker sends with, built once: its pools and the policy's view of this
/// cluster's API endpoints are shared by every send.
pub fn client(policy: &EgressPolicy, idle_per_host: usize) -> DeliveryClient {
    DeliveryClient { policy: policy.clone(), idle_per_host, clients: Arc::default() }
}

fn build(policy: &EgressPolicy, port: u16, idle_per_host: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver::new(policy.clone(), port)))
        .redirect(reqwest::redirect::Policy::none())
        // Every request that leaves is an attempt in the fire's history, under belfry's retry
        // policy; the client retrying a refused stream on its own would be neither (and its
        // budget and request copies cost a few percent of a worker's CPU).
        .retry(reqwest::retry::never())
        // A proxy would resolve target names itself, out of the policy's sight.
        .no_proxy()
        .pool_max_idle_per_host(idle_per_host)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("belfry/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Scheme, host and port: a redirect to another origin drops the secret headers.
fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_string(), url.host_str().map(str::to_string), url.port_or_known_default())
}

/// Whether `status` is a redirect belfry can follow.
fn followable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl DeliveryClient {
    /// The policy this client applies.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    fn for_port(&self, port: u16) -> reqwest::Result<reqwest::Client> {
        // A std lock: held only while a client is looked up or built, never across an await.
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&port) {
            return Ok(c.clone());
        }
        let c = build(&self.policy, port, self.idle_per_host)?;
        if clients.len() < MAX_CACHED_PORTS {
            clients.insert(port, c.clone());
        }
        Ok(c)
    }

    /// Sends `d` and classifies the outcome; never fails (transport errors and refusals are
    /// outcomes). Signed by `signer` when given. Each
    /// hop is signed over the body it carries; the attempt's timeout covers all hops.
    pub async fn send(&self, d: &Delivery, signer: Option<&Signer>, worker: u64) -> belfry_core::Attempt {
        let started_at = Utc::now();
        let sign = |body: &[u8]| signer.map(|s| s.sign(started_at.timestamp(), body));
        self.follow(d, &sign).await.attempt(d, worker, started_at)
    }

    async fn follow(&self, d: &Delivery, sign: &(dyn Fn(&[u8]) -> Option<String> + Sync)) -> Outcome {
        let deadline = tokio::time::Instant::now() + d.timeout;
        let mut url = match Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => return Outcome::permanent(format!("the target URL does not parse: {e}")),
        };
        let mut method = Method::from_bytes(d.method.as_bytes()).unwrap_or(Method::POST);
        let mut body = d.body.clone();
        let mut same_origin = true;
        let max = self.policy.max_redirects();
        let mut hop = 0u8;
        loop {
            if let Err(refusal) = self.policy.check_url(&url) {
                return Outcome::permanent(match hop {
                    0 => Blocked(refusal).to_string(),
                    n => format!("blocked by egress policy: redirect {n} to {url}: {refusal}"),
                });
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Outcome::timed_out(d.timeout, hop);
            }
            let client = match self.for_port(url.port_or_known_default().unwrap_or(80)) {
                Ok(c) => c,
                Err(e) => return Outcome::retryable(format!("building the HTTP client failed: {e}")),
            };
            // Credentials configured for the target are not handed to another origin.
            let headers = d
                .headers
                .iter()
                .filter(|(k, _)| same_origin || !belfry_core::job::is_secret_header(k))
                .map(|(k, v)| (k.as_str(), v.as_str()));
            let signed = sign(&body);
            let req = request(client.request(method.clone(), url.clone()), d, headers, body.clone(), remaining, signed);
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return Outcome::failed(&e, d.timeout),
            };
            let status = resp.status();
            let next = followable(status)
                .then(|| resp.headers().get(reqwest::header::LOCATION))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| url.join(v).ok());
            match next {
                Some(next) if hop < max => {
                    if matches!(status.as_u16(), 301..=303) && method != Method::HEAD {
                        method = Method::GET;
                        body.clear();
                    }
                    same_origin &= origin(&next) == origin(&url);
                    url = next;
                    hop += 1;
                }
                _ => {
                    let mut outcome = Outcome::answered(&mut resp).await;
                    if status.is_redirection() {
                        outcome.error = Some(clip(match (next, max) {
                            (Some(to), 0) => format!("redirect to {to} not followed: --follow-redirects is 0"),
                            (Some(to), n) => format!("redirect to {to} not followed: more than {n} redirects"),
                            (None, _) if followable(status) => "a redirect without a usable Location".into(),
                            (None, _) => format!("{status} is not a redirect belfry follows"),
                        }));
                    }
                    return outcome;
                }
            }
        }
    }
}

impl Outcome {
    /// A failure worth another attempt.
    fn retryable(error: String) -> Outcome {
        Outcome { class: belfry_core::ResultClass::Retryable, ..Outcome::permanent(error) }
    }

    /// The attempt's timeout ran out between hops.
    fn timed_out(timeout: Duration, hops: u8) -> Outcome {
        Outcome::retryable(format!("timed out after {timeout:?} ({hops} redirects followed)"))
    }
}
