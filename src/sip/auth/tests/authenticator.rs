//! The registrar's decision, end to end in simulated time: challenge →
//! client answer (printed and parsed back, as on the wire) → verify.

use std::time::Duration;

use proptest::prelude::*;

use super::super::algorithm::Algorithm;
use super::super::authenticator::{
    AuthOutcome, Authenticator, AuthenticatorConfig, FailReason, VerifyRequest, answer_challenge,
};
use super::super::header::{Challenge, Credentials, Qop};
use super::super::nonce::NonceIssuer;

const KEY: [u8; 32] = [42; 32];
const REALM: &str = "pbx.example.com";
const T0: u64 = 1_750_000_000;
const URI: &str = "sip:pbx.example.com";
const LIFETIME: u64 = 300;

fn auth() -> Authenticator {
    Authenticator::with_key(KEY, Duration::from_secs(LIFETIME))
}

/// What a phone sends after a challenge, through the wire format.
fn phone(ch: &Challenge, password: &str, nc: u32) -> Credentials {
    let c = answer_challenge(ch, "REGISTER", URI, "1001", password, "0a4f113b", nc).unwrap();
    Credentials::parse(&c.to_string()).unwrap()
}

fn verify(
    a: &mut Authenticator,
    c: &Credentials,
    secret: Option<&str>,
    allowed: &[Algorithm],
    now: u64,
) -> AuthOutcome {
    a.verify(&VerifyRequest {
        method: "REGISTER",
        credentials: c,
        realm: REALM,
        secret,
        allowed,
        request_uri: None,
        now,
    })
}

#[test]
fn challenges_follow_the_extension_order_and_share_a_nonce() {
    let a = auth();
    let algs = [Algorithm::Sha256, Algorithm::Sha512_256, Algorithm::Md5];
    let ch = a.challenges(REALM, &algs, T0, false);
    assert_eq!(
        ch.iter().map(|c| c.algorithm).collect::<Vec<_>>(),
        algs.to_vec()
    );
    assert!(
        ch.iter()
            .all(|c| c.nonce == ch[0].nonce && c.realm == REALM)
    );
    assert!(ch.iter().all(|c| c.qop == vec![Qop::Auth] && !c.stale));
    let printed: Vec<String> = ch.iter().map(ToString::to_string).collect();
    assert!(printed[0].contains("algorithm=SHA-256,"), "{}", printed[0]);
    assert!(printed[1].contains("algorithm=SHA-512-256,"));
    assert!(printed[2].contains("algorithm=MD5,"));
    // Default and repeats.
    let ch = a.challenges(REALM, &[], T0, true);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].algorithm, Algorithm::Md5);
    assert!(ch[0].stale && ch[0].to_string().contains("stale=true"));
    let ch = a.challenges(REALM, &[Algorithm::Md5, Algorithm::Md5], T0, false);
    assert_eq!(ch.len(), 1);
}

#[test]
fn right_password_ok_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let mut a = auth();
        let ch = &a.challenges(REALM, &[alg], T0, false)[0];
        let c = phone(ch, "s3cret", 1);
        assert_eq!(
            verify(&mut a, &c, Some("s3cret"), &[alg], T0 + 1),
            AuthOutcome::Ok,
            "{alg}"
        );
        let c2 = phone(ch, "s3cret", 2);
        assert_eq!(
            verify(&mut a, &c2, Some("s3cret"), &[alg], T0 + 2),
            AuthOutcome::Ok
        );
    }
}

#[test]
fn answers_without_qop_are_accepted_unless_required() {
    let mut a = auth();
    let mut ch = a.challenges(REALM, &[Algorithm::Md5], T0, false).remove(0);
    ch.qop.clear();
    let c = phone(&ch, "s3cret", 1);
    assert_eq!(c.qop, None);
    assert_eq!(
        verify(&mut a, &c, Some("s3cret"), &[Algorithm::Md5], T0),
        AuthOutcome::Ok
    );
    let mut strict = Authenticator::new(
        NonceIssuer::new(KEY, Duration::from_secs(LIFETIME)),
        AuthenticatorConfig {
            require_qop: true,
            ..AuthenticatorConfig::default()
        },
    );
    assert_eq!(
        verify(&mut strict, &c, Some("s3cret"), &[Algorithm::Md5], T0),
        AuthOutcome::Failed(FailReason::QopRequired)
    );
}

