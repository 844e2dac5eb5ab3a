//! Request extractors whose every rejection is an [`ApiError`] naming the part at fault: a
//! JSON body ([`Body`]), the query string ([`Query`]) and the route's path parameter
//! ([`Param`]). Handlers use these instead of axum's own, whose rejections are plain text.
//!
//! Query strings are strict: every name and value must be UTF-8 once percent-decoded (no
//! silent U+FFFD), a parameter may appear once, and a route that takes parameters rejects a
//! name it does not know (its query type is `deny_unknown_fields`), so a typo such as
//! `limt=5` is a 400 naming `limt` rather than a page of the default size. Routes that take
//! no parameters have no `Query` and ignore the query string.

use std::collections::BTreeSet;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Longest client-supplied name echoed back as an error's `field`.
const MAX_ECHOED_NAME: usize = 128;

/// A JSON body whose errors name the field at fault (`retry.max_backoff`), and whose size
/// errors are 413 in the API's error shape.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("request body over {} bytes", super::MAX_REQUEST_BYTES),
                )
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        // An empty body reads as `{}`, so optional-only bodies may be left out.
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { bytes };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_string() } else { path };
            ApiError::invalid(&field, e.into_inner().to_string())
        })
    }
}

/// The query string decoded into `T`; a value that does not parse is a 400 naming its
/// parameter (`limit`, `paused`), and so is an unknown or repeated parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        check_query(raw)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "query".to_string() } else { clip(&path) };
            ApiError::invalid(&field, e.into_inner().to_string())
        })
    }
}

/// Rejects what `form_urlencoded` would let through silently: bytes that are not UTF-8 once
/// percent-decoded (it substitutes U+FFFD) and repeated names (serde sees only one).
fn check_query(raw: &str) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)
            .map_err(|_| ApiError::invalid("query", "a parameter name is not UTF-8 once percent-decoded"))?;
        if decode(value).is_err() {
            return Err(ApiError::invalid(&clip(&name), "not UTF-8 once percent-decoded"));
        }
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid(&clip(&name), "given more than once"));
        }
    }
    Ok(())
}

/// One `application/x-www-form-urlencoded` component, strictly: `+` is a space, and the
/// percent-decoded bytes must be UTF-8.
fn decode(s: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().map(|c| c.into_owned())
}

/// `s` cut to at most [`MAX_ECHOED_NAME`] bytes on a character boundary.
fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_ECHOED_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The route's one path parameter parsed as `T`; a value that is not UTF-8 once
/// percent-decoded, or does not parse, is a 400 naming the parameter (`name`, `id`, `key`).
pub struct Param<T>(pub T);

impl<T, S> FromRequestParts<S> for Param<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // axum's UTF-8 rejection does not expose the parameter's name; the route template
        // (`/v1/jobs/{name}`) does, and every route here has at most one parameter.
        let template_name = parts
            .extensions
            .get::<MatchedPath>()
            .and_then(|p| p.as_str().split_once('{'))
            .and_then(|(_, rest)| rest.split_once('}'))
            .map_or_else(|| "path".to_string(), |(name, _)| name.to_string());
        let params = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params,
            Err(_) => return Err(ApiError::invalid(&template_name, "not UTF-8 once percent-decoded")),
        };
        let mut iter = params.iter();
        let (Some((name, value)), None) = (iter.next(), iter.next()) else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "route does not have exactly one path parameter",
            ));
        };
        value.parse().map(Param).map_err(|e| ApiError::invalid(name, format!("not a valid {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_must_be_unique_and_utf8() {
        assert!(check_query("limit=5&cursor=a%20b&job=x+y").is_ok());
        assert!(check_query("").is_ok());
        assert!(check_query("&&limit=1&").is_ok());
        assert!(check_query("job=%ff").is_err());
        assert!(check_query("%ff=1").is_err());
        assert!(check_query("limit=1&limit=2").is_err());
        assert!(check_query("limit=1&limit").is_err(), "a bare name counts as given");
    }

    #[test]
    fn clip_keeps_character_boundaries() {
        let long = "é".repeat(100);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_ECHOED_NAME && clipped.chars().all(|c| c == 'é'));
        assert_eq!(clip("limit"), "limit");
    }
}
