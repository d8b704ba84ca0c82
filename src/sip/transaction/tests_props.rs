//! Property tests: random interleavings of network input, TU calls,
//! transport errors and time, checking the layer's invariants.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::message::{SipMessage, parse};
use super::test_support::*;
use super::{LayerConfig, Output, TimerConfig, TransactionKey, Transport, TuEvent};

const MAX: usize = 8;
const GUARD: Duration = Duration::from_secs(40);
const STATUSES: [u16; 11] = [100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603];
const METHODS: [&str; 4] = ["INVITE", "ACK", "CANCEL", "OPTIONS"];

#[derive(Debug, Clone)]
enum Op {
    /// TU starts a client transaction.
    Send {
        invite: bool,
        tcp: bool,
    },
    /// A response for the n-th client request sent.
    Response {
        nth: usize,
        status: usize,
    },
    /// A request from the network.
    Request {
        branch: u8,
        method: usize,
        legacy: bool,
        tcp: bool,
    },
    /// The TU answers the server transaction of such a request.
    Answer {
        branch: u8,
        method: usize,
        legacy: bool,
        status: usize,
    },
    /// The transport failed for the n-th client request, or a server one.
    TransportError {
        nth: usize,
        server: Option<(u8, usize, bool)>,
    },
    Advance(u64),
    Garbage(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), any::<bool>()).prop_map(|(invite, tcp)| Op::Send { invite, tcp }),
        3 => (0usize..12, 0usize..STATUSES.len()).prop_map(|(nth, status)| Op::Response { nth, status }),
        3 => (0u8..4, 0usize..4, any::<bool>(), any::<bool>())
            .prop_map(|(branch, method, legacy, tcp)| Op::Request { branch, method, legacy, tcp }),
        3 => (0u8..4, 0usize..4, any::<bool>(), 0usize..STATUSES.len())
            .prop_map(|(branch, method, legacy, status)| Op::Answer { branch, method, legacy, status }),
        1 => (0usize..12, proptest::option::of((0u8..4, 0usize..4, any::<bool>())))
            .prop_map(|(nth, server)| Op::TransportError { nth, server }),
        4 => (0u64..6_000).prop_map(Op::Advance),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Garbage),
    ]
}

