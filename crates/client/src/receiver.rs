//! For the receiving side of a delivery: check its `Belfry-Signature`, and run each fire's
//! work once by its `Idempotency-Key` (docs/DESIGN.md, "Delivery"). The rules are those of the
//! shared vectors in `sdk/testdata` (its README lists them in order), which the Python and
//! JavaScript helpers pass too.
//!
//! ```
//! use belfry_client::receiver::{verify_signature, Deduper};
//! use std::time::Duration;
//!
//! let dedupe = Deduper::new(100_000, Duration::from_secs(24 * 3600), Duration::from_secs(600));
//! # let (header, body, key) = ("t=0,v1=00", b"{}", "7:1700000000000");
//! // In the handler, with the raw body as received:
//! if verify_signature(header, body, &["whsec_current", "whsec_previous"], Duration::from_secs(300)).is_err() {
//!     // answer 401
//! } else if !dedupe.first_time(key) {
//!     // a repeat: 2xx if its work is done, 503 while another delivery still works on it
//!     let _done = dedupe.is_done(key);
//! } else {
//!     // do the work, then `dedupe.mark_done(key)` and 2xx; on failure `dedupe.forget(key)`
//!     // and 5xx, so belfry's retry runs it
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest `Belfry-Signature` header read, in characters.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Most digits of `t`: no implementation parses a number that could overflow.
pub const MAX_TIMESTAMP_DIGITS: usize = 15;

/// Why a signature was refused; the names are the vectors' `reason`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Longer than [`MAX_HEADER_BYTES`].
    #[error("Belfry-Signature too long")]
    HeaderTooLong,
    /// Absent, empty or blank.
    #[error("no Belfry-Signature")]
    MissingHeader,
    /// An entry without `name=`, or a second `t`.
    #[error("malformed Belfry-Signature")]
    Malformed,
    /// `t` is not 1 to [`MAX_TIMESTAMP_DIGITS`] ASCII digits.
    #[error("Belfry-Signature t is not a time")]
    BadTimestamp,
    /// No `t`.
    #[error("Belfry-Signature has no t")]
    MissingTimestamp,
    /// No `v1`.
    #[error("Belfry-Signature has no v1")]
    MissingSignature,
    /// `t` is further in the past than the tolerance (a replay, or a clock far off).
    #[error("Belfry-Signature t is older than the tolerance")]
    TimestampTooOld,
    /// `t` is further in the future than the tolerance.
    #[error("Belfry-Signature t is ahead by more than the tolerance")]
    TimestampInFuture,
    /// No `v1` matches the body under any of the secrets.
    #[error("no Belfry-Signature v1 matches the body under the given secrets")]
    NoMatch,
}

