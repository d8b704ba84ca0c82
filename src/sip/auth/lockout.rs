//! Failed-authentication lockout per source address, sans-IO.
//!
//! `max_failures` failures within `window` lock the address for `lockout`:
//! while locked the registrar refuses it without checking credentials, which
//! stops password guessing and keeps a misconfigured phone's retries from
//! flooding the logs. Locks are visible through [`Lockout::snapshot`] so that
//! "authentication error on the PBX" can be diagnosed from the API.
//!
//! IPv6 addresses are tracked per prefix (default /64), because one host
//! usually owns a whole /64 and could otherwise rotate addresses to escape;
//! IPv4-mapped IPv6 addresses count as their IPv4 address.
//!
//! Memory is bounded by `max_tracked`: when full, the address seen least
//! recently is forgotten (which may lift its lock early; an attacker able to
//! do that already controls more addresses than a per-address lock stops).
//! Time is an argument, in Unix seconds; nothing here reads a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// Longest failure reason kept per address.
const MAX_REASON_LEN: usize = 200;

/// Lockout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures within `window` that trigger a lock (at least 1).
    pub max_failures: u32,
    pub window: Duration,
    /// How long a lock lasts. Failures during a lock do not extend it, so a
    /// fixed phone recovers at a predictable time.
    pub lockout: Duration,
    /// Most addresses tracked at once (at least 1).
    pub max_tracked: usize,
    /// IPv6 addresses are grouped by this prefix length (0–128).
    pub ipv6_prefix_len: u8,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(900),
            max_tracked: 10_000,
            ipv6_prefix_len: 64,
        }
    }
}

/// An active lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// Unix second at which the lock ends.
    pub until: u64,
    /// Unix second at which it began.
    pub since: u64,
    /// Failures counted: those that caused the lock plus those during it.
    pub failures: u32,
    /// The last failure's reason, e.g. "wrong password for user \"1001\"".
    pub reason: String,
}

/// One locked address (or IPv6 prefix) for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedAddress {
    /// The address, masked to `prefix_len` bits.
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub info: LockInfo,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Times of recent failures, oldest first; at most `max_failures`.
    failures: VecDeque<u64>,
    lock: Option<LockInfo>,
    last_seen: u64,
    reason: String,
}

/// The failure tracker.
#[derive(Debug, Clone)]
pub struct Lockout {
    config: LockoutConfig,
    entries: HashMap<IpAddr, Entry>,
    by_last_seen: BTreeSet<(u64, IpAddr)>,
}

impl Lockout {
    pub fn new(mut config: LockoutConfig) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.max_tracked = config.max_tracked.max(1);
        config.ipv6_prefix_len = config.ipv6_prefix_len.min(128);
        Lockout {
            config,
            entries: HashMap::new(),
            by_last_seen: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &LockoutConfig {
        &self.config
    }

    /// Number of addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// The key an address is tracked under, and its prefix length.
    pub fn key(&self, ip: IpAddr) -> (IpAddr, u8) {
        match ip {
            IpAddr::V4(v4) => (IpAddr::V4(v4), 32),
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return (IpAddr::V4(v4), 32);
                }
                let bits = u32::from(self.config.ipv6_prefix_len);
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                (
                    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    self.config.ipv6_prefix_len,
                )
            }
        }
    }

    /// Counts a failed authentication from `ip`. Returns the lock in force
    /// after it, if any (so the caller can log the moment a lock begins).
    pub fn record_failure(&mut self, ip: IpAddr, now: u64, reason: &str) -> Option<LockInfo> {
        let (key, _) = self.key(ip);
        let window = self.config.window.as_secs();
        let lockout = self.config.lockout.as_secs();
        let max = self.config.max_failures as usize;
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.config.max_tracked {
                let Some((_, old)) = self.by_last_seen.pop_first() else {
                    break;
                };
                self.entries.remove(&old);
            }
            self.entries.insert(
                key,
                Entry {
                    failures: VecDeque::new(),
                    lock: None,
                    last_seen: now,
                    reason: String::new(),
                },
            );
            self.by_last_seen.insert((now, key));
        }
        let entry = self.entries.get_mut(&key)?;
        self.by_last_seen.remove(&(entry.last_seen, key));
        entry.last_seen = now;
        self.by_last_seen.insert((now, key));
        entry.reason = truncate(reason);

        if let Some(lock) = &mut entry.lock {
            if now < lock.until {
                lock.failures = lock.failures.saturating_add(1);
                lock.reason.clone_from(&entry.reason);
                return Some(lock.clone());
            }
            // The lock ran out: start counting afresh.
            entry.lock = None;
            entry.failures.clear();
        }
        while entry
            .failures
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= window)
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= max {
            let lock = LockInfo {
                until: now.saturating_add(lockout),
                since: now,
                failures: u32::try_from(entry.failures.len()).unwrap_or(u32::MAX),
                reason: entry.reason.clone(),
            };
            entry.failures.clear();
            entry.lock = Some(lock.clone());
            return Some(lock);
        }
        None
    }

    /// A successful authentication clears the address's failure history,
    /// but not an active lock: guessing right during a lock must not lift it.
    pub fn record_success(&mut self, ip: IpAddr, now: u64) {
        let (key, _) = self.key(ip);
        if let Some(entry) = self.entries.get(&key)
            && entry.lock.as_ref().is_none_or(|l| now >= l.until)
        {
            self.by_last_seen.remove(&(entry.last_seen, key));
            self.entries.remove(&key);
        }
    }

    /// The lock on `ip` at `now`, if any.
    pub fn is_locked(&self, ip: IpAddr, now: u64) -> Option<LockInfo> {
        let (key, _) = self.key(ip);
        self.entries
            .get(&key)?
            .lock
            .as_ref()
            .filter(|l| now < l.until)
            .cloned()
    }

    /// Every address locked at `now`, sorted by address.
    pub fn snapshot(&self, now: u64) -> Vec<LockedAddress> {
        let mut out: Vec<LockedAddress> = self
            .entries
            .iter()
            .filter_map(|(addr, e)| {
                let lock = e.lock.as_ref().filter(|l| now < l.until)?;
                Some(LockedAddress {
                    addr: *addr,
                    prefix_len: self.key(*addr).1,
                    info: lock.clone(),
                })
            })
            .collect();
        out.sort_by_key(|l| l.addr);
        out
    }

    /// Forgets addresses with neither an active lock nor a failure inside
    /// the window; call now and then (e.g. once a minute) to free memory.
    pub fn prune(&mut self, now: u64) {
        let window = self.config.window.as_secs();
        let dead: Vec<(u64, IpAddr)> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                let locked = e.lock.as_ref().is_some_and(|l| now < l.until);
                let recent = e
                    .failures
                    .back()
                    .is_some_and(|&t| now.saturating_sub(t) < window);
                !locked && !recent
            })
            .map(|(k, e)| (e.last_seen, *k))
            .collect();
        for (seen, key) in dead {
            self.entries.remove(&key);
            self.by_last_seen.remove(&(seen, key));
        }
    }
}

fn truncate(reason: &str) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
