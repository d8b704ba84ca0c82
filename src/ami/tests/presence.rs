//! Extension presence on Asterisk from the real Asterisk 22 bytes: the
//! events of an agent registering (h) and unregistering (g), the endpoint
//! list read after a login (a), and the session re-reading it after every
//! reconnect, with presence cleared while the session is down.

use std::time::{Duration, Instant};

use super::super::packet::Packet;
use super::super::presence::{apply_event, follow, from_endpoint_list};
use super::super::session::{Backoff, Output, Session, SessionConfig, SessionState};
use super::support::*;
use crate::pbx_presence::{Availability, PbxPresence, PresenceBook};

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

fn events_of(prefix: &str) -> Vec<Packet> {
    packets_of(&read(&scenario(prefix, ".ami.in")))
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect()
}

fn availability(book: &PresenceBook, number: &str) -> Availability {
    book.get(number)
        .map_or(Availability::Unknown, |p| p.availability())
}

/// The `EndpointList` items of fixture a (1001, 1002 and `bridge`, all
/// `Not in use` with a contact).
fn endpoint_list() -> Vec<Packet> {
    events_of("a-")
        .into_iter()
        .filter(|p| p.is_event("EndpointList") || p.is_event("EndpointListComplete"))
        .collect()
}

#[test]
fn the_endpoint_list_read_after_login_gives_contacts_and_device_states() {
    let book = from_endpoint_list(&endpoint_list());
    assert_eq!(book.len(), 3, "{book:?}");
    assert_eq!(availability(&book, "1001"), Availability::Free);
    assert_eq!(availability(&book, "1002"), Availability::Free);
    assert_eq!(
        book["1002"].contacts.keys().collect::<Vec<_>>(),
        ["sip:1002-0x558568561620@127.0.0.1:5092"]
    );
}

#[test]
fn agent_1002_registering_becomes_reachable_and_free() {
    let mut book = PresenceBook::new();
    let mut changed = 0;
    for ev in events_of("h-") {
        if apply_event(&mut book, &ev) {
            changed += 1;
        }
        // Reachable (PeerStatus) comes before the device state: unknown
        // until both are known, never free on half the facts.
        if ev.is_event("PeerStatus") {
            assert_eq!(availability(&book, "1002"), Availability::Unknown);
        }
    }
    assert!(changed >= 3, "PeerStatus, DeviceStateChange, ContactStatus");
    assert_eq!(availability(&book, "1002"), Availability::Free);
    assert_eq!(
        book["1002"]
            .contacts
            .get("sip:1002-0x55df5d65b620@127.0.0.1:5092"),
        Some(&true),
        "the NonQualified contact (qualify off) counts as reachable"
    );
    // 1001 appears only in the PJSIPShowContacts items: a contact, no
    // device state yet.
    assert_eq!(availability(&book, "1001"), Availability::Unknown);
    assert_eq!(book["1001"].contacts.len(), 1);
}

#[test]
fn agent_1002_unregistering_is_removed_and_never_free() {
    let mut book = from_endpoint_list(&endpoint_list());
    for ev in events_of("g-") {
        apply_event(&mut book, &ev);
    }
    assert_eq!(availability(&book, "1002"), Availability::Unreachable);
    assert!(book["1002"].contacts.is_empty(), "ContactStatus: Removed");
    assert_eq!(availability(&book, "1001"), Availability::Free, "untouched");
}

#[test]
fn calls_make_an_agent_in_use_then_free_again() {
    // Fixture b: 701 rings both agents, 1002 answers, the call ends.
    let mut book = from_endpoint_list(&endpoint_list());
    let mut seen_in_use = false;
    for ev in events_of("b-") {
        apply_event(&mut book, &ev);
        seen_in_use |= availability(&book, "1002") == Availability::InUse;
    }
    assert!(seen_in_use, "1002 rang and talked");
    assert_eq!(availability(&book, "1002"), Availability::Free);
    assert_eq!(availability(&book, "1001"), Availability::Free);
}

#[test]
fn channel_devices_and_other_events_are_not_presence() {
    let mut book = PresenceBook::new();
    let channel = Packet::new()
        .with("Event", "DeviceStateChange")
        .with("Device", "PJSIP/1001-00000009")
        .with("State", "INUSE");
    let queue = Packet::new()
        .with("Event", "DeviceStateChange")
        .with("Device", "Queue:support_avail")
        .with("State", "INUSE");
    let garbage = Packet::new().with("Event", "ContactStatus");
    for p in [channel, queue, garbage] {
        assert!(!apply_event(&mut book, &p));
    }
    assert!(book.is_empty());
}

fn config() -> SessionConfig {
    let mut c = SessionConfig::new("bridge", "bridge-secret");
    c.backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter: 0.0,
    };
    c
}

