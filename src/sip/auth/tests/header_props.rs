//! Generated round trips (print → parse gives the same value) and
//! robustness (no input makes the parsers panic).

use proptest::prelude::*;

use super::super::algorithm::Algorithm;
use super::super::header::{Challenge, Credentials, Qop};

/// Any text a quoted-string can carry: everything but control characters
/// (which printing drops by design), including `"`, `\`, commas and UTF-8.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,24}"
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

fn qop() -> impl Strategy<Value = Qop> {
    prop_oneof![Just(Qop::Auth), Just(Qop::AuthInt)]
}

const KNOWN: [&str; 14] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
    "domain",
    "stale",
    "digest",
];

fn extra_params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("x-[a-z0-9!#$%&'*+.^_`|~-]{0,8}", text()), 0..4).prop_map(|v| {
        let mut seen = Vec::new();
        v.into_iter()
            .filter(|(n, _)| {
                let lower = n.to_ascii_lowercase();
                let fresh = !KNOWN.contains(&lower.as_str()) && !seen.contains(&lower);
                seen.push(lower);
                fresh
            })
            .collect()
    })
}

prop_compose! {
    fn credentials()(
        username in text(), realm in text(), nonce in text(), uri in text(),
        response in text(), algorithm in algorithm(), opaque in prop::option::of(text()),
        qop in prop::option::of((qop(), text(), any::<u32>())),
        userhash in any::<bool>(), params in extra_params(),
    ) -> Credentials {
        Credentials {
            username, realm, nonce, uri, response, algorithm,
            cnonce: qop.as_ref().map(|q| q.1.clone()),
            opaque,
            qop: qop.as_ref().map(|q| q.0),
            nc: qop.as_ref().map(|q| q.2),
            userhash, params,
        }
    }
}

prop_compose! {
    fn challenge()(
        realm in text(), domain in prop::option::of(text()), nonce in text(),
        opaque in prop::option::of(text()), stale in any::<bool>(), algorithm in algorithm(),
        qop in prop::sample::subsequence(vec![Qop::Auth, Qop::AuthInt], 0..=2),
        userhash in any::<bool>(), params in extra_params(),
    ) -> Challenge {
        Challenge { realm, domain, nonce, opaque, stale, algorithm, qop, userhash, params }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn credentials_round_trip(c in credentials()) {
        let printed = c.to_string();
        prop_assert!(!printed.contains('\r') && !printed.contains('\n'));
        prop_assert_eq!(Credentials::parse(&printed), Ok(c));
    }

    #[test]
    fn challenge_round_trip(c in challenge()) {
        let printed = c.to_string();
        prop_assert_eq!(Challenge::parse(&printed), Ok(c));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,200}") {
        let _ = Credentials::parse(&s);
        let _ = Challenge::parse(&s);
    }

    #[test]
    fn digest_like_strings_never_panic(
        parts in prop::collection::vec(
            prop_oneof![
                Just("Digest ".to_owned()), Just("=".to_owned()), Just(",".to_owned()),
                Just("\"".to_owned()), Just("\\".to_owned()), Just(" ".to_owned()),
                Just("\r\n ".to_owned()), Just("ü".to_owned()),
                prop::sample::select(KNOWN.to_vec()).prop_map(str::to_owned),
                "[a-zA-Z0-9-]{1,6}",
            ],
            0..40,
        )
    ) {
        let s: String = parts.concat();
        let _ = Credentials::parse(&s);
        let _ = Challenge::parse(&s);
        // Whatever parses prints to something that parses to the same.
        if let Ok(c) = Credentials::parse(&s) {
            prop_assert_eq!(Credentials::parse(&c.to_string()), Ok(c));
        }
        if let Ok(c) = Challenge::parse(&s) {
            let again = Challenge::parse(&c.to_string());
            prop_assert_eq!(again, Ok(c));
        }
    }
}
