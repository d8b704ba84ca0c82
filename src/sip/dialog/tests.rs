//! Dialog layer tests: messages are built, serialized and parsed back with
//! the message layer; no sockets, no clock.

use bytes::Bytes;

use super::message::{Host, Method, NameAddr, SipMessage, Uri, parse, response_to};
use super::transaction::{TransactionKey, Transport};
use super::*;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 8\r\n";

fn bridge() -> LocalParty {
    LocalParty::new(
        Transport::Udp,
        Host::Ipv4("192.0.2.10".parse().unwrap()),
        Some(5060),
        "sip:bridge@192.0.2.10:5060".parse().unwrap(),
    )
}

fn na(s: &str) -> NameAddr {
    NameAddr::parse(s).unwrap()
}

fn reparse(m: &SipMessage) -> SipMessage {
    parse(m.to_bytes()).unwrap()
}

fn header(m: &SipMessage, name: &str) -> String {
    String::from_utf8_lossy(m.header(name).unwrap()).into_owned()
}

fn invite_to(agent: &str, ids: &mut CounterIds) -> SipMessage {
    UacInvite::new(
        format!("sip:{agent}@198.51.100.7:5062;transport=udp")
            .parse()
            .unwrap(),
        na("\"Central\" <sip:bridge@pbx.example.com>"),
        na(&format!("<sip:{agent}@pbx.example.com>")),
    )
    .header("X-Protocol", "20261121000042")
    .sdp(SDP)
    .build(&bridge(), ids)
    .unwrap()
}

/// A response from the agent to our INVITE: To tag, Contact, Record-Route.
fn answer(invite: &SipMessage, status: u16, tag: &str, contact: &str, rr: &[&str]) -> SipMessage {
    let mut b = response_to(invite, status, None).unwrap().to_tag(tag);
    for r in rr {
        b = b.header("Record-Route", r);
    }
    reparse(&b.header("Contact", contact).build().unwrap())
}

#[test]
fn uac_invite_round_trips() {
    let mut ids = CounterIds::new("n1-");
    let inv = invite_to("1001", &mut ids);
    let back = reparse(&inv);
    assert_eq!(back, inv);
    assert_eq!(back.method(), Some(&Method::Invite));
    assert_eq!(
        back.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.7:5062;transport=udp"
    );
    let from = back.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Central"));
    assert_eq!(from.uri.to_string(), "sip:bridge@pbx.example.com");
    assert!(from.tag().is_some_and(|t| !t.is_empty()));
    let to = back.to().unwrap();
    assert_eq!(to.uri.to_string(), "sip:1001@pbx.example.com");
    assert_eq!(to.tag(), None);
    assert!(back.call_id().unwrap().ends_with("@192.0.2.10"));
    let cseq = back.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Invite));
    assert_eq!(back.max_forwards().unwrap(), Some(70));
    let via = back.top_via().unwrap();
    assert!(via.has_rfc3261_branch());
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.port, Some(5060));
    assert_eq!(via.rport, Some(None));
    assert_eq!(header(&back, "X-Protocol"), "20261121000042");
    assert_eq!(header(&back, "Contact"), "<sip:bridge@192.0.2.10:5060>");
    assert_eq!(back.media_type().as_deref(), Some("application/sdp"));
    assert_eq!(&back.body()[..], SDP.as_bytes());
    assert_eq!(back.content_length().unwrap(), Some(SDP.len() as u32));
    // Every id is fresh.
    let other = invite_to("1001", &mut ids);
    assert_ne!(other.call_id().unwrap(), back.call_id().unwrap());
    assert_ne!(other.from().unwrap().tag(), from.tag());
    assert_ne!(other.top_via().unwrap().branch, via.branch);
    // The transaction layer accepts it.
    assert!(TransactionKey::client(&back).unwrap().is_invite());
}

const CALLER_INVITE: &str = "INVITE sip:8000@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKc1;rport=5060;received=203.0.113.5\r\n\
Max-Forwards: 68\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
From: \"Caller\" <sip:+5511999990000@carrier.example.net>;tag=caller-1\r\n\
To: <sip:8000@pbx.example.com>\r\n\
Call-ID: abc123@203.0.113.5\r\n\
CSeq: 101 INVITE\r\n\
Contact: <sip:+5511999990000@203.0.113.5:5060>\r\n\
Content-Length: 0\r\n\r\n";

