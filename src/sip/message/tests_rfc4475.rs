//! The RFC 4475 torture messages through `parse` and `inspect`, checked
//! against `tests/fixtures/rfc4475/manifest.json`.

use bytes::Bytes;
use serde_json::Value;

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");

fn load(file: &str) -> Bytes {
    let path = format!("{DIR}/{file}");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{DIR}/manifest.json")).expect("manifest");
    let v: Value = serde_json::from_str(&text).expect("manifest json");
    v["messages"].as_array().expect("messages").clone()
}

fn policy() -> Policy {
    Policy {
        supported: vec!["100rel".into(), "path".into(), "outbound".into()],
        ..Policy::default()
    }
}

/// The status of an `Inbound`, `None` for silence, `Some(0)` for
/// "processed" (the application will answer).
fn outcome(i: &Inbound) -> Option<u16> {
    match i {
        Inbound::Request(_) | Inbound::Response(_) => Some(0),
        Inbound::Reject { rejection, .. } => Some(rejection.status),
        Inbound::Drop(_) => None,
    }
}

#[test]
fn every_message_meets_the_manifest() {
    let msgs = manifest();
    assert_eq!(msgs.len(), 49);
    let mut failures = Vec::new();
    for m in &msgs {
        let file = m["file"].as_str().expect("file");
        let class = m["class"].as_str().expect("class");
        let kind = m["kind"].as_str().expect("kind");
        let bytes = load(file);
        let verdict = inspect(bytes.clone(), &policy());
        let out = outcome(&verdict);
        let silence_ok = m["silence_ok"].as_bool().unwrap_or(false);
        let liberal = m["liberal"].as_bool().unwrap_or(false);
        let accept: Vec<u16> = m["accept"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u16)
                    .collect()
            })
            .unwrap_or_default();
        let ok = match (kind, class) {
            ("response", _) => matches!(verdict, Inbound::Response(_) | Inbound::Drop(_)),
            (_, "valid") => matches!(out, Some(s) if ![400, 500, 505].contains(&s)),
            (_, "invalid") => match out {
                None => silence_ok,
                Some(0) => liberal,
                Some(s) => accept.contains(&s) || (liberal && s != 500),
            },
            (_, "semantic") => match out {
                None => silence_ok,
                Some(s) => s != 500,
            },
            _ => false,
        };
        if !ok {
            failures.push(format!("{file} ({class}): {verdict:?}"));
        }
        // A Reject carries a response that parses and echoes the request.
        if let Inbound::Reject { response, .. } = &verdict {
            let r = parse(response.clone()).expect("error response parses");
            assert!(r.is_response());
            assert!(
                r.to().is_err() || r.to().is_ok_and(|t| t.tag().is_some()),
                "{file}: To tag"
            );
        }
        // Lossless: a parsed message serializes back to its bytes.
        if let Ok(msg) = parse(bytes.clone()) {
            let out = msg.to_bytes();
            assert!(bytes.starts_with(&out), "{file}: not lossless");
        }
    }
    assert!(
        failures.is_empty(),
        "manifest failures:\n{}",
        failures.join("\n")
    );
}

