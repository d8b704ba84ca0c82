//! End to end: the bridge registers with a trunk's registrar, played by
//! SIPp (`tests/sipp/registrar_*.xml`) on loopback. A 401 digest challenge
//! then 200 with a short interval, refreshed in time; a 403 shown as
//! `auth_failed` and not retried for a minute (no storm); a refresh
//! answered 500, retried after the backoff and registered again, then the
//! unregistration when the trunk is deleted. States are read from
//! `GET /api/v1/trunks/{id}/status` and `/metrics`.

mod peers;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peers::{Service, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "s3cret-trunk";

/// SIPp playing a registrar on a free port with `scenario`, in a thread;
/// joins to its exit code and output.
fn registrar(scenario: &str) -> (u16, JoinHandle<(i32, String)>) {
    let port = free_port();
    let handle = peers::sipp_once(
        &format!("tests/sipp/{scenario}"),
        port,
        &[],
        Duration::from_secs(40),
    );
    // SIPp binds at once; give it a moment before the bridge sends.
    std::thread::sleep(Duration::from_millis(300));
    (port, handle)
}

async fn create_trunk(svc: &Service, port: u16, secret: &str) -> i64 {
    let body = json!({
        "name": "carrier", "host": "127.0.0.1", "port": port, "username": "acct",
        "secret": secret, "register": true, "register_expires_s": 60,
    });
    let (status, created) = svc.api(Method::POST, "/trunks", Some(body)).await;
    assert_eq!(status, 201, "create trunk: {created}");
    created["id"].as_i64().unwrap()
}

async fn status(svc: &Service, id: i64) -> Value {
    let (code, body) = svc
        .api(Method::GET, &format!("/trunks/{id}/status"), None)
        .await;
    assert_eq!(code, 200, "status: {body}");
    body
}

/// Polls the trunk's status until `pred` holds (or panics after `within`).
async fn wait_status(
    svc: &Service,
    id: i64,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let s = status(svc, id).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "trunk status never matched: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics(svc: &Service) -> String {
    reqwest::get(format!("http://127.0.0.1:{}/metrics", svc.http_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn finished(handle: JoinHandle<(i32, String)>, what: &str) {
    let (code, out) = handle.join().unwrap();
    assert_eq!(code, 0, "SIPp {what}:\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_challenge_then_registered_and_refreshed_in_time() {
    let (port, sipp) = registrar("registrar_challenge.xml");
    let svc = Service::start(&[]).await;
    let id = create_trunk(&svc, port, SECRET).await;
    let s = wait_status(&svc, id, Duration::from_secs(10), |s| {
        s["state"] == "registered"
    })
    .await;
    assert_eq!(s["last_status"], 200, "{s}");
    assert!(s["expires_at"].is_string(), "{s}");
    assert!(s["last_error"].is_null(), "{s}");
    let m = metrics(&svc).await;
    assert!(
        m.contains(r#"pbx_trunk_registered{trunk="carrier"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"pbx_trunk_register_attempts_total{trunk="carrier",result="registered"}"#),
        "{m}"
    );
    // SIPp exits 0 only if the refresh came within 5.5 s of its 200 and
    // carried valid credentials; it answered it with 60 s.
    tokio::task::spawn_blocking(move || finished(sipp, "registrar (challenge, refresh)"))
        .await
        .unwrap();
    let s = status(&svc, id).await;
    assert_eq!(s["state"], "registered", "{s}");
    // A trunk that does not register says so.
    let (code, t) = svc
        .api(
            Method::PATCH,
            &format!("/trunks/{id}"),
            Some(json!({"register": false})),
        )
        .await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(status(&svc, id).await["state"], "disabled");
    let (code, _) = svc.api(Method::GET, "/trunks/999999/status", None).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_is_auth_failed_and_not_retried_in_a_storm() {
    let (port, sipp) = registrar("registrar_forbidden.xml");
    let svc = Service::start(&[]).await;
    let id = create_trunk(&svc, port, "wrong-secret").await;
    let s = wait_status(&svc, id, Duration::from_secs(10), |s| {
        s["state"] == "auth_failed"
    })
    .await;
    assert_eq!(s["last_status"], 403, "{s}");
    assert!(
        s["last_error"].as_str().unwrap_or_default().contains("403"),
        "{s}"
    );
    let next =
        chrono::DateTime::parse_from_rfc3339(s["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.signed_duration_since(chrono::Utc::now());
    assert!(
        wait > chrono::Duration::seconds(50),
        "retried too soon: {s}"
    );
    // SIPp fails if any other REGISTER comes within 4 s of its 403.
    tokio::task::spawn_blocking(move || finished(sipp, "registrar (403, quiet)"))
        .await
        .unwrap();
    let m = metrics(&svc).await;
    assert!(
        m.contains(r#"pbx_trunk_register_attempts_total{trunk="carrier",result="auth_failed"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"pbx_trunk_registered{trunk="carrier"} 0"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_refresh_backs_off_registers_again_and_deletion_unregisters() {
    let (port, sipp) = registrar("registrar_refresh_fails.xml");
    let svc = Service::start(&[]).await;
    let id = create_trunk(&svc, port, SECRET).await;
    wait_status(&svc, id, Duration::from_secs(10), |s| {
        s["state"] == "registered"
    })
    .await;
    let failed = wait_status(&svc, id, Duration::from_secs(10), |s| {
        s["last_status"] == 500
    })
    .await;
    assert!(failed["next_attempt_at"].is_string(), "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{failed}"
    );
    wait_status(&svc, id, Duration::from_secs(15), |s| {
        s["state"] == "registered" && s["last_status"] == 200
    })
    .await;
    let (code, _) = svc
        .api(Method::DELETE, &format!("/trunks/{id}"), None)
        .await;
    assert_eq!(code, 204);
    // SIPp exits 0 only after the REGISTER with Expires: 0.
    tokio::task::spawn_blocking(move || finished(sipp, "registrar (500, retry, unregister)"))
        .await
        .unwrap();
    let m = metrics(&svc).await;
    assert!(
        m.contains(r#"pbx_trunk_register_attempts_total{trunk="carrier",result="server_error"} 1"#),
        "{m}"
    );
}