fn caller_dialog(status: u16) -> (SipMessage, SipMessage, Dialog) {
    let invite = parse(Bytes::from_static(CALLER_INVITE.as_bytes())).unwrap();
    let resp = Dialog::dialog_response(&invite, status, "b2b-1", &bridge().contact)
        .unwrap()
        .body("application/sdp", SDP)
        .build()
        .unwrap();
    let resp = reparse(&resp);
    let d = Dialog::uas(&invite, &resp, bridge()).unwrap();
    (invite, resp, d)
}

#[test]
fn uas_dialog_from_parsed_invite() {
    let (_, resp, d) = caller_dialog(200);
    // The 200 carries the Record-Route (same order), our tag and Contact.
    assert_eq!(
        resp.header_list("Record-Route"),
        ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    );
    assert_eq!(resp.to().unwrap().tag(), Some("b2b-1"));
    assert_eq!(header(&resp, "Contact"), "<sip:bridge@192.0.2.10:5060>");
    assert_eq!(d.role(), DialogRole::Uas);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(
        d.id(),
        &DialogId {
            call_id: "abc123@203.0.113.5".into(),
            local_tag: "b2b-1".into(),
            remote_tag: "caller-1".into(),
        }
    );
    assert_eq!(d.remote_seq(), Some(101));
    assert_eq!(d.local_seq(), None);
    assert_eq!(
        d.remote_target().to_string(),
        "sip:+5511999990000@203.0.113.5:5060"
    );
    // UAS: Record-Route in order.
    let rs: Vec<String> = d.route_set().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(rs, ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]);
    assert_eq!(d.local_uri().uri.to_string(), "sip:8000@pbx.example.com");
    assert_eq!(d.remote_uri().display_name.as_deref(), Some("Caller"));
    assert!(!d.secure());
    // An early dialog from a 180.
    let (_, _, early) = caller_dialog(180);
    assert_eq!(early.state(), DialogState::Early);
}

#[test]
fn uas_bye_has_route_target_and_cseq() {
    let (_, _, mut d) = caller_dialog(200);
    let mut ids = CounterIds::new("u");
    let bye = reparse(&d.request(Method::Bye, &mut ids).unwrap());
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:+5511999990000@203.0.113.5:5060"
    );
    assert_eq!(
        bye.header_list("Route"),
        ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    );
    assert_eq!(bye.from().unwrap().tag(), Some("b2b-1"));
    assert_eq!(
        bye.from().unwrap().uri.to_string(),
        "sip:8000@pbx.example.com"
    );
    assert_eq!(bye.to().unwrap().tag(), Some("caller-1"));
    assert_eq!(bye.call_id().unwrap(), "abc123@203.0.113.5");
    let cseq = bye.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Bye));
    assert_eq!(bye.max_forwards().unwrap(), Some(70));
    assert!(bye.top_via().unwrap().has_rfc3261_branch());
    assert!(bye.header("Contact").is_none());
    assert_eq!(d.state(), DialogState::Terminated);
    assert_eq!(
        d.request(Method::Info, &mut ids),
        Err(DialogError::Terminated)
    );
    // A UAS may not BYE an early dialog (§15).
    let (_, _, mut early) = caller_dialog(183);
    assert_eq!(
        early.request(Method::Bye, &mut ids),
        Err(DialogError::Method(Method::Bye))
    );
}

/// Our INVITE to agent 1001 and the agent's 200 through two proxies: pB
/// (next to the agent) Record-Routes on top of pA.
fn agent_dialog() -> (SipMessage, SipMessage, Dialog, CounterIds) {
    let mut ids = CounterIds::new("a");
    let invite = invite_to("1001", &mut ids);
    let ok = answer(
        &invite,
        200,
        "agent-9",
        "<sip:1001@198.51.100.7:5062;transport=udp>",
        &["<sip:pB.example.com;lr>", "<sip:pA.example.com;lr>"],
    );
    let d = Dialog::uac(&invite, &ok, bridge()).unwrap();
    (invite, ok, d, ids)
}

