//! Self-test of the PJSUA2 driver (`tests/peers/ua.py`) and its Rust wrapper,
//! without the bridge: a PJSUA2 caller calls a PJSUA2 agent directly (the
//! agent does not register; it listens on a free loopback port). Tones both
//! ways with recordings checked by sox, DTMF and a custom header, a 486
//! rejection, a CANCEL of a call that is never answered, hold and unhold.
//! Like the end-to-end tests it relies on `./scripts/test` for PJSUA2 and sox.

mod peers;

use std::time::Duration;

use peers::{AgentBuilder, CallerBuilder, UaMedia, make_tone, wav_duration, wav_stat};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

fn agent_uri(agent: &mut peers::Ua) -> String {
    format!("sip:agent@{}", agent.local_addr())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn tones_both_ways_with_recordings_dtmf_and_header() {
    let dir = tempfile::tempdir().unwrap();
    let (tone440, tone1000) = (dir.path().join("440.wav"), dir.path().join("1000.wav"));
    make_tone(&tone440, 440, 8.0);
    make_tone(&tone1000, 1000, 8.0);
    let (agent_rec, caller_rec) = (dir.path().join("agent.wav"), dir.path().join("caller.wav"));

    let mut agent = AgentBuilder::direct()
        .answer_after(1.0)
        .play(&tone1000)
        .record(&agent_rec)
        .spawn();
    let mut caller = CallerBuilder::new(&agent_uri(&mut agent))
        .header("X-Protocol", "selftest-0001")
        .play(&tone440)
        .record(&caller_rec)
        .dtmf("12#")
        .hangup_after(3.0)
        .spawn();

    let incoming = agent.expect_event("incoming", T);
    assert_eq!(incoming["x_protocol"], "selftest-0001", "{incoming}");
    agent.expect_event("ringing", T);
    let ringing = caller.expect_event("ringing", T);
    assert_eq!(ringing["code"], 180);
    let confirmed = caller.expect_event("confirmed", T);
    // 200 comes about 1 s after the 180.
    let waited = f(&confirmed["t"]) - f(&ringing["t"]);
    assert!((0.8..2.0).contains(&waited), "answered after {waited} s");
    assert_eq!(caller.seen_or_expect("media", T)["status"], "active");

    let ended = caller.expect_event("call_ended", T);
    assert_eq!(ended["status"], 200, "{ended}");
    assert_eq!(ended["ended_by"], "local", "{ended}");
    let dur = f(&ended["duration"]);
    assert!((2.8..3.6).contains(&dur), "caller call lasted {dur} s");
    assert_eq!(caller.wait(T), 0, "caller exit code");

    let a_ended = agent.expect_event("call_ended", T);
    assert_eq!(a_ended["ended_by"], "remote", "{a_ended}");
    assert_eq!(a_ended["confirmed"], true, "{a_ended}");
    assert_eq!(a_ended["dtmf"], "12#", "{a_ended}");
    assert_eq!(agent.events_named("dtmf").len(), 3);

    // The agent heard the caller's 440 Hz, the caller the agent's 1000 Hz.
    let heard_by_agent = wav_stat(&agent_rec, 1);
    assert!(
        heard_by_agent.is_tone(440.0),
        "agent recorded {heard_by_agent:?}"
    );
    let heard_by_caller = wav_stat(&caller_rec, 1);
    assert!(
        heard_by_caller.is_tone(1000.0),
        "caller recorded {heard_by_caller:?}"
    );
    for rec in [&agent_rec, &caller_rec] {
        let d = wav_duration(rec);
        assert!((2.5..3.8).contains(&d), "{} lasts {d} s", rec.display());
    }
    assert_eq!(agent.finish(T), 0, "agent exit code");
}

#[test]
fn reject_486_then_a_second_call_on_the_same_agent() {
    let mut agent = AgentBuilder::direct().reject(486).spawn();
    let uri = agent_uri(&mut agent);
    for n in 1..=2 {
        let mut caller = CallerBuilder::new(&uri).expect_status(486).spawn();
        let ended = caller.expect_event("call_ended", T);
        assert_eq!(ended["status"], 486, "{ended}");
        assert_eq!(ended["confirmed"], false, "{ended}");
        assert_eq!(caller.wait(T), 0, "caller exit code");
        let a_ended = agent.expect_event("call_ended", T);
        assert_eq!(a_ended["call"], n, "{a_ended}");
        assert_eq!(a_ended["status"], 486, "{a_ended}");
    }
    assert_eq!(agent.finish(T), 0, "agent exit code");
}

#[test]
fn never_answered_call_cancelled_by_the_caller() {
    let mut agent = AgentBuilder::direct().never_answer().spawn();
    let mut caller = CallerBuilder::new(&agent_uri(&mut agent))
        .cancel_after(1.0)
        .spawn();
    caller.expect_event("ringing", T);
    caller.expect_event("cancel", T);
    let ended = caller.expect_event("call_ended", T);
    assert_eq!(ended["invite_status"], 487, "{ended}");
    assert_eq!(ended["confirmed"], false, "{ended}");
    assert_eq!(caller.wait(T), 0, "caller exit code");

    let a_ended = agent.expect_event("call_ended", T);
    assert_eq!(a_ended["status"], 487, "{a_ended}");
    assert_eq!(a_ended["ended_by"], "remote", "{a_ended}");
    assert_eq!(agent.finish(T), 0, "agent exit code");
}

#[test]
fn hold_and_unhold_then_the_agent_hangs_up() {
    let mut agent = AgentBuilder::direct().hangup_after(3.0).spawn();
    let mut caller = CallerBuilder::new(&agent_uri(&mut agent))
        .hold_after(0.5)
        .spawn();
    caller.expect_event("confirmed", T);
    caller.expect_event("hold", T);
    let held = caller.expect_event("media", T);
    let held = if held["status"] == "active" {
        caller.expect_event("media", T)
    } else {
        held
    };
    assert_eq!(held["status"], "local_hold", "{held}");
    caller.expect_event("unhold", T);
    assert_eq!(caller.expect_event("media", T)["status"], "active");
    let ended = caller.expect_event("call_ended", T);
    assert_eq!(ended["ended_by"], "remote", "{ended}");
    assert_eq!(caller.wait(T), 0, "caller exit code");

    agent.expect_event("call_ended", T);
    let statuses: Vec<Value> = agent
        .events_named("media")
        .iter()
        .map(|v| v["status"].clone())
        .collect();
    assert!(
        statuses.iter().any(|s| s == "remote_hold"),
        "agent media states: {statuses:?}"
    );
    assert_eq!(agent.finish(T), 0, "agent exit code");
}