#[test]
fn specific_failure_reasons() {
    let mut a = auth();
    let md5 = [Algorithm::Md5];
    let ch = a.challenges(REALM, &md5, T0, false).remove(0);
    let good = phone(&ch, "s3cret", 1);

    let r = verify(&mut a, &phone(&ch, "wrong", 1), Some("s3cret"), &md5, T0);
    assert_eq!(
        r,
        AuthOutcome::Failed(FailReason::WrongResponse {
            username: "1001".into(),
            algorithm: Algorithm::Md5
        })
    );
    if let AuthOutcome::Failed(reason) = r {
        assert_eq!(reason.to_string(), "wrong password for user \"1001\" (MD5)");
    }

    assert_eq!(
        verify(&mut a, &good, None, &md5, T0),
        AuthOutcome::Failed(FailReason::UnknownUser {
            username: "1001".into()
        })
    );

    let mut other_realm = good.clone();
    other_realm.realm = "elsewhere".into();
    assert!(matches!(
        verify(&mut a, &other_realm, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::WrongRealm { .. })
    ));

    assert_eq!(
        verify(&mut a, &good, Some("s3cret"), &[Algorithm::Sha256], T0),
        AuthOutcome::Failed(FailReason::AlgorithmNotOffered {
            algorithm: Algorithm::Md5
        })
    );

    let mut forged = good.clone();
    forged.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093".into();
    assert_eq!(
        verify(&mut a, &forged, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::BadNonce)
    );

    // A nonce issued for another realm does not work here.
    let foreign = a.challenges("other.example.com", &md5, T0, false).remove(0);
    let mut c = answer_challenge(&foreign, "REGISTER", URI, "1001", "s3cret", "c", 1).unwrap();
    c.realm = REALM.into();
    assert_eq!(
        verify(&mut a, &c, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::BadNonce)
    );

    let mut auth_int = good.clone();
    auth_int.qop = Some(Qop::AuthInt);
    assert_eq!(
        verify(&mut a, &auth_int, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::UnsupportedQop { qop: Qop::AuthInt })
    );

    let mut uh = good.clone();
    uh.userhash = true;
    assert_eq!(
        verify(&mut a, &uh, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::UserhashUnsupported)
    );

    // Method is part of HA2: a REGISTER answer does not authorise an INVITE.
    let r = a.verify(&VerifyRequest {
        method: "INVITE",
        credentials: &good,
        realm: REALM,
        secret: Some("s3cret"),
        allowed: &md5,
        request_uri: None,
        now: T0,
    });
    assert!(matches!(
        r,
        AuthOutcome::Failed(FailReason::WrongResponse { .. })
    ));

    let r = a.verify(&VerifyRequest {
        method: "REGISTER",
        credentials: &good,
        realm: REALM,
        secret: Some("s3cret"),
        allowed: &md5,
        request_uri: Some("sip:other.example.com"),
        now: T0,
    });
    assert!(matches!(
        r,
        AuthOutcome::Failed(FailReason::UriMismatch { .. })
    ));

    // After all that, the genuine answer still works.
    assert_eq!(
        verify(&mut a, &good, Some("s3cret"), &md5, T0),
        AuthOutcome::Ok
    );
}

#[test]
fn sess_without_qop_is_malformed_not_a_panic() {
    let mut a = auth();
    let ch = a
        .challenges(REALM, &[Algorithm::Md5Sess], T0, false)
        .remove(0);
    let mut c = phone(&ch, "s3cret", 1);
    c.qop = None;
    c.cnonce = None;
    c.nc = None;
    assert!(matches!(
        verify(&mut a, &c, Some("s3cret"), &[Algorithm::Md5Sess], T0),
        AuthOutcome::Failed(FailReason::Malformed { .. })
    ));
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let mut a = auth();
    let md5 = [Algorithm::Md5];
    let ch = a.challenges(REALM, &md5, T0, false).remove(0);
    let later = T0 + LIFETIME + 1;
    assert_eq!(
        verify(
            &mut a,
            &phone(&ch, "s3cret", 1),
            Some("s3cret"),
            &md5,
            later
        ),
        AuthOutcome::Stale
    );
    assert!(matches!(
        verify(&mut a, &phone(&ch, "guess", 1), Some("s3cret"), &md5, later),
        AuthOutcome::Failed(FailReason::WrongResponse { .. })
    ));
    // The client retries transparently with the stale=true challenge.
    let fresh = a.challenges(REALM, &md5, later, true).remove(0);
    assert!(fresh.stale);
    assert_eq!(
        verify(
            &mut a,
            &phone(&fresh, "s3cret", 1),
            Some("s3cret"),
            &md5,
            later
        ),
        AuthOutcome::Ok
    );
}