#[test]
fn uac_dialog_from_parsed_200() {
    let (invite, _, mut d, mut ids) = agent_dialog();
    assert_eq!(d.role(), DialogRole::Uac);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.id().local_tag, invite.from().unwrap().tag().unwrap());
    assert_eq!(d.id().remote_tag, "agent-9");
    assert_eq!(d.local_seq(), Some(1));
    assert_eq!(d.remote_seq(), None);
    // UAC: Record-Route reversed (§12.1.2).
    let rs: Vec<String> = d.route_set().iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(rs, ["sip:pA.example.com;lr", "sip:pB.example.com;lr"]);
    let bye = reparse(&d.request(Method::Bye, &mut ids).unwrap());
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.7:5062;transport=udp"
    );
    assert_eq!(
        bye.header_list("Route"),
        ["<sip:pA.example.com;lr>", "<sip:pB.example.com;lr>"]
    );
    let cseq = bye.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (2, Method::Bye));
    assert_eq!(bye.from().unwrap(), {
        let mut f = invite.from().unwrap();
        f.display_name = Some("Central".into());
        f
    });
    assert_eq!(bye.to().unwrap().tag(), Some("agent-9"));
    assert_eq!(bye.call_id().unwrap(), invite.call_id().unwrap());
    assert_ne!(
        bye.top_via().unwrap().branch,
        invite.top_via().unwrap().branch
    );
}

#[test]
fn ack_for_2xx_keeps_invite_cseq() {
    let (invite, ok, mut d, mut ids) = agent_dialog();
    // A request in between must not change the ACK's CSeq number.
    let info = d.request(Method::Info, &mut ids).unwrap();
    assert_eq!(info.cseq().unwrap().seq, 2);
    let ack = reparse(&d.ack_for_2xx(&ok, &mut ids).unwrap());
    assert_eq!(ack.method(), Some(&Method::Ack));
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.7:5062;transport=udp"
    );
    assert_eq!(ack.header_list("Route").len(), 2);
    assert_eq!(ack.to().unwrap().tag(), Some("agent-9"));
    let branch = ack.top_via().unwrap().branch.unwrap();
    assert!(branch.starts_with("z9hG4bK"));
    assert_ne!(Some(branch), invite.top_via().unwrap().branch);
    assert_eq!(d.local_seq(), Some(2), "ACK takes no CSeq");
    // A retransmitted 2xx gets the very same ACK.
    assert_eq!(reparse(&d.ack_for_2xx(&ok, &mut ids).unwrap()), ack);
    // Not a 2xx.
    let busy = answer(&invite, 486, "agent-9", "<sip:x@y>", &[]);
    assert!(d.ack_for_2xx(&busy, &mut ids).is_err());
}

#[test]
fn cancel_matches_the_invite() {
    let mut ids = CounterIds::new("c");
    let invite = invite_to("1002", &mut ids);
    let cancel = reparse(&cancel_for(&invite).unwrap());
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(cancel.request_uri_raw(), invite.request_uri_raw());
    assert_eq!(cancel.top_via().unwrap(), invite.top_via().unwrap());
    assert_eq!(cancel.vias().unwrap().len(), 1);
    let (c, i) = (cancel.cseq().unwrap(), invite.cseq().unwrap());
    assert_eq!((c.seq, c.method), (i.seq, Method::Cancel));
    assert_eq!(cancel.from().unwrap(), invite.from().unwrap());
    assert_eq!(cancel.to().unwrap(), invite.to().unwrap());
    assert_eq!(cancel.call_id().unwrap(), invite.call_id().unwrap());
    assert!(cancel.body().is_empty());
    assert!(cancel.header("X-Protocol").is_none());
    // The transaction layer pairs it with the INVITE's client transaction.
    let key = TransactionKey::client(&cancel).unwrap();
    assert_eq!(
        key.cancel_target(),
        Some(TransactionKey::client(&invite).unwrap())
    );
    // Only for INVITEs.
    assert!(cancel_for(&cancel).is_err());
}

fn in_dialog(method: &str, seq: u32, from_tag: &str, to_tag: &str, extra: &str) -> SipMessage {
    let text = format!(
        "{method} sip:bridge@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKr{seq}{method}\r\n\
Max-Forwards: 70\r\n\
From: <sip:+5511999990000@carrier.example.net>;tag={from_tag}\r\n\
To: <sip:8000@pbx.example.com>;tag={to_tag}\r\n\
Call-ID: abc123@203.0.113.5\r\n\
CSeq: {seq} {method}\r\n\
{extra}Content-Length: 0\r\n\r\n"
    );
    parse(Bytes::from(text)).unwrap()
}

