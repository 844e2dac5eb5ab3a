//! The HTTP API (DESIGN.md, "HTTP API"): JSON under `/v1`, one module per resource.
//!
//! Writes go through [`Context::propose`] (forwarded to the leader, answered only once a
//! majority has the entry); reads first reach a linearizable read point, so any node answers
//! with every acknowledged write. Every error is `{"error": {"code", "message", "field"}}`:
//! handlers extract through `extract` (never axum's plain-text rejections), unknown routes
//! are 404 and known routes with another method 405 (with `Allow`), and `serve` wraps the
//! router in the edge layers (`edge`: 500 on a panic, 408, 413, 414, 431) and the limits of
//! [`HttpLimits`].

mod cluster;
mod edge;
mod error;
mod executions;
mod extract;
mod jobs;
mod serve;
mod stall;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use serve::{serve, HttpLimits};

use crate::context::Context;

/// Largest request body accepted (413 beyond).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// What handlers share.
pub type Api = Arc<Context>;

/// The router of every route.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{name}", get(jobs::get).put(jobs::replace).delete(jobs::delete))
        .route("/v1/jobs/{name}/pause", post(jobs::pause))
        .route("/v1/jobs/{name}/resume", post(jobs::resume))
        .route("/v1/jobs/{name}/trigger", post(jobs::trigger))
        .route("/v1/jobs/{name}/upcoming", get(jobs::upcoming))
        .route("/v1/schedule/preview", post(jobs::preview))
        .route("/v1/executions", get(executions::list))
        .route("/v1/executions/{key}", get(executions::get))
        .route("/v1/dead-letters", get(executions::dead_letters))
        .route("/v1/dead-letters/requeue", post(executions::requeue_many))
        .route("/v1/dead-letters/purge", post(executions::purge_many))
        .route("/v1/dead-letters/{key}", axum::routing::delete(executions::purge))
        .route("/v1/dead-letters/{key}/requeue", post(executions::requeue))
        .route("/v1/cluster", get(cluster::status))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route("/v1/cluster/members/{id}", axum::routing::delete(cluster::remove_member))
        .route("/v1/cluster/transfer-leadership", post(cluster::transfer_leadership))
        .route("/v1/backup", get(cluster::backup))
        .route("/healthz", get(cluster::healthz))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(metrics))
        .route("/", get(ui))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        // After every route: it applies to the routes that exist when it is set. The `Allow`
        // header is added by axum's method router.
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; the Allow header lists what is"),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::from_fn_with_state(ctx.clone(), record))
        .with_state(ctx)
}

/// Counts and times every request by route template (never by raw path: names are unbounded).
async fn record(State(ctx): State<Api>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &ctx.metrics;
    m.http_requests.with_label_values(&[&route, response.status().as_str()]).inc();
    m.http_duration.with_label_values(&[&route]).observe(start.elapsed().as_secs_f64());
    response
}

async fn metrics(State(ctx): State<Api>) -> impl IntoResponse {
    crate::node::refresh_gauges(&ctx);
    let (content_type, body) = ctx.metrics.render();
    ([(axum::http::header::CONTENT_TYPE, content_type)], body)
}

async fn ui() -> Html<&'static str> {
    Html(include_str!("ui.html"))
}
