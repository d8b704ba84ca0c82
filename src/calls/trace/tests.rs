use super::*;

const P1: &str = "20260101000001";
const P2: &str = "20260101000002";
const P3: &str = "20260101000003";

fn peer() -> SocketAddr {
    "192.0.2.7:5060".parse().unwrap()
}

fn invite(n: usize) -> Vec<u8> {
    format!(
        "INVITE sip:100@bridge SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK{n}\r\n\
         Call-ID: abc@192.0.2.7\r\nCSeq: {n} INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn msg(n: usize) -> TracedMessage {
    traced(Utc::now(), TraceDirection::In, peer(), "udp", &invite(n))
}

fn cseqs(traces: &SipTraces, p: &str) -> Vec<usize> {
    traces
        .get(p)
        .unwrap()
        .iter()
        .map(|m| {
            let line = m.message.lines().find(|l| l.starts_with("CSeq")).unwrap();
            line[6..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn parses_first_line_call_id_and_direction() {
    let traces = SipTraces::new(10, 10, Duration::from_secs(60));
    traces.record(P1, TraceDirection::In, peer(), "udp", &invite(1));
    traces.record(
        P1,
        TraceDirection::Out,
        peer(),
        "tcp",
        b"SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP x\r\ni:  compact-id@host \r\n\r\n",
    );
    let got = traces.get(P1).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].first_line, "INVITE sip:100@bridge SIP/2.0");
    assert_eq!(got[0].call_id, "abc@192.0.2.7");
    assert_eq!(got[0].peer, "192.0.2.7:5060");
    assert_eq!(got[0].transport, "udp");
    assert_eq!(got[0].direction, TraceDirection::In);
    assert_eq!(got[1].first_line, "SIP/2.0 180 Ringing");
    assert_eq!(got[1].call_id, "compact-id@host", "compact form, trimmed");
    assert_eq!(got[1].direction, TraceDirection::Out);
    assert!(traces.get(P2).is_none());
}

#[test]
fn call_id_scan_stops_at_the_body_and_skips_folded_lines() {
    assert_eq!(
        call_id(b"BYE x SIP/2.0\r\nSubject: a\r\n i: folded\r\nCALL-ID:  x1 \r\n\r\ni: body"),
        "x1"
    );
    assert_eq!(
        call_id(b"BYE x SIP/2.0\r\nFrom: a\r\n\r\nCall-ID: in-body"),
        ""
    );
    assert_eq!(call_id(b"BYE x SIP/2.0\nCall-ID: lf-only\n\n"), "lf-only");
    assert_eq!(call_id(b""), "");
    assert_eq!(call_id(b"\xff\xfe garbage"), "");
}

#[test]
fn long_and_binary_messages_are_cut() {
    let mut big = b"MESSAGE sip:x SIP/2.0\r\nCall-ID: big\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40_000));
    let m = traced(Utc::now(), TraceDirection::In, peer(), "tcp", &big);
    assert!(
        m.message.len() < MAX_MESSAGE_BYTES + 64,
        "{}",
        m.message.len()
    );
    assert!(
        m.message
            .ends_with(&format!("[truncated: {} bytes in all]", big.len()))
    );
    assert_eq!(m.call_id, "big");

    let line = vec![b'x'; 5000];
    let m = traced(Utc::now(), TraceDirection::In, peer(), "udp", &line);
    assert_eq!(m.first_line.len(), MAX_FIRST_LINE);

    let m = traced(
        Utc::now(),
        TraceDirection::In,
        peer(),
        "udp",
        b"\xff\xfe\r\n",
    );
    assert_eq!(m.first_line, "\u{fffd}\u{fffd}");
    assert_eq!(cut("ééé", 3), "é");
}

#[test]
fn a_call_keeps_its_first_and_last_messages() {
    let traces = SipTraces::new(5, 10, Duration::from_secs(60));
    for n in 1..=12 {
        traces.record(P1, TraceDirection::In, peer(), "udp", &invite(n));
    }
    assert_eq!(cseqs(&traces, P1), [1, 2, 3, 11, 12]);
    let s = traces.snapshot(P1).unwrap();
    assert_eq!(s.dropped, 7);
    assert!(!s.ended);

    let one = SipTraces::new(1, 10, Duration::from_secs(60));
    for n in 1..=3 {
        one.record(P1, TraceDirection::In, peer(), "udp", &invite(n));
    }
    assert_eq!(cseqs(&one, P1), [1]);
    assert_eq!(one.snapshot(P1).unwrap().dropped, 2);

    let none = SipTraces::new(0, 10, Duration::from_secs(60));
    none.record(P1, TraceDirection::In, peer(), "udp", &invite(1));
    assert_eq!(none.get(P1).unwrap().len(), 0);
    assert_eq!(none.snapshot(P1).unwrap().dropped, 1);
}

#[test]
fn ended_traces_expire_after_keep_for() {
    let traces = SipTraces::new(10, 10, Duration::from_secs(60));
    let t0 = Instant::now();
    traces.record_at(P1, msg(1), t0);
    traces.end_at(P1, t0 + Duration::from_secs(1));
    // A retransmission after the end still lands, without extending it.
    traces.record_at(P1, msg(2), t0 + Duration::from_secs(30));
    traces.end_at(P1, t0 + Duration::from_secs(40));
    let s = traces
        .snapshot_at(P1, t0 + Duration::from_secs(60))
        .unwrap();
    assert!(s.ended);
    assert_eq!(s.messages.len(), 2);
    assert!(
        traces
            .snapshot_at(P1, t0 + Duration::from_secs(61))
            .is_none()
    );
    // Live traces never expire by time.
    traces.record_at(P2, msg(1), t0);
    assert!(
        traces
            .snapshot_at(P2, t0 + Duration::from_secs(3600))
            .is_some()
    );
    // Ending an unknown call is harmless.
    traces.end_at(P3, t0);
    assert!(traces.snapshot_at(P3, t0).is_none());
}

#[test]
fn at_most_keep_ended_calls_oldest_evicted() {
    let traces = SipTraces::new(10, 2, Duration::from_secs(3600));
    let t0 = Instant::now();
    for (i, p) in [P1, P2, P3].iter().enumerate() {
        traces.record_at(p, msg(1), t0);
        traces.end_at(p, t0 + Duration::from_secs(i as u64));
    }
    assert!(traces.snapshot_at(P1, t0).is_none(), "oldest ended evicted");
    assert!(traces.snapshot_at(P2, t0).is_some());
    assert!(traces.snapshot_at(P3, t0).is_some());
}

#[test]
fn byte_budget_evicts_ended_traces_first() {
    let one = msg(1).weight();
    let traces = SipTraces::new(10, 100, Duration::from_secs(3600)).with_max_bytes(one * 3);
    let t0 = Instant::now();
    traces.record_at(P1, msg(1), t0);
    traces.record_at(P1, msg(2), t0);
    traces.end_at(P1, t0);
    traces.record_at(P2, msg(1), t0);
    assert!(traces.snapshot_at(P1, t0).is_some(), "within budget");
    traces.record_at(P2, msg(2), t0);
    assert!(
        traces.snapshot_at(P1, t0).is_none(),
        "over budget: ended dropped"
    );
    assert_eq!(traces.get(P2).unwrap().len(), 2, "live kept");
}

#[test]
fn live_traces_are_capped_idlest_first() {
    let traces = SipTraces::new(10, 0, Duration::from_secs(60));
    let t0 = Instant::now();
    for i in 0..MIN_LIVE_CAP {
        let p = format!("20260101{:06}", i + 1);
        traces.record_at(&p, msg(1), t0 + Duration::from_millis(i as u64));
    }
    traces.record_at("20260101000001", msg(2), t0 + Duration::from_secs(10));
    traces.record_at(P3.replace("000003", "999999").as_str(), msg(1), t0);
    assert!(
        traces.snapshot_at("20260101000001", t0).is_some(),
        "recently active"
    );
    assert!(
        traces.snapshot_at("20260101000002", t0).is_none(),
        "idlest dropped"
    );
    assert!(traces.snapshot_at("20260101999999", t0).is_some());
}

#[test]
fn serializes_directions_in_snake_case() {
    let v = serde_json::to_value(msg(1)).unwrap();
    assert_eq!(v["direction"], "in");
    assert_eq!(v["transport"], "udp");
}
