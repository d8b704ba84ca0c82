//! The registration client in simulated time: a scripted registrar answers
//! each REGISTER; scenarios here, a property over random registrars in
//! [`props`].

mod props;

use std::time::{Duration, Instant};

use super::*;
use crate::sip::auth::{Algorithm, Challenge, Credentials};
use crate::sip::dialog::LocalParty;
use crate::sip::message::{Host, SipMessage, response_to};
use crate::sip::transaction::Transport;

pub(super) const SECRET: &str = "trunk-secret";

pub(super) fn config() -> RegistrationConfig {
    RegistrationConfig {
        registrar: "sip:carrier.example:5070".parse().unwrap(),
        aor: "sip:acct@carrier.example".parse().unwrap(),
        contact: "sip:acct@192.0.2.10:5060".parse().unwrap(),
        local: LocalParty::new(
            Transport::Udp,
            Host::Ipv4("192.0.2.10".parse().unwrap()),
            Some(5060),
            "sip:acct@192.0.2.10:5060".parse().unwrap(),
        ),
        username: "acct".into(),
        password: SECRET.into(),
        expires: 600,
    }
}

/// Drains the outputs: the REGISTERs sent and the attempts ended.
pub(super) fn drain(c: &mut RegistrationClient) -> (Vec<SipMessage>, Vec<AttemptResult>) {
    let (mut sent, mut ended) = (Vec::new(), Vec::new());
    while let Some(o) = c.poll_output() {
        match o {
            Output::Send(r) => sent.push(r),
            Output::Attempt(a) => ended.push(a),
        }
    }
    (sent, ended)
}

pub(super) fn answer(req: &SipMessage, status: u16, headers: &[(&str, String)]) -> SipMessage {
    let mut b = response_to(req, status, None).unwrap().to_tag("srv");
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.build().unwrap()
}

pub(super) fn challenge(nonce: &str, stale: bool, algorithm: Algorithm) -> (&'static str, String) {
    let mut c = Challenge::new("carrier", nonce, algorithm);
    c.stale = stale;
    ("WWW-Authenticate", c.to_string())
}

pub(super) fn credentials(req: &SipMessage) -> Option<Credentials> {
    req.header("Authorization")
        .map(|v| Credentials::parse(std::str::from_utf8(v).unwrap()).unwrap())
}

fn header(req: &SipMessage, name: &str) -> String {
    String::from_utf8_lossy(req.header(name).unwrap()).into_owned()
}

/// Ticks until the next REGISTER is sent; returns it and when.
fn next_send(c: &mut RegistrationClient, now: &mut Instant) -> SipMessage {
    for _ in 0..10 {
        let at = c.poll_timeout().expect("something scheduled");
        *now = (*now).max(at);
        c.on_tick(*now);
        if let (mut sent, _) = drain(c)
            && let Some(r) = sent.pop()
        {
            return r;
        }
    }
    panic!("no REGISTER sent");
}

#[test]
fn challenge_answered_then_registered_and_refreshed_before_expiry() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = RegistrationClient::new(config(), 1, now);
    let first = next_send(&mut c, &mut now);
    assert_eq!(now, t0);
    assert_eq!(header(&first, "Expires"), "600");
    assert_eq!(header(&first, "To"), "<sip:acct@carrier.example>");
    assert!(header(&first, "Via").contains(";rport"));
    assert!(credentials(&first).is_none());
    assert_eq!(c.status().state, RegState::Registering);

    c.on_response(
        &answer(&first, 401, &[challenge("n1", false, Algorithm::Sha256)]),
        now,
    );
    let (sent, ended) = drain(&mut c);
    assert!(ended.is_empty());
    let second = &sent[0];
    let cred = credentials(second).expect("Authorization");
    assert_eq!(cred.algorithm, Algorithm::Sha256);
    assert_eq!(cred.uri, "sip:carrier.example:5070");
    assert_eq!(cred.nc, Some(1));
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    // The registrar checks the digest as a verifier would.
    let expected = crate::sip::auth::compute_response(&crate::sip::auth::DigestInput {
        algorithm: Algorithm::Sha256,
        username: "acct",
        realm: "carrier",
        password: SECRET,
        method: "REGISTER",
        uri: &cred.uri,
        nonce: "n1",
        qop: Some(crate::sip::auth::QopParams {
            qop: crate::sip::auth::Qop::Auth,
            nc: 1,
            cnonce: cred.cnonce.as_deref().unwrap(),
        }),
    })
    .unwrap();
    assert_eq!(cred.response, expected);

    let ok = answer(
        second,
        200,
        &[(
            "Contact",
            "<sip:acct@192.0.2.10:5060>;expires=120".to_owned(),
        )],
    );
    c.on_response(&ok, now);
    assert_eq!(drain(&mut c).1, vec![AttemptResult::Registered]);
    assert_eq!(c.status().state, RegState::Registered);
    assert_eq!(c.status().expires_at, Some(now + Duration::from_secs(120)));
    let refresh = next_send(&mut c, &mut now);
    assert_eq!(now - t0, Duration::from_secs(90));
    // The refresh reuses the nonce with the next count.
    let cred = credentials(&refresh).expect("pre-emptive credentials");
    assert_eq!((cred.nonce.as_str(), cred.nc), ("n1", Some(2)));
    assert_eq!(c.status().state, RegState::Registered);
}

