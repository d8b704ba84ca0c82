//! The PBX connection, a singleton: `GET /pbx` (the stored connection or
//! the disabled default), `PUT /pbx` and `PATCH /pbx` (merge patch). The
//! AMI secret is write-only (`has_ami_secret`); an absent one keeps it.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::ApiError;
use super::auth::Caller;
use super::json::StrictJson;
use super::resource::merged;
use crate::ami::AmiStatus;
use crate::app::App;
use crate::domain::{Pbx, PbxInput, Scope};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/pbx",
            get(read).put(replace).patch(patch).fallback(not_allowed),
        )
        .route("/pbx/status", get(status))
}

/// The AMI client's state: connected / authenticating / backoff…, the last
/// error, since when, and the next retry.
async fn status(State(app): State<App>, caller: Caller) -> Result<Json<AmiStatus>, ApiError> {
    caller.require(Scope::ConfigRead)?;
    Ok(Json(app.ami().status()))
}

async fn read(State(app): State<App>, caller: Caller) -> Result<Json<Pbx>, ApiError> {
    caller.require(Scope::ConfigRead)?;
    Ok(Json(app.store().get_pbx().await?))
}

async fn write(app: &App, input: PbxInput) -> Result<Json<Pbx>, ApiError> {
    let current = app.store().get_pbx().await?;
    input.validate(current.has_ami_secret)?;
    let stored = app.store().put_pbx(&input).await?;
    app.ami().config_changed();
    // Calls recognise the PBX's SIP address from the plan.
    app.numbering_plan_changed();
    Ok(Json(stored))
}

async fn replace(
    State(app): State<App>,
    caller: Caller,
    StrictJson(input): StrictJson<PbxInput>,
) -> Result<Json<Pbx>, ApiError> {
    caller.require(Scope::ConfigWrite)?;
    write(&app, input).await
}

async fn patch(
    State(app): State<App>,
    caller: Caller,
    StrictJson(patch): StrictJson<serde_json::Value>,
) -> Result<Json<Pbx>, ApiError> {
    caller.require(Scope::ConfigWrite)?;
    let current = app.store().get_pbx().await?;
    let input = merged::<PbxInput>(&current.to_input(), patch)?;
    write(&app, input).await
}

/// POST and DELETE: the PBX connection always exists, it is only replaced.
async fn not_allowed() -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "method not allowed",
        "status": 405,
        "detail": "the PBX connection is a singleton: use GET, PUT or PATCH",
    });
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::ALLOW, "GET, HEAD, PUT, PATCH"),
        ],
        body.to_string(),
    )
        .into_response()
}
