//! For the receiving side of a delivery: check its `Belfry-Signature`, and deliver each fire's
//! work once by its `Idempotency-Key` (docs/DESIGN.md, "Delivery").
//!
//! ```
//! use belfry_client::receiver::{verify_signature, Deduper};
//! use std::time::Duration;
//!
//! let dedupe = Deduper::new(100_000, Duration::from_secs(7 * 24 * 3600));
//! # let (header, body, key) = ("t=0,v1=00", b"{}", "7:1700000000000");
//! // In the handler, with the raw body as received:
//! if verify_signature(header, body, &["whsec_current", "whsec_previous"], Duration::from_secs(300)).is_ok()
//!     && dedupe.first_time(key)
//! {
//!     // do the work; if it fails, `dedupe.forget(key)` so belfry's retry can run it
//! }
//! // answer 2xx for a duplicate too: it was done
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest `Belfry-Signature` header read: a timestamp and a few dozen `v1` entries.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<unix>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed Belfry-Signature: {0}")]
    Malformed(&'static str),
    /// `t` is further from now than the tolerance (a replay, or a clock far off).
    #[error("Belfry-Signature timestamp {t} is {off_s} s from now, beyond the tolerance of {tolerance_s} s")]
    OutsideTolerance {
        /// The header's timestamp.
        t: i64,
        /// Its distance from now, in seconds.
        off_s: u64,
        /// The tolerance given.
        tolerance_s: u64,
    },
    /// No `v1` matches the body under any of the secrets.
    #[error("no Belfry-Signature v1 matches the body under the given secrets")]
    NoMatch,
}

/// Checks `header` (the `Belfry-Signature` value) against `body` (the raw bytes received) with
/// any of `secrets` (several during a key rotation), at the current time.
pub fn verify_signature<S: AsRef<[u8]>>(
    header: &str,
    body: &[u8],
    secrets: &[S],
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    verify_signature_at(header, body, secrets, tolerance, now)
}

/// [`verify_signature`] at `now` (Unix seconds).
pub fn verify_signature_at<S: AsRef<[u8]>>(
    header: &str,
    body: &[u8],
    secrets: &[S],
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed("header too long"));
    }
    let mut t = None;
    let mut macs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => {
                let digits = !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit());
                t = Some(v.parse::<i64>().ok().filter(|_| digits).ok_or(SignatureError::Malformed("t is not a time"))?);
            }
            Some(("t", _)) => return Err(SignatureError::Malformed("more than one t")),
            Some(("v1", v)) => macs.push(hex::decode(v).map_err(|_| SignatureError::Malformed("v1 is not hex"))?),
            // Other schemes (a later version) are skipped, as long as one v1 is present.
            Some(_) => {}
            None => return Err(SignatureError::Malformed("an entry without '='")),
        }
    }
    let t = t.ok_or(SignatureError::Malformed("no t"))?;
    if macs.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    let off_s = now.abs_diff(t);
    if off_s > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance { t, off_s, tolerance_s: tolerance.as_secs() });
    }
    let signed = [t.to_string().as_bytes(), b".", body].concat();
    for secret in secrets {
        for mac in &macs {
            let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret.as_ref()) else { continue };
            m.update(&signed);
            // Constant time in the compared bytes.
            if m.verify_slice(mac).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// The keys seen lately, to run each fire's work once: belfry delivers a fire at least once
/// (a retry, or a repeat after a worker died mid-send), always with the same
/// `Idempotency-Key`. In memory, bounded in count and age; thread-safe. A store shared by
/// several receiver processes (a database's unique key) does the same across processes.
pub struct Deduper {
    inner: Mutex<Seen>,
    capacity: usize,
    ttl: Duration,
}

struct Seen {
    at: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Deduper {
    /// Remembers at most `capacity` keys, each for `ttl` (longer than a fire's retries last).
    pub fn new(capacity: usize, ttl: Duration) -> Deduper {
        Deduper { inner: Mutex::new(Seen { at: HashMap::new(), order: VecDeque::new() }), capacity, ttl }
    }

    /// Records `key` and says whether this is its first time (within the bounds).
    pub fn first_time(&self, key: &str) -> bool {
        self.first_time_at(key, Instant::now())
    }

    /// [`Deduper::first_time`] at `now`.
    pub fn first_time_at(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        seen.expire(now, self.ttl);
        if seen.at.contains_key(key) {
            return false;
        }
        while seen.at.len() >= self.capacity.max(1) {
            let Some((at, oldest)) = seen.order.pop_front() else { break };
            if seen.at.get(&oldest) == Some(&at) {
                seen.at.remove(&oldest);
            }
        }
        seen.at.insert(key.to_string(), now);
        seen.order.push_back((now, key.to_string()));
        true
    }

    /// Forgets `key`: its work failed, and belfry's retry should run it.
    pub fn forget(&self, key: &str) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).at.remove(key);
    }
}

