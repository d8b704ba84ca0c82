//! Client transactions in simulated time (RFC 3261 §17.1, RFC 6026 §7.2).

use super::message::{Method, parse};
use super::test_support::*;
use super::{
    LayerConfig, Role, Timer, TransactionError, TransactionKey, TransactionState, Transport,
    TuEvent,
};

fn responses(h: &Harness) -> Vec<u16> {
    h.tu_events()
        .iter()
        .filter_map(|e| match e {
            TuEvent::Response { response, .. } => response.status(),
            _ => None,
        })
        .collect()
}

fn timeouts(h: &Harness) -> Vec<Timer> {
    h.tu_events()
        .iter()
        .filter_map(|e| match e {
            TuEvent::Timeout { timer, .. } => Some(*timer),
            _ => None,
        })
        .collect()
}

#[test]
fn invite_client_retransmits_on_timer_a_doubling_until_b() {
    let mut h = Harness::new();
    let key = h.send(invite("z9hG4bKa1"), Transport::Udp);
    assert_eq!(key.role(), Role::Client);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Calling));
    h.advance(ms(40_000));
    assert_eq!(
        h.transmits_of("INVITE"),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    );
    assert_eq!(timeouts(&h), vec![Timer::B]);
    assert_eq!(h.layer.state(&key), None);
    assert!(matches!(
        h.tu_events().last(),
        Some(TuEvent::Terminated { .. })
    ));
    assert!(h.layer.is_empty());
}

#[test]
fn invite_client_timer_b_fires_exactly_at_64_t1() {
    let mut h = Harness::new();
    let key = h.send(invite("z9hG4bKa2"), Transport::Udp);
    h.advance(ms(31_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Calling));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
}

#[test]
fn invite_client_provisional_stops_retransmissions_and_timer_b() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa3");
    let key = h.send(inv.clone(), Transport::Udp);
    h.advance(ms(600));
    h.recv_response(response(&inv, 180));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Proceeding));
    h.advance(ms(120_000));
    assert_eq!(h.transmits_of("INVITE"), secs(&[0.0, 0.5]));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Proceeding));
    assert_eq!(responses(&h), vec![180]);
    assert!(timeouts(&h).is_empty());
}

#[test]
fn non_2xx_final_gets_ack_and_timer_d() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa4");
    let key = h.send(inv.clone(), Transport::Udp);
    h.recv_response(response(&inv, 180));
    h.advance(ms(1000));
    let busy = response(&inv, 486);
    h.recv_response(busy.clone());
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    let acks: Vec<_> = h
        .transmits()
        .into_iter()
        .filter(|(_, b)| b.starts_with(b"ACK "))
        .collect();
    assert_eq!(acks.len(), 1);
    let ack = parse(acks[0].1.clone()).expect("our ACK parses");
    // §17.1.1.3: same Request-URI, Call-ID, From, CSeq number, top Via and
    // Route; To from the response; CSeq method ACK.
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_raw(), inv.request_uri_raw());
    assert_eq!(ack.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(ack.from().unwrap(), inv.from().unwrap());
    assert_eq!(ack.to().unwrap(), busy.to().unwrap());
    assert_eq!(ack.cseq().unwrap().seq, 7);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.vias().unwrap(), vec![inv.top_via().unwrap()]);
    assert_eq!(ack.route().unwrap(), inv.route().unwrap());
    assert_eq!(ack.content_length().unwrap(), Some(0));
    // The server must match it to its INVITE transaction.
    assert_eq!(
        TransactionKey::server(&ack).unwrap(),
        TransactionKey::server(&inv).unwrap()
    );

    // A retransmitted 486: ACK again, TU not bothered.
    h.advance(ms(2000));
    h.recv_response(busy);
    assert_eq!(h.transmits_of("ACK").len(), 2);
    assert_eq!(responses(&h), vec![180, 486]);

    // Timer D: 32 s after the final.
    h.advance(ms(29_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
}

#[test]
fn invite_2xx_enters_accepted_and_passes_retransmissions_until_timer_m() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa5");
    let key = h.send(inv.clone(), Transport::Udp);
    let ok = response(&inv, 200);
    h.recv_response(ok.clone());
    assert_eq!(h.layer.state(&key), Some(TransactionState::Accepted));
    // The 2xx ACK is the TU's (end-to-end), never the transaction's.
    assert!(h.transmits_of("ACK").is_empty());
    h.advance(ms(500));
    h.recv_response(ok.clone());
    h.recv_response(response(&inv, 486)); // discarded in Accepted
    assert_eq!(responses(&h), vec![200, 200]);
    h.advance(ms(32_000));
    assert_eq!(h.layer.state(&key), None);
    // After Timer M a 2xx is a stray for the TU; other strays are dropped.
    h.clear_log();
    h.recv_response(ok);
    h.recv_response(response(&inv, 486));
    assert!(matches!(
        h.tu_events().as_slice(),
        [TuEvent::StrayResponse { .. }]
    ));
    assert!(h.transmits_of("INVITE").is_empty());
}

