//! The OpenAPI 3.1 document at `/api/v1/openapi.json`. Schemas come from the
//! domain types (utoipa derives); paths are generated from one table so the
//! document lists exactly the routes `router` serves (a test checks both).

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::ComponentsBuilder;

use crate::{calls, domain};

/// A CRUD resource in the document: path, tag, representation, input.
struct Crud {
    path: &'static str,
    tag: &'static str,
    repr: &'static str,
    input: &'static str,
}

const CRUD: &[Crud] = &[
    Crud {
        path: "/extensions",
        tag: "extensions",
        repr: "Extension",
        input: "ExtensionInput",
    },
    Crud {
        path: "/tokens",
        tag: "tokens",
        repr: "ApiToken",
        input: "ApiTokenInput",
    },
    Crud {
        path: "/departments",
        tag: "departments",
        repr: "Department",
        input: "DepartmentInput",
    },
    Crud {
        path: "/agents",
        tag: "agents",
        repr: "Agent",
        input: "AgentInput",
    },
    Crud {
        path: "/periods",
        tag: "periods",
        repr: "Period",
        input: "PeriodInput",
    },
    Crud {
        path: "/holidays",
        tag: "holidays",
        repr: "Holiday",
        input: "HolidayInput",
    },
    Crud {
        path: "/trunks",
        tag: "trunks",
        repr: "Trunk",
        input: "TrunkInput",
    },
    Crud {
        path: "/outbound-routes",
        tag: "outbound-routes",
        repr: "OutboundRoute",
        input: "OutboundRouteInput",
    },
    Crud {
        path: "/acl",
        tag: "acl",
        repr: "AclRule",
        input: "AclRuleInput",
    },
    Crud {
        path: "/webhooks",
        tag: "webhooks",
        repr: "Webhook",
        input: "WebhookInput",
    },
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": schema_ref("Problem")}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn errors(mut responses: serde_json::Map<String, Value>) -> Value {
    responses.insert("401".into(), problem("missing or unknown token"));
    responses.insert(
        "403".into(),
        problem("token lacks the scope, or network not allowed"),
    );
    responses.insert("422".into(), problem("invalid input, each field named"));
    Value::Object(responses)
}

fn page_of(name: &str) -> Value {
    json!({"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": schema_ref(name)},
        "next_cursor": {"type": ["string", "null"]}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})
}

fn list_params() -> Value {
    json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
    ])
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}})
}

fn crud_paths(paths: &mut serde_json::Map<String, Value>, c: &Crud) {
    let m = |v: Value| v.as_object().cloned().unwrap_or_default();
    paths.insert(
        c.path.to_owned(),
        json!({
            "get": {"tags": [c.tag], "summary": format!("List {}", c.tag), "parameters": list_params(),
                     "responses": errors(m(json!({"200": ok("a page", page_of(c.repr))})))},
            "post": {"tags": [c.tag], "summary": format!("Create in {}", c.tag),
                      "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                      "requestBody": body(c.input),
                      "responses": errors(m(json!({"201": ok("created", schema_ref(c.repr)),
                                                      "409": problem("conflicts with existing data")})))}
        }),
    );
    paths.insert(
        format!("{}/{{id}}", c.path),
        json!({
            "parameters": [id_param()],
            "get": {"tags": [c.tag], "responses": errors(m(json!({"200": ok("the resource", schema_ref(c.repr)), "404": problem("not found")})))},
            "put": {"tags": [c.tag], "requestBody": body(c.input),
                     "responses": errors(m(json!({"200": ok("replaced", schema_ref(c.repr)), "404": problem("not found"), "409": problem("conflict")})))},
            "patch": {"tags": [c.tag], "summary": "JSON merge patch (RFC 7396)",
                       "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                       "responses": errors(m(json!({"200": ok("patched", schema_ref(c.repr)), "404": problem("not found"), "409": problem("conflict")})))},
            "delete": {"tags": [c.tag], "responses": errors(m(json!({"204": {"description": "deleted"}, "404": problem("not found"), "409": problem("in use: the detail says by what")})))}
        }),
    );
}

fn other_paths(paths: &mut serde_json::Map<String, Value>) {
    let m = |v: Value| v.as_object().cloned().unwrap_or_default();
    let protocol = json!({"name": "protocol", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9]{14}$"}});
    paths.insert(
        "/attendances".into(),
        json!({"get": {"tags": ["attendances"], "parameters": [
        {"name": "status", "in": "query", "schema": schema_ref("AttendanceStatus")},
        {"name": "department_id", "in": "query", "schema": {"type": "integer"}},
        {"name": "agent_id", "in": "query", "schema": {"type": "integer"}},
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
        "responses": errors(m(json!({"200": ok("newest first", page_of("Attendance"))})))}}),
    );
    paths.insert("/attendances/{protocol}".into(), json!({"get": {"tags": ["attendances"], "parameters": [protocol],
        "responses": errors(m(json!({"200": ok("the attendance", schema_ref("Attendance")), "404": problem("not found")})))}}));
    paths.insert("/attendances/{protocol}/close".into(), json!({"post": {"tags": ["attendances"], "parameters": [protocol],
        "responses": errors(m(json!({"200": ok("closed with reason api", schema_ref("Attendance")), "409": problem("already closed")})))}}));
    paths.insert("/attendances/{protocol}/recording".into(), json!({"get": {"tags": ["attendances"], "parameters": [protocol,
        {"name": "Range", "in": "header", "schema": {"type": "string"}}],
        "responses": errors(m(json!({"200": {"description": "WAV", "content": {"audio/wav": {}}},
                                       "206": {"description": "the requested range", "content": {"audio/wav": {}}},
                                       "404": problem("no recording"), "416": problem("bad range")})))}}));
    paths.insert("/export/attendances.csv".into(), json!({"get": {"tags": ["attendances"], "parameters": [
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
        "responses": errors(m(json!({"200": {"description": "CSV, streamed", "content": {"text/csv": {}}}})))}}));
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"tags": ["meta"], "security": [],
        "responses": {"200": {"description": "this document"}}}}),
    );
    paths.insert(
        "/registrations".into(),
        json!({"get": {"tags": ["sip"], "summary": "Registered contacts and locked-out addresses",
        "responses": errors(m(json!({"200": ok("bindings and lockouts", schema_ref("Registrations"))})))}}),
    );
}