#[test]
fn out_of_order_cseq_is_500() {
    let (_, _, mut d) = caller_dialog(200);
    let req = in_dialog("INFO", 100, "caller-1", "b2b-1", "");
    let decision = d.on_request(&req);
    assert_eq!(
        decision,
        RequestDecision::Reject(Rejection::new(500, "CSeq Out of Order"))
    );
    let RequestDecision::Reject(r) = decision else {
        unreachable!()
    };
    let resp = reparse(&r.response(&req).unwrap());
    assert_eq!(resp.status(), Some(500));
    assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
    // Equal is refused too; higher is accepted and recorded.
    assert!(matches!(
        d.on_request(&in_dialog("INFO", 101, "caller-1", "b2b-1", "")),
        RequestDecision::Reject(Rejection { status: 500, .. })
    ));
    assert_eq!(
        d.on_request(&in_dialog("INFO", 105, "caller-1", "b2b-1", "")),
        RequestDecision::Accept {
            target_refreshed: false
        }
    );
    assert_eq!(d.remote_seq(), Some(105));
    assert!(matches!(
        d.on_request(&in_dialog("INFO", 104, "caller-1", "b2b-1", "")),
        RequestDecision::Reject(Rejection { status: 500, .. })
    ));
    assert_eq!(d.remote_seq(), Some(105));
    // The ACK for the 2xx carries the INVITE's number; it moves nothing.
    assert_eq!(
        d.on_request(&in_dialog("ACK", 101, "caller-1", "b2b-1", "")),
        RequestDecision::Ack
    );
    assert_eq!(
        d.on_request(&in_dialog("ACK", 7, "caller-1", "b2b-1", "")),
        RequestDecision::Drop
    );
    // Another dialog: 481; a stray ACK is dropped.
    assert!(matches!(
        d.on_request(&in_dialog("BYE", 200, "caller-1", "other", "")),
        RequestDecision::Reject(Rejection { status: 481, .. })
    ));
    assert_eq!(
        d.on_request(&in_dialog("ACK", 101, "someone", "b2b-1", "")),
        RequestDecision::Drop
    );
    // BYE ends it; anything after is 481.
    assert!(matches!(
        d.on_request(&in_dialog("BYE", 106, "caller-1", "b2b-1", "")),
        RequestDecision::Accept { .. }
    ));
    assert_eq!(d.state(), DialogState::Terminated);
    assert!(matches!(
        d.on_request(&in_dialog("INFO", 107, "caller-1", "b2b-1", "")),
        RequestDecision::Reject(Rejection { status: 481, .. })
    ));
}

