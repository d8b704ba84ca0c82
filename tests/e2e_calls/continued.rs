//! A call Asterisk sends to a department code with `X-Protocol` (an AMI
//! transfer, a click-to-call through Asterisk: the rendered pre-dial
//! handler writes it) continues that attendance: one attendance, whose
//! agent is the one who answered last.

use super::*;

/// "Asterisk" (SIPp from `pbx.sip_host:sip_port`) first sends a customer
/// to department 895, which keeps attendances open: 1895 answers, the call
/// ends, the attendance stays `in_progress`. Then it sends the customer
/// again, to department 896, carrying that protocol: nothing new is
/// opened, 1896 answers and becomes the attendance's agent (its first
/// answer time kept), and the call closes by 896's rule.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_from_the_pbx_with_x_protocol_continues_that_attendance() {
    let pbx = Pbx::start().await;
    let keep = pbx
        .department(json!({"name": "Suporte", "pabx_code": 895, "close_on_hangup": false}))
        .await;
    let dept = pbx
        .department(json!({"name": "Vendas", "pabx_code": 896, "close_on_hangup": true}))
        .await;
    let first = pbx.agent("1895", &[keep]).await;
    let second = pbx.agent("1896", &[dept]).await;
    let port = pbx.trust_pbx().await;
    let mut phone1 = pbx.phone("1895").answer_after(0.3).spawn();
    let mut phone2 = pbx.phone("1896").answer_after(0.3).spawn();
    std::thread::sleep(Duration::from_millis(500));
    let call = |scenario: &str, code: &str, extra: &[&str]| {
        let mut args = vec![
            "-s",
            code,
            "-key",
            "caller",
            "1899",
            "-key",
            "pai",
            "551133334444",
            "-d",
            "1000",
        ];
        args.extend_from_slice(extra);
        let target = pbx.svc.sip.to_string();
        args.push(&target);
        peers::sipp_once(scenario, port, &args, 25 * SECS)
            .join()
            .unwrap()
    };
    let (code, out) = call("tests/sipp/pbx_caller.xml", "895", &[]);
    assert_eq!(code, 0, "the first call:\n{out}");
    let a = pbx
        .attendance_when(|a| a["ended_at"].is_string() && a["agent_id"] == first)
        .await;
    assert_eq!(a["status"], "in_progress", "895 keeps it open: {a}");
    let protocol = a["protocol"].as_str().unwrap().to_owned();
    let answered_at = a["answered_at"].clone();

    let (code, out) = call(
        "tests/sipp/pbx_caller_protocol.xml",
        "896",
        &["-key", "protocol", &protocol],
    );
    assert_eq!(code, 0, "the call carrying the protocol:\n{out}");
    let a = pbx.closed().await;
    assert_eq!(a["protocol"], protocol.as_str(), "the same attendance: {a}");
    assert_eq!(a["agent_id"], second, "who answered at 896: {a}");
    assert_eq!(a["department_id"], dept, "{a}");
    assert_eq!(a["answered_at"], answered_at, "first answer kept: {a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert_eq!(pbx.attendances().await.len(), 1);
    phone1.finish(10 * SECS);
    phone2.finish(10 * SECS);
}
