//! API errors: every answer that is not a success is `{"error": {"code", "message", "field"}}`
//! with a stable `code`, built here (the extractors in `extract` and the edge layers in `edge`
//! reject through it too).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use belfry_core::api::{ErrorBody, ErrorDetail};
use belfry_core::ApplyError;

use crate::context::ClusterError;

/// An error answer: status, stable code, message and optional field.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), field: None }
    }

    /// A 400 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A 404.
    pub fn not_found(what: &str, name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {name} not found"))
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
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message, field: self.field } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