#[test]
fn reinvite_refreshes_the_remote_target() {
    let (_, _, mut d) = caller_dialog(200);
    let mut ids = CounterIds::new("r");
    // An UPDATE/INFO without Contact changes nothing.
    assert_eq!(
        d.on_request(&in_dialog("INFO", 102, "caller-1", "b2b-1", "")),
        RequestDecision::Accept {
            target_refreshed: false
        }
    );
    let hold = in_dialog(
        "INVITE",
        103,
        "caller-1",
        "b2b-1",
        "Contact: <sip:+5511999990000@203.0.113.99:5070>\r\n",
    );
    assert_eq!(
        d.on_request(&hold),
        RequestDecision::Accept {
            target_refreshed: true
        }
    );
    assert_eq!(
        d.remote_target().to_string(),
        "sip:+5511999990000@203.0.113.99:5070"
    );
    // We answer it (2xx), which ends that INVITE transaction.
    let ok = Dialog::dialog_response(&hold, 200, "b2b-1", &bridge().contact)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(d.on_sent_response(&ok), Ok(DialogState::Confirmed));
    assert!(!d.invite_pending());
    // Its ACK is recognised by the new CSeq.
    assert_eq!(
        d.on_request(&in_dialog("ACK", 103, "caller-1", "b2b-1", "")),
        RequestDecision::Ack
    );
    // A broken Contact on a target refresh is a 400 and changes nothing.
    assert!(matches!(
        d.on_request(&in_dialog(
            "UPDATE",
            104,
            "caller-1",
            "b2b-1",
            "Contact: *\r\n"
        )),
        RequestDecision::Reject(Rejection { status: 400, .. })
    ));
    assert_eq!(d.remote_seq(), Some(103));
    // A header set for INVITEs is on our own re-INVITE to the caller (hold
    // from the agent side); the BYE does not carry it.
    d.set_request_header(Method::Invite, "X-Protocol", "20261121000042");
    assert_eq!(
        d.request_header(&Method::Invite, "x-protocol"),
        Some("20261121000042")
    );
    assert_eq!(d.request_header(&Method::Bye, "X-Protocol"), None);
    let hold = d.request(Method::Invite, &mut ids).unwrap();
    assert_eq!(header(&hold, "X-Protocol"), "20261121000042");
    assert_eq!(hold.cseq().unwrap().seq, 1);
    let bye = d.request(Method::Bye, &mut ids).unwrap();
    assert!(bye.header("X-Protocol").is_none());
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:+5511999990000@203.0.113.99:5070"
    );

    // UAC side: the 2xx to our re-INVITE refreshes the target; its ACK
    // carries the re-INVITE's CSeq and goes to the new target.
    // Setting a header again replaces its value.
    let (_, _, mut d, mut ids) = agent_dialog();
    d.set_request_header(Method::Invite, "X-Protocol", "20261121000041");
    d.set_request_header(Method::Invite, "X-Protocol", "20261121000042");
    let reinvite = d
        .request_builder(Method::Invite, &ids.branch())
        .unwrap()
        .body(
            "application/sdp",
            SDP.replace("t=0 0", "t=0 0\r\na=sendonly"),
        )
        .build()
        .unwrap();
    assert_eq!(reinvite.cseq().unwrap().seq, 2);
    assert_eq!(header(&reinvite, "Contact"), "<sip:bridge@192.0.2.10:5060>");
    assert_eq!(header(&reinvite, "X-Protocol"), "20261121000042");
    assert_eq!(reinvite.media_type().as_deref(), Some("application/sdp"));
    let ok = answer(&reinvite, 200, "", "<sip:1001@198.51.100.8:5062>", &[]);
    assert_eq!(d.on_response(&ok), Ok(DialogState::Confirmed));
    assert_eq!(d.remote_target().to_string(), "sip:1001@198.51.100.8:5062");
    let ack = d.ack_for_2xx(&ok, &mut ids).unwrap();
    assert_eq!(ack.cseq().unwrap().seq, 2);
    assert!(ack.header("X-Protocol").is_none());
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.8:5062"
    );
    // The route set of a confirmed dialog is not changed by re-INVITEs.
    assert_eq!(d.route_set().len(), 2);
    // 481 to an in-dialog request ends the dialog (§12.2.1.2).
    let refer = d.request(Method::Refer, &mut ids).unwrap();
    let gone = answer(&refer, 481, "", "<sip:x@y>", &[]);
    assert_eq!(d.on_response(&gone), Ok(DialogState::Terminated));
}

#[test]
fn refer_received_in_dialog() {
    let (_, _, mut d) = caller_dialog(200);
    let refer = in_dialog(
        "REFER",
        102,
        "caller-1",
        "b2b-1",
        "Refer-To: <sip:8001@pbx.example.com>\r\n",
    );
    assert_eq!(
        d.on_request(&refer),
        RequestDecision::Accept {
            target_refreshed: false
        }
    );
    assert_eq!(d.remote_seq(), Some(102));
    assert_eq!(d.state(), DialogState::Confirmed);
}

#[test]
fn strict_router_in_route_set() {
    let mut ids = CounterIds::new("s");
    let invite = invite_to("1001", &mut ids);
    let ok = answer(
        &invite,
        200,
        "t",
        "<sip:1001@198.51.100.7>",
        &[
            "<sip:pB.example.com;lr>",
            "<sip:strict.example.com;method=INVITE>",
        ],
    );
    let mut d = Dialog::uac(&invite, &ok, bridge()).unwrap();
    let bye = d.request(Method::Bye, &mut ids).unwrap();
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:strict.example.com"
    );
    assert_eq!(
        bye.header_list("Route"),
        ["<sip:pB.example.com;lr>", "<sip:1001@198.51.100.7>"]
    );
}

