//! Calls (SPEC §5, §6): the live calls of the bridge's own B2BUA (list,
//! read, hang up, SIP trace, blind transfer, all through the call task's
//! control channel), the calls Asterisk carries (listed and read from the
//! AMI client's live view, `source: ami`), and the actions on Asterisk
//! through AMI: click-to-call with `Originate`, blind transfer of an
//! Asterisk call with `Redirect`, hang-up with `Hangup`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::ApiError;
use super::auth::Caller;
use super::json::StrictJson;
use crate::ami::{AmiActionError, AmiLiveCall};
use crate::app::App;
use crate::calls::{CallControl, LiveCall, NotOriginated, OriginateCall, OriginateError};
use crate::domain::{
    Attendance, AttendanceStatus, CallSource, CloseReason, Direction, FieldErrors, Protocol, Scope,
    Transfer,
};
use crate::store::{NewAttendance, StoreError};

/// How long the API waits for a call task to accept or refuse a transfer:
/// the task answers as soon as it has started the transfer or decided it
/// cannot, which takes milliseconds unless the task is stuck.
const TRANSFER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> Router<App> {
    Router::new()
        .route("/calls", get(list).post(click_to_call))
        .route("/calls/{id}", get(read).delete(hang_up))
        .route("/calls/{id}/sip-trace", get(sip_trace))
        .route("/calls/{id}/transfer", post(transfer))
}

fn not_live(id: &str) -> ApiError {
    ApiError::NotFound(format!("no live call {id}"))
}

/// A live call as the API shows it: the bridge's own (`source: sip`) or
/// one Asterisk carries (`source: ami`), the same fields where they fit.
#[derive(Debug, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ListedCall {
    Sip(LiveCall),
    Ami(AmiLiveCall),
}

impl ListedCall {
    fn since(&self) -> DateTime<Utc> {
        match self {
            ListedCall::Sip(c) => c.since,
            ListedCall::Ami(c) => c.since,
        }
    }
}

/// `GET /calls`: this node's live calls and the calls Asterisk carries
/// (while AMI is logged in), oldest first.
async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Calls)?;
    let mut items: Vec<ListedCall> = app
        .calls()
        .list()
        .into_iter()
        .map(ListedCall::Sip)
        .collect();
    items.extend(app.ami().calls().list().into_iter().map(ListedCall::Ami));
    // Stable: the bridge's own calls keep their order among equal times.
    items.sort_by_key(ListedCall::since);
    Ok(Json(json!({ "items": items })))
}

/// `GET /calls/{id}`: one live call, by protocol.
async fn read(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ListedCall>, ApiError> {
    caller.require(Scope::Calls)?;
    if let Some(call) = app.calls().get(&id) {
        return Ok(Json(ListedCall::Sip(call)));
    }
    app.ami()
        .calls()
        .get(&id)
        .map(|c| Json(ListedCall::Ami(c)))
        .ok_or_else(|| not_live(&id))
}

/// `DELETE /calls/{id}`: asks the call's task to hang up every leg. 202:
/// the request is delivered; the call leaves the list once its legs ended.
/// A call Asterisk carries is hung up through AMI (`Hangup` of its
/// channels); its attendance closes `api` when Asterisk reports the end.
async fn hang_up(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ListedCall>), ApiError> {
    caller.require(Scope::Calls)?;
    let Some(call) = app.calls().get(&id) else {
        return hang_up_through_ami(&app, &id).await;
    };
    let control = app.calls().control(&id).ok_or_else(|| not_live(&id))?;
    // A closed channel: the task is gone and the call is ending anyway.
    control
        .send(CallControl::HangUp)
        .map_err(|_| not_live(&id))?;
    tracing::info!(protocol = %id, "hang-up requested through the API");
    Ok((StatusCode::ACCEPTED, Json(ListedCall::Sip(call))))
}

/// `DELETE` of a call that is not the bridge's: 503 while AMI is enabled
/// but not logged in (Asterisk's calls are unknown then), else 404 unless
/// it is in the AMI live view.
async fn hang_up_through_ami(
    app: &App,
    id: &str,
) -> Result<(StatusCode, Json<ListedCall>), ApiError> {
    let status = app.ami().status();
    if status.enabled && !status.connected {
        return Err(ApiError::Unavailable(format!(
            "AMI is not connected ({}): the calls Asterisk carries are unknown",
            status.state
        )));
    }
    let call = app.ami().calls().get(id).ok_or_else(|| not_live(id))?;
    match app.ami().hang_up(&call.linkedid).await {
        Ok(()) => {}
        Err(AmiActionError::NoSuchCall(_)) => return Err(not_live(id)),
        Err(e) => return Err(action_error(e)),
    }
    tracing::info!(protocol = %id, linkedid = %call.linkedid, "hang-up requested through AMI");
    Ok((StatusCode::ACCEPTED, Json(ListedCall::Ami(call))))
}

/// `GET /calls/{id}/sip-trace`: the SIP messages of a live or recently
/// ended call, by protocol, with how many were dropped from the middle.
async fn sip_trace(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Calls)?;
    let trace = app.traces().snapshot(&id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no SIP trace of {id}: not a call of this node, or ended too long ago"
        ))
    })?;
    Ok(Json(json!({
        "protocol": id,
        "ended": trace.ended,
        "dropped": trace.dropped,
        "messages": trace.messages,
    })))
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

