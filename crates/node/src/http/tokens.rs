//! `/v1/tokens` (admin only) and the token format: `bf_<id>_<secret>`, where the id is
//! [`TOKEN_ID_LEN`] random lowercase letters and digits (public) and the secret 32 random
//! bytes in hex. Only the SHA-256 of the secret is replicated (`belfry_core::state::tokens`);
//! the whole token appears once, in the answer to its creation.
//!
//! Randomness comes from `rand::rng()`, a ChaCha generator seeded from the operating system
//! and reseeded as it goes: suitable for secrets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use belfry_core::api::{NewToken, TokenList, TokenRequest, TokenView};
use belfry_core::state::tokens::{validate_token_name, BOOTSTRAP_ID, TOKEN_ID_LEN};
use belfry_core::{Command, Response};
use chrono::Utc;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, Param};
use super::Api;

/// Bytes of randomness in a secret (64 hex digits).
pub const SECRET_BYTES: usize = 32;
/// What every token starts with, so that leaked tokens are easy to search for.
pub const PREFIX: &str = "bf_";

/// A new random id and secret.
pub fn generate() -> (String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id = (0..TOKEN_ID_LEN).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    (id, hex::encode(secret))
}

/// A fresh random token in the replicated format, for a bootstrap token (`belfry dev`).
pub fn random_token() -> String {
    let (id, secret) = generate();
    format(&id, &secret)
}

/// `bf_<id>_<secret>`.
pub fn format(id: &str, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// The id and secret of `bf_<id>_<secret>`, when `token` has that shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    let id_ok = id.len() == TOKEN_ID_LEN && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let secret_ok = secret.len() == 2 * SECRET_BYTES && secret.bytes().all(|b| b.is_ascii_hexdigit());
    (id_ok && secret_ok).then_some((id, secret))
}

/// SHA-256 of `text`.
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// `POST /v1/tokens` `{"role", "name"}`: 201 with the whole token, shown this once.
pub async fn create(
    State(ctx): State<Api>,
    caller: Caller,
    Body(req): Body<TokenRequest>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    validate_token_name(&req.name)?;
    let (id, secret) = generate();
    let secret_sha256 = hex::encode(sha256(&secret));
    let command =
        Command::CreateToken { id, role: req.role, name: req.name, secret_sha256, now: Utc::now(), by: caller.id() };
    let (index, response) = ctx.propose(command).await?;
    let token = match response {
        Response::Token { token } => token,
        Response::Rejected { error } => return Err(error.into()),
        other => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("unexpected {other:?}")))
        }
    };
    tracing::info!(token = %token.id, role = %token.role, by = ?caller.id(), "API token created");
    // Committed: the token exists whatever happens next, so the answer must carry it. Waiting
    // for this node to apply it only makes it usable here at once.
    if let Err(e) =
        ctx.raft.wait(Some(std::time::Duration::from_secs(5))).applied_index_at_least(Some(index), "token").await
    {
        tracing::warn!(error = %e, token = %token.id, "the new token is not applied on this node yet");
    }
    let view = TokenView::from(token.as_ref());
    Ok((StatusCode::CREATED, Json(NewToken { token: format(&token.id, &secret), view })))
}

/// `GET /v1/tokens`: ids, roles, names and creators; never secrets or hashes.
pub async fn list(State(ctx): State<Api>) -> Result<Json<TokenList>, ApiError> {
    ctx.linearize().await?;
    let applied = ctx.shared.read();
    Ok(Json(TokenList { tokens: applied.state.tokens().map(TokenView::from).collect() }))
}

/// `DELETE /v1/tokens/{id}`: every node refuses the token once it has applied the revocation
/// (this one before it answers).
pub async fn revoke(State(ctx): State<Api>, caller: Caller, Param(id): Param<String>) -> Result<StatusCode, ApiError> {
    if id == BOOTSTRAP_ID {
        return Err(ApiError::invalid(
            "id",
            "the bootstrap token is each node's configuration, not replicated: change BELFRY_BOOTSTRAP_TOKEN \
             (or the --auth-file) and restart the nodes",
        ));
    }
    let (index, response) = ctx.propose(Command::RevokeToken { id: id.clone() }).await?;
    if let Response::Rejected { error } = response {
        return Err(error.into());
    }
    tracing::info!(token = %id, by = ?caller.id(), "API token revoked");
    ctx.raft
        .wait(Some(std::time::Duration::from_secs(5)))
        .applied_index_at_least(Some(index), "revoke")
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let (id, secret) = generate();
        let token = format(&id, &secret);
        assert_eq!(parse(&token), Some((id.as_str(), secret.as_str())));
        assert!(belfry_core::state::tokens::validate_token_id(&id).is_ok(), "{id}");
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn other_shapes_do_not_parse() {
        let secret = "0".repeat(64);
        for bad in [
            String::new(),
            format!("bf_abcdef12345_{secret}"),
            format!("bf_ABCDEF123456_{secret}"),
            format!("xx_abcdef123456_{secret}"),
            format!("bf_abcdef123456_{}", &secret[1..]),
            format!("bf_abcdef123456_{}g", &secret[1..]),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_compare_by_value() {
        let a = sha256("one");
        assert!(digests_equal(&a, &sha256("one")));
        assert!(!digests_equal(&a, &sha256("two")));
        let mut last_bit = a;
        last_bit[31] ^= 1;
        assert!(!digests_equal(&a, &last_bit));
    }
}
