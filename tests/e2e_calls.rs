//! Department calls end to end (SPEC §4, §5): the bridge binary, PJSUA2
//! agents registered as extensions, a PJSUA2 caller coming in from a trunk
//! (known by address), and the attendance and recording the call leaves.
//! In answered calls the caller plays 440 Hz and the agent 1000 Hz; the
//! recording must carry the caller on the left and the agent on the right,
//! as long as the talk time.

mod peers;

/// Follow-me and after-hours numbers through a carrier (its own file: this
/// one is long enough).
#[path = "e2e_calls/forwarding.rs"]
mod forwarding;

#[path = "e2e_calls/carriers.rs"]
mod carriers;
#[path = "e2e_calls/click_to_call.rs"]
mod click_to_call;
/// Calls from the PBX that carry their attendance (`X-Protocol`).
#[path = "e2e_calls/continued.rs"]
mod continued;
#[path = "e2e_calls/races.rs"]
mod races;

use std::path::{Path, PathBuf};
use std::time::Duration;

use peers::{
    AgentBuilder, CallerBuilder, Service, Ua, UaMedia, make_tone, run_sipp, sipp, wav_duration,
    wav_stat,
};
use reqwest::Method;
use serde_json::{Value, json};

const CALLER_HZ: u32 = 440;
const AGENT_HZ: u32 = 1000;
const SECS: Duration = Duration::from_secs(1);

struct Pbx {
    svc: Service,
    tones: tempfile::TempDir,
}