fn request(file: &str) -> SipMessage {
    parse(load(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn wsinv_typed_values() {
    let m = request("wsinv.dat");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.content_length().unwrap(), Some(150));
    assert_eq!(m.body().len(), 150);
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch.as_deref(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com".into()));
    assert_eq!(vias[2].branch.as_deref(), Some("z9hG4bK30239"));
    assert_eq!(m.header("s").map(|v| v.len()), Some(0));
    assert_eq!(m.header("subject").map(|v| v.len()), Some(0));
    assert!(
        m.header("newfangledheader")
            .is_some_and(|v| v.starts_with(b"newfangled value"))
    );
    assert_eq!(
        &m.header("UnknownHeaderWithUnusualValue").unwrap()[..],
        b";;,,;;,;"
    );
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("not a list")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].display_name.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(c[0].q(), Some(0.33));
    assert_eq!(c[0].params.value("newparam"), Some("newvalue"));
    assert!(c[0].params.contains("secondparam"));
    assert_eq!(m.route().unwrap().len(), 1);
    assert_eq!(m.media_type().as_deref(), Some("application/sdp"));
}

#[test]
fn specific_outcomes() {
    let p = policy();
    let status = |f: &str| outcome(&inspect(load(f), &p));
    assert_eq!(status("intmeth.dat"), Some(501));
    assert_eq!(status("esc02.dat"), Some(501));
    assert_eq!(status("unkscm.dat"), Some(416));
    assert_eq!(status("novelsc.dat"), Some(416));
    assert_eq!(status("badvers.dat"), Some(505));
    assert_eq!(status("multi01.dat"), Some(400));
    assert_eq!(status("mismatch01.dat"), Some(400));
    assert_eq!(status("scalar02.dat"), Some(400));
    assert_eq!(status("clerr.dat"), Some(400));
    assert_eq!(status("ncl.dat"), Some(400));
    assert_eq!(status("mcl01.dat"), Some(400));
    assert_eq!(status("ltgtruri.dat"), Some(400));
    assert_eq!(status("escruri.dat"), Some(400));
    assert_eq!(status("insuf.dat"), None);
    assert_eq!(status("bigcode.dat"), None);
    assert_eq!(status("scalarlg.dat"), None);
    for f in ["unreason.dat", "noreason.dat"] {
        assert_eq!(status(f), Some(0), "{f}");
    }
    match inspect(load("bext01.dat"), &p) {
        Inbound::Reject {
            rejection,
            response,
        } => {
            assert_eq!(rejection.status, 420);
            let r = parse(response).unwrap();
            assert_eq!(
                r.unsupported().unwrap(),
                vec!["nothingSupportsThis", "nothingSupportsThisEither"]
            );
        }
        other => panic!("bext01: {other:?}"),
    }
    let Inbound::Request(zeromf) = inspect(load("zeromf.dat"), &p) else {
        panic!("zeromf")
    };
    assert_eq!(zeromf.max_forwards().unwrap(), Some(0));
    assert!(!validate::too_many_hops(&zeromf)); // OPTIONS
    let mut invite = zeromf.clone();
    invite.set_header("Max-Forwards", "0").unwrap();
    let inv = request("inv2543.dat");
    assert_eq!(inv.max_forwards().unwrap(), None);
    assert!(!validate::too_many_hops(&inv));
}

#[test]
fn special_bodies_and_uris() {
    // Trailing octets after Content-Length are ignored on UDP.
    let m = request("dblreq.dat");
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    assert_eq!(
        m.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
    // No Content-Length on UDP: the rest of the datagram is the body.
    let m = request("inv2543.dat");
    assert!(m.body().starts_with(b"v=0"));
    // Binary multipart body kept exactly.
    let m = request("mpart01.dat");
    assert_eq!(Some(m.body().len() as u32), m.content_length().unwrap());
    // Escaped NULs and ; in user parts.
    let m = request("escnull.dat");
    let to = m.to().unwrap();
    assert_eq!(
        to.uri.as_sip().unwrap().user_unescaped().unwrap(),
        b"null-\0-null"
    );
    let m = request("semiuri.dat");
    let ruri = m.request_uri().unwrap();
    assert_eq!(
        ruri.as_sip().unwrap().user.as_deref(),
        Some("user;par=u%40example.net")
    );
    let m = request("esc01.dat");
    assert_eq!(
        m.to()
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .user_unescaped()
            .unwrap(),
        b"user"
    );
    // Five Vias with unknown transport.
    let m = request("transports.dat");
    let t: Vec<String> = m.vias().unwrap().into_iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // UTF-8 / raw reason phrase.
    let m = parse(load("unreason.dat")).unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(m.reason().unwrap().starts_with(b"= 2**3 * 5**2 "));
    // Registrar-relevant contacts.
    let m = request("cparam01.dat");
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert!(c[0].params.contains("unknownparam"));
    let m = request("regescrt.dat");
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert!(c[0].uri.as_sip().unwrap().headers.is_some());
    let m = request("unksm2.dat");
    assert_eq!(m.to().unwrap().uri.scheme(), "isbn");
}