/// `POST` and `DELETE /agents/{id}/pause` (scope `calls`).
fn agent_pause_paths(paths: &mut serde_json::Map<String, Value>) {
    let m = |v: Value| v.as_object().cloned().unwrap_or_default();
    paths.insert(
        "/agents/{id}/pause".into(),
        json!({
            "parameters": [id_param()],
            "post": {"tags": ["agents"], "summary": "Start a pause (it lasts until ended)",
                      "requestBody": body("PauseInput"),
                      "responses": errors(m(json!({"200": ok("the paused agent", schema_ref("Agent")),
                                                      "404": problem("not found"),
                                                      "409": problem("already paused")})))},
            "delete": {"tags": ["agents"], "summary": "End the pause",
                        "responses": errors(m(json!({"200": ok("the agent", schema_ref("Agent")),
                                                        "404": problem("not found"),
                                                        "409": problem("not paused")})))}
        }),
    );
}

/// Calls: the bridge's live calls and the ones Asterisk carries, the SIP
/// traces, the actions on Asterisk through AMI (click-to-call, transfer,
/// hang-up), the AMI client status.
fn ami_paths(paths: &mut serde_json::Map<String, Value>) {
    let m = |v: Value| v.as_object().cloned().unwrap_or_default();
    let dial = json!({"type": "string", "pattern": "^[0-9+*#]{1,32}$"});
    paths.insert(
        "/calls".into(),
        json!({
        "get": {"tags": ["calls"], "summary": "Live calls, oldest first (scope calls): this node's B2BUA's (`source: sip`) and, while AMI is logged in, those Asterisk carries that have an attendance (`source: ami`)",
        "responses": errors(m(json!({"200": ok("the live calls", json!({"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": schema_ref("ListedCall")}}}))})))},
        "post": {"tags": ["calls"], "summary": "Click-to-call (scope calls): rings `from_extension`, which then dials `to` (an extension, a PABX code or a number through the outbound routes). An extension registered on the bridge is rung by the bridge (the call is listed in GET /calls and hung up by DELETE /calls/{protocol}); otherwise, with the PBX enabled, Asterisk places it (AMI Originate carrying the protocol; followed through the attendance, and listed in GET /calls with `source: ami` once it reached its callee's dialplan). Answers at once with the attendance, opened before anyone rings; the outcome is in the attendance",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": false, "required": ["from_extension", "to"],
            "properties": {"from_extension": dial, "to": dial}}}}},
        "responses": errors(m(json!({
            "201": ok("the attendance, ringing", schema_ref("Attendance")),
            "422": problem("a bad field; `from_extension` not registered on the bridge with no PBX enabled; `to` not routable"),
            "503": problem("AMI is not connected, or SIP is not running")})))}}),
    );
    let call_id = json!({"name": "id", "in": "path", "required": true, "description": "the call's protocol", "schema": {"type": "string"}});
    paths.insert(
        "/calls/{id}".into(),
        json!({
            "parameters": [call_id],
            "get": {"tags": ["calls"], "summary": "A live call, the bridge's or Asterisk's (scope calls)",
                    "responses": errors(m(json!({"200": ok("the call", schema_ref("ListedCall")), "404": problem("no such live call")})))},
            "delete": {"tags": ["calls"], "summary": "Hang up every leg of a live call (scope calls): the bridge's through its call task; one Asterisk carries by AMI `Hangup` of its channels (the customer's first), its attendance closed `api` once Asterisk reports the end",
                       "responses": errors(m(json!({"202": ok("hang-up requested; the call as it was", schema_ref("ListedCall")),
                                                       "404": problem("no such live call"),
                                                       "409": problem("Asterisk refused the hang-up"),
                                                       "503": problem("not the bridge's call, and AMI is enabled but not connected (Asterisk's calls are unknown)")})))}
        }),
    );
    paths.insert(
        "/calls/{id}/sip-trace".into(),
        json!({
            "parameters": [call_id],
            "get": {"tags": ["calls"], "summary": "The SIP messages of a live or recently ended call, by protocol (scope calls). A call keeps its first and last messages; `dropped` counts those left out in between",
                    "responses": errors(m(json!({"200": ok("the trace", json!({"type": "object",
                        "required": ["protocol", "ended", "dropped", "messages"],
                        "properties": {"protocol": {"type": "string"}, "ended": {"type": "boolean"},
                                       "dropped": {"type": "integer"},
                                       "messages": {"type": "array", "items": schema_ref("TracedMessage")}}})),
                        "404": problem("no trace kept for this protocol")})))}
        }),
    );
    paths.insert(
        "/calls/{id}/transfer".into(),
        json!({"post": {"tags": ["calls"], "summary": "Blind transfer (scope calls) of the call with protocol `id` to the department code or extension `target`: a live call of this bridge through its call task (202), else an Asterisk call by Redirect of the customer's channel (200)",
        "parameters": [call_id],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": false, "required": ["target"],
            "properties": {"target": dial}}}}},
        "responses": errors(m(json!({
            "200": ok("Asterisk call transferred; the attendance's transfer history", json!({"type": "object"})),
            "202": ok("bridge call: the transfer is under way", json!({"type": "object"})),
            "404": problem("no such call"),
            "409": problem("the call has ended, is not on Asterisk, or Asterisk refused"),
            "503": problem("the PBX is disabled or AMI is not connected, or the call did not answer within 5 s")})))}}),
    );
    paths.insert(
        "/trunks/{id}/status".into(),
        json!({"get": {"tags": ["trunks"], "summary": "The bridge's registration with the trunk (scope config:read): `disabled` when it does not register; refreshed before `expires_at`, retried with backoff after failures (`next_attempt_at`)",
        "parameters": [id_param()],
        "responses": errors(m(json!({
            "200": ok("registration state", schema_ref("TrunkRegistration")),
            "404": problem("no such trunk")})))}}),
    );
    paths.insert(
        "/pbx/status".into(),
        json!({"get": {"tags": ["pbx"], "summary": "AMI client state (scope config:read)",
        "responses": errors(m(json!({"200": ok("state, last_error, since, retry_at", json!({"type": "object",
            "required": ["enabled", "state", "connected", "since"],
            "properties": {
                "enabled": {"type": "boolean"},
                "state": {"type": "string", "enum": ["disconnected", "connecting", "banner", "authenticating", "connected", "backoff", "auth_failed"]},
                "connected": {"type": "boolean"},
                "last_error": {"type": ["string", "null"]},
                "since": {"type": "string", "format": "date-time"},
                "retry_at": {"type": ["string", "null"], "format": "date-time"},
                "host": {"type": ["string", "null"]},
                "port": {"type": ["integer", "null"]},
                "logins": {"type": "integer"}}}))})))}}),
    );
}