/// `POST /calls {from_extension, to}`: click-to-call. An extension
/// registered on the bridge is rung by the bridge, which dials `to` once
/// it answers; otherwise, with the PBX enabled, Asterisk places the call
/// (AMI `Originate`). Either way the answer is 201 with the attendance,
/// opened before anyone rings, not waiting for anyone to answer: the
/// outcome is in the attendance (and `GET /calls` while it lives).
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
    if !app.bindings_of(&input.from_extension).is_empty() {
        return click_to_call_on_bridge(&app, input).await;
    }
    if !app.ami().status().enabled {
        return Err(ApiError::invalid(
            "from_extension",
            "not registered on the bridge, and no PBX is enabled to reach it through",
        ));
    }
    click_to_call_through_asterisk(&app, &directory, input).await
}

/// Click-to-call of an extension on Asterisk: the attendance is opened
/// first (`source: ami`), its protocol travels on the `Originate` as a
/// channel variable so the AMI follower attaches the call to it, and the
/// callee sees the agent's name and number. A refused action closes the
/// attendance `failed` at once; a failure Asterisk reports later
/// (`OriginateResponse`) is closed by the AMI client.
async fn click_to_call_through_asterisk(
    app: &App,
    directory: &crate::store::CallDirectory,
    input: ClickToCall,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let department = directory.department_codes.get(&input.to).map(|d| d.id);
    let internal = department.is_some() || directory.extensions.contains_key(&input.to);
    let new = NewAttendance {
        direction: if internal {
            Direction::Internal
        } else {
            Direction::Outbound
        },
        department_id: department,
        agent_id: None,
        caller: input.from_extension.clone(),
        callee: input.to.clone(),
        source: CallSource::Ami,
        opened_at: Utc::now(),
        call_ref: None,
        node: None,
    };
    let attendance = app
        .store()
        .open_attendance(&new, app.settings().time_zone)
        .await?;
    let name = app
        .store()
        .extension_display_name(&input.from_extension)
        .await?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| input.from_extension.clone());
    let protocol = attendance.protocol.clone();
    if let Err(e) = app
        .ami()
        .originate(&input.from_extension, &input.to, &protocol, &name)
        .await
    {
        tracing::warn!(%protocol, error = %e, "click-to-call through Asterisk refused");
        let now = Utc::now();
        app.store().mark_attendance_ended(&protocol, now).await?;
        app.store()
            .close_attendance(&protocol, CloseReason::Failed, now)
            .await?;
        return Err(action_error(e));
    }
    tracing::info!(%protocol, extension = %input.from_extension, to = %input.to, "click-to-call placed through Asterisk");
    Ok((StatusCode::CREATED, Json(json!(attendance))))
}

