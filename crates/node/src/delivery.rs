//! One HTTP delivery attempt: the configured request plus belfry's headers.
//!
//! Everything read from the target is bounded: at most [`BODY_EXCERPT`] bytes of its answer
//! are read (the rest is never received: the connection is dropped), a `Retry-After` is
//! capped at [`MAX_RETRY_AFTER_MS`], and an error's text at [`MAX_ERROR_BYTES`].
//!
//! Workers send through a [`DeliveryClient`] ([`client`]): it applies the egress policy
//! (`crate::egress`) to every address it connects to and to every redirect hop, follows
//! redirects only as `--follow-redirects` allows, and signs with a [`Signer`]. A refused send is
//! a `Permanent` outcome whose error starts with "blocked by egress policy". [`send`] is the
//! older entry point, for a caller's own `reqwest::Client`, with no policy.

mod client;
mod signing;

use std::time::Duration;

use belfry_core::{Attempt, ResultClass};
use chrono::{DateTime, Utc};

pub use client::{client, DeliveryClient, CONNECT_TIMEOUT, MAX_CACHED_PORTS};
pub use signing::{parse_keys, Signer, SigningError, MAX_FILE_BYTES, MAX_KEY_BYTES, MAX_SIGNING_KEYS, MIN_KEY_BYTES};

/// Bytes of the answer body read and kept for the execution record: what the state keeps.
pub const BODY_EXCERPT: usize = belfry_core::fire::MAX_BODY_EXCERPT_BYTES;

/// The longest wait a target's `Retry-After` can ask for (1 h). Capped where it is read as
/// well as where the retry policy applies it, so an attempt never records a wait of years.
pub use belfry_core::retry::MAX_RETRY_AFTER_MS;

/// Longest error text recorded for an attempt, in bytes (what the state keeps): the root
/// cause of a transport error can quote what the target sent.
pub const MAX_ERROR_BYTES: usize = belfry_core::fire::MAX_ERROR_BYTES;

/// Everything a worker needs to send one attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The fire key (`Idempotency-Key`).
    pub key: String,
    /// The attempt number (`Belfry-Attempt`).
    pub attempt: u32,
    /// Job name (`Belfry-Job`).
    pub job: String,
    /// The scheduled instant (`Belfry-Scheduled-At`).
    pub scheduled_at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Target URL.
    pub url: String,
    /// Configured headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Attempt timeout.
    pub timeout: Duration,
}

/// `t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>`: the signature with one key.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    format!("t={unix},v1={}", signing::mac_hex(secret.as_bytes(), unix, body))
}

/// Sends `d` unsigned with `client` as it is configured (its own redirect policy, no egress
/// policy) and classifies the outcome. Never fails: transport errors are outcomes too. Workers
/// send through [`DeliveryClient::send`] instead.
pub async fn send(client: &reqwest::Client, d: &Delivery, worker: u64) -> Attempt {
    let started_at = Utc::now();
    let method = reqwest::Method::from_bytes(d.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let headers = d.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let req = request(client.request(method, &d.url), d, headers, d.body.clone(), d.timeout, None);
    let outcome = match req.send().await {
        Ok(mut resp) => Outcome::answered(&mut resp).await,
        Err(e) => Outcome::failed(&e, d.timeout),
    };
    outcome.attempt(d, worker, started_at)
}

/// `builder` with the configured headers, belfry's headers, the body and the timeout.
fn request<'a>(
    mut builder: reqwest::RequestBuilder,
    d: &Delivery,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: Vec<u8>,
    timeout: Duration,
    signature: Option<String>,
) -> reqwest::RequestBuilder {
    let json = needs_json_content_type(d, &body);
    builder = builder.timeout(timeout).body(body);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    if json {
        builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json");
    }
    builder = builder
        .header("Idempotency-Key", &d.key)
        .header("Belfry-Job", &d.job)
        .header("Belfry-Scheduled-At", belfry_core::api::rfc3339(d.scheduled_at))
        .header("Belfry-Attempt", d.attempt.to_string());
    match signature {
        Some(s) => builder.header("Belfry-Signature", s),
        None => builder,
    }
}

