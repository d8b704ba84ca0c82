//! Property tests: whatever sequence of in-dialog requests the TU builds,
//! the local CSeq strictly increases; whatever (parsed, mutated) message
//! arrives, nothing panics, the remote CSeq never goes down and only moves
//! when a request is accepted, and a `DialogSet` never changes its winner.

use bytes::Bytes;
use proptest::prelude::*;

use super::message::{Host, Method, SipMessage, parse, response_to};
use super::transaction::Transport;
use super::*;

fn bridge() -> LocalParty {
    LocalParty::new(
        Transport::Udp,
        Host::Ipv4("192.0.2.10".parse().unwrap()),
        Some(5060),
        "sip:bridge@192.0.2.10:5060".parse().unwrap(),
    )
}

const CALLER_INVITE: &str = "INVITE sip:8000@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKc1\r\n\
Max-Forwards: 70\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
From: <sip:caller@carrier.example.net>;tag=caller-1\r\n\
To: <sip:8000@pbx.example.com>\r\n\
Call-ID: abc123@203.0.113.5\r\n\
CSeq: 100 INVITE\r\n\
Contact: <sip:caller@203.0.113.5:5060>\r\n\
Content-Length: 0\r\n\r\n";

/// A confirmed or early dialog of either role, plus its id source.
fn dialog(uac: bool, confirmed: bool) -> (Dialog, SipMessage, CounterIds) {
    let mut ids = CounterIds::new("p");
    let status = if confirmed { 200 } else { 180 };
    if uac {
        let invite = UacInvite::new(
            "sip:1001@198.51.100.7".parse().unwrap(),
            NameAddrs::bridge(),
            NameAddrs::agent(),
        )
        .header("X-Protocol", "20261121000042")
        .build(&bridge(), &mut ids)
        .unwrap();
        let resp = response_to(&invite, status, None)
            .unwrap()
            .to_tag("agent-9")
            .header("Record-Route", "<sip:p1.example.com;lr>")
            .header("Contact", "<sip:1001@198.51.100.7>")
            .build()
            .unwrap();
        let d = Dialog::uac(&invite, &resp, bridge()).unwrap();
        (d, invite, ids)
    } else {
        let invite = parse(Bytes::from_static(CALLER_INVITE.as_bytes())).unwrap();
        let resp = Dialog::dialog_response(&invite, status, "b2b-1", &bridge().contact)
            .unwrap()
            .build()
            .unwrap();
        let d = Dialog::uas(&invite, &resp, bridge()).unwrap();
        (d, invite, ids)
    }
}

struct NameAddrs;
impl NameAddrs {
    fn bridge() -> super::message::NameAddr {
        super::message::NameAddr::parse("<sip:bridge@pbx.example.com>").unwrap()
    }
    fn agent() -> super::message::NameAddr {
        super::message::NameAddr::parse("<sip:1001@pbx.example.com>").unwrap()
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Bye),
        Just(Method::Info),
        Just(Method::Update),
        Just(Method::Refer),
        Just(Method::Notify),
        Just(Method::Options),
        Just(Method::Message),
        Just(Method::Ack),
        Just(Method::Cancel),
        Just(Method::Prack),
        Just(Method::Extension("FOO".into())),
    ]
}

/// How to damage the message after it is written.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    /// Replace the value of the i-th header (mod count).
    Replace(usize, String),
    Drop(usize),
    Duplicate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        2 => (any::<usize>(), "[ -~]{0,30}").prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<usize>().prop_map(Mutation::Drop),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

/// One incoming message: a request or a response, shaped like the
/// dialog's traffic, with random CSeq, tags, Contact and one mutation.
#[derive(Debug, Clone)]
struct Incoming {
    response: Option<u16>,
    method: Method,
    cseq_method: Option<Method>,
    seq: u32,
    right_tags: bool,
    swap_tags: bool,
    contact: Option<String>,
    mutation: Mutation,
}

