//! One HTTP delivery attempt: the configured request plus belfry's headers.

use std::time::Duration;

use belfry_core::{Attempt, ResultClass};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the answer body kept for the execution record.
const BODY_EXCERPT: usize = 512;

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
    /// Signing secret, when deliveries are signed.
    pub signing_secret: Option<String>,
}

/// `t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `d` and classifies the outcome. Never fails: transport errors are outcomes too.
pub async fn send(client: &reqwest::Client, d: &Delivery, worker: u64) -> Attempt {
    let started_at = Utc::now();
    let method = reqwest::Method::from_bytes(d.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut req = client.request(method, &d.url).timeout(d.timeout).body(d.body.clone());
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    req = req
        .header("Idempotency-Key", &d.key)
        .header("Belfry-Job", &d.job)
        .header("Belfry-Scheduled-At", belfry_core::api::rfc3339(d.scheduled_at))
        .header("Belfry-Attempt", d.attempt.to_string());
    if let Some(secret) = &d.signing_secret {
        req = req.header("Belfry-Signature", signature(secret, started_at.timestamp(), &d.body));
    }
    let (class, http_status, error, body_excerpt, retry_after_ms) = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after_ms(v, Utc::now()));
            let excerpt = match resp.bytes().await {
                Ok(b) => Some(String::from_utf8_lossy(&b[..b.len().min(BODY_EXCERPT)]).into_owned()),
                Err(_) => None,
            };
            (ResultClass::of_status(status), Some(status), None, excerpt.filter(|e| !e.is_empty()), retry_after)
        }
        Err(e) => {
            let what = if e.is_timeout() {
                format!("timed out after {:?}", d.timeout)
            } else if e.is_connect() {
                "connection failed".to_string()
            } else {
                "request failed".to_string()
            };
            (ResultClass::Retryable, None, Some(format!("{what}: {}", root_cause(&e))), None, None)
        }
    };
    Attempt {
        number: d.attempt,
        worker,
        started_at,
        finished_at: Utc::now(),
        class,
        http_status,
        error,
        body_excerpt,
        retry_after_ms,
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A `Retry-After` value in milliseconds from `now`: delay-seconds or an HTTP date (RFC 9110).
fn retry_after_ms(value: &str, now: chrono::DateTime<Utc>) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).num_milliseconds().max(0) as u64)
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

    #[test]
    fn reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms("Sun, 29 Nov 2026 12:00:30 GMT", now), Some(30_000));
        assert_eq!(retry_after_ms("Sun, 29 Nov 2026 11:00:00 GMT", now), Some(0), "a past date means now");
        assert_eq!(retry_after_ms("soon", now), None);
    }
}