fn singleton_paths(paths: &mut serde_json::Map<String, Value>) {
    let m = |v: Value| v.as_object().cloned().unwrap_or_default();
    paths.insert(
        "/pbx".into(),
        json!({
            "get": {"tags": ["pbx"], "summary": "The PBX connection (the disabled default until set)",
                    "responses": errors(m(json!({"200": ok("the PBX connection", schema_ref("Pbx"))})))},
            "put": {"tags": ["pbx"], "summary": "Replace the PBX connection (an absent ami_secret keeps the stored one)",
                    "requestBody": body("PbxInput"),
                    "responses": errors(m(json!({"200": ok("replaced", schema_ref("Pbx"))})))},
            "patch": {"tags": ["pbx"], "summary": "JSON merge patch (RFC 7396)",
                      "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}},
                      "responses": errors(m(json!({"200": ok("patched", schema_ref("Pbx"))})))}
        }),
    );
    paths.insert(
        "/webhooks/{id}/deliveries".into(),
        json!({
            "parameters": [id_param()],
            "get": {"tags": ["webhooks"], "summary": "Deliveries to the webhook, newest first",
                    "parameters": list_params(),
                    "responses": errors(m(json!({"200": ok("a page", page_of("WebhookDelivery")), "404": problem("no such webhook")})))}
        }),
    );
}

