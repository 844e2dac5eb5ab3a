//! A recording webhook receiver for demos and tests (`belfry sink`): answers every request,
//! remembers each delivery (belfry's headers picked out, every header and the body as sent), and
//! reports them at `GET /_sink/deliveries`.
//!
//! By default every request gets a 200. Scripted answers ([`Answer`]) make a path fail: given
//! at start (`belfry sink --answer /flaky=503x2@1`) or added at run time with
//! `POST /_sink/answers` (`{"path": "/flaky", "status": 503, "times": 2, "retry_after": 1}`).
//! A path's answers are used in the order given; one with `times` is used that many times,
//! one without answers every later request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// One received delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// `Idempotency-Key`.
    pub key: String,
    /// `Belfry-Job`.
    pub job: String,
    /// `Belfry-Scheduled-At`.
    pub scheduled_at: String,
    /// `Belfry-Attempt`.
    pub attempt: String,
    /// Arrival, unix ms.
    pub received_at_ms: i64,
    /// Request path.
    pub path: String,
    /// The status the sink answered.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// `Belfry-Signature`, when the delivery was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The request method.
    #[serde(default)]
    pub method: String,
    /// Every request header, names in lowercase (repeated headers joined with `, `).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as UTF-8 (invalid bytes replaced), at most [`MAX_RECORDED_BODY`] bytes of it.
    #[serde(default)]
    pub body: String,
}

/// The most of a body the sink keeps per delivery: a target body's own limit (64 KiB).
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

fn ok_status() -> u16 {
    200
}

/// A scripted answer for one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The request path it applies to (`/flaky`).
    pub path: String,
    /// The status to answer.
    pub status: u16,
    /// How many requests it answers; every later one when unset.
    #[serde(default)]
    pub times: Option<u32>,
    /// A `Retry-After` header, in seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
}

impl std::str::FromStr for Answer {
    type Err = String;

