//! A recording webhook receiver for demos and tests (`belfry sink`): answers every request,
//! remembers each delivery's belfry headers, and reports them at `GET /_sink/deliveries`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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
}

/// Sink behaviour.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Delay before answering each request.
    pub delay: Duration,
}

#[derive(Default)]
struct Recorded {
    // A std Mutex: held to push or copy, never across an `.await`.
    deliveries: Mutex<Vec<Received>>,
}

/// Serves the sink on `listener` until the returned task is aborted.
pub fn serve(listener: TcpListener, options: SinkOptions) -> tokio::task::JoinHandle<()> {
    let state = Arc::new((Recorded::default(), options));
    let app = Router::new().route("/_sink/deliveries", get(list).delete(clear)).fallback(receive).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// Binds `addr` and serves the sink.
pub async fn bind(
    addr: SocketAddr,
    options: SinkOptions,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, serve(listener, options)))
}

type Shared = Arc<(Recorded, SinkOptions)>;

async fn receive(State(state): State<Shared>, uri: axum::http::Uri, headers: HeaderMap) -> StatusCode {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let r = Received {
        key: h("idempotency-key"),
        job: h("belfry-job"),
        scheduled_at: h("belfry-scheduled-at"),
        attempt: h("belfry-attempt"),
        received_at_ms: chrono::Utc::now().timestamp_millis(),
        path: uri.path().to_string(),
    };
    tracing::info!(key = %r.key, job = %r.job, attempt = %r.attempt, "sink received");
    state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    if !state.1.delay.is_zero() {
        tokio::time::sleep(state.1.delay).await;
    }
    StatusCode::OK
}

async fn list(State(state): State<Shared>) -> Json<Vec<Received>> {
    Json(state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

async fn clear(State(state): State<Shared>) -> StatusCode {
    state.0.deliveries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    StatusCode::NO_CONTENT
}
