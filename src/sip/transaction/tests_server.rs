//! Server transactions in simulated time (RFC 3261 §17.2, RFC 6026 §7.1).

use bytes::Bytes;

use super::message::parse;
use super::test_support::*;
use super::{
    LayerConfig, Timer, TimerConfig, TransactionError, TransactionState, Transport, TuEvent,
};

fn requests_to_tu(h: &Harness) -> usize {
    h.tu_events()
        .iter()
        .filter(|e| matches!(e, TuEvent::Request { .. }))
        .count()
}

fn acks_to_tu(h: &Harness) -> Vec<bool> {
    h.tu_events()
        .iter()
        .filter_map(|e| match e {
            TuEvent::Ack { key, .. } => Some(key.is_some()),
            _ => None,
        })
        .collect()
}

#[test]
fn trying_sent_after_200ms_when_tu_silent() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs1");
    h.recv_request(inv, Transport::Udp);
    assert_eq!(requests_to_tu(&h), 1);
    h.advance(ms(199));
    assert!(h.transmits().is_empty());
    h.advance(ms(1));
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ms(200));
    let trying = parse(sent[0].1.clone()).unwrap();
    assert_eq!(trying.status(), Some(100));
    assert_eq!(trying.to().unwrap().tag(), None);
    h.advance(ms(10_000));
    assert_eq!(h.transmits().len(), 1, "100 Trying is never retransmitted");
}

#[test]
fn no_automatic_trying_when_tu_answers_within_200ms() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs2");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.advance(ms(150));
    h.respond(&key, &response(&inv, 180));
    h.advance(ms(1_000));
    assert_eq!(h.transmits().len(), 1);
    assert!(h.transmits()[0].1.starts_with(b"SIP/2.0 180"));
}

#[test]
fn server_absorbs_retransmitted_invite_and_resends_last_provisional() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs3");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.advance(ms(300)); // 100 Trying went out
    h.recv_request(inv.clone(), Transport::Udp);
    h.respond(&key, &response(&inv, 183));
    h.recv_request(inv.clone(), Transport::Udp);
    h.recv_request(inv, Transport::Udp);
    assert_eq!(requests_to_tu(&h), 1);
    let lines: Vec<String> = h
        .transmits()
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(&b[..11]).into_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "SIP/2.0 100",
            "SIP/2.0 100",
            "SIP/2.0 183",
            "SIP/2.0 183",
            "SIP/2.0 183"
        ]
    );
}

#[test]
fn server_non_2xx_final_retransmits_on_timer_g_capped_at_t2_until_h() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs4");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.respond(&key, &response(&inv, 486));
    h.advance(ms(40_000));
    assert_eq!(
        h.transmits_of("SIP/2.0 486"),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
}

#[test]
fn timer_h_fires_without_ack() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs5");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.respond(&key, &response(&inv, 603));
    h.advance(ms(31_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
    let events = h.tu_events();
    assert!(matches!(
        events.as_slice(),
        [
            TuEvent::Request { .. },
            TuEvent::Timeout {
                timer: Timer::H,
                ..
            },
            TuEvent::Terminated { .. }
        ]
    ));
}

#[test]
fn ack_for_non_2xx_matches_server_transaction() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs6");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.respond(&key, &response(&inv, 486));
    h.advance(ms(700)); // one G retransmission
    let ack = ack_for(&inv, "b1");
    h.recv_request(ack.clone(), Transport::Udp);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Confirmed));
    // The ACK stopped G, is absorbed, and so are its retransmissions.
    h.recv_request(ack.clone(), Transport::Udp);
    h.recv_request(inv, Transport::Udp);
    assert!(acks_to_tu(&h).is_empty());
    assert_eq!(h.transmits_of("SIP/2.0 486"), secs(&[0.0, 0.5]));
    // Timer I = T4.
    h.advance(ms(4_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Confirmed));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
    // A late ACK is no longer anybody's but the TU's.
    h.recv_request(ack, Transport::Udp);
    assert_eq!(acks_to_tu(&h), vec![false]);
}

#[test]
fn ack_for_2xx_goes_straight_to_the_tu() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs7");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    let ok = response(&inv, 200);
    h.respond(&key, &ok);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Accepted));
    // A 2xx ACK normally has a new branch: no transaction matches it.
    let mut ack = ack_for(&inv, "b1");
    ack.set_header(
        "Via",
        "SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKnewack",
    )
    .unwrap();
    h.recv_request(ack, Transport::Udp);
    // One reusing the INVITE's branch hits the Accepted transaction, which
    // passes it up too (RFC 6026 §7.1).
    h.recv_request(ack_for(&inv, "b1"), Transport::Udp);
    assert_eq!(acks_to_tu(&h), vec![false, true]);
}

