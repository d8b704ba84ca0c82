//! Lockout behaviour in simulated time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::super::lockout::{Lockout, LockoutConfig};

const T0: u64 = 1_750_000_000;

fn cfg(max_failures: u32, window: u64, lockout: u64, max_tracked: usize) -> LockoutConfig {
    LockoutConfig {
        max_failures,
        window: Duration::from_secs(window),
        lockout: Duration::from_secs(lockout),
        max_tracked,
        ipv6_prefix_len: 64,
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

#[test]
fn locks_after_max_failures_in_window_and_expires() {
    let mut l = Lockout::new(cfg(3, 60, 600, 100));
    let ip = v4(1);
    assert_eq!(l.record_failure(ip, T0, "wrong password"), None);
    assert_eq!(l.record_failure(ip, T0 + 10, "wrong password"), None);
    assert!(l.is_locked(ip, T0 + 10).is_none());
    let lock = l
        .record_failure(ip, T0 + 20, "wrong password for user \"1001\"")
        .unwrap();
    assert_eq!(lock.until, T0 + 620);
    assert_eq!(lock.since, T0 + 20);
    assert_eq!(lock.failures, 3);
    assert_eq!(lock.reason, "wrong password for user \"1001\"");
    assert_eq!(l.is_locked(ip, T0 + 619), Some(lock.clone()));
    assert!(l.is_locked(ip, T0 + 620).is_none());
    // Other addresses are unaffected.
    assert!(l.is_locked(v4(2), T0 + 30).is_none());
    // Failures during the lock are counted but do not extend it.
    let during = l.record_failure(ip, T0 + 100, "again").unwrap();
    assert_eq!(during.until, T0 + 620);
    assert_eq!(during.failures, 4);
    assert_eq!(during.reason, "again");
    // After it, counting starts afresh.
    assert_eq!(l.record_failure(ip, T0 + 700, "x"), None);
    assert!(l.is_locked(ip, T0 + 700).is_none());
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let mut l = Lockout::new(cfg(3, 60, 600, 100));
    let ip = v4(1);
    for k in 0..20 {
        assert_eq!(l.record_failure(ip, T0 + k * 31, "x"), None, "k={k}");
    }
    // Exactly `window` apart is outside it.
    let mut l = Lockout::new(cfg(2, 60, 600, 100));
    assert_eq!(l.record_failure(ip, T0, "x"), None);
    assert_eq!(l.record_failure(ip, T0 + 60, "x"), None);
    assert!(l.record_failure(ip, T0 + 119, "x").is_some());
}

#[test]
fn success_clears_history_but_not_a_lock() {
    let mut l = Lockout::new(cfg(3, 60, 600, 100));
    let ip = v4(1);
    l.record_failure(ip, T0, "x");
    l.record_failure(ip, T0 + 1, "x");
    l.record_success(ip, T0 + 2);
    assert_eq!(l.tracked(), 0);
    assert_eq!(l.record_failure(ip, T0 + 3, "x"), None);
    l.record_failure(ip, T0 + 4, "x");
    assert!(l.record_failure(ip, T0 + 5, "x").is_some());
    l.record_success(ip, T0 + 6);
    assert!(l.is_locked(ip, T0 + 6).is_some());
    l.record_success(ip, T0 + 606);
    assert!(l.is_locked(ip, T0 + 606).is_none());
    assert_eq!(l.tracked(), 0);
}

#[test]
fn ipv6_is_tracked_per_prefix_and_mapped_v4_as_v4() {
    let mut l = Lockout::new(cfg(2, 60, 600, 100));
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    l.record_failure(a, T0, "x");
    assert!(l.record_failure(b, T0 + 1, "x").is_some());
    assert!(l.is_locked(a, T0 + 2).is_some());
    assert!(l.is_locked(other, T0 + 2).is_none());
    let snap = l.snapshot(T0 + 2);
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].addr, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    assert_eq!(snap[0].prefix_len, 64);

    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    l.record_failure(mapped, T0, "x");
    assert!(l.record_failure(v4(7), T0 + 1, "x").is_some());
    let snap = l.snapshot(T0 + 2);
    assert_eq!(snap.len(), 2);
    assert_eq!(snap[0].addr, v4(7));
    assert_eq!(snap[0].prefix_len, 32);

    let mut full = Lockout::new(LockoutConfig {
        ipv6_prefix_len: 128,
        ..cfg(1, 60, 600, 100)
    });
    full.record_failure(a, T0, "x");
    assert!(full.is_locked(b, T0).is_none());
    let mut all = Lockout::new(LockoutConfig {
        ipv6_prefix_len: 0,
        ..cfg(1, 60, 600, 100)
    });
    all.record_failure(a, T0, "x");
    assert!(all.is_locked(IpAddr::V6(Ipv6Addr::LOCALHOST), T0).is_some());
}

#[test]
fn memory_is_bounded_evicting_least_recently_seen() {
    let mut l = Lockout::new(cfg(1, 60, 600, 3));
    for k in 1..=3 {
        assert!(l.record_failure(v4(k), T0 + u64::from(k), "x").is_some());
    }
    // v4(1) is seen again, so v4(2) is now the least recently seen.
    l.record_failure(v4(1), T0 + 10, "x");
    l.record_failure(v4(4), T0 + 11, "x");
    assert_eq!(l.tracked(), 3);
    assert!(l.is_locked(v4(2), T0 + 12).is_none());
    for k in [1, 3, 4] {
        assert!(l.is_locked(v4(k), T0 + 12).is_some(), "{k}");
    }
    // A flood of new addresses never grows memory past the cap.
    for k in 0..10_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + k));
        l.record_failure(ip, T0 + 20 + u64::from(k), "x");
        assert!(l.tracked() <= 3);
    }
}

#[test]
fn snapshot_lists_only_active_locks_and_prune_frees_memory() {
    let mut l = Lockout::new(cfg(2, 60, 100, 100));
    l.record_failure(v4(1), T0, "a");
    l.record_failure(v4(1), T0, "a");
    l.record_failure(v4(2), T0, "b");
    let snap = l.snapshot(T0 + 1);
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].addr, v4(1));
    assert_eq!(snap[0].info.reason, "a");
    assert!(l.snapshot(T0 + 100).is_empty());
    l.prune(T0 + 30);
    assert_eq!(l.tracked(), 2);
    l.prune(T0 + 100);
    assert_eq!(l.tracked(), 0);
}

#[test]
fn long_reasons_are_truncated_on_a_char_boundary() {
    let mut l = Lockout::new(cfg(1, 60, 100, 10));
    let reason = "é".repeat(500);
    let lock = l.record_failure(v4(1), T0, &reason).unwrap();
    assert!(lock.reason.len() <= 200);
    assert!(lock.reason.chars().all(|c| c == 'é'));
}

#[test]
fn degenerate_configs_do_not_panic() {
    let mut l = Lockout::new(cfg(0, 0, 0, 0));
    l.record_failure(v4(1), 0, "x");
    l.record_failure(v4(1), u64::MAX, "x");
    let _ = l.is_locked(v4(1), u64::MAX);
    let mut l = Lockout::new(LockoutConfig {
        ipv6_prefix_len: 200,
        ..cfg(1, u64::MAX, u64::MAX, 1)
    });
    assert!(l.record_failure(v4(1), u64::MAX, "x").is_some());
    l.record_failure(IpAddr::V6(Ipv6Addr::LOCALHOST), 5, "x");
    l.prune(u64::MAX);
}
