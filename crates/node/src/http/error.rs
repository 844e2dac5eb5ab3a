//! API errors: every answer that is not a success is `{"error": {"code", "message", "field"}}`
//! with a stable `code`, built here (the extractors in `extract` and the edge layers in `edge`
//! reject through it too). A refused batch create adds `"errors"`, one entry per refused spec
//! ([`ApiError::batch`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use belfry_core::api::{ErrorBody, ErrorDetail, ItemError};
use belfry_core::ApplyError;

use crate::context::ClusterError;

/// An error answer: status, stable code, message and optional field.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// The refused specs of a batch create; empty for every other error.
    items: Vec<ItemError>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None, items: Vec::new() }
    }

    /// A 400 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
            field: Some(field.into()),
            items: Vec::new(),
        }
    }

    /// A 404.
    pub fn not_found(what: &str, name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {name} not found"))
    }

    /// The refusal of a batch create, from the error of each refused spec (by index). Its
    /// status is 400 `invalid` when any spec is invalid, else the status and code of the first
    /// refusal (409 `already_exists`, `quota_exceeded`); the top-level error is the first refusal
    /// of that status, its field prefixed with the spec's place (`jobs[7].schedule.cron`), and
    /// `errors` lists every refusal in index order.
    pub fn batch(mut refused: Vec<(usize, ApiError)>) -> ApiError {
        refused.sort_by_key(|(index, _)| *index);
        let lead = refused.iter().find(|(_, e)| e.status == StatusCode::BAD_REQUEST).or(refused.first());
        let Some((index, lead)) = lead else {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "a batch refused with no reason");
        };
        let field = match &lead.field {
            Some(field) => format!("jobs[{index}].{field}"),
            None => format!("jobs[{index}]"),
        };
        let count = refused.len();
        let specs = if count == 1 { "spec" } else { "specs" };
        let message = format!("{count} job {specs} refused, nothing created; index {index}: {}", lead.message);
        let (status, code) = (lead.status, lead.code);
        let items = refused
            .into_iter()
            .map(|(index, e)| ItemError { index, code: e.code.into(), message: e.message, field: e.field })
            .collect();
        ApiError { status, code, message, field: Some(field), items }
    }

    /// The same error naming `field` (a 404 for a query filter names the parameter).
    pub fn on_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.into());
        self
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        let message = e.to_string();
        match e {
            ApplyError::Invalid { field, message } => ApiError::invalid(&field, message),
            ApplyError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            ApplyError::AlreadyExists { .. } => ApiError::new(StatusCode::CONFLICT, "already_exists", message),
            ApplyError::VersionMismatch { .. } => ApiError::new(StatusCode::CONFLICT, "version_mismatch", message),
            ApplyError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            ApplyError::QuotaExceeded { .. } => ApiError::new(StatusCode::CONFLICT, "quota_exceeded", message),
            ApplyError::Item { index, error } => ApiError::batch(vec![(index, ApiError::from(*error))]),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> ApiError {
        match e {
            ClusterError::NoLeader(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", e.to_string()),
            ClusterError::Unknown(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", e.to_string())
            }
            ClusterError::Internal(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = ErrorDetail { code: self.code.into(), message: self.message, field: self.field };
        let body = ErrorBody { error, errors: self.items };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
