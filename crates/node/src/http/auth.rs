//! API authentication and roles (docs/SECURITY.md): who is calling, and whether they may.
//!
//! Every request passes [`guard`] once routing has picked its route, so the route template is
//! known. In order:
//!
//! 1. a foreign `Origin` is refused (403, `browser::check_origin`), on every route;
//! 2. the route table (`super::ROUTES`) gives the least [`Access`] of the method and template:
//!    open routes (`/healthz`, `/readyz`, `/`, and `/metrics` unless `--metrics-auth`) go on
//!    without more checks; a path or method the table does not know needs a valid token of
//!    any role before it is told 404 or 405, so the API cannot be mapped without one;
//! 3. `Authorization: Bearer <token>` is checked against this node's bootstrap token and the
//!    replicated tokens. Missing, malformed, unknown, revoked and wrong tokens all get the same
//!    401, and the work done is the same (both digests are compared, in constant time, whether
//!    or not the id exists), so neither the message nor the timing tells which it was;
//! 4. a rate limit (`rate`): the token's bucket, or the client address's when there is no valid
//!    token (so guessing is as slow as the limit), 429 with `Retry-After`;
//! 5. the token's role against the route's (403 naming both);
//! 6. writes must carry JSON or nothing (415, `browser::check_body_type`).
//!
//! The caller's token id is then attached to the request ([`Caller`]) for handlers to record as
//! `by`. Tokens are read from this node's applied state: a token works on a node once it has
//! applied its creation, and stops once it has applied its revocation (the creating and the
//! revoking node wait for that before they answer; the others follow within a replication
//! round trip, and a node cut off from the leader cannot write or answer linearizable reads).
//!
//! With authentication off (`--no-auth`) steps 1, 2, 4 (by client address) and 6 still run.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use belfry_core::state::tokens::BOOTSTRAP_ID;
use belfry_core::Role;

use super::error::ApiError;
use super::rate::{Limiters, Throttled};
use super::{browser, tokens, Api};

/// Shortest bootstrap token accepted, in bytes: with random characters, far beyond guessing.
pub const MIN_BOOTSTRAP_BYTES: usize = 16;

/// Whether and how a node checks API tokens.
#[derive(Debug, Clone, Default)]
pub enum ApiAuth {
    /// Every request is served without a token (`--no-auth`; in-process tests).
    #[default]
    Off,
    /// Requests need a token; this node's bootstrap admin token is `bootstrap`.
    Tokens {
        /// The bootstrap admin token.
        bootstrap: BootstrapToken,
    },
}

/// A bootstrap token: at least [`MIN_BOOTSTRAP_BYTES`] of visible ASCII (it travels in a
/// header). `Debug` never shows it.
#[derive(Clone)]
pub struct BootstrapToken(String);

impl BootstrapToken {
    /// Checks `token` (surrounding whitespace removed); the error says what is wrong, never
    /// what the token was.
    pub fn new(token: &str) -> Result<BootstrapToken, String> {
        let token = token.trim();
        if token.len() < MIN_BOOTSTRAP_BYTES {
            return Err(format!("the bootstrap token must be at least {MIN_BOOTSTRAP_BYTES} bytes"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the bootstrap token must be visible ASCII with no spaces".into());
        }
        Ok(BootstrapToken(token.to_string()))
    }

    /// The token itself, to send it (`belfry dev`'s own requests, a joining node).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapToken(..)")
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, readiness, the OpenAPI document, the console's pages and files).
    Open,
    /// `/metrics`: open, or a viewer token with `--metrics-auth`.
    Metrics,
    /// A token of at least this role.
    Least(Role),
}

/// The token a request was made with, as handlers see it: `None` with authentication off.
#[derive(Debug, Clone, Default)]
pub struct Caller(Option<String>);

impl Caller {
    /// The token's id, for a command's `by`.
    pub fn id(&self) -> Option<String> {
        self.0.clone()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or_default())
    }
}

/// What [`guard`] needs: the node (for its tokens and address) and its limits.
pub struct Guard {
    ctx: Api,
    /// SHA-256 of the bootstrap token; `None` with authentication off.
    bootstrap: Option<[u8; 32]>,
    metrics_auth: bool,
    limiters: Option<Limiters>,
}

impl Guard {
    /// The guard of `ctx`'s configuration; warns once when authentication is off.
    pub fn new(ctx: Api) -> Arc<Guard> {
        let bootstrap = match &ctx.config.auth {
            ApiAuth::Off => {
                tracing::warn!(
                    "API authentication is off (--no-auth): anyone who can reach the HTTP port can read, change \
                     and delete every job, download backups and change the membership"
                );
                None
            }
            ApiAuth::Tokens { bootstrap } => Some(tokens::sha256(bootstrap.expose())),
        };
        let limiters = ctx.config.rate_limit.map(Limiters::new);
        Arc::new(Guard { metrics_auth: ctx.config.metrics_auth, ctx, bootstrap, limiters })
    }