/// Builds the document.
pub fn build() -> Value {
    use domain::*;
    let components = ComponentsBuilder::new()
        .schema_from::<Extension>()
        .schema_from::<ExtensionInput>()
        .schema_from::<FollowMe>()
        .schema_from::<DigestAlgorithm>()
        .schema_from::<ApiToken>()
        .schema_from::<ApiTokenInput>()
        .schema_from::<Scope>()
        .schema_from::<Department>()
        .schema_from::<DepartmentInput>()
        .schema_from::<AfterHours>()
        .schema_from::<RingStrategy>()
        .schema_from::<RingTarget>()
        .schema_from::<Agent>()
        .schema_from::<AgentInput>()
        .schema_from::<Membership>()
        .schema_from::<Pause>()
        .schema_from::<PauseInput>()
        .schema_from::<Presence>()
        .schema_from::<Period>()
        .schema_from::<PeriodInput>()
        .schema_from::<TimeRange>()
        .schema_from::<Weekday>()
        .schema_from::<Holiday>()
        .schema_from::<HolidayInput>()
        .schema_from::<Attendance>()
        .schema_from::<AttendanceStatus>()
        .schema_from::<Direction>()
        .schema_from::<CloseReason>()
        .schema_from::<CallSource>()
        .schema_from::<Transfer>()
        .schema_from::<RecordingInfo>()
        .schema_from::<Trunk>()
        .schema_from::<TrunkRegistration>()
        .schema_from::<TrunkRegState>()
        .schema_from::<TrunkInput>()
        .schema_from::<DidRoute>()
        .schema_from::<Transport>()
        .schema_from::<OutboundRoute>()
        .schema_from::<OutboundRouteInput>()
        .schema_from::<Pbx>()
        .schema_from::<PbxInput>()
        .schema_from::<AclRule>()
        .schema_from::<AclRuleInput>()
        .schema_from::<AclAction>()
        .schema_from::<AclApplies>()
        .schema_from::<Webhook>()
        .schema_from::<WebhookInput>()
        .schema_from::<EventType>()
        .schema_from::<WebhookDelivery>()
        .schema_from::<FieldError>()
        .schema_from::<Registrations>()
        .schema_from::<Registration>()
        .schema_from::<AuthLockout>()
        .schema_from::<calls::LiveCall>()
        .schema_from::<calls::LiveLeg>()
        .schema_from::<calls::CallState>()
        .schema_from::<calls::LegRole>()
        .schema_from::<calls::LegState>()
        .schema_from::<calls::TracedMessage>()
        .schema_from::<calls::TraceDirection>()
        .schema_from::<crate::ami::AmiLiveCall>()
        .schema_from::<crate::ami::AmiCallState>()
        .build();
    let mut schemas = serde_json::to_value(&components)
        .ok()
        .and_then(|c| c.get("schemas").cloned())
        .unwrap_or_else(|| json!({}));
    if let Some(map) = schemas.as_object_mut() {
        map.insert(
            "ListedCall".into(),
            json!({"description": "a live call: the bridge's own (`source: sip`) or one Asterisk carries (`source: ami`)",
                   "oneOf": [
                       {"allOf": [schema_ref("LiveCall"), {"type": "object", "required": ["source"],
                           "properties": {"source": {"type": "string", "const": "sip"}}}]},
                       {"allOf": [schema_ref("AmiLiveCall"), {"type": "object", "required": ["source"],
                           "properties": {"source": {"type": "string", "const": "ami"}}}]}],
                   "discriminator": {"propertyName": "source"}}),
        );
        map.insert(
            "Problem".into(),
            json!({"type": "object", "description": "RFC 9457 problem details",
                   "required": ["type", "title", "status", "detail"],
                   "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                  "status": {"type": "integer"}, "detail": {"type": "string"},
                                  "errors": {"type": "array", "items": schema_ref("FieldError")}}}),
        );
    }
    let mut paths = serde_json::Map::new();
    for c in CRUD {
        crud_paths(&mut paths, c);
    }
    other_paths(&mut paths);
    singleton_paths(&mut paths);
    agent_pause_paths(&mut paths);
    ami_paths(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "pbx-bridge admin API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
