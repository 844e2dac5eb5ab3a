//! Browser safety (docs/SECURITY.md, "Browsers"): what stops a web page a user visits from
//! writing to a cluster the user's browser can reach.
//!
//! - A request whose `Origin` is neither this node's advertised HTTP address nor its `Host`
//!   is refused (403). Browsers set `Origin` on every cross-origin request that could change
//!   something, so a foreign page's request ends here whatever it carries.
//! - Writes take only `application/json` bodies (415 otherwise; no `Content-Type` is fine when
//!   the body is empty). A page can send `text/plain`, form and multipart bodies across origins
//!   without asking; `application/json` needs a CORS preflight, which belfry never grants.
//! - Every response carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//!   `Referrer-Policy: no-referrer`, `Cache-Control: no-store` and a content security policy:
//!   `default-src 'none'` for the API, and for the console's pages one that allows scripts,
//!   styles and fetches from this node only, and nothing inline (`console`).
//!
//! API tokens are sent as `Authorization` headers, never cookies, so a browser never attaches
//! one on its own: with authentication on, a cross-site request has no credentials to abuse.
//! These checks are what is left with `--no-auth`, and a second wall with it on.

use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;

/// Longest piece of a client's header echoed in an error message.
const MAX_ECHO: usize = 200;

/// 403 unless `Origin` is absent, or names this node (`advertised`, `host:port`) or the
/// request's `Host`.
pub fn check_origin(headers: &HeaderMap, advertised: &str) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let forbidden = |why: String| ApiError::new(StatusCode::FORBIDDEN, "forbidden", why);
    let origin = origin.to_str().map_err(|_| forbidden("the Origin header is not readable text".into()))?;
    let shown = clip(origin);
    let Some((scheme, authority)) = split_origin(origin) else {
        return Err(forbidden(format!("cross-origin requests are refused: Origin {shown} is not an http(s) origin")));
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ours = [Some(advertised), host].into_iter().flatten().any(|a| same_authority(scheme, authority, a));
    if ours {
        return Ok(());
    }
    Err(forbidden(format!(
        "cross-origin requests are refused: Origin {shown} is neither this node ({}) nor the Host ({})",
        clip(advertised),
        clip(host.unwrap_or("none"))
    )))
}

/// `http://host:port` as `("http", "host:port")`; `None` for `null` and anything else.
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme_ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    (scheme_ok && !authority.is_empty() && !authority.contains(['/', '?', '#', '@'])).then_some((scheme, authority))
}

/// Whether `a` (from an origin with `scheme`) and `b` name the same host and port; a missing
/// port is the scheme's default.
fn same_authority(scheme: &str, a: &str, b: &str) -> bool {
    let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
    match (host_port(a, default), host_port(b, default)) {
        (Some((ha, pa)), Some((hb, pb))) => pa == pb && ha.eq_ignore_ascii_case(hb),
        _ => false,
    }
}

/// `host[:port]` or `[v6][:port]`, with `default` for a missing port.
fn host_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then_some((host, port))
}

/// 415 unless the body is JSON: `Content-Type: application/json` (parameters such as
/// `charset` allowed), or no `Content-Type` and no body.
pub fn check_body_type(req: &Request) -> Result<(), ApiError> {
    let unsupported = |why: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", why);
    match req.headers().get(header::CONTENT_TYPE) {
        None if req.body().size_hint().exact() == Some(0) => Ok(()),
        None => Err(unsupported("a request body needs Content-Type: application/json".into())),
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            let essence = text.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(unsupported(format!(
                    "Content-Type {} is not accepted here; send application/json",
                    clip(if essence.is_empty() { "(unreadable)" } else { essence })
                )))
            }
        }
    }
}

/// Adds the headers every response carries (module docs). A handler that sets its own
/// `Content-Security-Policy` or `Cache-Control` keeps it.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    response
}

/// `s` cut to [`MAX_ECHO`] bytes on a character boundary.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(MAX_ECHO);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(origin: &str, host: Option<&str>) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        if let Some(h) = host {
            headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        }
        check_origin(&headers, "127.0.0.1:7101")
    }

    #[test]
    fn only_this_nodes_origin_passes() {
        assert!(
            check_origin(&HeaderMap::new(), "127.0.0.1:7101").is_ok(),
            "no Origin: not a browser's cross-site call"
        );
        assert!(origin("http://127.0.0.1:7101", None).is_ok(), "the advertised address");
        assert!(origin("http://belfry.internal", Some("belfry.internal:80")).is_ok(), "the Host, default port");
        assert!(origin("https://BELFRY.internal", Some("belfry.internal")).is_ok(), "hosts compare without case");
        assert!(origin("http://[::1]:7101", Some("[::1]:7101")).is_ok());
        for bad in ["http://evil.example", "http://127.0.0.1:7102", "null", "file://", "http://127.0.0.1.evil:7101"] {
            assert!(origin(bad, Some("127.0.0.1:7101")).is_err(), "{bad} passed");
        }
        assert!(origin("http://127.0.0.1:7101/path", None).is_err(), "an origin has no path");
    }
}