#[test]
fn a_second_challenge_is_auth_failed_and_retried_slowly() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 2, now);
    let r1 = next_send(&mut c, &mut now);
    c.on_response(
        &answer(&r1, 401, &[challenge("a", false, Algorithm::Md5)]),
        now,
    );
    let r2 = drain(&mut c).0.remove(0);
    c.on_response(
        &answer(&r2, 401, &[challenge("b", false, Algorithm::Md5)]),
        now,
    );
    let (sent, ended) = drain(&mut c);
    assert!(sent.is_empty());
    assert_eq!(ended, vec![AttemptResult::AuthFailed]);
    assert_eq!(c.status().state, RegState::AuthFailed);
    assert!(c.status().next_attempt_at.unwrap() - now >= AUTH_FAILED_MIN);
}

#[test]
fn stale_nonces_are_answered_again_but_not_forever() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 3, now);
    let mut r = next_send(&mut c, &mut now);
    c.on_response(
        &answer(&r, 401, &[challenge("s0", false, Algorithm::Md5)]),
        now,
    );
    for n in 1..=2 {
        r = drain(&mut c).0.remove(0);
        let ch = challenge(&format!("s{n}"), true, Algorithm::Md5);
        c.on_response(&answer(&r, 401, &[ch]), now);
    }
    r = drain(&mut c).0.remove(0);
    c.on_response(
        &answer(&r, 401, &[challenge("s3", true, Algorithm::Md5)]),
        now,
    );
    assert_eq!(drain(&mut c).1, vec![AttemptResult::AuthFailed]);
}

#[test]
fn forbidden_is_auth_failed() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 4, now);
    let r = next_send(&mut c, &mut now);
    c.on_response(&answer(&r, 403, &[]), now);
    assert_eq!(drain(&mut c).1, vec![AttemptResult::AuthFailed]);
    assert_eq!(c.status().state, RegState::AuthFailed);
    assert_eq!(c.status().last_status, Some(403));
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 5, now);
    let r = next_send(&mut c, &mut now);
    c.on_response(&answer(&r, 423, &[("Min-Expires", "1800".into())]), now);
    let r2 = drain(&mut c).0.remove(0);
    assert_eq!(header(&r2, "Expires"), "1800");
    c.on_response(&answer(&r2, 200, &[("Expires", "1800".into())]), now);
    assert_eq!(c.status().state, RegState::Registered);
}

#[test]
fn server_errors_back_off_and_a_failed_refresh_keeps_the_binding_until_expiry() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = RegistrationClient::new(config(), 6, now);
    let r = next_send(&mut c, &mut now);
    c.on_response(&answer(&r, 200, &[("Expires", "60".into())]), now);
    let refresh = next_send(&mut c, &mut now);
    assert_eq!(now - t0, Duration::from_secs(30));
    c.on_response(&answer(&refresh, 500, &[]), now);
    assert_eq!(drain(&mut c).1, vec![AttemptResult::ServerError]);
    assert_eq!(c.status().state, RegState::Registered);
    assert_eq!(
        c.status().last_error.as_deref(),
        Some("500 Server Internal Error")
    );
    let retry = next_send(&mut c, &mut now);
    let waited = now - t0 - Duration::from_secs(30);
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_millis(6250));
    c.on_failure(Failure::Timeout, now);
    assert_eq!(drain(&mut c).1, vec![AttemptResult::Timeout]);
    let again = next_send(&mut c, &mut now);
    // The previous REGISTER's late answer (another CSeq) is ignored.
    c.on_response(&answer(&retry, 200, &[]), now);
    assert!(c.in_flight());
    c.on_response(&answer(&again, 200, &[]), now);
    assert_eq!(c.status().state, RegState::Registered);
    assert_eq!(c.status().last_error, None);
}

#[test]
fn expiry_without_refresh_is_shown() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = RegistrationClient::new(config(), 7, now);
    let r = next_send(&mut c, &mut now);
    c.on_response(&answer(&r, 200, &[("Expires", "10".into())]), now);
    let refresh = next_send(&mut c, &mut now);
    c.on_response(&answer(&refresh, 503, &[("Retry-After", "60".into())]), now);
    assert!(c.status().next_attempt_at.unwrap() - now >= Duration::from_secs(60));
    now = c.poll_timeout().unwrap();
    c.on_tick(now);
    assert_eq!(now - t0, Duration::from_secs(10));
    assert_eq!(c.status().state, RegState::Failed);
}

#[test]
fn unregister_sends_expires_zero_once_then_is_done() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 8, now);
    let r = next_send(&mut c, &mut now);
    c.on_response(
        &answer(&r, 401, &[challenge("u", false, Algorithm::Md5)]),
        now,
    );
    let r = drain(&mut c).0.remove(0);
    c.on_response(&answer(&r, 200, &[]), now);
    c.unregister(now);
    let (sent, _) = drain(&mut c);
    assert_eq!(sent.len(), 1);
    assert_eq!(header(&sent[0], "Expires"), "0");
    assert!(credentials(&sent[0]).is_some());
    c.on_response(&answer(&sent[0], 200, &[]), now);
    assert!(c.is_done());
    assert_eq!(c.status().state, RegState::Unregistered);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn unregister_before_any_binding_sends_nothing() {
    let now = Instant::now();
    let mut c = RegistrationClient::new(config(), 9, now);
    c.unregister(now);
    c.on_tick(now);
    assert!(drain(&mut c).0.is_empty());
    assert!(c.is_done());
}

#[test]
fn unregister_during_a_registration_waits_for_it() {
    let mut now = Instant::now();
    let mut c = RegistrationClient::new(config(), 10, now);
    let r = next_send(&mut c, &mut now);
    c.unregister(now);
    assert!(drain(&mut c).0.is_empty());
    c.on_response(&answer(&r, 200, &[]), now);
    let (sent, _) = drain(&mut c);
    assert_eq!(header(&sent[0], "Expires"), "0");
}