#[test]
fn server_2xx_accepted_absorbs_invite_retransmissions_until_timer_l() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs8");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    let ok = response(&inv, 200);
    h.respond(&key, &ok);
    h.advance(ms(500));
    h.recv_request(inv.clone(), Transport::Udp);
    // The TU (UAS core, §13.3.1.4) retransmits its 2xx through us.
    h.respond(&key, &ok);
    assert_eq!(h.transmits_of("SIP/2.0 200").len(), 2);
    assert_eq!(requests_to_tu(&h), 1);
    assert!(matches!(
        h.layer.send_response(&key, &response(&inv, 486), h.now),
        Err(TransactionError::InvalidState { .. })
    ));
    h.advance(ms(31_499));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Accepted));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
}

#[test]
fn cancel_matches_invite_server_transaction() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKs9");
    h.recv_request(inv.clone(), Transport::Udp);
    let ik = h.last_request_key();
    let cancel = request("CANCEL", "z9hG4bKs9", "client.example.com:5060");
    h.recv_request(cancel.clone(), Transport::Udp);
    let ck = h.last_request_key();
    assert_ne!(ck, ik);
    let cancels = h.tu_events().into_iter().find_map(|e| match e {
        TuEvent::Request { key, cancels, .. } if key == ck => Some(cancels),
        _ => None,
    });
    assert_eq!(cancels, Some(Some(ik.clone())));
    // The TU: 200 to the CANCEL, 487 to the INVITE.
    h.respond(&ck, &response(&cancel, 200));
    h.respond(&ik, &response(&inv, 487));
    assert_eq!(h.layer.state(&ik), Some(TransactionState::Completed));
    // A CANCEL for an unknown INVITE still reaches the TU (it answers 481).
    h.recv_request(
        request("CANCEL", "z9hG4bKnone", "client.example.com:5060"),
        Transport::Udp,
    );
    assert!(matches!(
        h.tu_events()
            .iter()
            .rev()
            .find(|e| matches!(e, TuEvent::Request { .. })),
        Some(TuEvent::Request { cancels: None, .. })
    ));
}

#[test]
fn non_invite_server_resends_final_to_retransmissions_until_timer_j() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKr1", "phone.example.com");
    h.recv_request(reg.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.recv_request(reg.clone(), Transport::Udp); // absorbed silently in Trying
    assert!(h.transmits().is_empty());
    h.respond(&key, &response(&reg, 401));
    h.recv_request(reg.clone(), Transport::Udp);
    assert_eq!(h.transmits_of("SIP/2.0 401").len(), 2);
    assert_eq!(requests_to_tu(&h), 1);
    assert!(matches!(
        h.layer.send_response(&key, &response(&reg, 200), h.now),
        Err(TransactionError::InvalidState {
            state: TransactionState::Completed,
            status: 200
        })
    ));
    h.advance(ms(31_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
    // Nothing retransmits a non-INVITE final by itself.
    assert_eq!(h.transmits_of("SIP/2.0 401").len(), 2);
}

#[test]
fn non_invite_server_provisional_then_final() {
    let mut h = Harness::new();
    let req = request("MESSAGE", "z9hG4bKr2", "phone.example.com");
    h.recv_request(req.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.respond(&key, &response(&req, 100));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Proceeding));
    h.recv_request(req.clone(), Transport::Udp);
    assert_eq!(h.transmits_of("SIP/2.0 100").len(), 2);
    h.respond(&key, &response(&req, 202));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
}

#[test]
fn non_invite_server_gives_up_on_a_silent_tu_after_64_t1() {
    let mut h = Harness::new();
    h.recv_request(
        request("OPTIONS", "z9hG4bKr3", "p.example.com"),
        Transport::Udp,
    );
    let key = h.last_request_key();
    h.advance(ms(32_000));
    assert_eq!(h.layer.state(&key), None);
    assert!(h.tu_events().iter().any(|e| matches!(
        e,
        TuEvent::Timeout {
            timer: Timer::TuGuard,
            ..
        }
    )));
    assert!(h.transmits().is_empty());
}

#[test]
fn invite_server_guard_answers_408_for_a_silent_tu() {
    let mut h = Harness::with(LayerConfig {
        timers: TimerConfig {
            invite_proceeding_guard: Some(ms(60_000)),
            ..TimerConfig::default()
        },
        ..LayerConfig::default()
    });
    let inv = invite("z9hG4bKg1");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    h.advance(ms(60_000));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    let r408 = h.transmits_of("SIP/2.0 408");
    assert_eq!(r408, vec![ms(60_000)]);
    let (_, bytes) = h.transmits().into_iter().last().unwrap();
    assert!(parse(bytes).unwrap().to().unwrap().tag().is_some());
    // The caller ACKs our 408 like any non-2xx.
    h.recv_request(ack_for(&inv, "whatever"), Transport::Udp);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Confirmed));
}

