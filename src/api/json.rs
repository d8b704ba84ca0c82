//! A JSON body extractor whose errors are 422 problems naming the field:
//! axum's own rejection only says the body failed to deserialize.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A request body parsed strictly into `T`.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json") || ct.starts_with("application/merge-patch+json")
            });
        if !is_json {
            return Err(ApiError::invalid(
                "body",
                "Content-Type must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("body", format!("not valid JSON: {e}")))?;
        from_value(value).map(StrictJson)
    }
}

/// Deserializes with the path of the failing field, turning serde's
/// messages into `{field, reason}`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        let field = if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        } else if path == "." {
            "body".to_owned()
        } else {
            path
        };
        let reason = message
            .split(", expected one of")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ApiError::invalid(field, reason)
    })
}