/// Whether a request with `body` needs `Content-Type: application/json` added: the target names
/// no content type of its own and the body is a JSON document.
fn needs_json_content_type(d: &Delivery, body: &[u8]) -> bool {
    let starts_like_json = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'['));
    starts_like_json
        && !d.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// What an attempt came to, before it is stamped with its number, worker and times.
struct Outcome {
    class: ResultClass,
    http_status: Option<u16>,
    error: Option<String>,
    body_excerpt: Option<String>,
    retry_after_ms: Option<u64>,
}

impl Outcome {
    /// An attempt that must not be repeated (the policy refused it, the URL is unusable).
    fn permanent(error: String) -> Outcome {
        Outcome {
            class: ResultClass::Permanent,
            http_status: None,
            error: Some(clip(error)),
            body_excerpt: None,
            retry_after_ms: None,
        }
    }

    /// The target answered: its status, `Retry-After` and the start of its body.
    async fn answered(resp: &mut reqwest::Response) -> Outcome {
        let status = resp.status().as_u16();
        let retry_after_ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_ms(v, Utc::now()));
        let body_excerpt = excerpt(resp).await;
        Outcome {
            class: ResultClass::of_status(status),
            http_status: Some(status),
            error: None,
            body_excerpt,
            retry_after_ms,
        }
    }

    /// No answer: retryable, unless the egress policy refused every address (permanent).
    fn failed(e: &reqwest::Error, timeout: Duration) -> Outcome {
        if let Some(blocked) = blocked(e) {
            return Outcome::permanent(blocked.to_string());
        }
        let what = if e.is_timeout() {
            format!("timed out after {timeout:?}")
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        };
        Outcome {
            class: ResultClass::Retryable,
            http_status: None,
            error: Some(clip(format!("{what}: {}", root_cause(e)))),
            body_excerpt: None,
            retry_after_ms: None,
        }
    }

    fn attempt(self, d: &Delivery, worker: u64, started_at: DateTime<Utc>) -> Attempt {
        Attempt {
            number: d.attempt,
            worker,
            started_at,
            finished_at: Utc::now(),
            class: self.class,
            http_status: self.http_status,
            error: self.error,
            body_excerpt: self.body_excerpt,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

/// The egress refusal somewhere in `e`'s sources (the resolver's error), if any.
fn blocked<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::egress::Blocked> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(b) = err.downcast_ref::<crate::egress::Blocked>() {
            return Some(b);
        }
        cur = err.source();
    }
    None
}

/// The first [`BODY_EXCERPT`] bytes of the answer, read chunk by chunk as they arrive; the
/// answer is dropped after them, unread. A body that fails midway keeps what arrived.
async fn excerpt(resp: &mut reqwest::Response) -> Option<String> {
    let mut kept = Vec::with_capacity(BODY_EXCERPT);
    while kept.len() < BODY_EXCERPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(BODY_EXCERPT - kept.len());
                kept.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let whole = if kept.len() == BODY_EXCERPT { without_cut_character(&kept) } else { &kept };
    (!whole.is_empty()).then(|| String::from_utf8_lossy(whole).into_owned())
}

/// `bytes` without a UTF-8 sequence cut short at its end (the excerpt's cut is not the
/// body's end), so the record does not end in a replacement character for no reason.
fn without_cut_character(bytes: &[u8]) -> &[u8] {
    // A sequence is at most 4 bytes: look back at most 3 for its leading byte.
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 != 0x80 {
            let needed = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if needed > back { &bytes[..bytes.len() - back] } else { bytes };
        }
    }
    bytes
}

