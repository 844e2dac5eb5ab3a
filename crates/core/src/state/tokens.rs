//! API tokens in the replicated state: who may call the HTTP API, and with which [`Role`].
//!
//! A token reads `bf_<id>_<secret>`. The id (public: lists, audit fields, revocation) and the
//! SHA-256 of the secret are replicated; the secret itself never enters the log, a snapshot
//! or a backup, so it exists only in the answer that created the token. SHA-256 without salt
//! or stretching is enough because secrets are 256 random bits, not passwords: there is no
//! dictionary to try. Generating secrets and comparing hashes (in constant time) is the node's
//! part; here a token is data, validated so that apply() stays total and bounded.
//!
//! Each node also holds a bootstrap admin token in memory, from its configuration; it is not
//! replicated and is not in [`Data::tokens`](super::Data), and its id [`BOOTSTRAP_ID`] is
//! reserved.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::State;
use crate::command::{Response, MAX_ACTOR_BYTES};
use crate::error::ApplyError;

/// Most tokens a cluster keeps: far more than people and services need, and a bound on what a
/// compromised admin token can make every replica hold.
pub const MAX_TOKENS: usize = 1000;
/// Length of a token id: 12 lowercase letters and digits, about 62 bits, so ids do not collide.
pub const TOKEN_ID_LEN: usize = 12;
/// Longest token name, in bytes.
pub const MAX_TOKEN_NAME_BYTES: usize = 64;
/// Length of a secret's SHA-256 in lowercase hex.
pub const SECRET_SHA256_LEN: usize = 64;
/// The id of every node's bootstrap token, reserved: no replicated token has it.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// What a token may do; each role may do everything the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: jobs, executions, dead letters, cluster status (not backups, not tokens).
    Viewer,
    /// Job writes and control, schedule preview, dead-letter requeue and purge.
    Editor,
    /// Membership, leadership transfer, backup and restore.
    Operator,
    /// Tokens.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Operator, Role::Admin];

    /// The role as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replicated API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Public id: the `<id>` of `bf_<id>_<secret>`.
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// What it is for, for people.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// When it was created (the proposer's clock).
    pub created_at: DateTime<Utc>,
    /// The id of the token that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Checks a token id: [`TOKEN_ID_LEN`] lowercase ASCII letters and digits, not [`BOOTSTRAP_ID`].
pub fn validate_token_id(id: &str) -> Result<(), ApplyError> {
    if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(ApplyError::invalid("id", format!("must be {TOKEN_ID_LEN} lowercase letters and digits")));
    }
    Ok(())
}

/// Checks a token name: 1 to [`MAX_TOKEN_NAME_BYTES`] bytes, no control characters, not blank.
pub fn validate_token_name(name: &str) -> Result<(), ApplyError> {
    if name.trim().is_empty() || name.len() > MAX_TOKEN_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ApplyError::invalid(
            "name",
            format!("must be 1 to {MAX_TOKEN_NAME_BYTES} bytes of printable text, not blank"),
        ));
    }
    Ok(())
}

fn validate_hash(hash: &str) -> Result<(), ApplyError> {
    if hash.len() != SECRET_SHA256_LEN || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApplyError::invalid("secret_sha256", "must be a SHA-256 in lowercase hex"));
    }
    Ok(())
}

/// Checks everything a stored token carries (for creates and for restored backups).
pub fn validate_token(token: &Token) -> Result<(), ApplyError> {
    validate_token_id(&token.id)?;
    validate_token_name(&token.name)?;
    validate_hash(&token.secret_sha256)?;
    if token.created_by.as_ref().is_some_and(|by| by.len() > MAX_ACTOR_BYTES) {
        return Err(ApplyError::invalid("created_by", format!("must be at most {MAX_ACTOR_BYTES} bytes")));
    }
    Ok(())
}

impl State {
    /// Adds a token; refused when the id is taken or [`MAX_TOKENS`] exist.
    pub(super) fn create_token(&mut self, token: Token) -> Result<Response, ApplyError> {
        validate_token(&token)?;
        if self.data.tokens.contains_key(&token.id) {
            return Err(ApplyError::Conflict { message: format!("token {} exists already", token.id) });
        }
        if self.data.tokens.len() >= MAX_TOKENS {
            return Err(ApplyError::QuotaExceeded { what: "tokens".into(), limit: MAX_TOKENS as u64 });
        }
        self.data.tokens.insert(token.id.clone(), token.clone());
        Ok(Response::Token { token: Box::new(token) })
    }