#[test]
fn non_invite_client_caps_retransmit_at_t2() {
    let mut h = Harness::new();
    let key = h.send(
        request("OPTIONS", "z9hG4bKn1", "client.example.com"),
        Transport::Udp,
    );
    h.advance(ms(40_000));
    assert_eq!(
        h.transmits_of("OPTIONS"),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    let times = h.transmits_of("OPTIONS");
    assert!(times.windows(2).all(|w| w[1] - w[0] <= T2));
    assert_eq!(timeouts(&h), vec![Timer::F]);
    assert_eq!(h.layer.state(&key), None);
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2() {
    let mut h = Harness::new();
    let req = request("REGISTER", "z9hG4bKn2", "client.example.com");
    let key = h.send(req.clone(), Transport::Udp);
    h.advance(ms(100));
    h.recv_response(response(&req, 100));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Proceeding));
    h.advance(ms(20_000));
    // E fired at 0.5 (→ T2), then every T2 from there.
    assert_eq!(
        h.transmits_of("REGISTER"),
        secs(&[0.0, 0.5, 4.5, 8.5, 12.5, 16.5])
    );
}

#[test]
fn non_invite_client_absorbs_final_retransmissions_for_timer_k() {
    let mut h = Harness::new();
    let req = request("BYE", "z9hG4bKn3", "client.example.com");
    let key = h.send(req.clone(), Transport::Udp);
    let ok = response(&req, 200);
    h.recv_response(ok.clone());
    h.recv_response(ok.clone());
    assert_eq!(responses(&h), vec![200]);
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    h.advance(ms(4_999));
    assert_eq!(h.layer.state(&key), Some(TransactionState::Completed));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&key), None);
    assert_eq!(h.transmits_of("BYE").len(), 1);
}

#[test]
fn tcp_has_no_retransmissions() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKt1");
    let ik = h.send(inv.clone(), Transport::Tcp);
    let opt = request("OPTIONS", "z9hG4bKt2", "client.example.com");
    let ok = h.send(opt.clone(), Transport::Tcp);
    h.advance(ms(31_000));
    assert_eq!(h.transmits().len(), 2);
    // Timer D and K are zero on reliable transports.
    h.recv_response(response(&inv, 404));
    assert_eq!(h.transmits_of("ACK").len(), 1);
    assert_eq!(h.layer.state(&ik), None);
    h.recv_response(response(&opt, 200));
    assert_eq!(h.layer.state(&ok), None);
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.next_deadline(), None);
}

#[test]
fn tcp_invite_still_times_out_on_timer_b() {
    let mut h = Harness::new();
    h.send(invite("z9hG4bKt3"), Transport::Tls);
    h.advance(ms(32_000));
    assert_eq!(timeouts(&h), vec![Timer::B]);
    assert_eq!(h.transmits().len(), 1);
}

#[test]
fn cancel_2xx_race() {
    // The TU CANCELs while the callee answers: the 200 to the INVITE and
    // the 200 to the CANCEL cross.  Each goes to its own transaction; the
    // INVITE one is Accepted (the TU must ACK and then BYE); no 487 comes.
    let mut h = Harness::new();
    let inv = invite("z9hG4bKc1");
    let ik = h.send(inv.clone(), Transport::Udp);
    h.recv_response(response(&inv, 180));
    let cancel = request("CANCEL", "z9hG4bKc1", "client.example.com:5060");
    let ck = h.send(cancel.clone(), Transport::Udp);
    assert_ne!(ik, ck);
    assert_eq!(ik.branch(), ck.branch());
    let ok = response(&inv, 200);
    h.recv_response(ok.clone());
    h.recv_response(response(&cancel, 200));
    assert_eq!(h.layer.state(&ik), Some(TransactionState::Accepted));
    assert_eq!(h.layer.state(&ck), Some(TransactionState::Completed));
    let by_key: Vec<(TransactionKey, u16)> = h
        .tu_events()
        .into_iter()
        .filter_map(|e| match e {
            TuEvent::Response { key, response } => Some((key, response.status()?)),
            _ => None,
        })
        .collect();
    assert_eq!(
        by_key,
        vec![(ik.clone(), 180), (ik.clone(), 200), (ck.clone(), 200)]
    );
    // The 2xx is retransmitted (our ACK was lost): the TU sees it again.
    h.advance(ms(500));
    h.recv_response(ok);
    assert_eq!(responses(&h), vec![180, 200, 200, 200]);
    assert!(h.transmits_of("ACK").is_empty());
    h.advance(ms(40_000));
    assert!(h.layer.is_empty());
}