#[test]
fn replayed_nonce_count_is_refused() {
    let mut a = auth();
    let md5 = [Algorithm::Md5];
    let ch = a.challenges(REALM, &md5, T0, false).remove(0);
    let c1 = phone(&ch, "s3cret", 1);
    assert_eq!(
        verify(&mut a, &c1, Some("s3cret"), &md5, T0),
        AuthOutcome::Ok
    );
    assert_eq!(
        verify(&mut a, &c1, Some("s3cret"), &md5, T0 + 5),
        AuthOutcome::Failed(FailReason::NonceCountReplay { nc: 1, last: 1 })
    );
    // A forged high nc (wrong response) does not burn the real phone's counts.
    let mut bogus = phone(&ch, "s3cret", 1000);
    bogus.response = "0".repeat(32);
    assert!(matches!(
        verify(&mut a, &bogus, Some("s3cret"), &md5, T0 + 6),
        AuthOutcome::Failed(FailReason::WrongResponse { .. })
    ));
    assert_eq!(
        verify(
            &mut a,
            &phone(&ch, "s3cret", 2),
            Some("s3cret"),
            &md5,
            T0 + 7
        ),
        AuthOutcome::Ok
    );
}

#[test]
fn opaque_is_sent_and_required_when_configured() {
    let mut a = Authenticator::new(
        NonceIssuer::new(KEY, Duration::from_secs(LIFETIME)),
        AuthenticatorConfig {
            opaque: Some("op-1".into()),
            ..AuthenticatorConfig::default()
        },
    );
    let md5 = [Algorithm::Md5];
    let ch = a.challenges(REALM, &md5, T0, false).remove(0);
    assert_eq!(ch.opaque.as_deref(), Some("op-1"));
    let c = phone(&ch, "s3cret", 1);
    assert_eq!(
        verify(&mut a, &c, Some("s3cret"), &md5, T0),
        AuthOutcome::Ok
    );
    let mut no_opaque = phone(&ch, "s3cret", 2);
    no_opaque.opaque = None;
    assert_eq!(
        verify(&mut a, &no_opaque, Some("s3cret"), &md5, T0),
        AuthOutcome::Failed(FailReason::OpaqueMismatch)
    );
}

/// RFC 7616 §3.9.1 through the verifier: the example's nonce is not ours,
/// so the verifier must call it forged, while the digest layer (tested in
/// `digest.rs`) reproduces the example's response.
#[test]
fn rfc7616_example_credentials_have_a_foreign_nonce() {
    let c = Credentials::parse(
        r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec""#,
    )
    .unwrap();
    let mut a = auth();
    let r = a.verify(&VerifyRequest {
        method: "GET",
        credentials: &c,
        realm: "http-auth@example.org",
        secret: Some("Circle of Life"),
        allowed: &[Algorithm::Md5],
        request_uri: None,
        now: T0,
    });
    assert_eq!(r, AuthOutcome::Failed(FailReason::BadNonce));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A wrong password never authenticates, whatever the algorithm, time
    /// or nonce count; the right one does while the nonce is fresh.
    #[test]
    fn wrong_password_never_ok(
        alg in prop::sample::select(Algorithm::ALL.to_vec()),
        secret in "[ -~]{1,16}",
        guess in "[ -~]{0,16}",
        nc in 1u32..,
        dt in 0u64..1000,
    ) {
        let mut a = auth();
        let ch = a.challenges(REALM, &[alg], T0, false).remove(0);
        let c = phone(&ch, &guess, nc);
        let r = verify(&mut a, &c, Some(&secret), &[alg], T0 + dt);
        if guess == secret {
            let want = if dt <= LIFETIME { AuthOutcome::Ok } else { AuthOutcome::Stale };
            prop_assert_eq!(r, want);
        } else {
            let wrong = matches!(r, AuthOutcome::Failed(FailReason::WrongResponse { .. }));
            prop_assert!(wrong, "{:?}", r);
        }
    }
}
