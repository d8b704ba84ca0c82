//! AMI `Redirect` transfers (`POST /calls/{protocol}/transfer` of an Asterisk
//! call): the customer's channel leaves Asterisk's bridge with the first
//! agent (who is hung up), enters the department code and dials again; the
//! agent who answers there attends the call.
//!
//! The events are modelled on the real ones in the fixtures: a channel left
//! alone in a two-party bridge gets `BridgeLeave` and `Hangup` with no
//! request of its own (the `1796648854.8` call of `i-calls-to-the-bridge`),
//! a redirected channel `BridgeLeave`s and shows a `Newexten` in the new
//! context, and `Dial` legs are `Newchannel`/`DialBegin`/`Newstate`/
//! `DialEnd`/`BridgeEnter` as in `b-ringall-701-answered-by-1002`.

use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Direction, HangupCause, Party, Tracker, TrackerConfig};
use super::tracker_bridge::{Leg, at, chan_event, config, dial, hangup, run};

pub(super) const LINKEDID: &str = "1800000001.10";

/// The rendered PBX (`bridge` is the bridge), with a carrier trunk whose
/// DID `1130000000` rings extension 1001 on Asterisk.
pub(super) fn transfer_config() -> TrackerConfig {
    config().inbound_context("pbx-bridge-from-operadora")
}

fn leg<'a>(channel: &'a str, uid: &'a str, ctx: &'a str, exten: &'a str, num: &'a str) -> Leg<'a> {
    Leg(channel, uid, LINKEDID, ctx, exten, num, "0")
}

fn state<'a>(l: Leg<'a>, st: &'a str) -> Leg<'a> {
    Leg(l.0, l.1, l.2, l.3, l.4, l.5, st)
}

fn at_exten<'a>(l: Leg<'a>, ctx: &'a str, exten: &'a str) -> Leg<'a> {
    Leg(l.0, l.1, l.2, ctx, exten, l.5, l.6)
}

fn cdr(uid: &str, dest: &str, disposition: &str) -> Packet {
    Packet::new()
        .with("Event", "Cdr")
        .with("UniqueID", uid)
        .with("DestinationChannel", dest)
        .with("Disposition", disposition)
}

/// Where the redirected customer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Department {
    /// 701 rings its agents on Asterisk (`Dial(PJSIP/1001&PJSIP/1002)`),
    /// 1002 answers.
    OnAsterisk,
    /// 701 as rendered: `Dial(PJSIP/701@bridge)`, the bridge answers.
    OnTheBridge,
}

/// A customer on the `operadora` trunk calls the DID of extension 1001,
/// who answers; `POST /calls/{protocol}/transfer {"target": "701"}` sends
/// AMI `Redirect` of the customer's channel to `pbx-bridge-departments,
/// 701,1`; 1001 is hung up, the customer dials 701 and someone answers
/// there; later `who` hangs up. Returns the events and the index of the
/// `DialEnd ANSWER` at the department.
pub(super) fn redirect_to_department(dept: Department, who: Party) -> (Vec<Packet>, usize) {
    let cust = leg(
        "PJSIP/operadora-00000080",
        LINKEDID,
        "pbx-bridge-from-operadora",
        "1130000000",
        "+551199998888",
    );
    let cust = state(cust, "4");
    let cust_up = state(cust, "6");
    let first = leg(
        "PJSIP/1001-00000081",
        "1800000001.11",
        "pbx-bridge-ext-1001",
        "s",
        "1001",
    );
    let first_up = at_exten(state(first, "6"), "pbx-bridge-ext-1001", "");
    // After the Redirect: the customer's channel at the department code.
    let redirected = at_exten(cust_up, "pbx-bridge-departments", "701");
    let mut evs = vec![
        chan_event("Newchannel", cust),
        chan_event("Newexten", cust),
        chan_event("Newchannel", first),
        dial("DialBegin", cust, first, None),
        chan_event("Newstate", state(first, "5")),
        chan_event("Newstate", state(first, "6")),
        dial("DialEnd", cust, state(first, "6"), Some("ANSWER")),
        chan_event("Newstate", cust_up),
        chan_event("Newexten", first_up),
        chan_event("BridgeEnter", first_up),
        chan_event("BridgeEnter", cust_up),
        // --- AMI Redirect of PJSIP/operadora-00000080 ---
        chan_event("BridgeLeave", cust_up),
        chan_event("Newexten", redirected),
        chan_event("BridgeLeave", first_up),
        hangup(first_up, "16"),
        cdr(LINKEDID, first.0, "ANSWERED"),
    ];
    let (answerer, others): (Leg<'_>, Vec<Leg<'_>>) = match dept {
        Department::OnAsterisk => {
            let again = leg(
                "PJSIP/1001-00000082",
                "1800000001.12",
                "pbx-bridge-ext-1001",
                "s",
                "1001",
            );
            let second = leg(
                "PJSIP/1002-00000083",
                "1800000001.13",
                "pbx-bridge-ext-1002",
                "s",
                "1002",
            );
            (second, vec![again])
        }
        Department::OnTheBridge => {
            let bridge = leg(
                "PJSIP/bridge-00000084",
                "1800000001.14",
                "pbx-bridge-from-bridge",
                "s",
                "701",
            );
            (bridge, vec![])
        }
    };
    for l in others.iter().chain([&answerer]) {
        evs.push(chan_event("Newchannel", *l));
        evs.push(dial("DialBegin", redirected, *l, None));
    }
    for l in others.iter().chain([&answerer]) {
        evs.push(chan_event("Newstate", state(*l, "5")));
    }
    let answerer_up = state(answerer, "6");
    evs.push(chan_event("Newstate", answerer_up));
    let answered_at = evs.len();
    evs.push(dial("DialEnd", redirected, answerer_up, Some("ANSWER")));
    for l in &others {
        evs.push(dial("DialEnd", redirected, state(*l, "5"), Some("CANCEL")));
        evs.push(
            chan_event("Hangup", state(*l, "5"))
                .with("Cause", "26")
                .with("Cause-txt", "Answered elsewhere"),
        );
    }
    evs.push(chan_event("BridgeEnter", answerer_up));
    evs.push(chan_event("BridgeEnter", redirected));
    match who {
        Party::Callee => {
            evs.push(chan_event("HangupRequest", answerer_up));
            evs.push(chan_event("BridgeLeave", answerer_up));
            evs.push(chan_event("BridgeLeave", redirected));
            evs.push(hangup(answerer_up, "16"));
            evs.push(hangup(redirected, "16"));
        }
        Party::Caller => {
            evs.push(chan_event("HangupRequest", redirected));
            evs.push(chan_event("BridgeLeave", redirected));
            evs.push(chan_event("BridgeLeave", answerer_up));
            evs.push(hangup(redirected, "16"));
            evs.push(hangup(answerer_up, "16"));
        }
    }
    evs.push(cdr(LINKEDID, answerer.0, "ANSWERED"));
    (evs, answered_at)
}