#[test]
fn tcp_server_has_no_retransmissions_and_zero_i_j() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKtcp1");
    h.recv_request(inv.clone(), Transport::Tcp);
    let ik = h.last_request_key();
    h.respond(&ik, &response(&inv, 480));
    h.advance(ms(20_000));
    assert_eq!(h.transmits_of("SIP/2.0 480").len(), 1);
    h.recv_request(ack_for(&inv, "b1"), Transport::Tcp);
    assert_eq!(h.layer.state(&ik), None, "Timer I is zero on TCP");
    let reg = request("REGISTER", "z9hG4bKtcp2", "p.example.com");
    h.recv_request(reg.clone(), Transport::Tcp);
    let rk = h.last_request_key();
    h.respond(&rk, &response(&reg, 200));
    assert_eq!(h.layer.state(&rk), None, "Timer J is zero on TCP");
}

#[test]
fn different_sent_by_or_method_is_a_different_transaction() {
    let mut h = Harness::new();
    h.recv_request(
        request("OPTIONS", "z9hG4bKd1", "a.example.com"),
        Transport::Udp,
    );
    h.recv_request(
        request("OPTIONS", "z9hG4bKd1", "b.example.com"),
        Transport::Udp,
    );
    h.recv_request(
        request("OPTIONS", "z9hG4bKd1", "A.EXAMPLE.COM"),
        Transport::Udp,
    );
    h.recv_request(
        request("INFO", "z9hG4bKd1", "a.example.com"),
        Transport::Udp,
    );
    assert_eq!(requests_to_tu(&h), 3);
    assert_eq!(h.layer.len(), 3);
}

#[test]
fn rfc2543_requests_without_cookie_match_retransmissions_and_ack() {
    let mut h = Harness::new();
    let inv = invite("oldstyle1");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    assert_eq!(key.branch(), None);
    h.recv_request(inv.clone(), Transport::Udp);
    assert_eq!(requests_to_tu(&h), 1);
    h.respond(&key, &response(&inv, 404));
    h.recv_request(ack_for(&inv, "b1"), Transport::Udp);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Confirmed));
    // No Via branch at all still works.
    let text = String::from_utf8_lossy(&invite("x").to_bytes()).replace(";branch=x", "");
    h.recv_request(parse(Bytes::from(text)).unwrap(), Transport::Udp);
    assert_eq!(requests_to_tu(&h), 2);
}

#[test]
fn broken_requests_are_dropped_without_panic() {
    let mut h = Harness::new();
    let text = String::from_utf8_lossy(&invite("z9hG4bKb1").to_bytes()).replace(
        "Via: SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKb1;rport\r\n",
        "",
    );
    h.recv_request(parse(Bytes::from(text)).unwrap(), Transport::Udp);
    let text = String::from_utf8_lossy(&invite("nocookie").to_bytes()).replace("Call-ID", "X-Call");
    h.recv_request(parse(Bytes::from(text)).unwrap(), Transport::Udp);
    // A response fed in as a request is ignored too.
    h.recv_request(response(&invite("z9hG4bKb2"), 200), Transport::Udp);
    assert!(h.log.is_empty());
    assert!(h.layer.is_empty());
}

#[test]
fn full_table_answers_503_statelessly() {
    let mut h = Harness::with(LayerConfig {
        max_transactions: 2,
        ..LayerConfig::default()
    });
    for i in 0..3 {
        h.recv_request(invite(&format!("z9hG4bKcap{i}")), Transport::Udp);
    }
    assert_eq!(h.layer.len(), 2);
    assert_eq!(requests_to_tu(&h), 2);
    let r503 = h.transmits_of("SIP/2.0 503");
    assert_eq!(r503.len(), 1);
    // ACKs still reach the TU when the table is full.
    h.recv_request(ack_for(&invite("z9hG4bKcap9"), "t"), Transport::Udp);
    assert_eq!(acks_to_tu(&h), vec![false]);
}

#[test]
fn send_response_checks_its_arguments() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa9");
    h.recv_request(inv.clone(), Transport::Udp);
    let key = h.last_request_key();
    let now = h.now;
    assert_eq!(
        h.layer.send_response(&key, &inv, now),
        Err(TransactionError::NotAResponse)
    );
    let ck = h.send(invite("z9hG4bKa10"), Transport::Udp);
    assert!(matches!(
        h.layer.send_response(&ck, &response(&inv, 200), now),
        Err(TransactionError::NotAServerTransaction { .. })
    ));
    h.respond(&key, &response(&inv, 500));
    h.advance(ms(40_000));
    assert!(matches!(
        h.layer.send_response(&key, &response(&inv, 500), h.now),
        Err(TransactionError::UnknownTransaction(_))
    ));
}
