//! The layers every request passes before any route: a panic becomes a 500, and belfry's own
//! limits on the request head and body are enforced here so that their answers are in the
//! API's error shape (hyper's own limits, set higher in `serve`, answer with empty bodies).
//!
//! Order, outermost first: [`catch_panic`], [`check_head`] (414, 431), [`read_body`] (413,
//! 408). The body is read whole here, within the body deadline and the size limit, so a
//! route never waits on a slow client and every route, whether it reads its body or not,
//! answers an oversized one the same way.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use http_body_util::BodyExt;

use super::error::ApiError;
use super::serve::HttpLimits;

/// Bytes past the body limit still read (and dropped) before a 413 is sent, so a client
/// that is still writing a moderately oversized body reads the answer rather than a reset
/// connection. Larger bodies are cut off without it.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Answers a panic anywhere below with 500 `internal`; the connection and the node go on.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    let route = req.uri().path().to_string();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            tracing::error!(path = %route, panic = panic_message(panic.as_ref()), "request handler panicked");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed inside the node")
                .into_response()
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("")
}

/// 414 for a request target over `max_uri_bytes`; 431 for more than `max_headers` header
/// fields or more than `max_header_bytes` of names and values together.
pub async fn check_head(State(limits): State<HttpLimits>, req: Request, next: Next) -> Response {
    let uri = req.uri();
    let uri_bytes = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        let message = format!("request target over {} bytes", limits.max_uri_bytes);
        return closing(ApiError::new(StatusCode::URI_TOO_LONG, "too_large", message));
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        let message = format!("more than {} header fields", limits.max_headers);
        return closing(ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too_large", message));
    }
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > limits.max_header_bytes {
        let message = format!("header fields over {} bytes in all", limits.max_header_bytes);
        return closing(ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too_large", message));
    }
    next.run(req).await
}

/// Reads the whole body within `body_read` (408 `timeout` after it) and up to the route's limit
/// ([`HttpLimits::body_limit`]; 413 `too_large` beyond), then hands the request on with the body
/// in memory.
pub async fn read_body(State(limits): State<HttpLimits>, req: Request, next: Next) -> Response {
    let max = limits.body_limit(req.method(), req.uri().path());
    let too_large =
        || closing(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("request body over {max} bytes")));
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let cutoff = max.saturating_add(DRAIN_BYTES) as u64;
    if declared.is_some_and(|n| n > cutoff) {
        return too_large();
    }
    let deadline = super::serve::deadline_after(limits.body_read);
    let timed_out = || {
        let message = format!("request body not received within {:?}", limits.body_read);
        closing(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", message))
    };
    let mut body = body;
    let collected = match tokio::time::timeout_at(deadline, read_up_to(&mut body, max)).await {
        Err(_) => return timed_out(),
        Ok(Ok(Some(collected))) => collected,
        Ok(Ok(None)) => {
            // Best effort: read on (bounded in bytes and by the same deadline) so the client
            // sees the 413 instead of a reset; the result does not change the answer.
            let _ = tokio::time::timeout_at(deadline, read_up_to(&mut body, DRAIN_BYTES)).await;
            return too_large();
        }
        Ok(Err(e)) => {
            return closing(ApiError::invalid("body", format!("the request body could not be read: {e}")));
        }
    };
    next.run(Request::from_parts(parts, Body::from(collected))).await
}

/// The rest of `body` if it holds at most `max` bytes; `None` as soon as it is seen to hold
/// more (what was read is dropped).
async fn read_up_to(body: &mut Body, max: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if data.len() > max.saturating_sub(kept.len()) {
                return Ok(None);
            }
            kept.extend_from_slice(&data);
        }
    }
    Ok(Some(Bytes::from(kept)))
}

/// The error answer with `Connection: close`: the rest of the request (an unread body) is
/// not worth reading, so the connection is not reused.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
