//! Liveness, readiness and Prometheus metrics (SPEC §8).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::App;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and SIP is bound; draining is not ready,
/// so a load balancer stops sending new work.
pub async fn readyz(State(app): State<App>) -> impl IntoResponse {
    let database = app.store().ping().await.is_ok();
    let sip = app.sip_bound();
    let draining = app.is_draining();
    // AMI is reported, not required: SIP calls work without it.
    let ami = app.ami().status();
    let ready = database && sip && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "database": if database { "ok" } else { "unreachable" },
            "sip": if sip { "bound" } else { "not_started" },
            "ami": ami.summary(),
            "ami_error": ami.last_error,
            "draining": draining,
            // Attendance records durable on this node, not yet in the
            // database (SPEC §4): informative, calls go on meanwhile.
            "ledger_backlog": app.ledger().backlog(),
        })),
    )
}

pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let body = app.metrics().map(|m| m.render()).unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
