//! The session in simulated time: backoff, cap, reset, auth failure,
//! keep-alive, re-sync, and a replay of every recorded timeline.

use std::time::{Duration, Instant};

use super::super::action::Action;
use super::super::correlator::FailureReason;
use super::super::packet::Packet;
use super::super::session::{Backoff, Output, Session, SessionConfig, SessionError, SessionState};
use super::support::*;

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

fn config(jitter: f64) -> SessionConfig {
    let mut c = SessionConfig::new("bridge", "bridge-secret");
    c.backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter,
    };
    c
}

fn sent(outputs: &[Output]) -> Vec<Packet> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(super::super::replay::packets(&[BANNER, &b[..]].concat())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn connect_after(outputs: &[Output]) -> Option<Duration> {
    outputs.iter().find_map(|o| match o {
        Output::Connect { after } => Some(*after),
        _ => None,
    })
}

/// Connect, banner, successful login, empty re-sync list.
fn log_in(s: &mut Session, now: Instant) {
    let csc = log_in_raw(s, now);
    s.bytes_received(
        now,
        format!(
            "Response: Success\r\nActionID: {csc}\r\nEventList: start\r\n\r\n\
Event: CoreShowChannelsComplete\r\nActionID: {csc}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(s.drain_outputs(), [Output::Resync(vec![])]);
}

/// Connect, banner, successful login. Returns the CoreShowChannels id.
fn log_in_raw(s: &mut Session, now: Instant) -> String {
    s.connected(now);
    s.bytes_received(now, BANNER);
    let out = s.drain_outputs();
    let login = sent(&out).pop().expect("login sent");
    assert_eq!(login.get("Action"), Some("Login"));
    assert_eq!(login.get("Username"), Some("bridge"));
    assert_eq!(login.get("Secret"), Some("bridge-secret"));
    assert_eq!(login.get("Events"), Some("on"));
    let id = login.action_id().unwrap().to_owned();
    s.bytes_received(
        now,
        format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n")
            .as_bytes(),
    );
    let out = s.drain_outputs();
    assert!(
        out.contains(&Output::StateChanged(SessionState::Connected, None)),
        "{out:?}"
    );
    let actions = sent(&out);
    assert_eq!(
        actions
            .iter()
            .map(|a| a.get("Action").unwrap_or_default())
            .collect::<Vec<_>>(),
        ["CoreShowChannels", "PJSIPShowEndpoints"],
        "the live channels and the extensions' presence are re-read"
    );
    actions[0].action_id().unwrap().to_owned()
}

#[test]
fn start_connect_login_resync() {
    let t0 = Instant::now();
    let mut s = Session::new(config(0.2), 1);
    assert_eq!(s.state(), &SessionState::Disconnected);
    s.start(t0);
    let out = s.drain_outputs();
    assert_eq!(connect_after(&out), Some(Duration::ZERO));
    assert_eq!(s.state(), &SessionState::Connecting);
    s.connected(t0);
    assert_eq!(s.state(), &SessionState::Banner);
    let csc = log_in_raw(&mut s, t0);
    assert!(s.status().is_ready());
    // The live-channel list arrives, with an unrelated event in between.
    let list = format!(
        "Response: Success\r\nActionID: {csc}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n\
Event: CoreShowChannel\r\nActionID: {csc}\r\nChannel: PJSIP/1001-00000001\r\nUniqueid: 1.1\r\nLinkedid: 1.0\r\n\r\n\
Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n\
Event: CoreShowChannelsComplete\r\nActionID: {csc}\r\nEventList: Complete\r\nListItems: 1\r\n\r\n"
    );
    s.bytes_received(t0, list.as_bytes());
    let out = s.drain_outputs();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Output::Event(p) if p.is_event("FullyBooted")));
    let Output::Resync(chans) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(chans.len(), 1);
    assert_eq!(chans[0].get("Channel"), Some("PJSIP/1001-00000001"));
}

#[test]
fn backoff_doubles_to_the_cap_without_jitter() {
    let mut now = Instant::now();
    let mut s = Session::new(config(0.0), 7);
    s.start(now);
    s.drain_outputs();
    let mut delays = Vec::new();
    for _ in 0..9 {
        s.io_error(now, "connection refused");
        let out = s.drain_outputs();
        assert_eq!(s.state(), &SessionState::Backoff);
        assert_eq!(s.status().last_error.as_deref(), Some("connection refused"));
        let d = connect_after(&out).expect("reconnect scheduled");
        delays.push(d.as_secs());
        // Nothing happens before the delay is over.
        s.tick(now + d - Duration::from_millis(1));
        assert_eq!(s.state(), &SessionState::Backoff);
        assert!(s.drain_outputs().is_empty());
        now += d;
        assert_eq!(s.poll_timeout(), Some(now));
        s.tick(now);
        assert_eq!(s.state(), &SessionState::Connecting);
        s.drain_outputs();
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[test]
fn jitter_stays_under_the_cap_and_depends_on_the_seed() {
    let schedule = |seed| {
        let mut now = Instant::now();
        let mut s = Session::new(config(0.5), seed);
        s.start(now);
        s.drain_outputs();
        let mut v = Vec::new();
        for _ in 0..12 {
            s.io_error(now, "refused");
            let d = connect_after(&s.drain_outputs()).unwrap();
            v.push(d);
            now += d;
            s.tick(now);
        }
        v
    };
    let a = schedule(1);
    assert_eq!(a, schedule(1), "same seed, same schedule");
    assert_ne!(a, schedule(2));
    let b = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter: 0.5,
    };
    for (i, d) in a.iter().enumerate() {
        let base = b.base_delay(i as u32);
        assert!(
            *d <= base && *d >= base / 2,
            "attempt {i}: {d:?} vs {base:?}"
        );
        assert!(*d <= Duration::from_secs(60));
    }
}

#[test]
fn backoff_resets_only_after_a_stable_connection() {
    let mut now = Instant::now();
    let mut s = Session::new(config(0.0), 3);
    s.start(now);
    s.drain_outputs();
    // Three failures: 1, 2, 4.
    for expected in [1, 2, 4] {
        s.io_error(now, "refused");
        let d = connect_after(&s.drain_outputs()).unwrap();
        assert_eq!(d.as_secs(), expected);
        now += d;
        s.tick(now);
    }
    // A short-lived connection does not reset: next is 8.
    log_in(&mut s, now);
    now += Duration::from_secs(5);
    s.eof(now);
    let out = s.drain_outputs();
    assert!(out.contains(&Output::Close));
    assert_eq!(connect_after(&out).unwrap().as_secs(), 8);
    now += Duration::from_secs(8);
    s.tick(now);
    // A stable one (60 s, pings answered) does: next is 1.
    log_in(&mut s, now);
    for _ in 0..4 {
        now += Duration::from_secs(20);
        s.tick(now);
        let out = s.drain_outputs();
        let ping = sent(&out)
            .pop()
            .unwrap_or_else(|| panic!("ping: {out:?} {:?}", s.status()));
        assert_eq!(ping.get("Action"), Some("Ping"));
        let id = ping.action_id().unwrap();
        s.bytes_received(
            now,
            format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n")
                .as_bytes(),
        );
        assert!(s.drain_outputs().is_empty(), "pong absorbed");
    }
    s.io_error(now, "reset by peer");
    assert_eq!(connect_after(&s.drain_outputs()).unwrap().as_secs(), 1);
}

#[test]
fn auth_failure_is_reported_and_retried_on_the_slow_schedule_only() {
    let start = Instant::now();
    let mut now = start;
    let mut s = Session::new(config(0.0), 9);
    s.start(now);
    s.drain_outputs();
    let mut connects = 0;
    while now < start + Duration::from_secs(600) {
        s.connected(now);
        s.bytes_received(now, BANNER);
        let login = sent(&s.drain_outputs()).pop().unwrap();
        let id = login.action_id().unwrap().to_owned();
        connects += 1;
        // Asterisk answers after ~1 s, then closes.
        now += Duration::from_secs(1);
        s.bytes_received(
            now,
            format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n")
                .as_bytes(),
        );
        let out = s.drain_outputs();
        let failed = SessionState::AuthFailed {
            message: "Authentication failed".into(),
        };
        assert_eq!(s.state(), &failed);
        assert!(out.contains(&Output::Close));
        assert!(out.contains(&Output::StateChanged(
            failed.clone(),
            Some("Authentication failed".into())
        )));
        assert_eq!(
            connect_after(&out),
            Some(Duration::from_secs(60)),
            "cap, not 1 s"
        );
        assert!(!s.status().is_ready());
        assert_eq!(
            s.status().last_error.as_deref(),
            Some("Authentication failed")
        );
        // The EOF that follows is stale and changes nothing.
        s.eof(now);
        assert!(s.drain_outputs().is_empty());
        assert_eq!(s.state(), &failed);
        // Ticking meanwhile changes nothing either.
        s.tick(now + Duration::from_secs(30));
        assert!(s.drain_outputs().is_empty());
        now += Duration::from_secs(60);
        s.tick(now);
        assert_eq!(s.state(), &SessionState::Connecting);
        s.drain_outputs();
    }
    assert!(connects <= 10, "{connects} logins in 10 minutes is a storm");
    // A connect failure while the account is suspect also waits the cap.
    s.io_error(now, "refused");
    assert_eq!(
        connect_after(&s.drain_outputs()),
        Some(Duration::from_secs(60))
    );
    now += Duration::from_secs(60);
    s.tick(now);
    // Once the secret is fixed, login succeeds and AuthFailed is over.
    log_in(&mut s, now);
    assert!(s.status().is_ready());
    assert_eq!(s.status().last_error, None);
    s.eof(now);
    s.drain_outputs();
    assert_eq!(s.state(), &SessionState::Backoff);
}

#[test]
fn missing_pong_declares_the_link_dead_and_reconnects() {
    let mut now = Instant::now();
    let mut s = Session::new(config(0.0), 5);
    s.start(now);
    s.drain_outputs();
    log_in(&mut s, now);
    // Pending action of the caller, to see it fail on the dead link.
    let id = s.send_action(now, Action::new("CoreSettings")).unwrap();
    s.drain_outputs();
    now += Duration::from_secs(20);
    s.tick(now);
    let out = s.drain_outputs();
    // The CoreSettings action (15 s timeout) failed meanwhile.
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ActionDone(Err(f)) if f.action_id == id))
    );
    let ping = sent(&out).pop().expect("ping sent");
    assert_eq!(ping.get("Action"), Some("Ping"));
    now += Duration::from_secs(9);
    s.tick(now);
    assert!(
        s.drain_outputs().is_empty(),
        "ping still within its timeout"
    );
    now += Duration::from_secs(1);
    s.tick(now);
    let out = s.drain_outputs();
    assert!(out.contains(&Output::Close), "{out:?}");
    assert_eq!(s.state(), &SessionState::Backoff);
    assert!(s.status().last_error.unwrap().contains("Ping"));
    assert_eq!(connect_after(&out), Some(Duration::from_secs(1)));
}

