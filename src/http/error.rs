//! The one HTTP error type. Every handler returns `Result<_, ApiError>`; this is the only
//! place errors become status codes and bodies. 5xx details are logged, never sent.
//!
//! Body: `{"error": {"code": "...", "message": "...", "details": [{"path": "...", "rule": "..."}]}}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use rapport_events::ValidationErrors;
use serde_json::{json, Value};

use crate::{auth::AuthError, store::StoreError};

#[derive(Debug)]
pub enum ApiError {
    /// 400: the events in the body break rules; `details` lists each field.
    Invalid(ValidationErrors),
    /// 400: a parameter or the body is wrong; `field` names it.
    BadRequest { field: String, message: String },
    /// 401.
    Unauthorized(String),
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 410: what was asked for is no longer kept (a feed cursor too old).
    Gone(String),
    /// 409: expected version or id conflict.
    Conflict { code: &'static str, message: String },
    /// 413.
    TooLarge(String),
    /// 429: too many live feeds open for one key.
    TooManyRequests(String),
    /// 415.
    UnsupportedMediaType(String),
    /// 503: shutting down, or not ready.
    Unavailable(String),
    /// 507: the store's disk is full; nothing was written (logged once per episode by the
    /// store, not per request).
    InsufficientStorage(String),
    /// 500: logged with its detail; the client sees a generic message.
    Internal(String),
}

impl ApiError {
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A JSON body read into the type an endpoint takes, or a 400 saying why not.
    pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad(
                "/",
                format!("the body is not what this endpoint takes: {e}"),
            )
        })
    }

    /// A query string that does not deserialize, naming the parameter when axum's message
    /// does (`Failed to deserialize query string: as_of_position: invalid digit …`).
    pub fn query(e: axum::extract::rejection::QueryRejection) -> ApiError {
        let text = e.body_text();
        let detail = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        match detail.split_once(": ") {
            Some((field, rule))
                if !field.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                ApiError::bad(field, rule)
            }
            _ => ApiError::bad("query", detail),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongExpectedVersion { .. } => ApiError::Conflict {
                code: "wrong_expected_version",
                message: e.to_string(),
            },
            StoreError::IdConflict { .. } => ApiError::Conflict {
                code: "id_conflict",
                message: e.to_string(),
            },
            StoreError::Invalid(m) => ApiError::bad("", m),
            StoreError::Closed => ApiError::Unavailable(e.to_string()),
            StoreError::Full(_) => ApiError::InsufficientStorage(
                "the store's disk is full: nothing was written; retry once there is room".into(),
            ),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> ApiError {
        use crate::webhooks::WebhookError as W;
        match e {
            W::Invalid { field, message } => ApiError::bad(field, message),
            W::NotFound(id) => ApiError::NotFound(format!("no webhook `{id}`")),
            W::Io(e) => ApiError::Internal(format!("webhooks file: {e}")),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid => ApiError::Unauthorized(e.to_string()),
            AuthError::Store(s) => s.into(),
        }
    }
}

impl ApiError {
    /// The status, machine-readable code, message and field details the client sees (an
    /// internal error's detail is logged here, never returned).
    fn parts(self) -> (StatusCode, &'static str, String, Vec<Value>) {
        match self {
            ApiError::Invalid(errs) => {
                let details: Vec<_> = errs
                    .0
                    .iter()
                    .take(rapport_events::error::FIELD_ERRORS_MAX)
                    .map(|e| json!({"path": e.path, "rule": e.rule}))
                    .collect();
                (
                    StatusCode::BAD_REQUEST,
                    "invalid_event",
                    errs.to_string(),
                    details,
                )
            }
            ApiError::BadRequest { field, message } => {
                let details = if field.is_empty() {
                    vec![]
                } else {
                    vec![json!({"path": field, "rule": message})]
                };
                let message = if field.is_empty() {
                    message
                } else {
                    format!("{field}: {message}")
                };
                (StatusCode::BAD_REQUEST, "bad_request", message, details)
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m, vec![]),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m, vec![]),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m, vec![]),
            ApiError::Gone(m) => (StatusCode::GONE, "gone", m, vec![]),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message, vec![]),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m, vec![]),
            ApiError::TooManyRequests(m) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_feeds", m, vec![])
            }
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m,
                vec![],
            ),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, vec![]),
            ApiError::InsufficientStorage(m) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk_full", m, vec![])
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log".to_owned(),
                    vec![],
                )
            }
        }
    }

    /// The status and the message a client sees: for the console's error pages.
    pub(crate) fn status_and_message(self) -> (StatusCode, String) {
        let (status, _, message, _) = self.parts();
        (status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        let mut body = json!({"error": {"code": code, "message": message}});
        if !details.is_empty() {
            body["error"]["details"] = details.into();
        }
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
