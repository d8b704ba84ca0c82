//! Calls with carriers and the PBX beside the bridge (SPEC §9): a DID
//! routed to a department, Asterisk relaying a department code, and an
//! extension dialling out through an outbound route's trunks in order
//! (SIPp carriers: one refusing 503, one silent past the setup time, one
//! answering).

use super::*;

/// A carrier's call is routed by its DID (the trunk's `did_routes`) to a
/// department; an unknown DID gets 404 and opens no protocol.
#[tokio::test(flavor = "multi_thread")]
async fn a_did_routes_a_carrier_call_to_its_department() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Vendas", "pabx_code": 880, "close_on_hangup": true}))
        .await;
    pbx.agent("1881", &[dept]).await;
    let (_, trunks) = pbx.svc.api(Method::GET, "/trunks", None).await;
    let trunk = trunks["items"][0]["id"].as_i64().unwrap();
    let (s, b) = pbx
        .svc
        .api(
            Method::PATCH,
            &format!("/trunks/{trunk}"),
            Some(json!({"did_routes": [{"did": "+551140008800", "department_id": dept}]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut phone = pbx.phone("1881").answer_after(0.3).spawn();
    let mut lost = pbx.caller("551199990000").expect_status(404).spawn();
    assert_eq!(lost.wait(30 * SECS), 0, "unknown DID:\n{}", lost.log());
    assert!(pbx.attendances().await.is_empty(), "no protocol for it");
    let mut caller = pbx.caller("551140008800").hangup_after(1.0).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["department_id"], dept, "{a}");
    assert_eq!(a["callee"], "551140008800", "{a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    phone.finish(10 * SECS);
}

/// Asterisk (a SIPp UAS in its SIP role, from `pbx.sip_host:sip_port` over
/// UDP) sends a department code to the bridge as the rendered `bridge`
/// endpoint does: From is the calling Asterisk phone, which is also one of
/// the bridge's extensions, P-Asserted-Identity the customer, and no
/// credentials. The bridge trusts the PBX (no 407), rings the department,
/// and the attendance names the customer.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_from_the_pbx_needs_no_challenge_and_names_the_asserted_caller() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 890, "close_on_hangup": true}))
        .await;
    pbx.agent("1891", &[dept]).await;
    // The phone From names is an extension here too: without the PBX's
    // trust it would be challenged.
    pbx.agent("1892", &[]).await;
    let port = pbx.trust_pbx().await;
    let mut phone = pbx.phone("1891").answer_after(0.3).spawn();
    std::thread::sleep(Duration::from_millis(500));
    let asterisk = peers::sipp_once(
        "tests/sipp/pbx_caller.xml",
        port,
        &[
            "-s",
            "890",
            "-key",
            "caller",
            "1892",
            "-key",
            "pai",
            "551133334444",
            "-d",
            "1000",
            &pbx.svc.sip.to_string(),
        ],
        25 * SECS,
    );
    let (code, out) = asterisk.join().unwrap();
    assert_eq!(
        code, 0,
        "Asterisk's call went through without a challenge:\n{out}"
    );
    let a = pbx.closed().await;
    assert_eq!(a["caller"], "551133334444", "{a}");
    assert_eq!(a["direction"], "inbound", "{a}");
    assert_eq!(a["department_id"], dept, "{a}");
    phone.finish(10 * SECS);
}

/// An extension dials a number beyond the bridge: the outbound route
/// strips and prepends, its first trunk (a SIPp carrier) answers 503, the
/// second answers; one `outbound` attendance, recorded, closed on hang-up.
#[tokio::test(flavor = "multi_thread")]
async fn an_extension_dials_out_and_the_second_trunk_takes_the_call() {
    let pbx = Pbx::start().await;
    pbx.post(
        "/extensions",
        json!({"number": "1901", "secret": "pw-1901-x"}),
    )
    .await;
    let (p1, p2) = (peers::free_port(), peers::free_port());
    let t1 = pbx
        .post(
            "/trunks",
            json!({"name": "c1", "host": "127.0.0.1", "port": p1}),
        )
        .await["id"]
        .clone();
    let t2 = pbx
        .post(
            "/trunks",
            json!({"name": "c2", "host": "127.0.0.1", "port": p2}),
        )
        .await["id"]
        .clone();
    pbx.post(
        "/outbound-routes",
        json!({"name": "nacional", "priority": 10, "patterns": ["_0X."], "strip": 1,
               "prepend": "55", "trunk_ids": [t1, t2]}),
    )
    .await;
    let busy = peers::sipp_once("tests/sipp/carrier_503.xml", p1, &[], 25 * SECS);
    let carrier = peers::sipp_once("tests/sipp/agent_answers_at_once.xml", p2, &[], 25 * SECS);
    std::thread::sleep(Duration::from_millis(500));
    let mut caller = pbx
        .caller("011987654321")
        .auth("1901", "pw-1901-x")
        .play(pbx.tone("caller"))
        .hangup_after(2.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let (code, out) = busy.join().unwrap();
    assert_eq!(code, 0, "the first trunk was tried:\n{out}");
    let (code, out) = carrier.join().unwrap();
    assert_eq!(
        code, 0,
        "the second trunk took the call and got the BYE:\n{out}"
    );
    let a = pbx.closed().await;
    assert_eq!(a["direction"], "outbound", "{a}");
    assert_eq!(a["callee"], "011987654321", "{a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert!(a["recording"].is_object(), "{a}");
}

/// The first trunk takes the INVITE (100 Trying) and then stays silent:
/// after the trunk setup time (10 s without a provisional answer) the
/// bridge CANCELs it and the second trunk takes the call; one `outbound`
/// attendance, recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_trunk_is_given_up_after_the_setup_time_and_the_next_takes_the_call() {
    let pbx = Pbx::start().await;
    pbx.post(
        "/extensions",
        json!({"number": "1902", "secret": "pw-1902-x"}),
    )
    .await;
    let (p1, p2) = (peers::free_port(), peers::free_port());
    let mut trunks = Vec::new();
    for (name, port) in [("silent", p1), ("answers", p2)] {
        let t = pbx
            .post(
                "/trunks",
                json!({"name": name, "host": "127.0.0.1", "port": port}),
            )
            .await;
        trunks.push(t["id"].clone());
    }
    pbx.post(
        "/outbound-routes",
        json!({"name": "nacional", "priority": 10, "patterns": ["_0X."], "strip": 1,
               "trunk_ids": trunks}),
    )
    .await;
    let silent = peers::sipp_once("tests/sipp/carrier_silent.xml", p1, &[], 40 * SECS);
    let carrier = peers::sipp_once("tests/sipp/agent_answers_at_once.xml", p2, &[], 40 * SECS);
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let mut caller = pbx
        .caller("011987654321")
        .auth("1902", "pw-1902-x")
        .play(pbx.tone("caller"))
        .hangup_after(1.0)
        .spawn();
    assert_eq!(caller.wait(45 * SECS), 0, "caller:\n{}", caller.log());
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the silent trunk had its 10 s: {:?}",
        started.elapsed()
    );
    let (code, out) = silent.join().unwrap();
    assert_eq!(code, 0, "the silent trunk got a CANCEL:\n{out}");
    let (code, out) = carrier.join().unwrap();
    assert_eq!(code, 0, "the second trunk took the call:\n{out}");
    let a = pbx.closed().await;
    assert_eq!(a["direction"], "outbound", "{a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert!(a["recording"].is_object(), "{a}");
}
