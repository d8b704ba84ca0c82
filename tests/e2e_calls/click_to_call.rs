//! Click-to-call from the bridge with real PJSUA2 phones (SPEC §5).

use super::*;

/// Click-to-call on the bridge (RFC 3725 flow I): the extension rings
/// first (From shows what it dials), answers, and the department's agent
/// is rung with the extension's name as the caller; media flows both ways
/// and the one attendance is recorded (extension left, agent right).
#[tokio::test(flavor = "multi_thread")]
async fn click_to_call_rings_the_extension_then_the_department() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(
            json!({"name": "Vendas", "pabx_code": 760, "record": true, "close_on_hangup": true}),
        )
        .await;
    pbx.post(
        "/extensions",
        json!({"number": "1061", "display_name": "Ana Clique", "secret": "pw-1061-x"}),
    )
    .await;
    let agent = pbx.agent("1062", &[dept]).await;
    let heard = tempfile::tempdir().unwrap();
    let mut clicker = pbx
        .phone("1061")
        .answer_after(0.5)
        .play(pbx.tone("caller"))
        .record(heard.path().join("clicker.wav"))
        .hangup_after(4.0)
        .spawn();
    let mut answerer = pbx
        .phone("1062")
        .answer_after(1.0)
        .play(pbx.tone("agent"))
        .record(heard.path().join("agent.wav"))
        .spawn();
    let (s, body) = pbx
        .svc
        .api(
            Method::POST,
            "/calls",
            Some(json!({"from_extension": "1061", "to": "760"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let protocol = body["protocol"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "ringing", "{body}");
    let incoming = clicker.seen_or_expect("incoming", 10 * SECS);
    let from = incoming["from"].as_str().unwrap_or_default();
    assert!(
        from.contains("Click-to-call") && from.contains("760"),
        "{incoming}"
    );
    assert_eq!(incoming["x_protocol"], protocol.as_str());
    let incoming = answerer.seen_or_expect("incoming", 10 * SECS);
    let from = incoming["from"].as_str().unwrap_or_default();
    assert!(
        from.contains("Ana Clique") && from.contains("1061"),
        "the agent sees who clicked: {incoming}"
    );
    assert_eq!(incoming["x_protocol"], protocol.as_str());
    clicker.expect_event("call_ended", 30 * SECS);
    answerer.expect_event("call_ended", 10 * SECS);
    let a = pbx.closed().await;
    assert_eq!(a["protocol"], protocol.as_str());
    assert_eq!(a["direction"], "internal", "{a}");
    assert_eq!(
        (a["caller"].as_str(), a["callee"].as_str()),
        (Some("1061"), Some("760"))
    );
    assert_eq!(a["department_id"], dept);
    assert_eq!(a["agent_id"], agent);
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    check_recording(&pbx.recording(&protocol), &a);
    assert_eq!(clicker.finish(10 * SECS), 0, "{}", clicker.log());
    assert_eq!(answerer.finish(10 * SECS), 0, "{}", answerer.log());
    // Media both ways: each phone heard the other's tone.
    let got = wav_stat(&heard.path().join("clicker.wav"), 1);
    assert!(got.is_tone(AGENT_HZ as f64), "the extension heard {got:?}");
    let got = wav_stat(&heard.path().join("agent.wav"), 1);
    assert!(got.is_tone(CALLER_HZ as f64), "the agent heard {got:?}");
}