    /// `PATH=STATUS[xTIMES][@RETRY_AFTER_SECS]`, e.g. `/flaky=503x2@1` or `/gone=404`.
    fn from_str(s: &str) -> Result<Answer, String> {
        let bad = || format!("{s:?} is not PATH=STATUS[xTIMES][@RETRY_AFTER_SECS]");
        let (path, rest) = s.split_once('=').ok_or_else(bad)?;
        if !path.starts_with('/') {
            return Err(format!("{s:?}: the path must start with /"));
        }
        let (rest, retry_after) = match rest.split_once('@') {
            Some((r, secs)) => (r, Some(secs.parse().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let (status, times) = match rest.split_once('x') {
            Some((st, n)) => (st, Some(n.parse().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let status: u16 = status.parse().map_err(|_| bad())?;
        if !(100..=999).contains(&status) {
            return Err(bad());
        }
        Ok(Answer { path: path.to_string(), status, times, retry_after })
    }
}

/// Sink behaviour.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Delay before answering each request.
    pub delay: Duration,
}

#[derive(Default)]
struct Recorded {
    // std Mutexes: held to push or copy, never across an `.await`.
    deliveries: Mutex<Vec<Received>>,
    answers: Mutex<Vec<Answer>>,
}

impl Recorded {
    /// The answer for a request to `path`, using up one of a counted answer.
    fn answer(&self, path: &str) -> (StatusCode, Option<u64>) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = answers.iter().position(|a| a.path == path && a.times != Some(0)) else {
            return (StatusCode::OK, None);
        };
        let a = &mut answers[i];
        if let Some(n) = a.times.as_mut() {
            *n -= 1;
        }
        (StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), a.retry_after)
    }
}

/// Serves the sink on `listener` until the returned task is aborted.
pub fn serve(listener: TcpListener, options: SinkOptions) -> tokio::task::JoinHandle<()> {
    serve_scripted(listener, options, Vec::new())
}

/// Serves the sink with scripted `answers` on `listener` until the returned task is aborted.
pub fn serve_scripted(
    listener: TcpListener,
    options: SinkOptions,
    answers: Vec<Answer>,
) -> tokio::task::JoinHandle<()> {
    let recorded = Recorded { answers: Mutex::new(answers), ..Recorded::default() };
    let state = Arc::new((recorded, options));
    let app = Router::new()
        .route("/_sink/deliveries", get(list).delete(clear))
        .route("/_sink/answers", get(list_answers).post(add_answer).delete(clear_answers))
        .fallback(receive)
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// Binds `addr` and serves the sink.
pub async fn bind(
    addr: SocketAddr,
    options: SinkOptions,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    bind_scripted(addr, options, Vec::new()).await
}

/// Binds `addr` and serves the sink with scripted `answers`.
pub async fn bind_scripted(
    addr: SocketAddr,
    options: SinkOptions,
    answers: Vec<Answer>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, serve_scripted(listener, options, answers)))
}

type Shared = Arc<(Recorded, SinkOptions)>;

async fn receive(
    State(state): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (status, retry_after) = state.0.answer(uri.path());
    let r = Received {
        key: h("idempotency-key"),
        job: h("belfry-job"),
        scheduled_at: h("belfry-scheduled-at"),
        attempt: h("belfry-attempt"),
        received_at_ms: chrono::Utc::now().timestamp_millis(),
        path: uri.path().to_string(),
        status: status.as_u16(),
        signature: headers.get("belfry-signature").and_then(|v| v.to_str().ok()).map(str::to_string),
        method: method.to_string(),
        headers: all_headers(&headers),
        body: String::from_utf8_lossy(&body[..body.len().min(MAX_RECORDED_BODY)]).into_owned(),
    };
    tracing::info!(key = %r.key, job = %r.job, attempt = %r.attempt, status = r.status, "sink received");
    state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    if !state.1.delay.is_zero() {
        tokio::time::sleep(state.1.delay).await;
    }
    match retry_after {
        Some(secs) => (status, [(axum::http::header::RETRY_AFTER, secs.to_string())]).into_response(),
        None => status.into_response(),
    }
}

fn all_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        all.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    all
}

async fn list_answers(State(state): State<Shared>) -> Json<Vec<Answer>> {
    Json(state.0.answers.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

async fn add_answer(State(state): State<Shared>, Json(answer): Json<Answer>) -> StatusCode {
    state.0.answers.lock().unwrap_or_else(|e| e.into_inner()).push(answer);
    StatusCode::NO_CONTENT
}

async fn clear_answers(State(state): State<Shared>) -> StatusCode {
    state.0.answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT
}

async fn list(State(state): State<Shared>) -> Json<Vec<Received>> {
    Json(state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

async fn clear(State(state): State<Shared>) -> StatusCode {
    state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_from_the_flag_syntax() {
        let a: Answer = "/flaky=503x2@1".parse().unwrap();
        assert_eq!(a, Answer { path: "/flaky".into(), status: 503, times: Some(2), retry_after: Some(1) });
        let a: Answer = "/gone=404".parse().unwrap();
        assert_eq!(a, Answer { path: "/gone".into(), status: 404, times: None, retry_after: None });
        assert!("flaky=503".parse::<Answer>().is_err());
        assert!("/x=abc".parse::<Answer>().is_err());
        assert!("/x=503x".parse::<Answer>().is_err());
    }

    #[test]
    fn counted_answers_run_out_in_order_then_the_path_succeeds() {
        let r = Recorded::default();
        r.answers.lock().unwrap().extend([
            Answer { path: "/a".into(), status: 500, times: Some(2), retry_after: None },
            Answer { path: "/a".into(), status: 429, times: Some(1), retry_after: Some(3) },
        ]);
        let got: Vec<_> = (0..4).map(|_| r.answer("/a")).collect();
        assert_eq!(
            got,
            vec![
                (StatusCode::INTERNAL_SERVER_ERROR, None),
                (StatusCode::INTERNAL_SERVER_ERROR, None),
                (StatusCode::TOO_MANY_REQUESTS, Some(3)),
                (StatusCode::OK, None)
            ]
        );
        assert_eq!(r.answer("/b"), (StatusCode::OK, None));
    }
}