impl Pbx {
    /// The bridge with a trunk for loopback callers.
    async fn start() -> Pbx {
        Pbx::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Pbx {
        let svc = Service::start(env).await;
        let (s, b) = svc
            .api(
                Method::POST,
                "/trunks",
                Some(json!({"name": "carrier", "host": "127.0.0.1", "inbound": ["127.0.0.1/32"]})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let tones = tempfile::tempdir().unwrap();
        make_tone(&tones.path().join("caller.wav"), CALLER_HZ, 10.0);
        make_tone(&tones.path().join("agent.wav"), AGENT_HZ, 10.0);
        Pbx { svc, tones }
    }

    fn tone(&self, who: &str) -> PathBuf {
        self.tones.path().join(format!("{who}.wav"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (s, b) = self.svc.api(Method::POST, path, Some(body)).await;
        assert!(s == 201 || s == 200, "POST {path}: {s} {b}");
        b
    }

    async fn department(&self, body: Value) -> i64 {
        self.post("/departments", body).await["id"]
            .as_i64()
            .unwrap()
    }

    /// Extension `number` (password `pw-<number>`) and its agent in
    /// `departments`.
    /// Enables the PBX with its SIP side on a free loopback port (where a
    /// SIPp plays Asterisk; AMI on a port nobody serves): INVITEs from
    /// there are trusted as the PBX's. The port.
    async fn trust_pbx(&self) -> u16 {
        let port = peers::free_port();
        let (s, b) = self
            .svc
            .api(
                Method::PUT,
                "/pbx",
                Some(json!({
                    "ami_host": "127.0.0.1", "ami_port": peers::free_port(), "ami_username": "bridge",
                    "ami_secret": "an-ami-secret-long-enough", "sip_host": "127.0.0.1",
                    "sip_port": port, "enabled": true
                })),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        port
    }

    async fn agent(&self, number: &str, departments: &[i64]) -> i64 {
        let ext = self
            .post(
                "/extensions",
                json!({"number": number, "secret": format!("pw-{number}-x")}),
            )
            .await["id"]
            .as_i64()
            .unwrap();
        let memberships: Vec<Value> = departments
            .iter()
            .map(|d| json!({"department_id": d}))
            .collect();
        self.post(
            "/agents",
            json!({"name": format!("Agent {number}"), "extension_id": ext, "departments": memberships}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    fn phone(&self, number: &str) -> AgentBuilder {
        AgentBuilder::registered(self.svc.sip, number, &format!("pw-{number}-x"))
    }

    fn caller(&self, code: &str) -> CallerBuilder {
        CallerBuilder::new(&format!("sip:{code}@{}", self.svc.sip))
    }

    async fn attendances(&self) -> Vec<Value> {
        let (s, b) = self.svc.api(Method::GET, "/attendances", None).await;
        assert_eq!(s, 200, "{b}");
        b["items"].as_array().cloned().unwrap_or_default()
    }

    /// The only attendance, once it satisfies `done` (the bridge writes the
    /// end of a call just after the BYE).
    async fn attendance_when(&self, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let list = self.attendances().await;
            assert!(list.len() <= 1, "one attendance per call: {list:#?}");
            if let Some(a) = list.first()
                && done(a)
            {
                return a.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("attendance never settled: {:#?}", self.attendances().await);
    }

    async fn closed(&self) -> Value {
        self.attendance_when(|a| a["status"] == "closed").await
    }

    fn recording(&self, protocol: &str) -> PathBuf {
        self.svc.recording(protocol)
    }
}

fn secs_between(a: &Value, from: &str, to: &str) -> f64 {
    let t = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(a[k].as_str().unwrap_or_else(|| panic!("{k} in {a}")))
            .unwrap()
    };
    (t(to) - t(from)).num_milliseconds() as f64 / 1000.0
}

/// The recording: caller's tone left, agent's right, as long as the talk.
fn check_recording(path: &Path, attendance: &Value) {
    let talk = secs_between(attendance, "answered_at", "ended_at");
    let duration = wav_duration(path);
    assert!(
        (duration - talk).abs() <= 0.5,
        "recording {duration:.3} s vs talk time {talk:.3} s"
    );
    let left = wav_stat(path, 1);
    let right = wav_stat(path, 2);
    assert!(left.is_tone(CALLER_HZ as f64), "left channel: {left:?}");
    assert!(right.is_tone(AGENT_HZ as f64), "right channel: {right:?}");
    let rec = &attendance["recording"];
    assert_eq!(
        rec["bytes"].as_u64(),
        Some(std::fs::metadata(path).unwrap().len()),
        "{rec}"
    );
    assert!((rec["duration_ms"].as_f64().unwrap() / 1000.0 - duration).abs() < 0.05);
}

fn protocol_seen(agent: &mut Ua) -> String {
    let incoming = agent.seen_or_expect("incoming", 10 * SECS);
    incoming["x_protocol"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_rings_both_agents_first_answer_wins_and_is_recorded() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 700, "record": true, "close_on_hangup": true}),
        )
        .await;
    let ana = pbx.agent("1001", &[dept]).await;
    pbx.agent("1002", &[dept]).await;
    let mut a1 = pbx
        .phone("1001")
        .answer_after(1.0)
        .play(pbx.tone("agent"))
        .spawn();
    let mut a2 = pbx.phone("1002").never_answer().spawn();
    let mut caller = pbx
        .caller("700")
        .play(pbx.tone("caller"))
        .hangup_after(4.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let ended = a2.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["status"], 487, "the other fork is CANCELled: {ended}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert_eq!(a["agent_id"], ana);
    assert_eq!(a["department_id"], dept);
    assert_eq!(a["direction"], "inbound");
    let protocol = a["protocol"].as_str().unwrap();
    assert_eq!(protocol_seen(&mut a1), protocol, "X-Protocol on the fork");
    assert_eq!(protocol_seen(&mut a2), protocol, "X-Protocol on the fork");
    check_recording(&pbx.recording(protocol), &a);
    a1.finish(10 * SECS);
    a2.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn overflow_rings_one_agent_at_a_time() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Vendas", "pabx_code": 710, "record": true,
            "ring_strategy": "overflow", "agent_ring_timeout_s": 5, "close_on_hangup": true}))
        .await;
    // Equal idle time: the lower id rings first.
    pbx.agent("1011", &[dept]).await;
    let second = pbx.agent("1012", &[dept]).await;
    let mut first_phone = pbx.phone("1011").never_answer().spawn();
    let mut second_phone = pbx
        .phone("1012")
        .answer_after(0.5)
        .play(pbx.tone("agent"))
        .spawn();
    let mut caller = pbx
        .caller("710")
        .play(pbx.tone("caller"))
        .hangup_after(3.0)
        .spawn();
    let ended = first_phone.expect_event("call_ended", 15 * SECS);
    assert_eq!(ended["status"], 487, "rung out after 5 s: {ended}");
    assert!(
        second_phone.events_named("incoming").is_empty(),
        "the second agent rings only after the first: {:?}",
        second_phone.seen
    );
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["agent_id"], second, "{a}");
    assert!(secs_between(&a, "opened_at", "answered_at") >= 5.0, "{a}");
    let protocol = a["protocol"].as_str().unwrap();
    check_recording(&pbx.recording(protocol), &a);
    first_phone.finish(10 * SECS);
    second_phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_agent_is_skipped() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Cobrança", "pabx_code": 720, "close_on_hangup": true}))
        .await;
    let paused = pbx.agent("1021", &[dept]).await;
    let working = pbx.agent("1022", &[dept]).await;
    pbx.post(
        &format!("/agents/{paused}/pause"),
        json!({"reason": "almoço"}),
    )
    .await;
    let mut paused_phone = pbx.phone("1021").answer_after(0.2).spawn();
    let mut phone = pbx.phone("1022").answer_after(0.5).spawn();
    let mut caller = pbx.caller("720").hangup_after(1.0).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["agent_id"], working, "{a}");
    phone.seen_or_expect("incoming", SECS);
    paused_phone.finish(10 * SECS);
    assert!(
        paused_phone.events_named("incoming").is_empty(),
        "a paused agent never rings: {:?}",
        paused_phone.seen
    );
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_available_goes_to_the_overflow_department() {
    let pbx = Pbx::start().await;
    let backup = pbx
        .department(json!({"name": "Plantão", "pabx_code": 731, "close_on_hangup": true}))
        .await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 730,
            "overflow_department_id": backup, "close_on_hangup": true}))
        .await;
    // Its only agent is not registered.
    pbx.agent("1031", &[dept]).await;
    let on_call = pbx.agent("1032", &[backup]).await;
    let mut phone = pbx.phone("1032").answer_after(0.5).spawn();
    let mut caller = pbx.caller("730").hangup_after(1.0).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["agent_id"], on_call, "{a}");
    assert_eq!(
        a["department_id"], backup,
        "the overflow department owns it: {a}"
    );
    assert_eq!(a["callee"], "730");
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn caller_hanging_up_while_ringing_is_abandoned() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 740}))
        .await;
    pbx.agent("1041", &[dept]).await;
    let mut phone = pbx.phone("1041").never_answer().spawn();
    let mut caller = pbx.caller("740").cancel_after(2.0).spawn();
    caller.wait(30 * SECS);
    let ended = phone.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["status"], 487, "{ended}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "abandoned", "{a}");
    assert!(a["answered_at"].is_null());
    assert!(a["recording"].is_null());
    let (_, calls) = pbx.svc.api(Method::GET, "/calls", None).await;
    assert_eq!(calls["items"], json!([]), "no live call is left");
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_calls_another_extension_internally() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Interno", "pabx_code": 750}))
        .await;
    pbx.agent("1051", &[dept]).await;
    let callee = pbx.agent("1052", &[dept]).await;
    let mut phone = pbx
        .phone("1052")
        .answer_after(0.5)
        .play(pbx.tone("agent"))
        .spawn();
    // The calling extension authenticates its INVITE (407).
    let mut caller = pbx
        .caller("1052")
        .registered(pbx.svc.sip, "1051", "pw-1051-x")
        .play(pbx.tone("caller"))
        .hangup_after(2.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["direction"], "internal", "{a}");
    assert_eq!(a["caller"], "1051");
    assert_eq!(a["callee"], "1052");
    assert_eq!(a["agent_id"], callee);
    assert_eq!(a["close_reason"], "caller_hangup");
    assert!(
        a["recording"].is_null(),
        "no department asked to record: {a}"
    );
    assert_eq!(protocol_seen(&mut phone), a["protocol"].as_str().unwrap());
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_cannot_call() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Interno", "pabx_code": 755}))
        .await;
    pbx.agent("1056", &[dept]).await;
    pbx.agent("1057", &[dept]).await;
    let mut phone = pbx.phone("1057").answer_after(0.2).spawn();
    let mut caller = pbx
        .caller("1057")
        .auth("1056", "wrong-password")
        .expect_status(403)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    assert!(
        pbx.attendances().await.is_empty(),
        "no protocol for a refused call"
    );
    phone.finish(10 * SECS);
    assert!(phone.events_named("incoming").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn blind_transfer_by_refer_keeps_the_protocol() {
    let pbx = Pbx::start().await;
    let second = pbx
        .department(json!({"name": "Financeiro", "pabx_code": 761, "record": true, "close_on_hangup": true}))
        .await;
    let first = pbx
        .department(
            json!({"name": "Recepção", "pabx_code": 760, "record": true, "close_on_hangup": true}),
        )
        .await;
    let ana = pbx.agent("1061", &[first]).await;
    let bia = pbx.agent("1062", &[second]).await;
    let target = format!("sip:761@{}", pbx.svc.sip);
    let mut a1 = pbx
        .phone("1061")
        .answer_after(0.3)
        .play(pbx.tone("agent"))
        .transfer_to(&target, 1.5)
        .spawn();
    let mut a2 = pbx
        .phone("1062")
        .answer_after(0.5)
        .play(pbx.tone("agent"))
        .spawn();
    let mut caller = pbx
        .caller("760")
        .play(pbx.tone("caller"))
        .hangup_after(6.0)
        .spawn();
    let status = loop {
        let s = a1.expect_event("transfer_status", 10 * SECS);
        if s["final"] == true {
            break s;
        }
    };
    assert_eq!(
        status["code"], 200,
        "the bridge took the transfer: {status}"
    );
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    let protocol = a["protocol"].as_str().unwrap();
    assert_eq!(protocol_seen(&mut a1), protocol);
    assert_eq!(
        protocol_seen(&mut a2),
        protocol,
        "the same protocol after the transfer"
    );
    assert_eq!(a["agent_id"], bia, "{a}");
    assert_eq!(a["department_id"], second, "{a}");
    let transfers = a["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{a}");
    assert_eq!(transfers[0]["target"], "761");
    assert_eq!(transfers[0]["from_agent_id"], ana);
    assert_eq!(a["close_reason"], "caller_hangup");
    // One recording for the whole call, the caller on the left throughout.
    let path = pbx.recording(protocol);
    let talk = secs_between(&a, "answered_at", "ended_at");
    assert!((wav_duration(&path) - talk).abs() <= 0.5);
    assert!(wav_stat(&path, 1).is_tone(CALLER_HZ as f64));
    a1.finish(10 * SECS);
    a2.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_and_dtmf_pass_through() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 770, "close_on_hangup": true}))
        .await;
    pbx.agent("1071", &[dept]).await;
    let mut phone = pbx.phone("1071").answer_after(0.2).spawn();
    let mut caller = pbx
        .caller("770")
        .dtmf("123#")
        .hold_after(2.5)
        .hangup_after(5.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let ended = phone.expect_event("call_ended", 10 * SECS);
    assert_eq!(
        ended["dtmf"], "123#",
        "RFC 4733 digits reach the agent: {ended}"
    );
    let held: Vec<Value> = phone
        .events_named("media")
        .into_iter()
        .filter(|m| m["status"] == "remote_hold")
        .collect();
    assert!(
        !held.is_empty(),
        "the hold re-INVITE reached the agent: {:?}",
        phone.seen
    );
    pbx.closed().await;
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_lists_hangs_up_and_traces_a_live_call() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 780, "close_on_hangup": true}))
        .await;
    let agent = pbx.agent("1081", &[dept]).await;
    let mut phone = pbx.phone("1081").answer_after(0.2).spawn();
    let mut caller = pbx.caller("780").max_duration(30.0).spawn();
    caller.expect_event("confirmed", 10 * SECS);
    let (_, calls) = pbx.svc.api(Method::GET, "/calls", None).await;
    let items = calls["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{calls}");
    let call = &items[0];
    assert_eq!(call["state"], "answered", "{call}");
    assert_eq!(call["agent_id"], agent);
    assert_eq!(call["department_id"], dept);
    let (_, agents) = pbx
        .svc
        .api(Method::GET, &format!("/agents/{agent}"), None)
        .await;
    assert_eq!(agents["busy"], true, "{agents}");
    assert_eq!(agents["presence"], "available");
    let id = call["id"].as_str().unwrap().to_owned();
    let (status, _) = pbx
        .svc
        .api(Method::DELETE, &format!("/calls/{id}"), None)
        .await;
    assert_eq!(status, 202);
    let ended = caller.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["ended_by"], "remote", "the bridge sent BYE: {ended}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "api", "{a}");
    let (status, trace) = pbx
        .svc
        .api(Method::GET, &format!("/calls/{id}/sip-trace"), None)
        .await;
    assert_eq!(status, 200, "the trace outlives the call: {trace}");
    let lines: Vec<&str> = trace["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["first_line"].as_str().unwrap_or_default())
        .collect();
    for expected in ["INVITE sip:780@", "SIP/2.0 180", "SIP/2.0 200", "BYE sip:"] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected:?} in the trace: {lines:#?}"
        );
    }
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_media_ends_the_call() {
    let pbx = Pbx::start_with(&[("PBX_BRIDGE_RTP_TIMEOUT_S", "2")]).await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 790, "close_on_hangup": true}))
        .await;
    pbx.agent("1091", &[dept]).await;
    let mut phone = pbx.phone("1091").answer_after(0.2).spawn();
    // SIPp's built-in caller sends no RTP at all.
    let dir = tempfile::tempdir().unwrap();
    let _ = sipp();
    let args: Vec<String> = [
        "-sn",
        "uac",
        "-s",
        "790",
        "-m",
        "1",
        "-d",
        "15000",
        "-i",
        "127.0.0.1",
        "-timeout",
        "25",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([pbx.svc.sip.to_string()])
    .collect();
    let started = std::time::Instant::now();
    let _ = run_sipp(dir.path(), &args, 30 * SECS);
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "failed", "{a}");
    let talk = secs_between(&a, "answered_at", "ended_at");
    assert!(
        (1.5..6.0).contains(&talk),
        "ended by the 2 s dead-media rule, not the 15 s call: {talk} s"
    );
    assert!(started.elapsed() < 14 * SECS);
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_who_lets_calls_ring_out_is_paused() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 795, "ring_timeout_s": 5,
            "auto_pause_after_missed": 1}),
        )
        .await;
    let agent = pbx.agent("1095", &[dept]).await;
    let mut phone = pbx.phone("1095").never_answer().spawn();
    let mut caller = pbx.caller("795").expect_status(480).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let ended = phone.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["status"], 487, "{ended}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "no_answer", "{a}");
    let (_, paused) = pbx
        .svc
        .api(Method::GET, &format!("/agents/{agent}"), None)
        .await;
    assert_eq!(paused["pause"]["reason"], "missed_calls", "{paused}");
    assert_eq!(paused["presence"], "paused");
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_callers_at_once_never_ring_one_agent_twice() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 799, "ring_timeout_s": 5}))
        .await;
    pbx.agent("1099", &[dept]).await;
    let mut phone = pbx.phone("1099").answer_after(1.0).spawn();
    let mut first = pbx.caller("799").hangup_after(1.0).spawn();
    let mut second = pbx.caller("799").hangup_after(1.0).spawn();
    let (c1, c2) = (first.wait(30 * SECS), second.wait(30 * SECS));
    assert!(
        (c1 == 0) ^ (c2 == 0),
        "exactly one caller gets the only agent: {c1} {c2}\n{}\n{}",
        first.log(),
        second.log()
    );
    phone.finish(10 * SECS);
    assert_eq!(
        phone.events_named("incoming").len(),
        1,
        "the agent rang once: {:?}",
        phone.seen
    );
    let reasons: Vec<Value> = pbx
        .attendances()
        .await
        .iter()
        .map(|a| a["close_reason"].clone())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cut_by_kill_9_is_ended_and_its_recording_repaired_at_start() {
    let mut pbx = Pbx::start().await;
    let dept = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 798, "record": true, "close_on_hangup": true}),
        )
        .await;
    pbx.agent("1098", &[dept]).await;
    let mut phone = pbx
        .phone("1098")
        .answer_after(0.2)
        .play(pbx.tone("agent"))
        .spawn();
    let mut caller = pbx
        .caller("798")
        .play(pbx.tone("caller"))
        .max_duration(20.0)
        .spawn();
    caller.expect_event("confirmed", 10 * SECS);
    tokio::time::sleep(3 * SECS).await;
    pbx.svc.kill9_and_restart().await;
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "failed", "{a}");
    assert!(!a["ended_at"].is_null(), "{a}");
    let (_, calls) = pbx.svc.api(Method::GET, "/calls", None).await;
    assert_eq!(calls["items"], json!([]), "never listed as live again");
    let protocol = a["protocol"].as_str().unwrap();
    let path = pbx.recording(protocol);
    let duration = wav_duration(&path);
    // At most the last second is lost (the recorder flushes every 500 ms).
    assert!((2.0..=4.5).contains(&duration), "{duration} s kept of ~3 s");
    assert!(wav_stat(&path, 1).is_tone(CALLER_HZ as f64));
    assert_eq!(
        a["recording"]["bytes"].as_u64(),
        Some(std::fs::metadata(&path).unwrap().len()),
        "{a}"
    );
    drop(caller);
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_hours_hangs_up_or_goes_to_the_after_hours_department() {
    let pbx = Pbx::start().await;
    // A period with no open range: closed all the time.
    let closed = pbx
        .post("/periods", json!({"name": "Fechado", "ranges": []}))
        .await["id"]
        .as_i64()
        .unwrap();
    let night = pbx
        .department(json!({"name": "Plantão", "pabx_code": 811, "close_on_hangup": true}))
        .await;
    let shut = pbx
        .department(json!({"name": "Comercial", "pabx_code": 810, "period_id": closed}))
        .await;
    let forwarded = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 812, "period_id": closed,
            "after_hours": {"department_id": night}, "close_on_hangup": true}),
        )
        .await;
    pbx.agent("1811", &[shut, forwarded]).await;
    let on_duty = pbx.agent("1812", &[night]).await;
    let mut day_phone = pbx.phone("1811").answer_after(0.2).spawn();
    let mut night_phone = pbx.phone("1812").answer_after(0.3).spawn();

    let mut caller = pbx.caller("810").expect_status(480).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.attendance_when(|a| a["status"] == "closed").await;
    assert_eq!(a["close_reason"], "after_hours", "{a}");
    assert!(a["agent_id"].is_null());

    let mut caller = pbx.caller("812").hangup_after(1.0).spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let mut answered = None;
    for _ in 0..100 {
        answered = pbx
            .attendances()
            .await
            .into_iter()
            .find(|a| a["callee"] == "812" && a["status"] == "closed");
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = answered.expect("the after-hours call closed");
    assert_eq!(a["department_id"], night, "{a}");
    assert_eq!(a["agent_id"], on_duty);
    assert_eq!(a["close_reason"], "caller_hangup");
    day_phone.finish(10 * SECS);
    assert!(
        day_phone.events_named("incoming").is_empty(),
        "closed departments ring nobody: {:?}",
        day_phone.seen
    );
    night_phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_transfers_a_sip_call_and_the_new_agent_hangs_up() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 820, "close_on_hangup": true}))
        .await;
    let first = pbx.agent("1821", &[dept]).await;
    let second = pbx.agent("1822", &[]).await;
    let mut a1 = pbx.phone("1821").answer_after(0.2).spawn();
    let mut a2 = pbx
        .phone("1822")
        .answer_after(0.3)
        .hangup_after(1.0)
        .spawn();
    let mut caller = pbx.caller("820").max_duration(30.0).spawn();
    caller.expect_event("confirmed", 10 * SECS);
    let protocol = pbx.attendances().await[0]["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = pbx
        .svc
        .api(
            Method::POST,
            &format!("/calls/{protocol}/transfer"),
            Some(json!({"target": "9999"})),
        )
        .await;
    assert_eq!(status, 422, "an unknown target is refused: {body}");
    let (status, body) = pbx
        .svc
        .api(
            Method::POST,
            &format!("/calls/{protocol}/transfer"),
            Some(json!({"target": "1822"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let ended = a1.expect_event("call_ended", 10 * SECS);
    assert_eq!(
        ended["ended_by"], "remote",
        "the bridge let the first agent go: {ended}"
    );
    let ended = caller.expect_event("call_ended", 15 * SECS);
    assert_eq!(ended["ended_by"], "remote", "{ended}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "agent_hangup", "{a}");
    assert_eq!(a["agent_id"], second);
    let transfers = a["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{a}");
    assert_eq!(transfers[0]["from_agent_id"], first);
    assert_eq!(transfers[0]["target"], "1822");
    assert_eq!(protocol_seen(&mut a2), protocol);
    a1.finish(10 * SECS);
    a2.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_live_calls_finish_and_refuses_new_ones() {
    let mut pbx = Pbx::start_with(&[("PBX_BRIDGE_SHUTDOWN_GRACE_S", "20")]).await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 830, "close_on_hangup": true}))
        .await;
    pbx.agent("1831", &[dept]).await;
    let mut phone = pbx.phone("1831").answer_after(0.2).spawn();
    let mut caller = pbx.caller("830").hangup_after(4.0).spawn();
    caller.expect_event("confirmed", 10 * SECS);
    let sip = pbx.svc.sip;
    let svc = &mut pbx.svc;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| stop_tx.send(svc.terminate(30 * SECS)).unwrap());
        std::thread::sleep(SECS);
        // Draining: a new call is refused, the live one goes on.
        let mut late = CallerBuilder::new(&format!("sip:830@{sip}"))
            .expect_status(503)
            .spawn();
        assert_eq!(late.wait(20 * SECS), 0, "late caller:\n{}", late.log());
    });
    assert_eq!(caller.wait(20 * SECS), 0, "caller:\n{}", caller.log());
    let ended = caller.events_named("call_ended");
    assert_eq!(
        ended[0]["ended_by"], "local",
        "the caller hung up, not the bridge: {ended:?}"
    );
    let status = stop_rx
        .recv()
        .unwrap()
        .expect("the bridge stops once its calls are over");
    assert!(status.success(), "{status}");
    pbx.svc.restart().await;
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    phone.finish(10 * SECS);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hangs_up_calls_still_live_after_the_grace_period() {
    let mut pbx = Pbx::start_with(&[("PBX_BRIDGE_SHUTDOWN_GRACE_S", "2")]).await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 840, "close_on_hangup": true}))
        .await;
    pbx.agent("1841", &[dept]).await;
    let mut phone = pbx.phone("1841").answer_after(0.2).spawn();
    let mut caller = pbx.caller("840").max_duration(60.0).spawn();
    caller.expect_event("confirmed", 10 * SECS);
    let status = pbx.svc.terminate(30 * SECS).expect("the bridge stops");
    assert!(status.success(), "{status}");
    let ended = caller.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["ended_by"], "remote", "the bridge sent BYE: {ended}");
    let ended = phone.expect_event("call_ended", 10 * SECS);
    assert_eq!(ended["ended_by"], "remote", "{ended}");
    pbx.svc.restart().await;
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "failed", "{a}");
    phone.finish(10 * SECS);
}

