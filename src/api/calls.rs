//! Call actions on Asterisk through AMI (SPEC §5, §6): click-to-call with
//! `Originate`, blind transfer of an Asterisk call with `Redirect`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Caller;
use super::json::StrictJson;
use crate::ami::AmiActionError;
use crate::app::App;
use crate::domain::{CallSource, FieldErrors, Protocol, Scope, Transfer};
use crate::store::StoreError;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/calls", post(click_to_call))
        .route("/calls/{id}/transfer", post(transfer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickToCall {
    pub from_extension: String,
    pub to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    pub target: String,
}

/// A dial string: digits, `+`, `*`, `#`, at most 32.
fn dial(errors: &mut FieldErrors, field: &str, value: &str) {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'*' | b'#'));
    errors.check(ok, field, "must be 1 to 32 characters of digits, +, * or #");
}

fn action_error(e: AmiActionError) -> ApiError {
    match e {
        AmiActionError::Disabled | AmiActionError::NotConnected(_) => {
            ApiError::Unavailable(e.to_string())
        }
        AmiActionError::NoSuchCall(_) | AmiActionError::Refused { .. } => {
            ApiError::Conflict(e.to_string())
        }
        AmiActionError::Invalid(_) => ApiError::BadRequest(e.to_string()),
        AmiActionError::Failed { .. } => ApiError::Unavailable(e.to_string()),
    }
}

/// `POST /calls {from_extension, to}`: rings the extension on Asterisk;
/// when it answers, Asterisk dials `to`. 202: queued (the call itself shows
/// up as an attendance when it is answered and dials).
async fn click_to_call(
    State(app): State<App>,
    caller: Caller,
    StrictJson(input): StrictJson<ClickToCall>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Calls)?;
    let mut errors = FieldErrors::new();
    dial(&mut errors, "from_extension", &input.from_extension);
    dial(&mut errors, "to", &input.to);
    errors.into_result()?;
    let directory = app.store().call_directory().await?;
    if !directory.extensions.contains_key(&input.from_extension) {
        return Err(ApiError::invalid(
            "from_extension",
            "no active extension with this number",
        ));
    }
    app.ami()
        .originate(&input.from_extension, &input.to)
        .await
        .map_err(action_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "queued",
            "via": "ami",
            "from_extension": input.from_extension,
            "to": input.to,
        })),
    ))
}

/// `POST /calls/{id}/transfer {target}`: for a call Asterisk handles, `id`
/// is the attendance's protocol; the customer's channel is redirected to
/// the department code (or extension) `target`, and the transfer recorded.
async fn transfer(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(input): StrictJson<TransferInput>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Calls)?;
    let mut errors = FieldErrors::new();
    dial(&mut errors, "target", &input.target);
    errors.into_result()?;
    let protocol =
        Protocol::parse(&id).map_err(|_| ApiError::NotFound(format!("no live call {id}")))?;
    let (source, call_ref) = match app.store().attendance_call_ref(protocol.as_str()).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound(format!("no call {id}"))),
        Err(e) => return Err(e.into()),
    };
    let current = app.store().get_attendance(protocol.as_str()).await?;
    let (CallSource::Ami, Some(linkedid)) = (source, call_ref) else {
        return Err(ApiError::Conflict(format!(
            "call {id} is not an Asterisk call; it is not transferred through AMI"
        )));
    };
    if current.ended_at.is_some() {
        return Err(ApiError::Conflict(format!("call {id} has ended")));
    }
    let directory = app.store().call_directory().await?;
    let department = directory.department_codes.get(&input.target).copied();
    if department.is_none() && !directory.extensions.contains_key(&input.target) {
        return Err(ApiError::invalid(
            "target",
            "no department PABX code or extension with this number",
        ));
    }
    app.ami()
        .redirect(&linkedid, &input.target)
        .await
        .map_err(action_error)?;
    let transfer = Transfer {
        at: Utc::now(),
        from_agent_id: current.agent_id,
        target: input.target.clone(),
        department_id: department.map(|d| d.id),
    };
    let updated = app
        .store()
        .record_transfer(protocol.as_str(), &transfer)
        .await?;
    Ok(Json(json!({
        "status": "transferred",
        "protocol": updated.protocol,
        "target": input.target,
        "transfers": updated.transfers,
    })))
}
