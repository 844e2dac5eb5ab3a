//! Validation of a [`JobSpec`] against the bounds in [`crate::job`]: every refusal is an
//! [`ApplyError::Invalid`] naming the field, and a refused spec changes nothing.

use std::collections::BTreeSet;

use belfry_schedule::Schedule;
use chrono::{DateTime, Utc};

use super::{
    HistoryPolicy, HttpTarget, JobSpec, MisfirePolicy, RetryPolicy, MAX_ATTEMPTS, MAX_BODY_BYTES, MAX_GRACE,
    MAX_HEADERS, MAX_HEADERS_BYTES, MAX_HEADER_NAME_BYTES, MAX_HEADER_VALUE_BYTES, MAX_HISTORY_AGE, MAX_HISTORY_COUNT,
    MAX_INITIAL_BACKOFF, MAX_MAX_BACKOFF, MAX_NAME_BYTES, MAX_RETRY_AGE, MAX_SPEC_BYTES, MAX_TIMEOUT, MAX_URL_BYTES,
};
use crate::duration::HumanDuration;
use crate::error::ApplyError;

impl JobSpec {
    /// Checks everything that can be checked without the state; the error names the field.
    /// `now` anchors an `every` schedule without `start_at`.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<Schedule, ApplyError> {
        validate_name(&self.name)?;
        let schedule = Schedule::parse(&self.schedule, now)?;
        self.target.validate()?;
        self.misfire.validate()?;
        self.retry.validate()?;
        self.history.validate()?;
        // Last, so that a field over its own bound is named rather than the whole spec.
        let size = serde_json::to_vec(self).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_SPEC_BYTES {
            return Err(ApplyError::invalid("spec", format!("larger than {MAX_SPEC_BYTES} bytes as JSON")));
        }
        Ok(schedule)
    }
}

/// Checks a job name against `[a-z0-9][a-z0-9._-]{0,127}`.
pub fn validate_name(name: &str) -> Result<(), ApplyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && matches!(b, b'.' | b'_' | b'-')));
    if ok {
        Ok(())
    } else {
        Err(ApplyError::invalid("name", "must match [a-z0-9][a-z0-9._-]{0,127}"))
    }
}

/// `d` lies in `[min, max]`; otherwise an error for `field` giving the range.
fn check_range(field: &str, d: HumanDuration, min: HumanDuration, max: HumanDuration) -> Result<(), ApplyError> {
    if d < min || d > max {
        let low = if min.0.is_zero() { "at most".to_string() } else { format!("between {min} and") };
        return Err(ApplyError::invalid(field, format!("must be {low} {max}")));
    }
    Ok(())
}

const ONE_MS: HumanDuration = HumanDuration(std::time::Duration::from_millis(1));

impl MisfirePolicy {
    fn validate(&self) -> Result<(), ApplyError> {
        check_range("misfire.grace", self.grace, HumanDuration::default(), MAX_GRACE)
    }
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), ApplyError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            return Err(ApplyError::invalid("retry.max_attempts", format!("must be between 1 and {MAX_ATTEMPTS}")));
        }
        check_range("retry.initial_backoff", self.initial_backoff, ONE_MS, MAX_INITIAL_BACKOFF)?;
        check_range("retry.max_backoff", self.max_backoff, ONE_MS, MAX_MAX_BACKOFF)?;
        if self.max_backoff < self.initial_backoff {
            return Err(ApplyError::invalid("retry.max_backoff", "must not be less than initial_backoff"));
        }
        check_range("retry.max_age", self.max_age, HumanDuration::default(), MAX_RETRY_AGE)
    }
}

impl HistoryPolicy {
    fn validate(&self) -> Result<(), ApplyError> {
        if self.max_count.is_some_and(|n| n == 0 || n > MAX_HISTORY_COUNT) {
            return Err(ApplyError::invalid("history.max_count", format!("must be between 1 and {MAX_HISTORY_COUNT}")));
        }
        match self.max_age {
            Some(age) => check_range("history.max_age", age, ONE_MS, MAX_HISTORY_AGE),
            None => Ok(()),
        }
    }
}

/// Headers belfry sets itself; a job may not override them.
const RESERVED_HEADERS: [&str; 6] =
    ["idempotency-key", "belfry-job", "belfry-scheduled-at", "belfry-attempt", "belfry-signature", "content-length"];

impl HttpTarget {
    fn validate(&self) -> Result<(), ApplyError> {
        validate_url(&self.url)?;
        if !matches!(self.method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD") {
            return Err(ApplyError::invalid("target.method", "must be one of GET, POST, PUT, PATCH, DELETE, HEAD"));
        }
        self.validate_headers()?;
        if self.body.as_ref().is_some_and(|b| b.len() > MAX_BODY_BYTES) {
            return Err(ApplyError::invalid("target.body", format!("larger than {MAX_BODY_BYTES} bytes")));
        }
        check_range("target.timeout", self.timeout, ONE_MS, MAX_TIMEOUT)
    }

    fn validate_headers(&self) -> Result<(), ApplyError> {
        let invalid = |message: String| ApplyError::invalid("target.headers", message);
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(format!("more than {MAX_HEADERS} headers")));
        }
        let total: usize = self.headers.iter().map(|(n, v)| n.len().saturating_add(v.len())).sum();
        if total > MAX_HEADERS_BYTES {
            return Err(invalid(format!("names and values together are larger than {MAX_HEADERS_BYTES} bytes")));
        }
        let mut seen = BTreeSet::new();
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name.len() <= MAX_HEADER_NAME_BYTES
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if !token {
                let shown: String = name.chars().take(MAX_HEADER_NAME_BYTES).collect();
                return Err(invalid(format!(
                    "invalid header name {shown:?} (1 to {MAX_HEADER_NAME_BYTES} token characters)"
                )));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(invalid(format!("header {name} is set by belfry")));
            }
            if !seen.insert(lower) {
                return Err(invalid(format!("header {name} is given twice (names are case-insensitive)")));
            }
            if value.len() > MAX_HEADER_VALUE_BYTES {
                return Err(invalid(format!("header {name} is longer than {MAX_HEADER_VALUE_BYTES} bytes")));
            }
            // HTTP allows tabs but no other control character in a field value.
            if value.bytes().any(|b| (b.is_ascii_control() && b != b'\t') || b == 0x7f) {
                return Err(invalid(format!("header {name} has a control character")));
            }
        }
        Ok(())
    }
}

/// Checks the raw URL text before the `url` crate reads it: that parser percent-encodes spaces,
/// strips tabs and newlines, turns backslashes into slashes and skips empty authorities
/// (`http:///nohost` becomes `http://nohost/`), so what it accepts is not always what was
/// written.
fn validate_url(raw: &str) -> Result<(), ApplyError> {
    let invalid = |message: String| ApplyError::invalid("target.url", message);
    if raw.len() > MAX_URL_BYTES {
        return Err(invalid(format!("longer than {MAX_URL_BYTES} bytes")));
    }
    if let Some(c) = raw.chars().find(|c| !c.is_ascii_graphic() || *c == '\\') {
        return Err(invalid(format!(
            "has the character {c:?}: a URL is printable ASCII with no spaces or backslashes (percent-encode \
             anything else)"
        )));
    }
    let not_http = || invalid("must be an http:// or https:// URL with a host".into());
    let (scheme, rest) = raw.split_once("://").ok_or_else(not_http)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(not_http());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(invalid("has no host (expected http://host/...)".into()));
    }
    let url = url::Url::parse(raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(not_http());
    }
    Ok(())
}