/// `s` cut to at most [`MAX_ERROR_BYTES`] on a character boundary, marked with `…` when cut.
fn clip(mut s: String) -> String {
    if s.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A `Retry-After` value in milliseconds from `now`: delay-seconds or an HTTP date (RFC 9110),
/// at most [`MAX_RETRY_AFTER_MS`]; a date in the past means now. Delay-seconds too large for
/// a `u64` are as large as any, so they are capped rather than ignored.
fn retry_after_ms(value: &str, now: chrono::DateTime<Utc>) -> Option<u64> {
    let value = value.trim();
    let ms = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        u64::try_from(at.with_timezone(&Utc).signed_duration_since(now).num_milliseconds()).unwrap_or(0)
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference value computed with: printf '1700000000.hello' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, b"hello"),
            "t=1700000000,v1=47b1df0ab12338b2685470b0d2b37033add7c3b2bc8172f313e77413f1bb78c8"
        );
    }

    fn delivery(body: &str, headers: &[(&str, &str)]) -> Delivery {
        Delivery {
            key: "7:1700000000000".into(),
            attempt: 1,
            job: "demo".into(),
            scheduled_at: Utc::now(),
            method: "POST".into(),
            url: String::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Sends `d` to a fresh sink and returns what the sink recorded.
    async fn received(mut d: Delivery) -> crate::sink::Received {
        let (addr, sink) = crate::sink::bind("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
        d.url = format!("http://{addr}/hook");
        let attempt = send(&reqwest::Client::new(), &d, 1).await;
        assert_eq!(attempt.http_status, Some(200), "{attempt:?}");
        let got: Vec<crate::sink::Received> =
            reqwest::get(format!("http://{addr}/_sink/deliveries")).await.unwrap().json().await.unwrap();
        sink.abort();
        assert_eq!(got.len(), 1);
        got.into_iter().next().unwrap()
    }

    #[tokio::test]
    async fn a_json_body_without_a_content_type_is_sent_as_application_json() {
        let r = received(delivery(" {\"hello\": \"belfry\"}", &[])).await;
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"));
        assert_eq!(r.body, " {\"hello\": \"belfry\"}");
        assert_eq!((r.method.as_str(), r.path.as_str(), r.key.as_str()), ("POST", "/hook", "7:1700000000000"));
        assert_eq!(r.headers.get("belfry-attempt").map(String::as_str), Some("1"));
    }

    #[tokio::test]
    async fn a_configured_content_type_or_a_body_that_is_not_json_gets_none_added() {
        let r = received(delivery("{\"a\":1}", &[("Content-Type", "application/vnd.custom+json")])).await;
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/vnd.custom+json"));
        let r = received(delivery("{not json", &[])).await;
        assert_eq!(r.headers.get("content-type"), None);
        let r = received(delivery("plain text", &[("X-Trace", "1")])).await;
        assert_eq!(r.headers.get("content-type"), None);
        assert_eq!(r.headers.get("x-trace").map(String::as_str), Some("1"));
    }

    #[test]
    fn reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms("Sun, 29 Nov 2026 12:00:30 GMT", now), Some(30_000));
        assert_eq!(retry_after_ms("Sun, 29 Nov 2026 11:00:00 GMT", now), Some(0), "a past date means now");
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("", now), None);
    }

    #[test]
    fn retry_after_is_capped_at_an_hour() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after_ms("3600", now), Some(3_600_000));
        assert_eq!(retry_after_ms("10000000000000", now), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(retry_after_ms("99999999999999999999999999", now), Some(MAX_RETRY_AFTER_MS), "beyond u64");
        let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z").unwrap().to_utc();
        let date = far.to_rfc2822();
        assert!(date.contains("9999"), "{date}");
        assert_eq!(retry_after_ms(&date, now), Some(MAX_RETRY_AFTER_MS), "{date}");
        assert_eq!(retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_RETRY_AFTER_MS));
    }

    #[test]
    fn an_error_text_is_cut_on_a_character_boundary() {
        assert_eq!(clip("short".into()), "short");
        let long = clip("é".repeat(MAX_ERROR_BYTES));
        assert!(long.len() <= MAX_ERROR_BYTES && long.ends_with('…'), "{} bytes", long.len());
        assert!(long.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_excerpt_cut_inside_a_character_drops_the_partial_character() {
        assert_eq!(without_cut_character(b"abc"), b"abc");
        assert_eq!(without_cut_character("aé".as_bytes()), "aé".as_bytes());
        assert_eq!(without_cut_character(&"aé".as_bytes()[..2]), b"a");
        assert_eq!(without_cut_character(&"a€".as_bytes()[..3]), b"a");
        assert_eq!(without_cut_character(&"a😀".as_bytes()[..4]), b"a");
        assert_eq!(without_cut_character("a😀".as_bytes()), "a😀".as_bytes());
    }
}
