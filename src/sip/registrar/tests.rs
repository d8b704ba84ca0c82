//! The registrar core in simulated time: no sockets, the clock is a number.

use std::net::SocketAddr;

use bytes::Bytes;

use super::*;
use crate::sip::auth::{Challenge, answer_challenge};
use crate::sip::message::parse;
use crate::sip::registrar::ChangeCause;

const SECRET: &str = "right-password";

fn registrar() -> Registrar {
    let config = RegistrarConfig {
        realm: "127.0.0.1".into(),
        lockout: LockoutConfig {
            max_failures: 3,
            window: std::time::Duration::from_secs(60),
            lockout: std::time::Duration::from_secs(120),
            ..LockoutConfig::default()
        },
        ..RegistrarConfig::default()
    };
    Registrar::new(config, [7; 32])
}

fn lookup(user: &str) -> Option<Credential> {
    match user {
        "1001" => Some(Credential {
            secret: SECRET.into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            active: true,
        }),
        "1002" => Some(Credential {
            secret: SECRET.into(),
            algorithms: vec![],
            active: false,
        }),
        _ => None,
    }
}

fn src() -> SocketAddr {
    "127.0.0.1:5090".parse().unwrap()
}

fn register(user: &str, cseq: u32, extra: &str) -> SipMessage {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5090;rport;branch=z9hG4bK{cseq}x\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@127.0.0.1>;tag=f1\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: reg-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: test-phone/1.0\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    parse(Bytes::from(text)).unwrap()
}

fn challenges(resp: &Option<SipMessage>) -> Vec<Challenge> {
    let msg = resp.as_ref().unwrap();
    msg.headers("WWW-Authenticate")
        .map(|v| Challenge::parse(std::str::from_utf8(v).unwrap()).unwrap())
        .collect()
}

/// Registers `user` with `password`, answering the first challenge.
fn full_register(
    r: &mut Registrar,
    user: &str,
    password: &str,
    now: u64,
    contact_extra: &str,
) -> Handled {
    let first = r.handle(
        &register(user, 1, contact_extra),
        src(),
        Transport::Udp,
        now,
        lookup,
    );
    assert_eq!(first.status, 401);
    let ch = challenges(&first.response);
    let creds =
        answer_challenge(&ch[0], "REGISTER", "sip:127.0.0.1", user, password, "cn", 1).unwrap();
    let extra = format!("{contact_extra}Authorization: {creds}\r\n");
    r.handle(
        &register(user, 2, &extra),
        src(),
        Transport::Udp,
        now,
        lookup,
    )
}

#[test]
fn challenge_offers_the_extension_algorithms_in_order() {
    let mut r = registrar();
    let h = r.handle(
        &register("1001", 1, "Contact: <sip:1001@127.0.0.1:5090>\r\n"),
        src(),
        Transport::Udp,
        100,
        lookup,
    );
    assert_eq!(h.status, 401);
    let algs: Vec<_> = challenges(&h.response)
        .iter()
        .map(|c| c.algorithm)
        .collect();
    assert_eq!(algs, [Algorithm::Sha256, Algorithm::Md5]);
    // Unknown users get the default, so a 401 reveals nothing.
    let h = r.handle(&register("9999", 1, ""), src(), Transport::Udp, 100, lookup);
    let algs: Vec<_> = challenges(&h.response)
        .iter()
        .map(|c| c.algorithm)
        .collect();
    assert_eq!(algs, [Algorithm::Md5]);
}

#[test]
fn right_password_binds_and_wrong_password_never_does() {
    let mut r = registrar();
    let ok = full_register(
        &mut r,
        "1001",
        SECRET,
        100,
        "Contact: <sip:1001@127.0.0.1:5090>;expires=300\r\n",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.changes.len(), 1);
    let b = &r.bindings().of("1001")[0];
    assert_eq!(b.expires_at, 400);
    assert_eq!(b.user_agent.as_deref(), Some("test-phone/1.0"));
    let resp = ok.response.unwrap();
    assert!(
        std::str::from_utf8(resp.header("Contact").unwrap())
            .unwrap()
            .contains("expires=300")
    );

    let mut r = registrar();
    let bad = full_register(
        &mut r,
        "1001",
        "wrong",
        100,
        "Contact: <sip:1001@127.0.0.1:5090>\r\n",
    );
    assert_eq!(bad.status, 403);
    assert!(bad.auth_failure.unwrap().contains("wrong password"));
    assert!(r.bindings().is_empty());
    // Inactive and unknown extensions never register, whatever the password.
    let inactive = full_register(&mut r, "1002", SECRET, 100, "Contact: <sip:1002@h>\r\n");
    assert_eq!(inactive.status, 403);
    assert!(r.bindings().is_empty());
}

