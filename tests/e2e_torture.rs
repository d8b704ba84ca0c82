//! End to end: every RFC 4475 torture message sent over UDP to the running
//! binary, judged by `tests/fixtures/rfc4475/manifest.json`; then garbage,
//! truncated messages and a flood of maximum-size datagrams. After each, the
//! service must still answer OPTIONS.
//!
//! Responses go where RFC 3261 §18.2.2 says: the top Via's sent-by port (5060
//! when none) at the source address (`received`), or the source port with
//! `rport`. So besides the sending socket, the test listens on 127.0.0.1 at
//! every port the messages' Vias name, and attributes what arrives by Call-ID.
//! (`./scripts/test` runs the suite in a loopback-only network namespace, so
//! port 5060 is free.)

mod peers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use peers::{Service, SipResponse, parse_response, sip_options};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");

struct Torture {
    file: String,
    rule: Value,
    bytes: Vec<u8>,
    call_id: Option<String>,
}

fn header_value(bytes: &[u8], names: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        names
            .iter()
            .any(|n| name.trim().eq_ignore_ascii_case(n))
            .then(|| value.trim().to_owned())
    })
}

fn corpus() -> Vec<Torture> {
    let text = std::fs::read_to_string(format!("{DIR}/manifest.json")).expect("manifest");
    let manifest: Value = serde_json::from_str(&text).expect("manifest json");
    manifest["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let file = m["file"].as_str().unwrap().to_owned();
            let bytes = std::fs::read(format!("{DIR}/{file}")).expect("fixture");
            let call_id = header_value(&bytes, &["call-id", "i"]);
            Torture {
                file,
                rule: m.clone(),
                bytes,
                call_id,
            }
        })
        .collect()
}

