//! Calls the bridge forwards beyond itself (SPEC §3 `follow_me`, §9): a
//! PJSUA2 caller from the loopback carrier, the number dialled out through
//! an outbound route to a SIPp carrier (a UAS that insists on `X-Protocol`
//! and echoes the RTP), one attendance with its recording.

use super::*;

/// The number as configured, and as the route sends it (strip 1,
/// prepend 55).
const NUMBER: &str = "011987654321";
const DIALLED: &str = "5511987654321";

/// A trunk to a SIPp carrier on a free port and the route `_0X.` to it;
/// the carrier's port.
async fn carrier_route(pbx: &Pbx) -> u16 {
    let port = peers::free_port();
    let trunk = pbx
        .post(
            "/trunks",
            json!({"name": "operadora", "host": "127.0.0.1", "port": port}),
        )
        .await["id"]
        .clone();
    pbx.post(
        "/outbound-routes",
        json!({"name": "nacional", "priority": 10, "patterns": ["_0X."], "strip": 1,
               "prepend": "55", "trunk_ids": [trunk]}),
    )
    .await;
    port
}

/// The SIPp carrier taking one call on `port`.
fn carrier(port: u16) -> std::thread::JoinHandle<(i32, String)> {
    let carrier = peers::sipp_once(
        "tests/sipp/carrier_answers.xml",
        port,
        &["-rtp_echo"],
        25 * SECS,
    );
    std::thread::sleep(Duration::from_millis(500));
    carrier
}

/// The first lines of the SIP messages the call exchanged.
async fn trace_lines(pbx: &Pbx, protocol: &str) -> Vec<String> {
    let (status, trace) = pbx
        .svc
        .api(Method::GET, &format!("/calls/{protocol}/sip-trace"), None)
        .await;
    assert_eq!(status, 200, "{trace}");
    trace["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["first_line"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn transfer_targets(a: &Value) -> Vec<String> {
    a["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A customer calls extension 1951, whose phone rings and is never
/// answered; after `ring_first_s` (2) the phone is cancelled and the
/// follow-me number is dialled through the route; the carrier answers and
/// the caller talks to it, recorded, on the call's one protocol.
#[tokio::test(flavor = "multi_thread")]
async fn follow_me_rings_the_extension_then_the_carrier_takes_the_call() {
    let pbx = Pbx::start().await;
    let port = carrier_route(&pbx).await;
    pbx.post(
        "/extensions",
        json!({"number": "1951", "secret": "pw-1951-x",
               "follow_me": {"enabled": true, "number": NUMBER, "ring_first_s": 2}}),
    )
    .await;
    let mut phone = pbx.phone("1951").never_answer().spawn();
    let carrier = carrier(port);
    let mut caller = pbx
        .caller("1951")
        .play(pbx.tone("caller"))
        .hangup_after(3.0)
        .spawn();
    assert_eq!(caller.wait(40 * SECS), 0, "caller:\n{}", caller.log());
    let ended = phone.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["status"], 487, "the phone is cancelled: {ended}");
    let (code, out) = carrier.join().unwrap();
    assert_eq!(
        code, 0,
        "the carrier got X-Protocol, answered and got the BYE:\n{out}"
    );
    let a = pbx.closed().await;
    assert_eq!(a["direction"], "inbound", "{a}");
    assert_eq!(a["callee"], "1951", "{a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert_eq!(transfer_targets(&a), vec![format!("follow_me:{NUMBER}")]);
    let rang_first = secs_between(&a, "opened_at", "answered_at");
    assert!(
        rang_first >= 2.0,
        "the extension rang first: {rang_first} s"
    );
    let protocol = a["protocol"].as_str().unwrap();
    assert_eq!(
        protocol_seen(&mut phone),
        protocol,
        "X-Protocol on the fork"
    );
    let lines = trace_lines(&pbx, protocol).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("INVITE sip:{DIALLED}@127.0.0.1:{port}"))),
        "the number went to the carrier, rewritten by the route: {lines:#?}"
    );
    let path = pbx.recording(protocol);
    let talk = secs_between(&a, "answered_at", "ended_at");
    assert!(
        (wav_duration(&path) - talk).abs() <= 0.5,
        "recorded as long as the talk"
    );
    assert!(wav_stat(&path, 1).is_tone(CALLER_HZ as f64), "caller left");
    assert_eq!(
        a["recording"]["bytes"].as_u64(),
        Some(std::fs::metadata(&path).unwrap().len()),
        "{a}"
    );
    phone.finish(10 * SECS);
}

/// A closed department whose after-hours target is a number: the caller
/// reaches the carrier through the route and talks; the attendance closes
/// `after_hours` (though the department keeps answered calls open).
#[tokio::test(flavor = "multi_thread")]
async fn an_after_hours_number_reaches_the_carrier_and_closes_after_hours() {
    let pbx = Pbx::start().await;
    let port = carrier_route(&pbx).await;
    let closed = pbx
        .post("/periods", json!({"name": "Fechado", "ranges": []}))
        .await["id"]
        .as_i64()
        .unwrap();
    let dept = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 960, "period_id": closed,
            "after_hours": {"number": NUMBER}, "close_on_hangup": false}),
        )
        .await;
    let carrier = carrier(port);
    let mut caller = pbx
        .caller("960")
        .play(pbx.tone("caller"))
        .hangup_after(2.0)
        .spawn();
    assert_eq!(caller.wait(40 * SECS), 0, "caller:\n{}", caller.log());
    let (code, out) = carrier.join().unwrap();
    assert_eq!(code, 0, "the carrier took the call:\n{out}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "after_hours", "{a}");
    assert_eq!(a["department_id"], dept, "{a}");
    assert!(a["answered_at"].is_string(), "{a}");
    assert_eq!(transfer_targets(&a), vec![format!("after_hours:{NUMBER}")]);
    assert!(a["recording"].is_object(), "{a}");
}