#[test]
fn expires_is_bounded_and_zero_unregisters() {
    let mut r = registrar();
    let brief = full_register(
        &mut r,
        "1001",
        SECRET,
        0,
        "Contact: <sip:1001@h:1>;expires=10\r\n",
    );
    assert_eq!(brief.status, 423);
    assert!(brief.response.unwrap().header("Min-Expires").is_some());
    let long = full_register(
        &mut r,
        "1001",
        SECRET,
        0,
        "Expires: 999999\r\nContact: <sip:1001@h:1>\r\n",
    );
    assert_eq!(long.status, 200);
    assert_eq!(r.bindings().of("1001")[0].expires_at, 3600);
    let gone = full_register(
        &mut r,
        "1001",
        SECRET,
        10,
        "Contact: <sip:1001@h:1>;expires=0\r\n",
    );
    assert_eq!(gone.status, 200);
    assert!(r.bindings().is_empty());
    full_register(&mut r, "1001", SECRET, 10, "Contact: <sip:1001@h:1>\r\n");
    let star = full_register(&mut r, "1001", SECRET, 20, "Expires: 0\r\nContact: *\r\n");
    assert_eq!(star.status, 200);
    assert!(r.bindings().is_empty());
    let bad_star = full_register(&mut r, "1001", SECRET, 20, "Contact: *\r\n");
    assert_eq!(bad_star.status, 400);
}

#[test]
fn reregistration_replaces_the_contact_and_bindings_expire() {
    let mut r = registrar();
    full_register(
        &mut r,
        "1001",
        SECRET,
        0,
        "Contact: <sip:1001@10.0.0.1:5060>;expires=60\r\n",
    );
    let h = full_register(
        &mut r,
        "1001",
        SECRET,
        5,
        "Contact: <sip:1001@10.0.0.2:5060>;expires=60\r\n",
    );
    assert_eq!(h.status, 200);
    let list = r.bindings().of("1001");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].contact, "sip:1001@10.0.0.2:5060");
    assert!(h.changes.iter().any(|c| c.cause == ChangeCause::Replaced));
    assert!(r.expire(64).is_empty());
    let expired = r.expire(65);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].cause, ChangeCause::Expired);
    assert!(r.bindings().is_empty());
}

#[test]
fn repeated_failures_lock_the_address_out() {
    let mut r = registrar();
    for _ in 0..3 {
        let h = full_register(&mut r, "1001", "guess", 100, "Contact: <sip:1001@h>\r\n");
        assert_eq!(h.status, 403);
    }
    // Now even the right password is refused, without a challenge.
    let h = r.handle(
        &register("1001", 9, "Contact: <sip:1001@h>\r\n"),
        src(),
        Transport::Udp,
        101,
        lookup,
    );
    assert_eq!(h.status, 403);
    assert!(h.auth_failure.unwrap().contains("locked out"));
    assert_eq!(r.lockouts(101).len(), 1);
    // After the lockout the right password works again.
    let h = full_register(
        &mut r,
        "1001",
        SECRET,
        100 + 121,
        "Contact: <sip:1001@h>\r\n",
    );
    assert_eq!(h.status, 200);
}

#[test]
fn credentials_of_another_user_cannot_register_this_extension() {
    let mut r = registrar();
    let first = r.handle(&register("1001", 1, ""), src(), Transport::Udp, 0, lookup);
    let ch = challenges(&first.response);
    let creds =
        answer_challenge(&ch[0], "REGISTER", "sip:127.0.0.1", "1003", SECRET, "c", 1).unwrap();
    let h = r.handle(
        &register(
            "1001",
            2,
            &format!("Contact: <sip:x@h>\r\nAuthorization: {creds}\r\n"),
        ),
        src(),
        Transport::Udp,
        0,
        lookup,
    );
    assert_eq!(h.status, 403);
    assert!(r.bindings().is_empty());
}

#[test]
fn query_without_contact_lists_bindings() {
    let mut r = registrar();
    full_register(
        &mut r,
        "1001",
        SECRET,
        0,
        "Contact: <sip:1001@h:9>;expires=120\r\n",
    );
    let h = full_register(&mut r, "1001", SECRET, 20, "");
    assert_eq!(h.status, 200);
    assert!(h.changes.is_empty());
    let resp = h.response.unwrap();
    let contact = std::str::from_utf8(resp.header("Contact").unwrap())
        .unwrap()
        .to_owned();
    assert_eq!(contact, "<sip:1001@h:9>;expires=100");
}