/// A SIPp UAS playing agent `number`: registered from its port (the bridge
/// rings the address a binding came from), then running `scenario` for one
/// call in a thread; joins to SIPp's exit code and output.
fn sipp_agent(pbx: &Pbx, number: &str, scenario: &str) -> std::thread::JoinHandle<(i32, String)> {
    let dir = tempfile::tempdir().unwrap().keep();
    let users = peers::write_file(
        &dir,
        "users.csv",
        &format!(
            "SEQUENTIAL\n{number};[authentication username={number} password=pw-{number}-x]\n"
        ),
    );
    let port = peers::free_port().to_string();
    let sip = pbx.svc.sip.to_string();
    let path = |name: &str| format!("{}/{name}", peers::REPO);
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["-i", "127.0.0.1", "-p", &port, "-m", "1", "-nostdin"].map(String::from));
        a.push(sip.clone());
        a
    };
    let register = args(&[
        "-sf",
        &path("benches/sipp/register.xml"),
        "-inf",
        &users,
        "-key",
        "expires",
        "300",
    ]);
    let (code, out) = peers::run_sipp(&dir, &register, 20 * SECS);
    assert_eq!(code, 0, "SIPp REGISTER of {number}:\n{out}");
    let media_port = peers::free_port().to_string();
    let run = args(&[
        "-sf",
        &path(&format!("tests/sipp/{scenario}")),
        "-mp",
        &media_port,
        "-timeout",
        "20",
    ]);
    std::thread::spawn(move || {
        let done = peers::run_sipp(&dir, &run, 25 * SECS);
        let _ = std::fs::remove_dir_all(&dir);
        done
    })
}

