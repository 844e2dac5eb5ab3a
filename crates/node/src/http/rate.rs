//! Request rate limits (docs/SECURITY.md, "Rate limits"): one bucket per API token, and one
//! per client address for requests that carry no valid token, so that a client without a token
//! (guessing one, or with authentication off) cannot take more than its share either.
//!
//! Buckets are GCRA (the `governor` crate): `per_second` requests a second on average, up to
//! `burst` at once. They are per node, not cluster-wide: a client spreading its requests over
//! three nodes gets three times the rate, which is still bounded. A refusal carries how long
//! until the next request would pass, for `Retry-After`.
//!
//! Memory is bounded: tokens are at most [`belfry_core::state::tokens::MAX_TOKENS`] plus the
//! bootstrap token; client addresses are keyed per IPv4 address and per IPv6 /64 (one host
//! owns a whole /64), and past [`MAX_CLIENTS`] addresses, buckets idle long enough to be full
//! again are dropped; if all are busy, new addresses share one overflow bucket.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Default average requests per second per token (and per client address without one).
pub const DEFAULT_PER_SECOND: u32 = 50;
/// Default burst: a CLI `--all` listing or a page load of the console fits in it.
pub const DEFAULT_BURST: u32 = 100;
/// Client addresses tracked before idle buckets are dropped.
pub const MAX_CLIENTS: usize = 10_000;

/// A request rate: `per_second` on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Average requests per second.
    pub per_second: NonZeroU32,
    /// Most requests at once.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` and `burst`, or `None` when either is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_second: NonZeroU32::new(per_second)?, burst: NonZeroU32::new(burst)? })
    }
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit::new(DEFAULT_PER_SECOND, DEFAULT_BURST)
            .unwrap_or(RateLimit { per_second: NonZeroU32::MIN, burst: NonZeroU32::MIN })
    }
}

/// Refused: the bucket is empty for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

impl Throttled {
    /// Whole seconds to wait, at least 1: the value of `Retry-After`.
    pub fn retry_after_secs(self) -> u64 {
        self.0.as_secs().saturating_add(u64::from(self.0.subsec_nanos() > 0)).max(1)
    }
}

/// The buckets of one node.
pub struct Limiters {
    tokens: DefaultKeyedRateLimiter<String>,
    clients: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Limiters {
    /// Buckets of `limit` each.
    pub fn new(limit: RateLimit) -> Limiters {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Limiters {
            tokens: DefaultKeyedRateLimiter::keyed(quota),
            clients: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the token's bucket.
    pub fn check_token(&self, id: &str) -> Result<(), Throttled> {
        let key = id.to_string();
        self.tokens.check_key(&key).map_err(|not_until| Throttled(not_until.wait_time_from(self.clock.now())))
    }

    /// Takes one request from the client address's bucket.
    pub fn check_client(&self, ip: IpAddr) -> Result<(), Throttled> {
        let mut key = client_key(ip);
        if self.clients.len() >= MAX_CLIENTS {
            self.clients.retain_recent();
            if self.clients.len() >= MAX_CLIENTS {
                key = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            }
        }
        self.clients.check_key(&key).map_err(|not_until| Throttled(not_until.wait_time_from(self.clock.now())))
    }
}

/// The bucket an address counts against: IPv4 (also when mapped into IPv6) per address, other
/// IPv6 per /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_the_next_request_waits() {
        let limiters = Limiters::new(RateLimit::new(1, 3).expect("a limit"));
        for _ in 0..3 {
            assert_eq!(limiters.check_token("abcdef123456"), Ok(()));
        }
        let refused = limiters.check_token("abcdef123456").expect_err("the fourth is over the burst");
        assert!(refused.0 <= Duration::from_secs(1), "{refused:?}");
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(limiters.check_token("zyxwvu987654"), Ok(()), "another token has its own bucket");
    }

    #[test]
    fn clients_share_a_bucket_per_address_and_per_ipv6_64() {
        let limiters = Limiters::new(RateLimit::new(1, 1).expect("a limit"));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(limiters.check_client(a), Ok(()));
        assert!(limiters.check_client(b).is_err(), "the same /64 is the same client");
        assert_eq!(limiters.check_client("2001:db8:1:3::1".parse().unwrap()), Ok(()));
        assert_eq!(limiters.check_client("192.0.2.1".parse().unwrap()), Ok(()));
        assert!(limiters.check_client("::ffff:192.0.2.1".parse().unwrap()).is_err(), "a mapped v4 is that v4");
    }

    #[test]
    fn zero_means_no_limit_and_retry_after_rounds_up() {
        assert_eq!(RateLimit::new(0, 10), None);
        assert_eq!(RateLimit::new(10, 0), None);
        assert_eq!(Throttled(Duration::from_millis(1)).retry_after_secs(), 1);
        assert_eq!(Throttled(Duration::from_millis(1001)).retry_after_secs(), 2);
        assert_eq!(Throttled(Duration::ZERO).retry_after_secs(), 1);
    }
}