impl SignatureError {
    /// The reason's name in the shared vectors.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::HeaderTooLong => "header_too_long",
            SignatureError::MissingHeader => "missing_header",
            SignatureError::Malformed => "malformed",
            SignatureError::BadTimestamp => "bad_timestamp",
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::TimestampTooOld => "timestamp_too_old",
            SignatureError::TimestampInFuture => "timestamp_in_future",
            SignatureError::NoMatch => "no_match",
        }
    }
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
    if header.chars().count() > MAX_HEADER_BYTES {
        return Err(SignatureError::HeaderTooLong);
    }
    if header.trim_matches([' ', '\t']).is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut t = None;
    let mut macs = Vec::new();
    for entry in header.split(',') {
        let entry = entry.trim_matches([' ', '\t']);
        let Some((name, value)) = entry.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            return Err(SignatureError::Malformed);
        };
        match name {
            "t" if t.is_some() => return Err(SignatureError::Malformed),
            "t" => {
                let digits =
                    (1..=MAX_TIMESTAMP_DIGITS).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
                t = Some(value.parse::<i64>().ok().filter(|_| digits).ok_or(SignatureError::BadTimestamp)?);
            }
            // A v1 that is not 64 hex digits never matches.
            "v1" => macs.push(hex::decode(value).ok().filter(|m| m.len() == 32)),
            // Other schemes (a later version) are skipped.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::MissingTimestamp)?;
    if macs.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(t) > tolerance {
        return Err(SignatureError::TimestampTooOld);
    }
    if t.saturating_sub(now) > tolerance {
        return Err(SignatureError::TimestampInFuture);
    }
    let signed = [t.to_string().as_bytes(), b".", body].concat();
    for secret in secrets {
        for mac in macs.iter().flatten() {
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
/// `Idempotency-Key`. A key is *claimed* while its work runs (for at most `claim_ttl`, should
/// the handler die) and *done* once [`Deduper::mark_done`] says it succeeded (for `ttl`). In
/// memory, bounded in count, thread-safe; several receiver processes need a shared store (a
/// table with the key as primary key).
pub struct Deduper {
    inner: Mutex<Seen>,
    capacity: usize,
    ttl: Duration,
    claim_ttl: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Claimed,
    Done,
}

#[derive(Default)]
struct Seen {
    /// Key → (state, expiry, generation).
    at: HashMap<String, (Mark, Instant, u64)>,
    /// Keys by insertion, with the generation they were inserted with: the oldest first.
    order: VecDeque<(String, u64)>,
    generation: u64,
}

impl Deduper {
    /// Remembers at most `capacity` keys: done ones for `ttl` (at least the jobs'
    /// `retry.max_age`), claimed ones for `claim_ttl`.
    pub fn new(capacity: usize, ttl: Duration, claim_ttl: Duration) -> Deduper {
        Deduper { inner: Mutex::new(Seen::default()), capacity: capacity.max(1), ttl, claim_ttl }
    }

    /// Claims `key`: true when it was neither claimed nor done (the caller does the work).
    pub fn first_time(&self, key: &str) -> bool {
        self.first_time_at(key, Instant::now())
    }

    /// [`Deduper::first_time`] at `now`.
    pub fn first_time_at(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.lock();
        if seen.live(key, now).is_some() {
            return false;
        }
        seen.put(key, Mark::Claimed, now + self.claim_ttl, self.capacity);
        true
    }

    /// Records that `key`'s work succeeded: later deliveries of it are repeats of done work.
    pub fn mark_done(&self, key: &str) {
        self.mark_done_at(key, Instant::now())
    }

    /// [`Deduper::mark_done`] at `now`.
    pub fn mark_done_at(&self, key: &str, now: Instant) {
        self.lock().put(key, Mark::Done, now + self.ttl, self.capacity);
    }

    /// Whether `key`'s work is done (a repeat to answer 2xx), not just claimed (answer 503).
    pub fn is_done(&self, key: &str) -> bool {
        self.lock().live(key, Instant::now()) == Some(Mark::Done)
    }

    /// Forgets `key`: its work failed, and belfry's retry should run it.
    pub fn forget(&self, key: &str) {
        self.lock().at.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Seen {
    fn live(&mut self, key: &str, now: Instant) -> Option<Mark> {
        match self.at.get(key) {
            Some((mark, expires, _)) if *expires > now => Some(*mark),
            Some(_) => {
                self.at.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: &str, mark: Mark, expires: Instant, capacity: usize) {
        self.generation += 1;
        let generation = self.generation;
        self.at.insert(key.to_string(), (mark, expires, generation));
        self.order.push_back((key.to_string(), generation));
        // Past the bound, the oldest entries go first; an order entry whose key was put again
        // or forgotten since is stale, and skipped.
        while self.at.len() > capacity {
            let Some((oldest, generation)) = self.order.pop_front() else { break };
            if self.at.get(&oldest).is_some_and(|(_, _, g)| *g == generation) {
                self.at.remove(&oldest);
            }
        }
        if self.order.len() > 2 * capacity {
            let at = &self.at;
            self.order.retain(|(key, generation)| at.get(key).is_some_and(|(_, _, g)| g == generation));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors every receiver helper shares (sdk/testdata/README.md).
    #[test]
    fn the_shared_vectors_are_accepted_and_refused_alike() {
        use base64::Engine as _;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk/testdata/signatures.json");
        let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(file["max_header_length"].as_u64(), Some(MAX_HEADER_BYTES as u64));
        assert_eq!(file["max_timestamp_digits"].as_u64(), Some(MAX_TIMESTAMP_DIGITS as u64));
        let vectors = file["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 20, "{} vectors", vectors.len());
        for v in vectors {
            let body = match (v["body"].as_str(), v["body_base64"].as_str()) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
                (None, None) => panic!("{}: no body", v["name"]),
            };
            let secrets: Vec<&str> = v["secrets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            let tolerance = Duration::from_secs(v["tolerance"].as_u64().unwrap());
            let header = v["header"].as_str().unwrap();
            let got = verify_signature_at(header, &body, &secrets, tolerance, v["now"].as_i64().unwrap());
            let reason = got.err().map(|e| e.reason());
            assert_eq!(reason, v["reason"].as_str(), "{}", v["name"]);
            assert_eq!(got.is_ok(), v["valid"].as_bool().unwrap(), "{}", v["name"]);
        }
    }

    #[test]
    fn a_claimed_key_is_not_done_until_marked_and_comes_back_after_its_claim_expires() {
        let d = Deduper::new(10, Duration::from_secs(3600), Duration::from_secs(60));
        let now = Instant::now();
        assert!(d.first_time_at("7:1", now));
        assert!(!d.first_time_at("7:1", now + Duration::from_secs(59)), "claimed");
        assert!(!d.is_done("7:1"));
        assert!(d.first_time_at("7:1", now + Duration::from_secs(61)), "a dead handler's claim expires");
        d.mark_done_at("7:1", now + Duration::from_secs(61));
        assert!(d.is_done("7:1"));
        assert!(!d.first_time_at("7:1", now + Duration::from_secs(3000)), "done, within the ttl");
        d.forget("7:1");
        assert!(d.first_time_at("7:1", now + Duration::from_secs(3000)), "forgotten after a failure");
    }

    #[test]
    fn the_oldest_keys_make_room_past_the_capacity() {
        let d = Deduper::new(2, Duration::from_secs(60), Duration::from_secs(60));
        let now = Instant::now();
        assert!(d.first_time_at("a", now) && d.first_time_at("b", now) && d.first_time_at("c", now));
        assert!(d.first_time_at("a", now), "a was evicted for c");
        assert!(!d.first_time_at("c", now));
        for i in 0..100 {
            d.mark_done_at("c", now);
            assert!(d.first_time_at(&format!("k{i}"), now));
        }
        assert!(d.lock().at.len() <= 2 && d.lock().order.len() <= 5, "bounded");
    }

    #[test]
    fn concurrent_deliveries_of_one_key_run_it_once() {
        let d = std::sync::Arc::new(Deduper::new(1000, Duration::from_secs(60), Duration::from_secs(60)));
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