/// RFC 3261 §9.1: the agent's 200 OK crosses the bridge's CANCEL. The
/// caller has its 487 already; the bridge ACKs the late 2xx and BYEs it, and
/// the attendance stays abandoned (the agent, a SIPp UAS, fails its run
/// unless it gets both the ACK and the BYE).
#[tokio::test(flavor = "multi_thread")]
async fn test_cancel_2xx_race() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 850}))
        .await;
    pbx.agent("1851", &[dept]).await;
    let agent = sipp_agent(&pbx, "1851", "agent_answers_after_cancel.xml");
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = pbx.caller("850").cancel_after(1.0).spawn();
    assert_eq!(caller.wait(20 * SECS), 0, "caller:\n{}", caller.log());
    let ended = caller.events_named("call_ended");
    assert_eq!(ended[0]["status"], 487, "{ended:?}");
    let (code, out) = agent.join().unwrap();
    assert_eq!(code, 0, "the late 2xx got its ACK and a BYE:\n{out}");
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "abandoned", "{a}");
    assert!(a["answered_at"].is_null(), "{a}");
    let (_, calls) = pbx.svc.api(Method::GET, "/calls", None).await;
    assert_eq!(calls["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_work_over_tcp() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(
            json!({"name": "Suporte", "pabx_code": 870, "record": true, "close_on_hangup": true}),
        )
        .await;
    pbx.agent("1871", &[dept]).await;
    let mut phone = pbx
        .phone("1871")
        .arg("--transport")
        .arg("tcp")
        .answer_after(0.3)
        .play(pbx.tone("agent"))
        .spawn();
    let mut caller = CallerBuilder::new(&format!("sip:870@{};transport=tcp", pbx.svc.sip))
        .arg("--transport")
        .arg("tcp")
        .play(pbx.tone("caller"))
        .hangup_after(2.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    let (_, regs) = pbx.svc.api(Method::GET, "/registrations", None).await;
    assert_eq!(regs["items"][0]["transport"], "tcp", "{regs}");
    check_recording(&pbx.recording(a["protocol"].as_str().unwrap()), &a);
    phone.finish(10 * SECS);
}