/// Click-to-call of an extension registered on the bridge: the call
/// engine opens the attendance (durable on the node) and rings it.
async fn click_to_call_on_bridge(
    app: &App,
    input: ClickToCall,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = OriginateCall {
        from_extension: input.from_extension,
        to: input.to,
    };
    match app.originations().originate(request).await {
        Ok(o) => {
            tracing::info!(protocol = %o.protocol, "click-to-call placed through the API");
            Ok((
                StatusCode::CREATED,
                Json(json!(opened_attendance(o.protocol, o.attendance))),
            ))
        }
        Err(OriginateError::Refused(NotOriginated {
            field: Some(field),
            why,
        })) => Err(ApiError::invalid(field, why)),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// The attendance as it is when opened (ringing, nothing else yet): what
/// `GET /attendances/{protocol}` shows once the ledger reached the database.
fn opened_attendance(protocol: String, new: NewAttendance) -> Attendance {
    Attendance {
        protocol,
        direction: new.direction,
        status: AttendanceStatus::Ringing,
        department_id: new.department_id,
        agent_id: new.agent_id,
        caller: new.caller,
        callee: new.callee,
        opened_at: new.opened_at,
        answered_at: None,
        ended_at: None,
        closed_at: None,
        close_reason: None,
        source: new.source,
        transfers: Vec::new(),
        recording: None,
        recording_remote_path: None,
    }
}

/// `POST /calls/{id}/transfer {target}`: `id` is the attendance's
/// protocol. A live call of this bridge is handed to its call task, which
/// moves the caller and records the transfer; for a call Asterisk handles,
/// the customer's channel is redirected to the department code (or
/// extension) `target`, and the transfer recorded here.
async fn transfer(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(input): StrictJson<TransferInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Calls)?;
    let mut errors = FieldErrors::new();
    dial(&mut errors, "target", &input.target);
    errors.into_result()?;
    if let Some(control) = app.calls().control(&id) {
        return sip_transfer(&id, control, input.target).await;
    }
    let protocol =
        Protocol::parse(&id).map_err(|_| ApiError::NotFound(format!("no live call {id}")))?;
    let (source, call_ref) = match app.store().attendance_call_ref(protocol.as_str()).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound(format!("no call {id}"))),
        Err(e) => return Err(e.into()),
    };
    let current = app.store().get_attendance(protocol.as_str()).await?;
    let (CallSource::Ami, Some(linkedid)) = (source, call_ref) else {
        return Err(ApiError::Conflict(match source {
            CallSource::Sip => format!("call {id} is not live on this bridge node"),
            CallSource::Ami => {
                format!("call {id} is not an Asterisk call; it is not transferred through AMI")
            }
        }));
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
        .redirect(&linkedid, &input.target, protocol.as_str())
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
    Ok((
        StatusCode::OK,
        Json(json!({
            "status": "transferred",
            "protocol": updated.protocol,
            "target": input.target,
            "transfers": updated.transfers,
        })),
    ))
}

/// Asks a live SIP call's task to transfer it and waits for its answer: a
/// refusal (unknown target, nobody there, a leg in the wrong state) is the
/// client's to fix, so it comes back as a 422 on `target`.
async fn sip_transfer(
    id: &str,
    control: mpsc::UnboundedSender<CallControl>,
    target: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ended = || ApiError::Conflict(format!("call {id} ended before the transfer"));
    let (reply, answer) = oneshot::channel();
    control
        .send(CallControl::Transfer {
            target: target.clone(),
            reply,
        })
        .map_err(|_| ended())?;
    match tokio::time::timeout(TRANSFER_REPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(()))) => {
            tracing::info!(protocol = %id, %target, "transfer requested through the API");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "status": "transferring",
                    "via": "sip",
                    "protocol": id,
                    "target": target,
                })),
            ))
        }
        Ok(Ok(Err(why))) => Err(ApiError::invalid("target", why)),
        Ok(Err(_)) => Err(ended()),
        Err(_) => {
            tracing::warn!(protocol = %id, %target, "call task did not answer a transfer request");
            Err(ApiError::Unavailable(format!(
                "call {id} did not answer the transfer request within {} s",
                TRANSFER_REPLY_TIMEOUT.as_secs()
            )))
        }
    }
}
