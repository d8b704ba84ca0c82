//! The lockout tracker against a deliberately naive model, over thousands of
//! generated sequences of failures, successes and clock advances.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;

use super::super::lockout::{Lockout, LockoutConfig};

#[derive(Debug, Clone)]
enum Op {
    Fail(u8),
    Success(u8),
    Advance(u64),
    Prune,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6).prop_map(Op::Fail),
        1 => (0u8..6).prop_map(Op::Success),
        3 => (0u64..40).prop_map(Op::Advance),
        1 => Just(Op::Prune),
    ]
}

/// The model: every failure time is kept; the lock rule is recomputed from
/// scratch with the plain definitions.
#[derive(Debug, Default, Clone)]
struct ModelEntry {
    /// Failures since the last reset (lock or lock expiry).
    failures: Vec<u64>,
    /// (since, until, failures)
    lock: Option<(u64, u64, u32)>,
    last_seen: u64,
}

struct Model {
    max: usize,
    window: u64,
    lockout: u64,
    cap: usize,
    entries: HashMap<u8, ModelEntry>,
}

impl Model {
    fn locked(&self, ip: u8, now: u64) -> Option<(u64, u64, u32)> {
        self.entries
            .get(&ip)?
            .lock
            .filter(|&(_, until, _)| now < until)
    }

    fn fail(&mut self, ip: u8, now: u64) {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.cap {
            let victim = *self
                .entries
                .iter()
                .min_by_key(|(k, e)| (e.last_seen, addr(**k)))
                .map(|(k, _)| k)
                .unwrap();
            self.entries.remove(&victim);
        }
        let e = self.entries.entry(ip).or_default();
        e.last_seen = now;
        if let Some((since, until, n)) = e.lock {
            if now < until {
                e.lock = Some((since, until, n + 1));
                return;
            }
            e.lock = None;
            e.failures.clear();
        }
        e.failures.push(now);
        let in_window = e
            .failures
            .iter()
            .filter(|&&t| now - t < self.window)
            .count();
        if in_window >= self.max {
            e.lock = Some((now, now + self.lockout, in_window as u32));
            e.failures.clear();
        }
    }

    fn success(&mut self, ip: u8, now: u64) {
        if self.locked(ip, now).is_none() {
            self.entries.remove(&ip);
        }
    }

    fn prune(&mut self, now: u64) {
        let window = self.window;
        self.entries.retain(|_, e| {
            let locked = e.lock.is_some_and(|(_, until, _)| now < until);
            let recent = e.failures.iter().any(|&t| now - t < window);
            locked || recent
        });
    }
}

fn addr(ip: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, ip))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn lockout_matches_model(
        max in 1u32..5,
        window in 1u64..120,
        lockout in 1u64..200,
        cap in 1usize..7,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut real = Lockout::new(LockoutConfig {
            max_failures: max,
            window: Duration::from_secs(window),
            lockout: Duration::from_secs(lockout),
            max_tracked: cap,
            ipv6_prefix_len: 64,
        });
        let mut model = Model {
            max: max as usize, window, lockout, cap, entries: HashMap::new(),
        };
        let mut now = 1_000_000u64;
        for op in ops {
            match op {
                Op::Fail(ip) => {
                    let got = real.record_failure(addr(ip), now, "wrong password");
                    model.fail(ip, now);
                    let want = model.locked(ip, now);
                    prop_assert_eq!(
                        got.map(|l| (l.since, l.until, l.failures)),
                        want
                    );
                }
                Op::Success(ip) => {
                    real.record_success(addr(ip), now);
                    model.success(ip, now);
                }
                Op::Advance(dt) => now += dt,
                Op::Prune => {
                    real.prune(now);
                    model.prune(now);
                }
            }
            prop_assert!(real.tracked() <= cap);
            prop_assert_eq!(real.tracked(), model.entries.len());
            for ip in 0u8..6 {
                prop_assert_eq!(
                    real.is_locked(addr(ip), now).map(|l| (l.since, l.until, l.failures)),
                    model.locked(ip, now),
                    "ip {}", ip
                );
            }
            let snap: Vec<IpAddr> = real.snapshot(now).into_iter().map(|l| l.addr).collect();
            let mut want: Vec<IpAddr> = (0u8..6)
                .filter(|&ip| model.locked(ip, now).is_some())
                .map(addr)
                .collect();
            want.sort();
            prop_assert_eq!(snap, want);
        }
    }
}