#[test]
fn early_then_confirmed_uac_recomputes_route_set() {
    let mut ids = CounterIds::new("e");
    let invite = invite_to("1001", &mut ids);
    let ringing = answer(
        &invite,
        180,
        "t1",
        "<sip:1001@198.51.100.7>",
        &["<sip:old;lr>"],
    );
    let mut d = Dialog::uac(&invite, &ringing, bridge()).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    let ok = answer(
        &invite,
        200,
        "t1",
        "<sip:1001@198.51.100.9>",
        &["<sip:new;lr>"],
    );
    let ack = d.ack_for_2xx(&ok, &mut ids).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.route_set()[0].uri.to_string(), "sip:new;lr");
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.9"
    );
    // A 2xx from another dialog is not this dialog's.
    let other = answer(&invite, 200, "t2", "<sip:x@y>", &[]);
    assert!(d.on_response(&other).is_err());
    // A 180 without Contact still makes an early dialog (target = R-URI).
    let bare = reparse(
        &response_to(&invite, 180, None)
            .unwrap()
            .to_tag("t3")
            .build()
            .unwrap(),
    );
    let d3 = Dialog::uac(&invite, &bare, bridge()).unwrap();
    assert_eq!(d3.remote_target(), &invite.request_uri().unwrap());
    // Errors.
    let trying = reparse(&response_to(&invite, 100, None).unwrap().build().unwrap());
    assert_eq!(
        Dialog::uac(&invite, &trying, bridge()),
        Err(DialogError::NotDialogCreating(100))
    );
    let no_tag = reparse(&response_to(&invite, 180, None).unwrap().build().unwrap());
    assert_eq!(
        Dialog::uac(&invite, &no_tag, bridge()),
        Err(DialogError::NoToTag)
    );
    // UAS: a non-2xx final to the INVITE ends the early dialog.
    let (inv, _, mut early) = caller_dialog(180);
    let busy = response_to(&inv, 486, None)
        .unwrap()
        .to_tag("b2b-1")
        .build()
        .unwrap();
    assert_eq!(early.on_sent_response(&busy), Ok(DialogState::Terminated));
    let (inv, _, mut early) = caller_dialog(180);
    let ok = Dialog::dialog_response(&inv, 200, "b2b-1", &bridge().contact)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(early.on_sent_response(&ok), Ok(DialogState::Confirmed));
}

#[test]
fn forked_invite_second_2xx_gets_ack_and_bye() {
    let mut ids = CounterIds::new("f");
    let invite = invite_to("1001", &mut ids);
    let mut set = DialogSet::with_invite(bridge(), invite.clone()).unwrap();
    let trying = reparse(&response_to(&invite, 100, None).unwrap().build().unwrap());
    assert_eq!(
        set.on_response(&trying, &mut ids),
        ForkEvent::Provisional { status: 100 }
    );
    let r_a = answer(&invite, 180, "A", "<sip:1001@198.51.100.7>", &[]);
    let r_b = answer(&invite, 183, "B", "<sip:1001@198.51.100.8>", &[]);
    assert!(matches!(
        set.on_response(&r_a, &mut ids),
        ForkEvent::Early {
            created: true,
            status: 180,
            ..
        }
    ));
    assert!(matches!(
        set.on_response(&r_b, &mut ids),
        ForkEvent::Early {
            created: true,
            status: 183,
            ..
        }
    ));
    assert!(matches!(
        set.on_response(&r_a, &mut ids),
        ForkEvent::Early { created: false, .. }
    ));
    assert_eq!(set.dialogs().count(), 2);

    let ok_a = answer(&invite, 200, "A", "<sip:1001@198.51.100.7>", &[]);
    let ForkEvent::Answered { id, ack, cancels } = set.on_response(&ok_a, &mut ids) else {
        panic!("expected Answered")
    };
    assert_eq!(id.remote_tag, "A");
    assert!(cancels.is_empty(), "the only INVITE got its final");
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.to().unwrap().tag(), Some("A"));
    assert_eq!(set.winner().unwrap().state(), DialogState::Confirmed);
    assert_eq!(set.winner_invite(), Some(&invite));

    let ok_b = answer(&invite, 200, "B", "<sip:1001@198.51.100.8>", &[]);
    let ForkEvent::AckAndBye {
        id: id_b,
        ack: ack_b,
        bye,
    } = set.on_response(&ok_b, &mut ids)
    else {
        panic!("expected AckAndBye")
    };
    assert_eq!(id_b.remote_tag, "B");
    let c = ack_b.cseq().unwrap();
    assert_eq!((c.seq, c.method), (1, Method::Ack));
    assert_eq!(ack_b.to().unwrap().tag(), Some("B"));
    assert_eq!(
        ack_b.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.8"
    );
    let c = bye.cseq().unwrap();
    assert_eq!((c.seq, c.method), (2, Method::Bye));
    assert_eq!(bye.to().unwrap().tag(), Some("B"));
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:1001@198.51.100.8"
    );
    assert_eq!(set.dialog(&id_b).unwrap().state(), DialogState::Terminated);
    // Retransmissions of either 2xx: the same ACK again, no new BYE.
    assert_eq!(set.on_response(&ok_a, &mut ids), ForkEvent::ResendAck(ack));
    assert_eq!(
        set.on_response(&ok_b, &mut ids),
        ForkEvent::ResendAck(ack_b)
    );
    // The winner stays confirmed; a late 180 is ignored.
    assert_eq!(set.on_response(&r_b, &mut ids), ForkEvent::Ignored);
    assert_eq!(set.winner().unwrap().id(), &id);
    // A response to something else is ignored.
    let other = invite_to("1009", &mut ids);
    let stray = answer(&other, 200, "Z", "<sip:z@z>", &[]);
    assert_eq!(set.on_response(&stray, &mut ids), ForkEvent::Ignored);
}