fn incoming() -> impl Strategy<Value = Incoming> {
    (
        proptest::option::of(prop_oneof![100u16..=199, 200u16..=299, 300u16..=699]),
        method(),
        proptest::option::weighted(0.1, method()),
        prop_oneof![0u32..=5, 95u32..=140, any::<u32>()],
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.1),
        proptest::option::of(prop_oneof![
            Just("<sip:new@203.0.113.77:5070>".to_owned()),
            Just("*".to_owned()),
            "[ -~]{0,20}",
        ]),
        mutation(),
    )
        .prop_map(
            |(response, method, cseq_method, seq, right_tags, swap_tags, contact, mutation)| {
                Incoming {
                    response,
                    method,
                    cseq_method,
                    seq,
                    right_tags,
                    swap_tags,
                    contact,
                    mutation,
                }
            },
        )
}

/// Writes `inc` for dialog `d` (a request from the peer or a response to
/// us) and parses it back; `None` when the mutation made it unparsable.
fn render(inc: &Incoming, d: &Dialog) -> Option<SipMessage> {
    let id = d.id();
    let (mut from_tag, mut to_tag) = if inc.response.is_some() {
        (id.local_tag.clone(), id.remote_tag.clone())
    } else {
        (id.remote_tag.clone(), id.local_tag.clone())
    };
    if !inc.right_tags {
        to_tag = "wrong".into();
    }
    if inc.swap_tags {
        std::mem::swap(&mut from_tag, &mut to_tag);
    }
    let start = match inc.response {
        Some(s) => format!("SIP/2.0 {s} Whatever"),
        None => format!("{} sip:bridge@192.0.2.10:5060 SIP/2.0", inc.method),
    };
    let mut headers = vec![
        format!("Via: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKm{}", inc.seq),
        "Max-Forwards: 70".to_owned(),
        format!("From: <sip:a@example.net>;tag={from_tag}"),
        format!("To: <sip:b@example.net>;tag={to_tag}"),
        format!("Call-ID: {}", id.call_id),
        format!(
            "CSeq: {} {}",
            inc.seq,
            inc.cseq_method.as_ref().unwrap_or(&inc.method)
        ),
    ];
    if let Some(c) = &inc.contact {
        headers.push(format!("Contact: {c}"));
    }
    let n = headers.len();
    match &inc.mutation {
        Mutation::None => {}
        Mutation::Replace(i, v) => {
            let h = &mut headers[i % n];
            let name = h.split(':').next().unwrap_or("X").to_owned();
            *h = format!("{name}: {v}");
        }
        Mutation::Drop(i) => {
            headers.remove(i % n);
        }
        Mutation::Duplicate(i) => {
            let h = headers[i % n].clone();
            headers.push(h);
        }
    }
    let text = format!(
        "{start}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        headers.join("\r\n")
    );
    parse(Bytes::from(text)).ok()
}