fn server_request(branch: u8, method: usize, legacy: bool) -> SipMessage {
    let b = if legacy {
        format!("old{branch}")
    } else {
        format!("z9hG4bKs{branch}")
    };
    let m = METHODS.get(method).copied().unwrap_or("OPTIONS");
    if m == "ACK" {
        ack_for(&invite(&b), "b1")
    } else {
        request(m, &b, "client.example.com:5060")
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::with(LayerConfig {
        timers: TimerConfig {
            invite_proceeding_guard: Some(GUARD),
            ..TimerConfig::default()
        },
        max_transactions: MAX,
    });
    let mut sent: Vec<SipMessage> = Vec::new();
    let mut created = 0usize;
    for op in ops {
        match op {
            Op::Send { invite: inv, tcp } => {
                let branch = format!("z9hG4bKc{}", sent.len());
                let req = if inv {
                    invite(&branch)
                } else {
                    request("OPTIONS", &branch, "us.example.com")
                };
                let t = if tcp { Transport::Tcp } else { Transport::Udp };
                let now = h.now;
                if h.layer.send_request(req.clone(), peer(), t, now).is_ok() {
                    created += 1;
                }
                h.log.extend(
                    h.layer
                        .take_outputs()
                        .into_iter()
                        .map(|o| (h.now - epoch(), o)),
                );
                sent.push(req);
            }
            Op::Response { nth, status } => {
                if let Some(req) = sent.get(nth) {
                    h.recv_response(response(req, STATUSES[status]));
                }
            }
            Op::Request {
                branch,
                method,
                legacy,
                tcp,
            } => {
                let t = if tcp { Transport::Tcp } else { Transport::Udp };
                h.recv_request(server_request(branch, method, legacy), t);
            }
            Op::Answer {
                branch,
                method,
                legacy,
                status,
            } => {
                let req = server_request(branch, method, legacy);
                if let Ok(key) = TransactionKey::server(&req) {
                    let now = h.now;
                    let _ = h
                        .layer
                        .send_response(&key, &response(&req, STATUSES[status]), now);
                    h.log.extend(
                        h.layer
                            .take_outputs()
                            .into_iter()
                            .map(|o| (h.now - epoch(), o)),
                    );
                }
            }
            Op::TransportError { nth, server } => {
                let key = match server {
                    Some((b, m, l)) => TransactionKey::server(&server_request(b, m, l)).ok(),
                    None => sent.get(nth).and_then(|r| TransactionKey::client(r).ok()),
                };
                if let Some(key) = key {
                    let now = h.now;
                    h.layer.on_transport_error(&key, now);
                    h.log.extend(
                        h.layer
                            .take_outputs()
                            .into_iter()
                            .map(|o| (h.now - epoch(), o)),
                    );
                }
            }
            Op::Advance(ms_) => h.advance(ms(ms_)),
            Op::Garbage(bytes) => {
                if let Ok(m) = parse(Bytes::from(bytes)) {
                    if m.is_request() {
                        h.recv_request(m, Transport::Udp);
                    } else {
                        h.recv_response(m);
                    }
                }
            }
        }
        prop_assert!(h.layer.len() <= MAX);
        prop_assert!(h.layer.timer_queue_len() <= 2 * h.layer.len() + 64 + 1);
        if let Some(d) = h.layer.next_deadline() {
            prop_assert!(d > h.now, "a due timer was left unfired");
        }
    }
    created += h
        .tu_events()
        .iter()
        .filter(|e| matches!(e, TuEvent::Request { .. }))
        .count();

    // No more input: everything ends within the longest chain of timers
    // (TU guard, then Timer H), with slack.
    h.advance(GUARD + Duration::from_secs(32 + 10));
    prop_assert!(
        h.layer.is_empty(),
        "left: {:?}",
        h.layer.keys().collect::<Vec<_>>()
    );
    prop_assert_eq!(h.layer.next_deadline(), None);
    prop_assert_eq!(h.layer.timer_queue_len(), 0);

    // Every transaction terminated exactly once.
    let mut terminated: HashMap<TransactionKey, usize> = HashMap::new();
    for e in h.tu_events() {
        if let TuEvent::Terminated { key } = e {
            *terminated.entry(key).or_default() += 1;
        }
    }
    prop_assert_eq!(terminated.values().sum::<usize>(), created);

    // Non-INVITE client retransmissions never more than T2 apart.
    let mut last: HashMap<Bytes, Duration> = HashMap::new();
    for (at, o) in &h.log {
        if let Output::Transmit { bytes, .. } = o
            && bytes.starts_with(b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP us.")
            && let Some(prev) = last.insert(bytes.clone(), *at)
        {
            prop_assert!(*at - prev <= T2, "gap {:?}", *at - prev);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_interleavings_keep_invariants(ops in proptest::collection::vec(op(), 0..60)) {
        run(ops)?;
    }

    #[test]
    fn arbitrary_mutations_of_messages_never_panic(
        base in 0usize..3,
        cuts in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
    ) {
        let inv = invite("z9hG4bKm1");
        let seed = match base {
            0 => inv.to_bytes(),
            1 => response(&inv, 486).to_bytes(),
            _ => ack_for(&inv, "b1").to_bytes(),
        };
        let mut bytes = seed.to_vec();
        for (at, b) in cuts {
            if let Some(slot) = bytes.get_mut(at) {
                *slot = b;
            }
        }
        let mut h = Harness::new();
        h.send(invite("z9hG4bKm1"), Transport::Udp);
        if let Ok(m) = parse(Bytes::from(bytes)) {
            if m.is_request() {
                h.recv_request(m, Transport::Udp);
            } else {
                h.recv_response(m);
            }
        }
        h.advance(Duration::from_secs(4000));
        prop_assert!(h.layer.is_empty());
    }
}