impl Seen {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < ttl {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                if self.at.get(&key) == Some(&at) {
                    self.at.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;
    // printf '1700000000.hello' | openssl dgst -sha256 -hmac secret
    const HELLO: &str = "47b1df0ab12338b2685470b0d2b37033add7c3b2bc8172f313e77413f1bb78c8";
    const MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_from_one_of_the_secrets_is_accepted() {
        let header = format!("t={T},v1={HELLO}");
        assert_eq!(verify_signature_at(&header, b"hello", &["secret"], MINUTES, T + 10), Ok(()));
        assert_eq!(verify_signature_at(&header, b"hello", &["new", "secret"], MINUTES, T), Ok(()));
        let rotated = format!("t={T},v1={},v1={HELLO}", "00".repeat(32));
        assert_eq!(verify_signature_at(&rotated, b"hello", &["secret"], MINUTES, T), Ok(()));
        let upper = format!("t={T},v1={}", HELLO.to_uppercase());
        assert_eq!(verify_signature_at(&upper, b"hello", &["secret"], MINUTES, T), Ok(()));
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_an_old_timestamp_is_refused() {
        let header = format!("t={T},v1={HELLO}");
        assert_eq!(verify_signature_at(&header, b"hellO", &["secret"], MINUTES, T), Err(SignatureError::NoMatch));
        assert_eq!(verify_signature_at(&header, b"hello", &["other"], MINUTES, T), Err(SignatureError::NoMatch));
        let late = verify_signature_at(&header, b"hello", &["secret"], MINUTES, T + 301);
        assert!(matches!(late, Err(SignatureError::OutsideTolerance { off_s: 301, .. })), "{late:?}");
        let early = verify_signature_at(&header, b"hello", &["secret"], MINUTES, T - 301);
        assert!(matches!(early, Err(SignatureError::OutsideTolerance { .. })), "{early:?}");
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let huge_t = format!("t={},v1={HELLO}", "9".repeat(40));
        let long = format!("t={T},v1={}", "a".repeat(MAX_HEADER_BYTES));
        for header in ["", "garbage", "t=abc,v1=00", "v1=00", &format!("t={T}"), "t=-5,v1=00", &huge_t, &long] {
            let r = verify_signature_at(header, b"hello", &["secret"], MINUTES, T);
            assert!(matches!(r, Err(SignatureError::Malformed(_))), "{header:.40}: {r:?}");
        }
        let r = verify_signature_at(&format!("t={T},v1=zz"), b"hello", &["secret"], MINUTES, T);
        assert!(matches!(r, Err(SignatureError::Malformed(_))), "{r:?}");
    }

    /// The vectors every receiver helper shares (sdk/testdata/README.md).
    #[test]
    fn the_shared_vectors_are_accepted_and_refused_alike() {
        use base64::Engine as _;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/testdata/signatures.json");
        let vectors: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases = vectors["cases"].as_array().unwrap();
        assert!(cases.len() >= 20, "{} cases", cases.len());
        for c in cases {
            let body = base64::engine::general_purpose::STANDARD.decode(c["body_b64"].as_str().unwrap()).unwrap();
            let secrets: Vec<&str> = c["secrets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            let tolerance = Duration::from_secs(c["tolerance_s"].as_u64().unwrap());
            let got = verify_signature_at(
                c["header"].as_str().unwrap(),
                &body,
                &secrets,
                tolerance,
                c["now"].as_i64().unwrap(),
            );
            let reason = match &got {
                Ok(()) => "valid",
                Err(SignatureError::Malformed(_)) => "malformed",
                Err(SignatureError::OutsideTolerance { .. }) => "outside_tolerance",
                Err(SignatureError::NoMatch) => "no_match",
            };
            let want = if c["valid"].as_bool().unwrap() { "valid" } else { c["reason"].as_str().unwrap() };
            assert_eq!(reason, want, "{}: {got:?}", c["name"]);
        }
    }

    #[test]
    fn a_key_counts_once_until_it_expires_or_is_forgotten() {
        let d = Deduper::new(10, Duration::from_secs(60));
        let now = Instant::now();
        assert!(d.first_time_at("7:1", now));
        assert!(!d.first_time_at("7:1", now + Duration::from_secs(59)));
        assert!(d.first_time_at("7:1", now + Duration::from_secs(61)), "expired after the ttl");
        d.forget("7:1");
        assert!(d.first_time_at("7:1", now + Duration::from_secs(62)), "forgotten after a failure");
    }

    #[test]
    fn the_oldest_keys_make_room_past_the_capacity() {
        let d = Deduper::new(2, Duration::from_secs(60));
        let now = Instant::now();
        assert!(d.first_time_at("a", now) && d.first_time_at("b", now) && d.first_time_at("c", now));
        assert!(d.first_time_at("a", now), "a was evicted for c");
        assert!(!d.first_time_at("c", now));
    }

    #[test]
    fn concurrent_deliveries_of_one_key_run_it_once() {
        let d = std::sync::Arc::new(Deduper::new(1000, Duration::from_secs(60)));
        let firsts: usize = (0..8)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || d.first_time("7:1700000000000") as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(firsts, 1);
    }
}
