//! Thousands of random registrars in simulated time: each REGISTER gets a
//! random answer (or none) after a random delay. Whatever they do, the
//! client never has two REGISTERs in flight, answers at most a bounded
//! number of challenges per exchange, waits at least 5 s (60 s after an
//! auth failure) and ever longer between failed exchanges until a success,
//! and shows `registered` only while a binding it was granted lasts.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::sip::registration::schedule::BACKOFF_BASE;

/// What the registrar does with one REGISTER.
#[derive(Debug, Clone)]
enum Answer {
    Ok(u32),
    Challenge {
        stale: bool,
    },
    Forbidden,
    TooBrief(u32),
    ServerError(u16, Option<u32>),
    NotFound,
    /// No answer; the transaction layer reports a timeout after 32 s
    /// (`true`) or never (`false`: the client's own deadline).
    Lost(bool),
    TransportError,
}

fn answer_strategy() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => (1u32..4000).prop_map(Answer::Ok),
        3 => any::<bool>().prop_map(|stale| Answer::Challenge { stale }),
        1 => Just(Answer::Forbidden),
        1 => (1u32..5000).prop_map(Answer::TooBrief),
        2 => (prop::sample::select(vec![500u16, 503, 504, 600]), prop::option::of(0u32..900))
            .prop_map(|(s, r)| Answer::ServerError(s, r)),
        1 => Just(Answer::NotFound),
        1 => any::<bool>().prop_map(Answer::Lost),
        1 => Just(Answer::TransportError),
    ]
}

enum Delivery {
    Response(SipMessage),
    Failure(Failure),
}

fn respond(req: &SipMessage, answer: &Answer, nonce: u32) -> Option<Delivery> {
    let r = match answer {
        Answer::Ok(e) => super::answer(req, 200, &[("Expires", e.to_string())]),
        Answer::Challenge { stale } => super::answer(
            req,
            401,
            &[challenge(&format!("n{nonce}"), *stale, Algorithm::Md5)],
        ),
        Answer::Forbidden => super::answer(req, 403, &[]),
        Answer::TooBrief(m) => super::answer(req, 423, &[("Min-Expires", m.to_string())]),
        Answer::ServerError(s, retry) => {
            let h: Vec<_> = retry
                .iter()
                .map(|r| ("Retry-After", r.to_string()))
                .collect();
            super::answer(req, *s, &h)
        }
        Answer::NotFound => super::answer(req, 404, &[]),
        Answer::Lost(true) => return Some(Delivery::Failure(Failure::Timeout)),
        Answer::Lost(false) => return None,
        Answer::TransportError => return Some(Delivery::Failure(Failure::Transport)),
    };
    Some(Delivery::Response(r))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn no_storm_and_backoff_grows_until_success(
        answers in prop::collection::vec((answer_strategy(), 0u64..3000), 1..60),
        seed in any::<u64>(),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut c = RegistrationClient::new(config(), seed, now);
        // Deliveries the registrar scheduled, by time (then order).
        let mut queue: BTreeMap<(Instant, u32), Delivery> = BTreeMap::new();
        // REGISTERs neither answered nor given up on: CSeq -> sent at.
        let mut open: HashMap<u32, Instant> = HashMap::new();
        let mut answers = answers.into_iter().cycle();
        let mut n = 0u32;
        let mut last_end: Option<(Instant, AttemptResult)> = None;
        let mut last_gap: Option<Duration> = None;
        let mut sends_this_exchange = 0;
        let mut granted_until: Option<Instant> = None;
        for _ in 0..400 {
            let next_delivery = queue.keys().next().map(|k| k.0);
            let Some(at) = [c.poll_timeout(), next_delivery].into_iter().flatten().min() else {
                break;
            };
            prop_assert!(at >= now);
            now = at;
            if now - t0 > Duration::from_secs(48 * 3600) {
                break;
            }
            if next_delivery == Some(now) {
                let (key, d) = queue.pop_first().unwrap();
                match d {
                    Delivery::Response(r) => {
                        open.remove(&r.cseq().unwrap().seq);
                        c.on_response(&r, now);
                    }
                    Delivery::Failure(f) => {
                        open.remove(&key.1);
                        c.on_failure(f, now);
                    }
                }
            } else {
                c.on_tick(now);
            }
            let (sent, ended) = drain(&mut c);
            prop_assert!(sent.len() <= 1, "two REGISTERs in one step");
            for result in ended {
                if result == AttemptResult::Registered {
                    last_gap = None;
                    prop_assert_eq!(c.status().state, RegState::Registered);
                    granted_until = c.status().expires_at;
                }
                last_end = Some((now, result));
                sends_this_exchange = 0;
            }
            // A REGISTER the registrar never answered is given up on by
            // the client at its deadline; the transaction is over by then.
            open.retain(|_, sent| now - *sent < EXCHANGE_TIMEOUT);
            for req in sent {
                prop_assert!(open.is_empty(), "a REGISTER sent while another is in flight");
                sends_this_exchange += 1;
                prop_assert!(sends_this_exchange <= 6, "too many REGISTERs in one exchange");
                if sends_this_exchange == 1 && let Some((ended, result)) = last_end {
                    let gap = now - ended;
                    match result {
                        AttemptResult::Registered => prop_assert!(gap >= Duration::from_secs(1)),
                        _ => {
                            let floor = if result == AttemptResult::AuthFailed {
                                AUTH_FAILED_MIN
                            } else {
                                BACKOFF_BASE
                            };
                            prop_assert!(gap >= floor, "retried after {:?} ({:?})", gap, result);
                            if let Some(prev) = last_gap {
                                prop_assert!(gap >= prev, "backoff shrank: {:?} then {:?}", prev, gap);
                            }
                            last_gap = Some(gap);
                        }
                    }
                }
                let cseq = req.cseq().unwrap().seq;
                open.insert(cseq, now);
                let (answer, delay) = answers.next().unwrap();
                n += 1;
                if let Some(d) = respond(&req, &answer, n) {
                    let at = match d {
                        Delivery::Failure(Failure::Timeout) => now + Duration::from_secs(32),
                        _ => now + Duration::from_millis(delay),
                    };
                    queue.insert((at, cseq), d);
                }
            }
            if c.status().state == RegState::Registered {
                let until = c.status().expires_at.unwrap();
                prop_assert!(until > now);
                prop_assert!(granted_until.is_some_and(|g| until <= g));
            }
        }
    }
}