#[derive(Debug, Clone)]
enum Op {
    Send(Method),
    Receive(Incoming),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        method().prop_map(Op::Send),
        incoming().prop_map(Op::Receive),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cseq_order_and_no_panic(
        uac in any::<bool>(),
        confirmed in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let (mut d, _, mut ids) = dialog(uac, confirmed);
        let mut last_local = d.local_seq();
        for op in ops {
            match op {
                Op::Send(m) => {
                    let before = d.state();
                    match d.request(m.clone(), &mut ids) {
                        Ok(req) => {
                            let back = parse(req.to_bytes()).unwrap();
                            let cseq = back.cseq().unwrap();
                            prop_assert_eq!(&cseq.method, &m);
                            prop_assert!(last_local.is_none_or(|l| cseq.seq > l));
                            prop_assert_eq!(d.local_seq(), Some(cseq.seq));
                            last_local = Some(cseq.seq);
                            prop_assert_eq!(
                                back.request_uri().unwrap(),
                                d.remote_target().clone()
                            );
                            prop_assert_eq!(back.call_id().unwrap(), d.id().call_id.as_str());
                            prop_assert!(back.top_via().unwrap().has_rfc3261_branch());
                        }
                        Err(e) => {
                            prop_assert!(
                                before == DialogState::Terminated
                                    || matches!(m, Method::Ack | Method::Cancel)
                                    || (m == Method::Bye && before == DialogState::Early)
                                    || (m == Method::Invite && d.invite_pending()),
                                "unexpected {e}"
                            );
                            prop_assert_eq!(d.local_seq(), last_local);
                        }
                    }
                }
                Op::Receive(inc) => {
                    let Some(msg) = render(&inc, &d) else { continue };
                    let remote_before = d.remote_seq();
                    if msg.is_request() {
                        let decision = d.on_request(&msg);
                        let moved = d.remote_seq() != remote_before;
                        match decision {
                            RequestDecision::Accept { .. }
                                if !matches!(msg.method(), Some(Method::Ack | Method::Cancel)) =>
                            {
                                let seq = d.remote_seq().unwrap();
                                prop_assert!(remote_before.is_none_or(|r| seq > r));
                                prop_assert_eq!(seq, msg.cseq().unwrap().seq);
                            }
                            RequestDecision::Reject(r) => {
                                prop_assert!(!moved);
                                prop_assert!(matches!(r.status, 400 | 481 | 491 | 500));
                                // The rejection can be answered when the
                                // message has the headers to copy.
                                let _ = r.response(&msg);
                            }
                            _ => prop_assert!(!moved),
                        }
                    } else {
                        let _ = d.on_response(&msg);
                        let _ = d.ack_for_2xx(&msg, &mut ids);
                        prop_assert_eq!(d.remote_seq(), remote_before);
                        prop_assert_eq!(d.local_seq(), last_local);
                    }
                }
            }
        }
    }

    #[test]
    fn dialog_set_keeps_one_winner(
        responses in proptest::collection::vec(
            (prop_oneof![100u16..=199, 200u16..=299, 300u16..=699], 0usize..4, mutation()),
            1..30,
        ),
    ) {
        let mut ids = CounterIds::new("s");
        let invite = UacInvite::new(
            "sip:1001@198.51.100.7".parse().unwrap(),
            NameAddrs::bridge(),
            NameAddrs::agent(),
        )
        .build(&bridge(), &mut ids)
        .unwrap();
        let mut set = DialogSet::with_invite(bridge(), invite.clone()).unwrap();
        let mut winner: Option<DialogId> = None;
        for (status, tag, mutation) in responses {
            let resp = response_to(&invite, status, None)
                .unwrap()
                .to_tag(&format!("t{tag}"))
                .header("Contact", format!("<sip:1001@198.51.100.{tag}>"))
                .build()
                .unwrap();
            let mut text = String::from_utf8_lossy(&resp.to_bytes()).into_owned();
            if let Mutation::Replace(i, v) = &mutation {
                let names = ["Via", "From", "To", "Call-ID", "CSeq", "Contact"];
                let name = names[i % names.len()];
                let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
                if let Some(l) = lines.iter_mut().find(|l| l.starts_with(&format!("{name}:"))) {
                    *l = format!("{name}: {v}");
                }
                text = lines.join("\r\n");
            }
            let Ok(msg) = parse(Bytes::from(text)) else { continue };
            match set.on_response(&msg, &mut ids) {
                ForkEvent::Answered { id, ack, .. } => {
                    prop_assert!(winner.is_none());
                    prop_assert_eq!(ack.cseq().unwrap().seq, 1);
                    winner = Some(id);
                }
                ForkEvent::AckAndBye { id, bye, .. } => {
                    prop_assert!(winner.is_some());
                    prop_assert_ne!(Some(&id), winner.as_ref());
                    prop_assert_eq!(bye.cseq().unwrap().seq, 2);
                }
                _ => {}
            }
            prop_assert_eq!(set.winner().map(|d| d.id().clone()), winner.clone());
        }
    }
}