    /// The least access `method` on route `template` needs.
    pub fn access(&self, method: &Method, template: Option<&str>) -> Access {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        let found = template.and_then(|t| super::ROUTES.iter().find(|r| r.path == t && r.method == *method));
        match found.map(|r| r.access) {
            Some(Access::Metrics) if self.metrics_auth => Access::Least(Role::Viewer),
            Some(Access::Metrics) => Access::Open,
            Some(access) => access,
            None => Access::Least(Role::Viewer),
        }
    }

    /// The token's id and role, when `headers` carry a valid one.
    fn authenticate(&self, headers: &HeaderMap) -> Option<(String, Role)> {
        let presented = bearer(headers)?;
        let mut found = None;
        if let Some(bootstrap) = &self.bootstrap {
            if tokens::digests_equal(&tokens::sha256(presented), bootstrap) {
                found = Some((BOOTSTRAP_ID.to_string(), Role::Admin));
            }
        }
        // Parsed and compared whether or not it is the bootstrap token, against a digest that
        // matches nothing when the id is unknown: the same work either way.
        let (id, secret) = tokens::parse(presented).unwrap_or(("", ""));
        let digest = tokens::sha256(secret);
        let applied = self.ctx.shared.read();
        let stored = applied.state.token(id);
        let mut expected = [0u8; 32];
        let decoded = stored.is_some_and(|t| hex::decode_to_slice(&t.secret_sha256, &mut expected).is_ok());
        if tokens::digests_equal(&digest, &expected) && decoded {
            found = stored.map(|t| (t.id.clone(), t.role));
        }
        found
    }

    /// The caller, or why it is refused.
    fn admit(&self, req: &Request, needed: Role) -> Result<Caller, Refusal> {
        let limits = self.limiters.as_ref();
        let client = || limits.map_or(Ok(()), |l| l.check_client(client_ip(req))).map_err(Refusal::ClientThrottled);
        if self.bootstrap.is_none() {
            client()?;
            return Ok(Caller(None));
        }
        let Some((id, role)) = self.authenticate(req.headers()) else {
            client()?;
            tracing::debug!(ip = %client_ip(req), path = %req.uri().path(), "request without a valid API token");
            return Err(Refusal::Unauthenticated);
        };
        limits.map_or(Ok(()), |l| l.check_token(&id)).map_err(Refusal::TokenThrottled)?;
        if role < needed {
            return Err(Refusal::Forbidden { needed, id, role });
        }
        Ok(Caller(Some(id)))
    }
}

/// Why [`Guard::admit`] turned a request away.
#[derive(Debug)]
enum Refusal {
    /// No valid token: 401, the same for every kind of bad token.
    Unauthenticated,
    /// The token's bucket is empty: 429.
    TokenThrottled(Throttled),
    /// The client address's bucket is empty: 429.
    ClientThrottled(Throttled),
    /// The token's role is below the route's: 403.
    Forbidden { needed: Role, id: String, role: Role },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => {
                let message = "a valid API token is required: send Authorization: Bearer <token>";
                let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Refusal::TokenThrottled(t) => throttled(t, "this token"),
            Refusal::ClientThrottled(t) => throttled(t, "this address"),
            Refusal::Forbidden { needed, id, role } => {
                let message = format!("this needs the {needed} role; token {id} has the {role} role");
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
            }
        }
    }
}

/// The middleware of the module docs.
pub async fn guard(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    if let Err(e) = browser::check_origin(req.headers(), &guard.ctx.config.advertise_http) {
        return e.into_response();
    }
    let template = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let Access::Least(needed) = guard.access(req.method(), template.as_deref()) else {
        return next.run(req).await;
    };
    let caller = match guard.admit(&req, needed) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Err(e) = browser::check_body_type(&req) {
            return e.into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The peer address `serve` attached; unspecified for a router used without it (tests).
fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// 429 with `Retry-After`.
fn throttled(t: Throttled, whose: &str) -> Response {
    let secs = t.retry_after_secs();
    let message = format!("too many requests from {whose}; retry after {secs} s");
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        h
    }

    #[test]
    fn bearer_takes_the_scheme_in_any_case_and_nothing_else() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer")), None);
        assert_eq!(bearer(&headers("Bearer  ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn bootstrap_tokens_are_long_visible_and_never_shown() {
        assert!(BootstrapToken::new("short").is_err());
        assert!(BootstrapToken::new("sixteen bytes ok!").is_err(), "a space");
        let token = BootstrapToken::new("  0123456789abcdef\n").expect("trimmed, 16 bytes");
        assert_eq!(token.expose(), "0123456789abcdef");
        assert_eq!(format!("{:?}", ApiAuth::Tokens { bootstrap: token }), "Tokens { bootstrap: BootstrapToken(..) }");
    }
}