#[test]
fn parallel_ringing_cancels_the_other_agents() {
    let mut ids = CounterIds::new("p");
    let inv1 = invite_to("1001", &mut ids);
    let inv2 = invite_to("1002", &mut ids);
    let inv3 = invite_to("1003", &mut ids);
    let mut set = DialogSet::new(bridge());
    for i in [&inv1, &inv2, &inv3] {
        set.add_invite(i.clone()).unwrap();
    }
    assert_eq!(set.invites().count(), 3);
    for (inv, tag) in [(&inv1, "t1"), (&inv2, "t2")] {
        let r = answer(inv, 180, tag, "<sip:a@198.51.100.7>", &[]);
        assert!(matches!(
            set.on_response(&r, &mut ids),
            ForkEvent::Early { .. }
        ));
    }
    // Agent 2 answers: CANCEL agent 1 now; agent 3 has sent nothing yet.
    let ok2 = answer(&inv2, 200, "t2", "<sip:1002@198.51.100.7>", &[]);
    let ForkEvent::Answered { id, cancels, .. } = set.on_response(&ok2, &mut ids) else {
        panic!("expected Answered")
    };
    assert_eq!(id.call_id, inv2.call_id().unwrap());
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].top_via().unwrap(), inv1.top_via().unwrap());
    assert_eq!(cancels[0].call_id().unwrap(), inv1.call_id().unwrap());
    // Agent 3's first provisional triggers its CANCEL (§9.1), once.
    let r3 = answer(&inv3, 180, "t3", "<sip:a@198.51.100.9>", &[]);
    let ForkEvent::Cancel(c3) = set.on_response(&r3, &mut ids) else {
        panic!("expected Cancel")
    };
    assert_eq!(c3.top_via().unwrap(), inv3.top_via().unwrap());
    assert_eq!(set.on_response(&r3, &mut ids), ForkEvent::Ignored);
    assert!(set.cancel_pending().is_empty(), "nothing left to cancel");
    // Agent 1's 487; agent 3 answers anyway: ACK + BYE.
    let t487 = answer(&inv1, 487, "t1", "<sip:a@b>", &[]);
    assert_eq!(
        set.on_response(&t487, &mut ids),
        ForkEvent::Failed {
            call_id: inv1.call_id().unwrap().into(),
            status: 487,
            all_failed: false
        }
    );
    let ok3 = answer(&inv3, 200, "t3", "<sip:1003@198.51.100.9>", &[]);
    let ForkEvent::AckAndBye { ack, bye, .. } = set.on_response(&ok3, &mut ids) else {
        panic!("expected AckAndBye")
    };
    assert_eq!(ack.call_id().unwrap(), inv3.call_id().unwrap());
    assert_eq!(bye.call_id().unwrap(), inv3.call_id().unwrap());
    assert_eq!(set.winner().unwrap().id(), &id);
}

