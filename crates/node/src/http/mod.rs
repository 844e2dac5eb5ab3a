//! The HTTP API (DESIGN.md, "HTTP API"): JSON under `/v1`, one module per resource.
//!
//! Writes go through [`Context::propose`] (forwarded to the leader, answered only once a
//! majority has the entry); reads first reach a linearizable read point, so any node answers
//! with every acknowledged write. Every error is `{"error": {"code", "message", "field"}}`:
//! handlers extract through `extract` (never axum's plain-text rejections), unknown routes
//! are 404 and known routes with another method 405 (with `Allow`), and `serve` wraps the
//! router in the edge layers (`edge`: 500 on a panic, 408, 413, 414, 431) and the limits of
//! [`HttpLimits`].
//!
//! Every route is an entry of [`ROUTES`], which also says who may call it (`auth`); the router
//! is built from that table alone, so a route cannot exist without its access rule. `auth`
//! checks tokens, roles and rate limits, `browser` keeps web pages of other sites out.

pub mod auth;
mod browser;
mod cluster;
mod console;
mod edge;
mod error;
mod executions;
mod extract;
mod jobs;
mod openapi;
pub mod rate;
mod serve;
mod stall;
mod tls;
mod tokens;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::Router;
use belfry_core::Role;

pub use auth::{Access, ApiAuth, BootstrapToken};
pub use console::{has_shell as console_dir_has_shell, ConsoleFiles};
pub use error::ApiError;
pub use jobs::{DEFAULT_MAX_JOBS, MAX_PAGE, MAX_PAGE_BYTES};
pub use rate::RateLimit;
pub use serve::{serve, HttpLimits};
pub use tls::HttpTls;
pub use tokens::random_token;

use crate::context::Context;

/// Largest request body accepted (413 beyond), but on [`BATCH_PATH`].
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The batch create route, the one route with a larger body limit
/// ([`belfry_core::api::MAX_BATCH_BYTES`]).
pub const BATCH_PATH: &str = "/v1/jobs:batch";

/// What handlers share.
pub type Api = Arc<Context>;

/// One route: its method and template, the least access it needs, and its handler.
pub struct Route {
    /// The method (`GET` also answers `HEAD`).
    pub method: Method,
    /// The template, as axum matches it (`/v1/jobs/{name}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// A page or file of the console rather than an API operation.
    pub console: bool,
    handler: fn() -> MethodRouter<Api>,
}

macro_rules! route {
    ($method:ident $path:expr, $access:expr, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            access: $access,
            console: false,
            handler: || on(MethodFilter::$method, $handler),
        }
    };
    // A page or file of the console: open (the page asks for a token to read the API).
    (console $path:expr, $handler:path) => {
        Route { method: Method::GET, path: $path, access: Access::Open, console: true, handler: || get($handler) }
    };
    // A route whose bodies may be larger than [`MAX_REQUEST_BYTES`]; the edge reads them up to
    // the same size ([`HttpLimits::body_limit`]).
    ($method:ident $path:expr, $access:expr, $handler:path, body: $limit:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            access: $access,
            console: false,
            handler: || on(MethodFilter::$method, $handler).layer(DefaultBodyLimit::max($limit)),
        }
    };
}

const VIEWER: Access = Access::Least(Role::Viewer);
const EDITOR: Access = Access::Least(Role::Editor);
const OPERATOR: Access = Access::Least(Role::Operator);
const ADMIN: Access = Access::Least(Role::Admin);

/// Every route, and the least role that may call it (docs/SECURITY.md, "Roles"): viewers
/// read everything but backups and tokens; editors also write jobs and dead letters and
/// preview schedules; operators also change membership and leadership and take backups;
/// admins also manage tokens.
pub static ROUTES: &[Route] = &[
    route!(POST "/v1/jobs", EDITOR, jobs::create),
    route!(POST BATCH_PATH, EDITOR, jobs::create_many, body: belfry_core::api::MAX_BATCH_BYTES),
    route!(GET "/v1/jobs", VIEWER, jobs::list),
    route!(GET "/v1/jobs/{name}", VIEWER, jobs::get),
    route!(PUT "/v1/jobs/{name}", EDITOR, jobs::replace),
    route!(DELETE "/v1/jobs/{name}", EDITOR, jobs::delete),
    route!(POST "/v1/jobs/{name}/pause", EDITOR, jobs::pause),
    route!(POST "/v1/jobs/{name}/resume", EDITOR, jobs::resume),
    route!(POST "/v1/jobs/{name}/trigger", EDITOR, jobs::trigger),
    route!(GET "/v1/jobs/{name}/upcoming", VIEWER, jobs::upcoming),
    route!(POST "/v1/schedule/preview", EDITOR, jobs::preview),
    route!(GET "/v1/executions", VIEWER, executions::list),
    route!(GET "/v1/executions/{key}", VIEWER, executions::get),
    route!(GET "/v1/dead-letters", VIEWER, executions::dead_letters),
    route!(POST "/v1/dead-letters/requeue", EDITOR, executions::requeue_many),
    route!(POST "/v1/dead-letters/purge", EDITOR, executions::purge_many),
    route!(DELETE "/v1/dead-letters/{key}", EDITOR, executions::purge),
    route!(POST "/v1/dead-letters/{key}/requeue", EDITOR, executions::requeue),
    route!(GET "/v1/stats", VIEWER, executions::stats),
    route!(GET "/v1/cluster", VIEWER, cluster::status),
    route!(POST "/v1/cluster/members", OPERATOR, cluster::add_member),
    route!(DELETE "/v1/cluster/members/{id}", OPERATOR, cluster::remove_member),
    route!(POST "/v1/cluster/transfer-leadership", OPERATOR, cluster::transfer_leadership),
    route!(GET "/v1/backup", OPERATOR, cluster::backup),
    route!(POST "/v1/tokens", ADMIN, tokens::create),
    route!(GET "/v1/tokens", ADMIN, tokens::list),
    route!(DELETE "/v1/tokens/{id}", ADMIN, tokens::revoke),
    route!(GET "/healthz", Access::Open, cluster::healthz),
    route!(GET "/readyz", Access::Open, cluster::readyz),
    route!(GET "/metrics", Access::Metrics, metrics),
    route!(GET "/v1/openapi.json", Access::Open, openapi::serve),
    // The console: every page path answers the same shell (`console`), which asks the API.
    route!(console "/", console::page),
    route!(console "/jobs/{name}", console::page),
    route!(console "/jobs/{name}/edit", console::page),
    route!(console "/new-job", console::page),
    route!(console "/executions/{key}", console::page),
    route!(console "/dead-letters", console::page),
    route!(console "/cluster", console::page),
    route!(console "/console/{file}", console::asset),
];

/// The router of every route in [`ROUTES`], behind the guard of `auth`.
pub fn router(ctx: Arc<Context>) -> Router {
    let guard = auth::Guard::new(ctx.clone());
    let mut router = Router::new();
    for r in ROUTES {
        router = router.route(r.path, (r.handler)());
    }
    router
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
        .layer(middleware::from_fn_with_state(guard, auth::guard))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_registered_through_the_table() {
        // The router is built from ROUTES in one loop; a route added by any other call in this
        // file would have no access rule.
        let source = include_str!("mod.rs");
        let calls = source.matches(concat!(".route", "(")).count();
        assert_eq!(calls, 1, "routes must be entries of ROUTES, not .route calls");
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method.as_str(), r.path)), "{} {} is in ROUTES twice", r.method, r.path);
        }
    }
}