/// The actions the session sent (name, ActionID).
fn sent(outputs: &[Output]) -> Vec<(String, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => super::super::replay::packets(&[BANNER, &b[..]].concat()).pop(),
            _ => None,
        })
        .map(|p| {
            (
                p.get("Action").unwrap_or_default().to_owned(),
                p.action_id().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Feeds `bytes` and passes every output to the presence glue, as the
/// client does; returns them.
fn feed(s: &mut Session, presence: &PbxPresence, now: Instant, bytes: &[u8]) -> Vec<Output> {
    s.bytes_received(now, bytes);
    drain(s, presence)
}

fn drain(s: &mut Session, presence: &PbxPresence) -> Vec<Output> {
    let out = s.drain_outputs();
    for o in &out {
        follow(presence, o);
    }
    out
}

/// Connects and logs in; returns the PJSIPShowEndpoints ActionID.
fn log_in(s: &mut Session, presence: &PbxPresence, now: Instant) -> String {
    s.connected(now);
    let out = feed(s, presence, now, BANNER);
    let (_, login) = sent(&out).pop().expect("Login");
    let out = feed(
        s,
        presence,
        now,
        format!(
            "Response: Success\r\nActionID: {login}\r\nMessage: Authentication accepted\r\n\r\n"
        )
        .as_bytes(),
    );
    sent(&out)
        .into_iter()
        .find(|(a, _)| a == "PJSIPShowEndpoints")
        .map(|(_, id)| id)
        .expect("presence re-read after the login")
}

/// Fixture a's answer to PJSIPShowEndpoints, under ActionID `id`.
fn endpoints_answer(id: &str) -> Vec<u8> {
    let text = String::from_utf8(read(&scenario("a-", ".ami.in"))).unwrap();
    let start = text.find("Response: Success\r\nActionID: a-login-coresettings-endpoints-003");
    let end = text.find("Response: Goodbye");
    let (Some(start), Some(end)) = (start, end) else {
        panic!("fixture a holds the PJSIPShowEndpoints answer")
    };
    text[start..end]
        .replace("a-login-coresettings-endpoints-003", id)
        .into_bytes()
}

#[test]
fn presence_is_re_read_after_every_reconnect_and_cleared_while_down() {
    let presence = PbxPresence::default();
    let mut now = Instant::now();
    let mut s = Session::new(config(), 3);
    s.start(now);
    drain(&mut s, &presence);
    let id = log_in(&mut s, &presence, now);
    assert_eq!(
        presence.availability("1002"),
        Availability::Unknown,
        "not read yet"
    );
    let out = feed(&mut s, &presence, now, &endpoints_answer(&id));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Presence(l) if l.len() == 3))
    );
    assert_eq!(presence.availability("1001"), Availability::Free);
    assert_eq!(presence.availability("1002"), Availability::Free);
    // Live events keep it current: 1002 unregisters (fixture g).
    let g = read(&scenario("g-", ".ami.in"));
    feed(
        &mut s,
        &presence,
        now,
        super::super::replay::strip_banner(&g),
    );
    assert_eq!(presence.availability("1002"), Availability::Unreachable);

    // The link drops: nothing is known while down.
    s.eof(now);
    let out = drain(&mut s, &presence);
    assert!(out.contains(&Output::StateChanged(
        SessionState::Backoff,
        Some("connection closed by Asterisk".into())
    )));
    assert!(presence.snapshot().is_empty());
    assert_eq!(presence.availability("1001"), Availability::Unknown);

    // Reconnected: read again, from scratch.
    now += Duration::from_secs(1);
    s.tick(now);
    drain(&mut s, &presence);
    let again = log_in(&mut s, &presence, now);
    assert_ne!(again, id);
    assert!(
        presence.snapshot().is_empty(),
        "unknown until the list comes"
    );
    feed(&mut s, &presence, now, &endpoints_answer(&again));
    assert_eq!(presence.availability("1002"), Availability::Free);
}

#[test]
fn a_refused_or_unanswered_endpoint_list_keeps_the_connection() {
    let presence = PbxPresence::default();
    let now = Instant::now();
    let mut s = Session::new(config(), 5);
    s.start(now);
    drain(&mut s, &presence);
    let id = log_in(&mut s, &presence, now);
    let out = feed(
        &mut s,
        &presence,
        now,
        format!("Response: Error\r\nActionID: {id}\r\nMessage: Permission denied\r\n\r\n")
            .as_bytes(),
    );
    assert!(out.contains(&Output::PresenceFailed("Permission denied".into())));
    assert_eq!(s.state(), &SessionState::Connected);
    // Events still count.
    for ev in events_of("h-") {
        follow(&presence, &Output::Event(ev));
    }
    assert_eq!(presence.availability("1002"), Availability::Free);
}

/// The stream captured beside a real bridge (fixture i): 1001 and 1003
/// re-register on Asterisk, 1002 leaves it (it registered on the bridge);
/// calls come and go. At the end 1001 and 1003 are free on Asterisk and
/// 1002 is not reachable there.
#[test]
fn the_stream_beside_the_bridge_leaves_1001_and_1003_free_and_1002_away() {
    let mut book = PresenceBook::new();
    let mut in_use = std::collections::BTreeSet::new();
    for ev in events_of("i-") {
        apply_event(&mut book, &ev);
        for n in ["1001", "1003"] {
            if availability(&book, n) == Availability::InUse {
                in_use.insert(n);
            }
        }
    }
    assert_eq!(availability(&book, "1001"), Availability::Free, "{book:?}");
    assert_eq!(availability(&book, "1003"), Availability::Free, "{book:?}");
    assert_eq!(availability(&book, "1002"), Availability::Unreachable);
    assert_eq!(
        in_use.into_iter().collect::<Vec<_>>(),
        ["1001", "1003"],
        "both were in calls during the stream"
    );
}