#[test]
fn every_agent_busy_is_all_failed() {
    let mut ids = CounterIds::new("b");
    let inv1 = invite_to("1001", &mut ids);
    let inv2 = invite_to("1002", &mut ids);
    let mut set = DialogSet::new(bridge());
    set.add_invite(inv1.clone()).unwrap();
    set.add_invite(inv2.clone()).unwrap();
    let r1 = answer(&inv1, 180, "t1", "<sip:a@b>", &[]);
    let ForkEvent::Early { id, .. } = set.on_response(&r1, &mut ids) else {
        panic!()
    };
    let busy1 = answer(&inv1, 486, "t1", "<sip:a@b>", &[]);
    assert!(matches!(
        set.on_response(&busy1, &mut ids),
        ForkEvent::Failed {
            all_failed: false,
            status: 486,
            ..
        }
    ));
    assert_eq!(set.dialog(&id).unwrap().state(), DialogState::Terminated);
    // A retransmitted final is ignored.
    assert_eq!(set.on_response(&busy1, &mut ids), ForkEvent::Ignored);
    // Ring timeout before agent 2 sent anything: no CANCEL possible yet.
    assert!(set.cancel_pending().is_empty());
    let r2 = answer(&inv2, 180, "t2", "<sip:a@b>", &[]);
    assert!(matches!(
        set.on_response(&r2, &mut ids),
        ForkEvent::Cancel(_)
    ));
    let busy2 = answer(&inv2, 487, "t2", "<sip:a@b>", &[]);
    assert!(matches!(
        set.on_response(&busy2, &mut ids),
        ForkEvent::Failed {
            all_failed: true,
            ..
        }
    ));
    assert!(set.all_failed());
    assert!(set.winner().is_none());
}

#[test]
fn ids_are_tokens_and_unique() {
    let mut c = CounterIds::new("x y\r\n");
    assert_eq!(c.next_token(), "xy1");
    assert_eq!(c.branch(), "z9hG4bKxy2");
    assert_eq!(c.call_id("h"), "xy3@h");
    let mut r = RandomIds;
    assert_ne!(r.tag(), r.tag());
    assert!(r.branch().starts_with("z9hG4bK"));
}

#[test]
fn secure_flag_needs_sips_and_tls() {
    let tls = LocalParty::new(
        Transport::Tls,
        Host::Domain("bridge.example.com".into()),
        Some(5061),
        Uri::parse("sips:bridge@bridge.example.com:5061").unwrap(),
    );
    let mut ids = CounterIds::new("t");
    let invite = UacInvite::new(
        "sips:1001@198.51.100.7:5061".parse().unwrap(),
        na("<sips:bridge@pbx.example.com>"),
        na("<sips:1001@pbx.example.com>"),
    )
    .build(&tls, &mut ids)
    .unwrap();
    assert_eq!(invite.top_via().unwrap().transport, "TLS");
    let ok = answer(&invite, 200, "s", "<sips:1001@198.51.100.7:5061>", &[]);
    assert!(Dialog::uac(&invite, &ok, tls).unwrap().secure());
    assert!(!Dialog::uac(&invite, &ok, bridge()).unwrap().secure());
}

#[test]
fn overlapping_invites_491_and_500() {
    let (_, _, mut d) = caller_dialog(200);
    let mut ids = CounterIds::new("g");
    let ours = d.request(Method::Invite, &mut ids).unwrap();
    assert!(d.invite_pending());
    assert_eq!(
        d.request(Method::Invite, &mut ids),
        Err(DialogError::InvitePending)
    );
    let contact = "Contact: <sip:c@203.0.113.5>\r\n";
    // Glare: their re-INVITE while ours is in progress.
    let theirs = in_dialog("INVITE", 102, "caller-1", "b2b-1", contact);
    assert_eq!(
        d.on_request(&theirs),
        RequestDecision::Reject(Rejection::new(491, "Request Pending"))
    );
    assert_eq!(d.remote_seq(), Some(101));
    // Our INVITE gets its final (491 from them, say): theirs may come now.
    let resp = response_to(&ours, 491, None).unwrap().build().unwrap();
    assert_eq!(d.on_response(&resp), Ok(DialogState::Confirmed));
    assert!(!d.invite_pending());
    let theirs = in_dialog("INVITE", 103, "caller-1", "b2b-1", contact);
    assert!(matches!(
        d.on_request(&theirs),
        RequestDecision::Accept { .. }
    ));
    // A second one before we answered the first: 500 + Retry-After.
    let again = in_dialog("INVITE", 104, "caller-1", "b2b-1", contact);
    let RequestDecision::Reject(r) = d.on_request(&again) else {
        panic!("expected a rejection")
    };
    assert_eq!(r.status, 500);
    let secs = r.retry_after.unwrap();
    assert!(secs <= 10);
    let resp = r.response(&again).unwrap();
    assert_eq!(header(&resp, "Retry-After"), secs.to_string());
    // Non-INVITE requests are not affected.
    assert!(matches!(
        d.on_request(&in_dialog("INFO", 105, "caller-1", "b2b-1", "")),
        RequestDecision::Accept { .. }
    ));
    assert_eq!(
        d.request(Method::Invite, &mut ids),
        Err(DialogError::InvitePending)
    );
}