    /// Removes a token.
    pub(super) fn revoke_token(&mut self, id: &str) -> Result<Response, ApplyError> {
        match self.data.tokens.remove(id) {
            Some(_) => Ok(Response::Deleted),
            None => Err(ApplyError::NotFound { what: "token".into(), name: id.into() }),
        }
    }

    /// A replicated token by id.
    pub fn token(&self, id: &str) -> Option<&Token> {
        self.data.tokens.get(id)
    }

    /// Every replicated token, in id order.
    pub fn tokens(&self) -> impl Iterator<Item = &Token> + '_ {
        self.data.tokens.values()
    }
}

/// Checks the tokens of a backup: keyed by their id, each valid, at most [`MAX_TOKENS`].
pub(super) fn check_tokens(tokens: &BTreeMap<String, Token>) -> Result<(), ApplyError> {
    if tokens.len() > MAX_TOKENS {
        return Err(ApplyError::invalid("data.tokens", format!("holds more than {MAX_TOKENS} tokens")));
    }
    for (id, token) in tokens {
        let at = format!("data.tokens.{id}");
        if *id != token.id {
            return Err(ApplyError::invalid(&at, "tokens must be keyed by their id"));
        }
        validate_token(token).map_err(|e| match e {
            ApplyError::Invalid { field, message } => ApplyError::invalid(&format!("{at}.{field}"), message),
            other => other,
        })?;
        if !belfry_schedule::instant::in_window(token.created_at) {
            return Err(ApplyError::invalid(&at, "has an instant outside years 1970 to 9999"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).expect("an instant")
    }

    fn create(id: &str, name: &str) -> Command {
        Command::CreateToken {
            id: id.into(),
            role: Role::Editor,
            name: name.into(),
            secret_sha256: "ab".repeat(32),
            now: now(),
            by: Some(BOOTSTRAP_ID.into()),
        }
    }

    #[test]
    fn roles_are_ordered_least_first_and_round_trip() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(role.as_str()));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_token_is_created_once_and_revoked_once() {
        let mut state = State::default();
        let Response::Token { token } = state.apply(1, create("abcdef123456", "ci")) else { panic!("not created") };
        assert_eq!(
            (token.role, token.created_at, token.created_by.as_deref()),
            (Role::Editor, now(), Some("bootstrap"))
        );
        assert_eq!(state.token("abcdef123456"), Some(token.as_ref()));
        let again = state.apply(2, create("abcdef123456", "other"));
        assert!(matches!(again, Response::Rejected { error: ApplyError::Conflict { .. } }), "{again:?}");
        assert_eq!(state.apply(3, Command::RevokeToken { id: "abcdef123456".into() }), Response::Deleted);
        assert!(state.token("abcdef123456").is_none());
        let gone = state.apply(4, Command::RevokeToken { id: "abcdef123456".into() });
        assert!(matches!(gone, Response::Rejected { error: ApplyError::NotFound { .. } }), "{gone:?}");
    }

    #[test]
    fn bad_ids_names_and_hashes_are_refused_naming_the_field() {
        let mut state = State::default();
        let field_of = |r: Response| match r {
            Response::Rejected { error: ApplyError::Invalid { field, .. } } => field,
            other => panic!("not refused as invalid: {other:?}"),
        };
        for id in ["bootstrap", "ABCDEF123456", "abc", "abcdef1234567", "abcdef12345-"] {
            assert_eq!(field_of(state.apply(1, create(id, "ci"))), "id", "{id}");
        }
        for name in ["", "   ", "a\nb", &"n".repeat(MAX_TOKEN_NAME_BYTES + 1)] {
            assert_eq!(field_of(state.apply(1, create("abcdef123456", name))), "name", "{name:?}");
        }
        let Command::CreateToken { id, role, name, now, by, .. } = create("abcdef123456", "ci") else { unreachable!() };
        let bad_hash = Command::CreateToken { id, role, name, secret_sha256: "AB".repeat(32), now, by };
        assert_eq!(field_of(state.apply(1, bad_hash)), "secret_sha256");
        assert_eq!(state.tokens().count(), 0, "nothing was stored");
    }

    #[test]
    fn the_token_count_is_capped() {
        let mut state = State::default();
        for i in 0..MAX_TOKENS {
            let r = state.apply(i as u64 + 1, create(&format!("t{i:011}"), "many"));
            assert!(matches!(r, Response::Token { .. }), "{i}: {r:?}");
        }
        let r = state.apply(5000, create("zzzzzzzzzzzz", "one too many"));
        assert!(matches!(r, Response::Rejected { error: ApplyError::QuotaExceeded { limit: 1000, .. } }), "{r:?}");
    }

    #[test]
    fn data_without_tokens_still_loads() {
        let mut value = serde_json::to_value(State::default().data()).unwrap();
        value.as_object_mut().unwrap().remove("tokens");
        let data: crate::Data = serde_json::from_value(value).expect("an older snapshot loads");
        assert!(data.tokens.is_empty());
    }

    fn spec(name: &str) -> crate::JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"}
        }))
        .expect("a valid spec")
    }

    #[test]
    fn writes_record_the_token_that_made_them() {
        let mut state = State::default();
        let by = |id: &str| Some(id.to_string());
        state.apply(1, Command::CreateJob { spec: spec("j"), now: now(), by: by("creator00001"), max_jobs: None });
        let job = state.job("j").expect("created").clone();
        assert_eq!(
            (job.created_by.as_deref(), job.updated_by.as_deref()),
            (Some("creator00001"), Some("creator00001"))
        );
        state.apply(2, Command::PauseJob { name: "j".into(), now: now(), by: by("pauser000001") });
        let job = state.job("j").expect("kept").clone();
        assert_eq!(
            (job.created_by.as_deref(), job.updated_by.as_deref()),
            (Some("creator00001"), Some("pauser000001"))
        );
        let replace = Command::ReplaceJob { spec: spec("j"), if_version: None, now: now(), by: by("replacer0001") };
        state.apply(3, replace);
        assert_eq!(state.job("j").and_then(|j| j.updated_by.as_deref()), Some("replacer0001"));
        let Response::Triggered { key } =
            state.apply(4, Command::TriggerJob { name: "j".into(), now: now(), by: by(BOOTSTRAP_ID) })
        else {
            panic!("not triggered")
        };
        let fire = state.fire_by_key(&key).expect("the fire");
        assert_eq!((fire.triggered_by.as_deref(), fire.requeued_by.as_deref()), (Some("bootstrap"), None));
        let long = Command::PauseJob { name: "j".into(), now: now(), by: Some("x".repeat(500)) };
        state.apply(5, long);
        assert_eq!(state.job("j").and_then(|j| j.updated_by.as_ref()).map(|by| by.len()), Some(MAX_ACTOR_BYTES));
    }

    #[test]
    fn the_job_cap_in_the_entry_refuses_creates_past_it() {
        let mut state = State::default();
        let create = |name: &str, max_jobs| Command::CreateJob { spec: spec(name), now: now(), by: None, max_jobs };
        assert!(matches!(state.apply(1, create("a", Some(2))), Response::Job { .. }));
        assert!(matches!(state.apply(2, create("b", Some(2))), Response::Job { .. }));
        let r = state.apply(3, create("c", Some(2)));
        assert!(matches!(r, Response::Rejected { error: ApplyError::QuotaExceeded { limit: 2, .. } }), "{r:?}");
        let r = state.apply(4, create("a", Some(2)));
        assert!(matches!(r, Response::Rejected { error: ApplyError::AlreadyExists { .. } }), "a name in use says so");
        assert!(matches!(state.apply(5, create("c", None)), Response::Job { .. }), "no cap in the entry, none applied");
        assert_eq!(state.job_count(), 3);
    }

    #[test]
    fn entries_written_before_writers_were_recorded_still_apply() {
        let old = serde_json::json!({
            "type": "create_job",
            "spec": {"name": "j", "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"}},
            "now": "2026-06-01T00:00:00Z"
        });
        let command: Command = serde_json::from_value(old).expect("an old entry decodes");
        assert!(matches!(command, Command::CreateJob { by: None, max_jobs: None, .. }), "{command:?}");
        let mut state = State::default();
        assert!(matches!(state.apply(1, command), Response::Job { .. }));
        assert_eq!(state.job("j").map(|j| j.created_by.clone()), Some(None));
    }
}
