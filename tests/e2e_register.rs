//! End to end: the registrar of the running binary against real,
//! independent SIP user agents — PJSUA2 (`tests/peers/ua.py`) and SIPp —
//! over UDP and TCP on loopback. Register with the right password (bound,
//! visible in the API with the UA's User-Agent and source), with a wrong one
//! (rejected, no binding), unregister, expiry, SHA-256 offered before MD5,
//! and the per-address lockout after repeated failures.

mod peers;

use std::time::Duration;

use peers::{Service, Ua, run_sipp, write_file};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);
const SECRET: &str = "e2e-Secret-1001";

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Registers over `transport`, checks the binding in the API, unregisters
/// (Expires: 0) and checks that the binding is gone.
async fn register_listed_unregister(transport: &str) {
    let svc = Service::start(&[]).await;
    svc.create_extension("1001", SECRET, &["MD5"]).await;
    let user_agent = format!("pbx-bridge-e2e-{transport}/1 PJSUA2");
    let mut ua = Ua::register(
        svc.sip,
        "1001",
        SECRET,
        &[
            "--transport",
            transport,
            "--expires",
            "300",
            "--user-agent",
            &user_agent,
            "--until-stdin-eof",
            "--unregister-after",
        ],
    );
    let started = ua.expect_event("started", T);
    let local = s(&started["local"]).to_owned();
    let local_port = local.rsplit(':').next().unwrap().to_owned();
    let reg = ua.expect_event("registered", T);
    assert_eq!(reg["code"], 200, "{reg}");

    let bindings = svc.bindings_of("1001").await;
    if bindings.len() != 1 {
        ua.fail(&format!(
            "one binding of 1001 expected, got {bindings:?} (all: {})",
            svc.registrations().await
        ));
    }
    let b = &bindings[0];
    assert_eq!(s(&b["transport"]).to_ascii_lowercase(), transport, "{b}");
    assert_eq!(s(&b["user_agent"]), user_agent, "{b}");
    let source = s(&b["source"]);
    let contact = s(&b["contact"]);
    if transport == "udp" {
        assert_eq!(source, local, "the source is the UA's socket: {b}");
        assert!(
            contact.contains(&format!("sip:1001@127.0.0.1:{local_port}")),
            "the Contact PJSUA2 sent: {b}"
        );
    } else {
        // Over TCP PJSIP names its connection's own (ephemeral) port.
        assert!(source.starts_with("127.0.0.1:"), "{b}");
        assert!(
            contact.contains(&format!("sip:1001@{source}"))
                && contact.to_ascii_lowercase().contains("transport=tcp"),
            "the Contact PJSUA2 sent: {b}"
        );
    }
    assert!(
        !b["registered_at"].is_null() && !b["expires_at"].is_null(),
        "{b}"
    );

    ua.close_stdin();
    let unreg = ua.expect_event("unregistered", T);
    assert_eq!(unreg["code"], 200, "{unreg}");
    assert_eq!(ua.wait(T), 0);
    let left = svc.wait_no_binding("1001", Duration::from_secs(3)).await;
    assert!(left.is_empty(), "unregistered, yet still bound: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjsua2_over_udp_registers_is_listed_and_unregisters() {
    register_listed_unregister("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pjsua2_over_tcp_registers_is_listed_and_unregisters() {
    register_listed_unregister("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_rejected_and_binds_nothing() {
    let svc = Service::start(&[]).await;
    svc.create_extension("1002", SECRET, &["MD5"]).await;
    let mut ua = Ua::register(svc.sip, "1002", "not-the-secret", &["--expires", "300"]);
    let result = ua.expect_event("result", T);
    let code = result["code"].as_u64().unwrap_or(0);
    if !(code == 401 || code == 403) {
        ua.fail(&format!("a wrong password must get 401/403, got {result}"));
    }
    assert_eq!(ua.wait(T), 1, "ua.py exits 1 when refused");
    assert!(svc.bindings_of("1002").await.is_empty());

    // The right password from the same address still works after one failure.
    let mut ua = Ua::register(svc.sip, "1002", SECRET, &["--unregister-after"]);
    let reg = ua.expect_event("registered", T);
    assert_eq!(reg["code"], 200, "{reg}");
    assert_eq!(ua.wait(T), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_extension_is_rejected() {
    let svc = Service::start(&[]).await;
    let mut ua = Ua::register(svc.sip, "4040", SECRET, &[]);
    let result = ua.expect_event("result", T);
    let code = result["code"].as_u64().unwrap_or(0);
    if !(code == 401 || code == 403 || code == 404) {
        ua.fail(&format!(
            "an unknown extension must be refused, got {result}"
        ));
    }
    assert_eq!(ua.wait(T), 1);
    let all = svc.registrations().await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(0), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_lapses_when_the_phone_vanishes() {
    let svc = Service::start(&[("PBX_BRIDGE_REGISTER_MIN_EXPIRES_S", "1")]).await;
    svc.create_extension("1003", SECRET, &["MD5"]).await;
    // Register for 2 s, then exit without unregistering (a phone that died).
    let mut ua = Ua::register(svc.sip, "1003", SECRET, &["--expires", "2", "--vanish"]);
    let reg = ua.expect_event("registered", T);
    assert_eq!(reg["code"], 200, "{reg}");
    assert!(
        reg["expires"].as_i64().unwrap_or(0) <= 2,
        "the registrar grants the 2 s asked for when the minimum is 1 s: {reg}"
    );
    assert_eq!(ua.wait(T), 0);
    let bound = svc.bindings_of("1003").await;
    assert_eq!(bound.len(), 1, "bound right after the 200: {bound:?}");
    let started = std::time::Instant::now();
    let left = svc.wait_no_binding("1003", Duration::from_secs(8)).await;
    assert!(left.is_empty(), "the binding did not lapse: {left:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "gone too early: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_offered_first_then_md5_still_registers_pjsua2() {
    let svc = Service::start(&[]).await;
    svc.create_extension("1004", SECRET, &["SHA-256", "MD5"])
        .await;
    let mut ua = Ua::register(
        svc.sip,
        "1004",
        SECRET,
        &["--until-stdin-eof", "--unregister-after"],
    );
    let reg = ua.expect_event("registered", T);
    assert_eq!(reg["code"], 200, "{reg}");
    assert_eq!(svc.bindings_of("1004").await.len(), 1);
    ua.close_stdin();
    assert_eq!(ua.wait(T), 0);
    assert!(
        svc.wait_no_binding("1004", Duration::from_secs(3))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_address_out_visibly() {
    let svc = Service::start(&[]).await;
    svc.create_extension("1005", SECRET, &["MD5"]).await;
    // Six wrong attempts, one PJSUA2 process each, in parallel.
    let mut uas: Vec<Ua> = (0..6)
        .map(|_| Ua::register(svc.sip, "1005", "guess-guess", &["--timeout", "8"]))
        .collect();
    for ua in &mut uas {
        let _ = ua.wait(T);
        if ua.seen.iter().any(|e| e["event"] == "registered") {
            ua.fail("a wrong password registered");
        }
    }
    let all = svc.registrations().await;
    let lockouts = all["lockouts"].as_array().cloned().unwrap_or_default();
    assert!(
        lockouts.iter().any(|l| l.to_string().contains("127.0.0.1")),
        "repeated failures from 127.0.0.1 must show in lockouts: {all}"
    );
    // While locked, even the right password is refused.
    let mut ua = Ua::register(svc.sip, "1005", SECRET, &[]);
    let result = ua.expect_event("result", T);
    assert_ne!(result["code"], 200, "{result}");
    assert!(svc.bindings_of("1005").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_many_users_with_digest_and_gets_options_answered() {
    let svc = Service::start(&[]).await;
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 2001..=2003 {
        let secret = format!("sipp-secret-{n}");
        svc.create_extension(&n.to_string(), &secret, &["MD5"])
            .await;
        csv.push_str(&format!(
            "{n};[authentication username={n} password={secret}]\n"
        ));
    }
    let work = tempfile::tempdir().unwrap();
    let users = write_file(work.path(), "users.csv", &csv);
    let scen = |name: &str| format!("{}/benches/sipp/{name}.xml", peers::REPO);
    let common = |port: u16| -> Vec<String> {
        [
            svc.sip.to_string().as_str(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    let mut args = common(peers::free_port());
    args.extend(
        [
            "-sf",
            &scen("register"),
            "-inf",
            &users,
            "-key",
            "expires",
            "300",
            "-m",
            "3",
            "-r",
            "20",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let (code, out) = run_sipp(work.path(), &args, Duration::from_secs(30));
    assert_eq!(code, 0, "SIPp register.xml failed:\n{out}");
    for n in 2001..=2003 {
        let b = svc.bindings_of(&n.to_string()).await;
        assert_eq!(b.len(), 1, "{n}: {b:?}");
        assert_eq!(s(&b[0]["user_agent"]), "SIPp bench", "{b:?}");
    }

    let mut args = common(peers::free_port());
    args.extend(
        ["-sf", &scen("options"), "-m", "20", "-r", "50"]
            .iter()
            .map(|s| s.to_string()),
    );
    let (code, out) = run_sipp(work.path(), &args, Duration::from_secs(30));
    assert_eq!(code, 0, "SIPp options.xml failed:\n{out}");
}