#[test]
fn cancel_then_487_is_acked_by_the_invite_transaction() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKc2");
    let ik = h.send(inv.clone(), Transport::Udp);
    h.recv_response(response(&inv, 180));
    let cancel = request("CANCEL", "z9hG4bKc2", "client.example.com:5060");
    h.send(cancel.clone(), Transport::Udp);
    h.recv_response(response(&cancel, 200));
    h.recv_response(response(&inv, 487));
    assert_eq!(h.transmits_of("ACK").len(), 1);
    assert_eq!(h.layer.state(&ik), Some(TransactionState::Completed));
}

#[test]
fn client_transport_error_reports_to_tu_and_terminates() {
    let mut h = Harness::new();
    let k = h.send(invite("z9hG4bKe1"), Transport::Tcp);
    h.layer.on_transport_error(&k, h.now);
    h.log
        .extend(h.layer.take_outputs().into_iter().map(|o| (ms(0), o)));
    assert!(matches!(
        h.tu_events().as_slice(),
        [TuEvent::TransportError { .. }, TuEvent::Terminated { .. }]
    ));
    assert!(h.layer.is_empty());
}

#[test]
fn send_request_refuses_ack_legacy_branch_duplicates_and_overflow() {
    let mut h = Harness::with(LayerConfig {
        max_transactions: 1,
        ..LayerConfig::default()
    });
    let now = h.now;
    let ack = ack_for(&invite("z9hG4bKx"), "t");
    assert_eq!(
        h.layer.send_request(ack, peer(), Transport::Udp, now),
        Err(TransactionError::AckHasNoTransaction)
    );
    assert_eq!(
        h.layer
            .send_request(invite("old-branch"), peer(), Transport::Udp, now),
        Err(TransactionError::NoRfc3261Branch)
    );
    let inv = invite("z9hG4bKx");
    let resp = response(&inv, 200);
    assert_eq!(
        h.layer.send_request(resp, peer(), Transport::Udp, now),
        Err(TransactionError::NotARequest)
    );
    h.layer
        .send_request(inv.clone(), peer(), Transport::Udp, now)
        .unwrap();
    assert!(matches!(
        h.layer.send_request(inv, peer(), Transport::Udp, now),
        Err(TransactionError::Duplicate(_))
    ));
    assert_eq!(
        h.layer.send_request(
            request("OPTIONS", "z9hG4bKy", "c.example.com"),
            peer(),
            Transport::Udp,
            now
        ),
        Err(TransactionError::CapacityExceeded(1))
    );
}

#[test]
fn response_with_unknown_branch_or_method_is_dropped() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKu1");
    let k = h.send(inv.clone(), Transport::Udp);
    // Same branch, CSeq method CANCEL: not the INVITE's response.
    let cancel = request("CANCEL", "z9hG4bKu1", "client.example.com:5060");
    h.recv_response(response(&cancel, 200));
    h.recv_response(response(&invite("z9hG4bKother"), 404));
    assert!(h.tu_events().is_empty());
    assert_eq!(h.layer.state(&k), Some(TransactionState::Calling));
}

#[test]
fn cancelled_invite_without_final_is_given_up_after_64_t1() {
    // §9.1: the CANCEL got its 200 but the 487 never comes.
    let mut h = Harness::new();
    let inv = invite("z9hG4bKc3");
    let ik = h.send(inv.clone(), Transport::Udp);
    h.recv_response(response(&inv, 180));
    h.advance(ms(10_000));
    let cancel = request("CANCEL", "z9hG4bKc3", "client.example.com:5060");
    h.send(cancel.clone(), Transport::Udp);
    h.recv_response(response(&cancel, 200));
    h.advance(ms(31_999));
    assert_eq!(h.layer.state(&ik), Some(TransactionState::Proceeding));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&ik), None);
    assert_eq!(timeouts(&h), vec![Timer::Cancelled]);
}

#[test]
fn invite_client_proceeding_guard_bounds_a_vanished_callee() {
    let mut h = Harness::with(LayerConfig {
        timers: super::TimerConfig {
            invite_proceeding_guard: Some(ms(120_000)),
            ..super::TimerConfig::default()
        },
        ..LayerConfig::default()
    });
    let inv = invite("z9hG4bKg2");
    let ik = h.send(inv.clone(), Transport::Udp);
    h.advance(ms(1_000));
    h.recv_response(response(&inv, 180));
    h.recv_response(response(&inv, 183)); // later provisionals do not re-arm it
    h.advance(ms(119_999));
    assert_eq!(h.layer.state(&ik), Some(TransactionState::Proceeding));
    h.advance(ms(1));
    assert_eq!(h.layer.state(&ik), None);
    assert_eq!(timeouts(&h), vec![Timer::TuGuard]);
}