/// The ports at which responses may arrive: every Via sent-by port, 5060.
fn via_ports(corpus: &[Torture]) -> BTreeSet<u16> {
    let mut ports = BTreeSet::from([5060]);
    for t in corpus {
        if let Some(via) = header_value(&t.bytes, &["via", "v"]) {
            let sent_by = via.split(';').next().unwrap_or("");
            if let Some(port) = sent_by
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// Binds catchers and forwards every datagram they receive to one channel.
fn catchers(ports: &BTreeSet<u16>, sender: &UdpSocket) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    let mut socks = vec![sender.try_clone().unwrap()];
    for port in ports {
        let sock = UdpSocket::bind(("127.0.0.1", *port)).unwrap_or_else(|e| {
            panic!(
                "cannot listen on 127.0.0.1:{port} to catch responses ({e}); run the suite \
                 with ./scripts/test (a loopback-only network namespace) or free that port"
            )
        });
        socks.push(sock);
    }
    for sock in socks {
        let tx = tx.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        // Stop once the test dropped the receiver.
                        if tx.send(Vec::new()).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    rx
}

fn judge(t: &Torture, got: &[SipResponse]) -> Result<(), String> {
    let rule = &t.rule;
    let class = rule["class"].as_str().unwrap_or("");
    let finals: Vec<u16> = got
        .iter()
        .filter(|r| r.status >= 200)
        .map(|r| r.status)
        .collect();
    let codes = || format!("{:?}", got.iter().map(|r| r.status).collect::<Vec<_>>());
    if rule["kind"] == "response" {
        return if got.is_empty() {
            Ok(())
        } else {
            Err(format!("a response must get nothing back, got {}", codes()))
        };
    }
    if let Some(m) = rule["never_answer_method"].as_str()
        && got.iter().any(|r| {
            r.cseq_method
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(m))
        })
    {
        return Err(format!("answered the trailing {m} octets: {}", codes()));
    }
    let dup = rule.get("txn_dup_of").is_some();
    match class {
        "valid" => match finals.first() {
            Some(&c) if ![400, 500, 505].contains(&c) => Ok(()),
            Some(&c) => Err(format!("valid request refused with {c}")),
            None if dup => Ok(()),
            None => Err(format!("no final response (got {})", codes())),
        },
        "invalid" => {
            let accept: Vec<u64> = rule["accept"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let liberal = rule["liberal"] == true;
            for &c in &finals {
                let ok = accept.contains(&u64::from(c)) || (liberal && c != 500);
                if !ok {
                    return Err(format!("invalid request answered {c} (accept {accept:?})"));
                }
            }
            Ok(())
        }
        "semantic" => match finals.first() {
            Some(500) => Err("500".into()),
            Some(_) => Ok(()),
            None if dup || rule["silence_ok"] == true => Ok(()),
            None => Err(format!("no final response (got {})", codes())),
        },
        other => Err(format!("unknown class {other}")),
    }
}

fn still_answers(svc: &mut Service, after: &str) {
    assert!(svc.alive(), "pbx-bridge died after {after}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = sip_options(svc.sip, Duration::from_millis(500)) {
            assert!(
                (200..500).contains(&r.status),
                "OPTIONS after {after}: {}",
                r.status
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pbx-bridge no longer answers OPTIONS after {after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_messages_over_udp_meet_the_manifest() {
    let mut svc = Service::start(&[]).await;
    let corpus = corpus();
    assert_eq!(corpus.len(), 49, "the 49 messages of RFC 4475");
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = catchers(&via_ports(&corpus), &sender);

    for t in &corpus {
        sender.send_to(&t.bytes, svc.sip).expect("send");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Collect: until every message that needs an answer has a final one,
    // then a grace period for unwanted answers; 5 s at most.
    let need: Vec<&Torture> = corpus
        .iter()
        .filter(|t| {
            t.rule["kind"] == "request"
                && t.rule.get("txn_dup_of").is_none()
                && (t.rule["class"] == "valid"
                    || (t.rule["class"] == "semantic" && t.rule["silence_ok"] != true))
        })
        .collect();
    let mut got: BTreeMap<String, Vec<SipResponse>> = BTreeMap::new();
    let mut stray: Vec<SipResponse> = Vec::new();
    let hard = Instant::now() + Duration::from_secs(5);
    let mut grace: Option<Instant> = None;
    while Instant::now() < hard && grace.is_none_or(|g| Instant::now() < g) {
        let Ok(d) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        if d.is_empty() {
            continue;
        }
        let Some(r) = parse_response(&d) else {
            continue;
        };
        let owner = corpus.iter().find(|t| {
            t.call_id.is_some() && t.call_id == r.call_id
                || r.call_id.as_deref().is_some_and(|c| {
                    c.starts_with(&format!("{}.", t.file.trim_end_matches(".dat")))
                })
        });
        match owner {
            Some(t) => got.entry(t.file.clone()).or_default().push(r),
            None => stray.push(r),
        }
        if grace.is_none()
            && need.iter().all(|t| {
                got.get(&t.file)
                    .is_some_and(|v| v.iter().any(|r| r.status >= 200))
            })
        {
            grace = Some(Instant::now() + Duration::from_millis(700));
        }
    }

    let mut failures = Vec::new();
    for t in &corpus {
        let responses = got.get(&t.file).map(Vec::as_slice).unwrap_or(&[]);
        eprintln!(
            "{:<15} {:<9} {:<8} -> {:?}",
            t.file,
            t.rule["class"].as_str().unwrap_or(""),
            t.rule["kind"].as_str().unwrap_or(""),
            responses.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        if let Err(why) = judge(t, responses) {
            failures.push(format!("{} ({}): {why}", t.file, t.rule["title"]));
        }
    }
    for r in &stray {
        // A response we cannot attribute: only a 400 to an unparseable
        // message is acceptable.
        if r.status != 400 {
            failures.push(format!(
                "unattributed response {}: {}",
                r.status,
                r.raw.lines().take(8).collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "RFC 4475 over UDP:\n{}",
        failures.join("\n")
    );
    drop(rx);
    still_answers(&mut svc, "the RFC 4475 messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncation_and_a_flood_of_huge_datagrams_leave_it_answering() {
    let mut svc = Service::start(&[]).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: SocketAddr = svc.sip;

    // Garbage and edge cases.
    let mut junk: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"\0\0\0\0".to_vec(),
        b"SIP/2.0".to_vec(),
        b"INVITE".to_vec(),
        b"INVITE sip:a@b SIP/2.0\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 1500],
        "OPTIONS sip:\u{1F600}@127.0.0.1 SIP/2.0\r\nVia: \u{0}\r\n\r\n"
            .as_bytes()
            .to_vec(),
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\nContent-Length: -1\r\n\r\n".to_vec(),
    ];
    // Pseudo-random bytes (a fixed LCG: the same every run).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1usize, 7, 64, 512, 1400, 4096, 9000] {
        let v = (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        junk.push(v);
    }
    // Every prefix step of a valid OPTIONS (and of a long INVITE).
    let opt = peers::options_request(to, sock.local_addr().unwrap(), "trunc-1");
    for cut in (1..opt.len()).step_by(7) {
        junk.push(opt.as_bytes()[..cut].to_vec());
    }
    let longreq = std::fs::read(format!("{DIR}/longreq.dat")).unwrap();
    for cut in (1..longreq.len()).step_by(97) {
        junk.push(longreq[..cut].to_vec());
    }
    for d in &junk {
        sock.send_to(d, to).expect("send junk");
    }
    still_answers(&mut svc, "garbage and truncated datagrams");

    // A flood of maximum-size datagrams (65,507 bytes, the most UDP over IPv4
    // carries): a header that claims a body, then a huge body; bounded in
    // count and time.
    let mut big = b"MESSAGE sip:flood@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKflood\r\n\
Max-Forwards: 70\r\nFrom: <sip:f@127.0.0.1>;tag=1\r\nTo: <sip:flood@127.0.0.1>\r\n\
Call-ID: flood\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
Content-Length: 65000\r\n\r\n"
        .to_vec();
    big.resize(65_507, b'x');
    let started = Instant::now();
    let mut sent = 0;
    while sent < 600 && started.elapsed() < Duration::from_secs(3) {
        // Alternate the valid-looking one with pure filler.
        let d: &[u8] = if sent % 2 == 0 { &big } else { &[b'y'; 65_507] };
        if sock.send_to(d, to).is_ok() {
            sent += 1;
        }
    }
    assert!(sent > 0, "could not send any 64 KiB datagram");
    still_answers(&mut svc, &format!("{sent} datagrams of 65,507 bytes"));
}
