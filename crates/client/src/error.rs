//! What can go wrong talking to a belfry node, split by who is at fault: the request reached
//! the server and it said no ([`Error::Api`]), the request never got an answer
//! ([`Error::Unreachable`]), or an answer came that is not belfry's API ([`Error::Unexpected`]).
//! The CLI maps each to its own exit code, so callers can tell "fix your request" from "the
//! cluster is down" without parsing messages.

use std::fmt;

use belfry_core::api::ItemError;

/// An error from a [`crate::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status and belfry's error body.
    #[error("{}", ApiDisplay { code, message, field: field.as_deref() })]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code (`invalid`, `not_found`, `version_mismatch`, ...).
        code: String,
        /// What went wrong, for people.
        message: String,
        /// The request field at fault, when one is.
        field: Option<String>,
        /// For a refused batch create, every spec refused, by index; empty otherwise.
        errors: Vec<ItemError>,
    },
    /// No answer: connection refused, DNS failure, reset, or a timeout. For a write, the
    /// outcome is unknown after a timeout: the server may still commit it.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport error, with its causes, on one line.
        reason: String,
    },
    /// An answer that is not belfry's API: an error status without belfry's error body, or a
    /// body that does not decode into the expected type (a proxy, another server, a version skew).
    #[error("unexpected response from {url}: {reason}")]
    Unexpected {
        /// The URL requested.
        url: String,
        /// HTTP status, when one came.
        status: Option<u16>,
        /// What was wrong with it.
        reason: String,
    },
    /// The endpoint given is not an `http://` or `https://` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
}

impl Error {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The refused specs of a batch create, by index (empty for any other error).
    pub fn item_errors(&self) -> &[ItemError] {
        match self {
            Error::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Unexpected { status, .. } => *status,
            _ => None,
        }
    }

    /// Classifies a transport error from reqwest. Decode errors mean an answer came; everything
    /// else (connect, timeout, reset mid-body) means no usable answer came.
    pub(crate) fn transport(url: &str, e: reqwest::Error) -> Error {
        let reason = if e.is_timeout() {
            "timed out".to_string()
        } else {
            // reqwest's own message repeats the URL the error already names; its causes say why.
            match std::error::Error::source(&e) {
                Some(cause) if e.to_string().contains("for url (") => one_line(cause),
                _ => one_line(&e),
            }
        };
        if e.is_decode() {
            Error::Unexpected { url: url.to_string(), status: e.status().map(|s| s.as_u16()), reason }
        } else if e.is_builder() {
            Error::InvalidEndpoint { endpoint: url.to_string(), reason }
        } else {
            Error::Unreachable { url: url.to_string(), reason }
        }
    }
}

struct ApiDisplay<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

impl fmt::Display for ApiDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(field) = self.field {
            write!(f, " (field: {field})")?;
        }
        Ok(())
    }
}

/// An error and its causes joined with `: `, skipping a cause whose text the previous one
/// already contains (reqwest and hyper repeat themselves).
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_one_line_naming_code_message_and_field() {
        let e = Error::Api {
            status: 400,
            code: "invalid".into(),
            message: "minute 61 out of range 0-59".into(),
            field: Some("schedule.cron".into()),
            errors: Vec::new(),
        };
        assert_eq!(e.to_string(), "invalid: minute 61 out of range 0-59 (field: schedule.cron)");
        let e = Error::Api {
            status: 404,
            code: "not_found".into(),
            message: "job x not found".into(),
            field: None,
            errors: Vec::new(),
        };
        assert_eq!(e.to_string(), "not_found: job x not found");
    }
}