fn normal_clearing() -> Option<HangupCause> {
    Some(HangupCause {
        code: 16,
        text: "Normal Clearing".into(),
    })
}

#[test]
fn the_agent_who_answers_at_the_department_attends_the_redirected_call() {
    let (evs, answered_at) = redirect_to_department(Department::OnAsterisk, Party::Callee);
    let mut t = Tracker::new(transfer_config());
    let got = run(&mut t, &evs);
    let l = LINKEDID.to_owned();
    assert_eq!(
        got,
        [
            (
                2,
                CallDecision::CallOpened {
                    linkedid: l.clone(),
                    caller: "+551199998888".into(),
                    callee: "1130000000".into(),
                    direction: Direction::Inbound,
                    department_code: None,
                    opened_at: at(0),
                }
            ),
            (
                6,
                CallDecision::CallAnswered {
                    linkedid: l.clone(),
                    agent_extension: Some("1001".into()),
                    at: at(6),
                }
            ),
            (
                answered_at,
                CallDecision::CallTransferred {
                    linkedid: l.clone(),
                    target: "701".into(),
                    department_code: Some("701".into()),
                    agent_extension: Some("1002".into()),
                    at: at(answered_at),
                }
            ),
            (
                evs.len() - 2,
                CallDecision::CallEnded {
                    linkedid: l,
                    cause: normal_clearing(),
                    ended_at: at(evs.len() - 2),
                    answered: true,
                    hangup_by: Some(Party::Callee),
                }
            ),
        ]
    );
    assert_eq!(t.live_calls(), 0);
}

#[test]
fn who_hangs_up_is_about_the_new_agent() {
    let (evs, _) = redirect_to_department(Department::OnAsterisk, Party::Caller);
    let mut t = Tracker::new(transfer_config());
    let got = run(&mut t, &evs);
    let Some((_, CallDecision::CallEnded { hangup_by, .. })) = got.last() else {
        panic!("{got:?}")
    };
    assert_eq!(*hangup_by, Some(Party::Caller));
    let transfers = got
        .iter()
        .filter(|(_, d)| matches!(d, CallDecision::CallTransferred { .. }))
        .count();
    assert_eq!(transfers, 1, "{got:?}");
}

/// As rendered, department codes are served by the bridge: the call an
/// agent answered first stays followed (no withdrawal), the transfer is
/// reported with no agent on Asterisk's side (the bridge's agent attends
/// it in the bridge's own attendance).
#[test]
fn a_redirect_to_a_department_on_the_bridge_stays_followed() {
    let (evs, answered_at) = redirect_to_department(Department::OnTheBridge, Party::Callee);
    let mut t = Tracker::new(transfer_config());
    let got = run(&mut t, &evs);
    let kinds: Vec<&str> = got
        .iter()
        .map(|(_, d)| match d {
            CallDecision::CallOpened { .. } => "opened",
            CallDecision::CallAnswered { .. } => "answered",
            CallDecision::CallTransferred { .. } => "transferred",
            CallDecision::CallEnded { .. } => "ended",
            CallDecision::CallToBridge { .. } => "to-bridge",
            CallDecision::CallHandedOver { .. } => "handed-over",
            CallDecision::RecordingAnnounced { .. } => "recording",
            CallDecision::CallClaimed { .. } => "claimed",
        })
        .collect();
    assert_eq!(kinds, ["opened", "answered", "transferred", "ended"]);
    assert_eq!(
        got[2],
        (
            answered_at,
            CallDecision::CallTransferred {
                linkedid: LINKEDID.into(),
                target: "701".into(),
                department_code: Some("701".into()),
                agent_extension: None,
                at: at(answered_at),
            }
        )
    );
}

/// Without a Redirect, a ring-all (one `ANSWER`, the others cancelled) or
/// an overflow (`NOANSWER` then `ANSWER`) is one answer, no transfer: the
/// recorded scenarios report none.
#[test]
fn recorded_calls_report_no_transfer() {
    use super::support::*;
    for prefix in ["b-", "d-", "g-", "g2-"] {
        let evs: Vec<Packet> = packets_of(&read(&scenario(prefix, ".ami.in")))
            .into_iter()
            .filter(|p| p.event_name().is_some())
            .collect();
        let mut t = Tracker::new(fixture_tracker_config());
        let got = run(&mut t, &evs);
        assert!(
            !got.iter()
                .any(|(_, d)| matches!(d, CallDecision::CallTransferred { .. })),
            "{prefix}: {got:?}"
        );
    }
}
