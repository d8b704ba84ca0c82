//! Errors as RFC 9457 problem documents: 422 lists each bad field, 409 says
//! what is in the way, and nothing the client sent becomes a 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{FieldError, FieldErrors};
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    Invalid(FieldErrors),
    BadRequest(String),
    RangeNotSatisfiable(u64),
    Unavailable(String),
    Internal(String),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(FieldErrors::single(field, reason))
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        Self::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no such resource".into()),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Invalid(fields) => Self::Invalid(fields),
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => {
                tracing::error!(error = %other, "store failure");
                if matches!(&other, StoreError::Database(sqlx::Error::PoolTimedOut)) {
                    Self::Unavailable("database unavailable".into())
                } else {
                    Self::Internal("storage error".into())
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let empty: &[FieldError] = &[];
        let (status, title, detail, errors) = match &self {
            Self::Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                why.to_string(),
                empty,
            ),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", why.clone(), empty),
            Self::NotFound(why) => (StatusCode::NOT_FOUND, "not found", why.clone(), empty),
            Self::Conflict(why) => (StatusCode::CONFLICT, "conflict", why.clone(), empty),
            Self::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid request",
                fields.to_string(),
                fields.0.as_slice(),
            ),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, "bad request", why.clone(), empty),
            Self::RangeNotSatisfiable(_) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range not satisfiable",
                "the requested range is outside the file".into(),
                empty,
            ),
            Self::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                why.clone(),
                empty,
            ),
            Self::Internal(why) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                why.clone(),
                empty,
            ),
        };
        let body = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pbx-bridge\""),
                );
            }
            Self::RangeNotSatisfiable(len) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            _ => {}
        }
        response
    }
}