#[test]
fn actions_complete_time_out_and_fail_on_disconnect() {
    let mut now = Instant::now();
    let mut s = Session::new(config(0.0), 5);
    assert!(matches!(
        s.send_action(now, Action::ping()),
        Err(SessionError::NotConnected(SessionState::Disconnected))
    ));
    s.start(now);
    log_in(&mut s, now);
    // Injection guard at the session boundary.
    assert!(matches!(
        s.send_action(
            now,
            Action::new("Originate").header("CallerID", "x\r\nAction: Logoff")
        ),
        Err(SessionError::Encode(_))
    ));
    assert!(s.drain_outputs().is_empty());
    // Completes.
    let a = s.send_action(now, Action::new("CoreSettings")).unwrap();
    s.drain_outputs();
    s.bytes_received(
        now,
        format!("Response: Success\r\nActionID: {a}\r\nAMIversion: 11.0.0\r\n\r\n").as_bytes(),
    );
    let out = s.drain_outputs();
    let [Output::ActionDone(Ok(c))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(c.action, "CoreSettings");
    assert_eq!(c.response.get("AMIversion"), Some("11.0.0"));
    // Times out.
    let b = s
        .send_action_with_timeout(now, Action::new("Slow"), Duration::from_secs(2))
        .unwrap();
    s.drain_outputs();
    now += Duration::from_secs(2);
    s.tick(now);
    let out = s.drain_outputs();
    let [Output::ActionDone(Err(f))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(f.action_id, b);
    assert_eq!(f.reason, FailureReason::TimedOut(Duration::from_secs(2)));
    // A late answer is passed on as unmatched, not lost and not misrouted.
    s.bytes_received(
        now,
        format!("Response: Success\r\nActionID: {b}\r\n\r\n").as_bytes(),
    );
    assert!(matches!(&s.drain_outputs()[..], [Output::Unmatched(_)]));
    // Fails on disconnect.
    let c = s
        .send_action(
            now,
            Action::new("Command").header("Command", "core show uptime"),
        )
        .unwrap();
    s.drain_outputs();
    s.io_error(now, "broken pipe");
    let out = s.drain_outputs();
    assert!(out.iter().any(|o| matches!(o, Output::ActionDone(Err(f))
        if f.action_id == c && f.reason == FailureReason::Disconnected)));
}

#[test]
fn login_and_connect_timeouts() {
    let mut now = Instant::now();
    let mut s = Session::new(config(0.0), 5);
    s.start(now);
    s.drain_outputs();
    // Connect never completes.
    now += Duration::from_secs(10);
    s.tick(now);
    let out = s.drain_outputs();
    assert!(out.contains(&Output::Close));
    assert_eq!(s.state(), &SessionState::Backoff);
    now += Duration::from_secs(1);
    s.tick(now);
    // Connected but no banner.
    s.connected(now);
    now += Duration::from_secs(10);
    s.tick(now);
    assert_eq!(s.state(), &SessionState::Backoff);
    assert!(s.status().last_error.unwrap().contains("banner"));
    now += Duration::from_secs(2);
    s.tick(now);
    // Not AMI at all.
    s.connected(now);
    s.bytes_received(now, b"SSH-2.0-OpenSSH_9.6\r\n");
    assert_eq!(s.state(), &SessionState::Backoff);
    assert!(s.status().last_error.unwrap().contains("protocol"));
}

#[test]
fn shutdown_logs_off() {
    let now = Instant::now();
    let mut s = Session::new(config(0.0), 5);
    s.start(now);
    log_in(&mut s, now);
    s.shutdown(now);
    let out = s.drain_outputs();
    assert_eq!(sent(&out).pop().unwrap().get("Action"), Some("Logoff"));
    assert!(out.contains(&Output::Close));
    assert_eq!(s.state(), &SessionState::Disconnected);
    s.eof(now);
    s.tick(now + Duration::from_secs(3600));
    assert!(s.drain_outputs().is_empty());
    assert_eq!(s.poll_timeout(), None);
}

/// Replays each recorded timeline through a session: the client's actions
/// (with the fixture's ActionIDs) go out byte for byte as recorded, and
/// Asterisk's bytes come in with the recorded chunking. The fixture's
/// Login ActionID is swapped for the session's own.
#[test]
fn recorded_timelines_replay_through_the_session() {
    for path in files_ending(".timeline.jsonl") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rows = timeline(&path);
        let t0 = Instant::now();
        let mut s = Session::new(config(0.0), 11);
        s.start(t0);
        s.connected(t0);
        s.drain_outputs();
        let mut fixture_login_id = None;
        let mut our_login_id = String::new();
        let mut events = 0usize;
        let mut done = Vec::new();
        let mut states = Vec::new();
        for row in &rows {
            let now = t0 + Duration::from_secs_f64(row.t);
            if row.incoming {
                if row.data.is_empty() {
                    s.eof(now);
                } else {
                    let mut data = String::from_utf8(row.data.clone()).unwrap();
                    if let Some(f) = &fixture_login_id {
                        data = data.replace(
                            &format!("ActionID: {f}\r\n"),
                            &format!("ActionID: {our_login_id}\r\n"),
                        );
                    }
                    s.bytes_received(now, data.as_bytes());
                }
            } else {
                let p = super::super::replay::packets(&[BANNER, &row.data[..]].concat())
                    .pop()
                    .unwrap();
                if p.get("Action") == Some("Login") {
                    // The session sent its own Login on the banner already.
                    assert!(!our_login_id.is_empty(), "{name}: Login sent on banner");
                    fixture_login_id = p.action_id().map(str::to_owned);
                    continue;
                }
                let mut action = Action::new(p.get("Action").unwrap());
                for h in &p.headers[1..] {
                    action = action.header(h.name.clone(), h.value.clone());
                }
                s.send_action(now, action).unwrap();
            }
            for o in s.drain_outputs() {
                match o {
                    Output::Send(bytes) if !row.incoming => {
                        assert_eq!(&bytes[..], &row.data[..], "{name}")
                    }
                    Output::Send(bytes) => {
                        let p = super::super::replay::packets(&[BANNER, &bytes[..]].concat());
                        match p[0].get("Action") {
                            Some("Login") => our_login_id = p[0].action_id().unwrap().to_owned(),
                            other => assert!(
                                matches!(other, Some("CoreShowChannels" | "PJSIPShowEndpoints")),
                                "{name}: {other:?}"
                            ),
                        }
                    }
                    Output::Event(_) => events += 1,
                    Output::ActionDone(r) => done.push(r.expect("actions of the fixtures succeed")),
                    Output::StateChanged(st, _) => states.push(st),
                    Output::Connect { .. } | Output::Close => {}
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
        }
        let in_packets = packets_of(&read(
            path.to_string_lossy()
                .replace(".timeline.jsonl", ".ami.in")
                .as_ref(),
        ));
        let list_items: usize = done
            .iter()
            .map(|c| c.events.len() + usize::from(c.list_complete.is_some()))
            .sum();
        let all_events = in_packets
            .iter()
            .filter(|p| p.event_name().is_some())
            .count();
        let late_originate = in_packets
            .iter()
            .filter(|p| p.is_event("OriginateResponse"))
            .count();
        assert_eq!(
            events + list_items,
            all_events,
            "{name}: every event accounted for"
        );
        assert!(late_originate == 0 || events > 0);
        if name.starts_with("f-login-failed-wrong-secret.timeline") {
            assert_eq!(
                s.state(),
                &SessionState::AuthFailed {
                    message: "Authentication failed".into()
                }
            );
            assert!(done.is_empty());
        } else {
            assert!(
                states.contains(&SessionState::Connected),
                "{name}: {states:?}"
            );
            assert_eq!(
                s.state(),
                &SessionState::Backoff,
                "{name}: EOF after Logoff"
            );
            let last = done.last().expect("Logoff answered");
            assert_eq!(last.action, "Logoff");
            assert_eq!(last.response.message(), Some("Thanks for all the fish."));
        }
        if name.starts_with("a-") {
            let eps = done
                .iter()
                .find(|c| c.action == "PJSIPShowEndpoints")
                .unwrap();
            assert_eq!(eps.events.len(), 3);
            assert_eq!(
                eps.list_complete.as_ref().unwrap().get("ListItems"),
                Some("3")
            );
        }
        if name.starts_with("h-") {
            let cs = done
                .iter()
                .find(|c| c.action == "PJSIPShowContacts")
                .unwrap();
            assert_eq!(cs.events.len(), 2);
            assert!(
                cs.list_complete
                    .as_ref()
                    .unwrap()
                    .is_event("ContactListComplete")
            );
        }
    }
}
