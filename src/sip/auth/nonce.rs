//! Stateless nonces and bounded nonce-count replay tracking.
//!
//! A nonce is `base64url(issued_at || salt || mac)` where
//! `mac = HMAC-SHA256(key, issued_at || salt || scope)` truncated to 128 bits.
//! The server validates a nonce it issued without storing it (so a restart
//! with the same key or several nodes sharing a key keep accepting each
//! other's nonces), tells expired nonces (→ `stale=true`, the phone retries
//! silently) from forged ones, and binds a nonce to a scope (the realm) so it
//! cannot be replayed against another realm. The random salt makes every
//! nonce unique, which the nonce-count tracker relies on.
//!
//! Time is always an argument: nothing here reads a clock.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const TS_LEN: usize = 8;
const SALT_LEN: usize = 8;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = TS_LEN + SALT_LEN + MAC_LEN;
/// Length of the encoded nonce: 32 raw bytes in unpadded base64url.
pub const NONCE_LEN: usize = 43;
/// Domain separation, so the key could be shared with another HMAC use.
const CONTEXT: &[u8] = b"pbx-bridge digest nonce v1";
/// A nonce "from the future" by more than this means our clock went back;
/// the nonce is still ours, so it is answered as stale, not forged.
const MAX_FUTURE_SKEW_SECS: u64 = 60;

/// What a presented nonce is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us, for this scope, within its lifetime.
    Valid,
    /// Issued by us but expired (or our clock moved): answer with a fresh
    /// challenge carrying `stale=true`.
    Stale,
    /// Not ours: malformed, forged, or for another scope.
    Invalid,
}

/// Issues and checks stateless nonces with a server key.
#[derive(Clone)]
pub struct NonceIssuer {
    key: [u8; 32],
    lifetime_secs: u64,
}

impl std::fmt::Debug for NonceIssuer {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// `key` must be secret and random; share it between nodes that should
    /// accept each other's nonces.
    pub fn new(key: [u8; 32], lifetime: Duration) -> Self {
        NonceIssuer {
            key,
            lifetime_secs: lifetime.as_secs(),
        }
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs)
    }

    /// A fresh nonce with no scope.
    pub fn issue(&self, now_unix_secs: u64) -> String {
        self.issue_scoped(now_unix_secs, b"")
    }

    /// A fresh nonce bound to `scope` (the realm, for instance).
    pub fn issue_scoped(&self, now_unix_secs: u64, scope: &[u8]) -> String {
        self.issue_with_salt(now_unix_secs, scope, rand::random())
    }

    /// Deterministic issue, for tests and for callers with their own
    /// randomness.
    pub fn issue_with_salt(
        &self,
        now_unix_secs: u64,
        scope: &[u8],
        salt: [u8; SALT_LEN],
    ) -> String {
        let ts = now_unix_secs.to_be_bytes();
        let mut raw = [0u8; RAW_LEN];
        raw[..TS_LEN].copy_from_slice(&ts);
        raw[TS_LEN..TS_LEN + SALT_LEN].copy_from_slice(&salt);
        let tag = self.mac(&ts, &salt, scope).finalize().into_bytes();
        raw[TS_LEN + SALT_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn check(&self, nonce: &str, now_unix_secs: u64) -> NonceStatus {
        self.check_scoped(nonce, b"", now_unix_secs)
    }

    pub fn check_scoped(&self, nonce: &str, scope: &[u8], now_unix_secs: u64) -> NonceStatus {
        let Some(raw) = decode(nonce) else {
            return NonceStatus::Invalid;
        };
        let (ts, rest) = raw.split_at(TS_LEN);
        let (salt, tag) = rest.split_at(SALT_LEN);
        // Constant-time comparison of the truncated tag.
        if self
            .mac(ts, salt, scope)
            .verify_truncated_left(tag)
            .is_err()
        {
            return NonceStatus::Invalid;
        }
        let issued = u64::from_be_bytes(raw_ts(&raw));
        if issued > now_unix_secs.saturating_add(MAX_FUTURE_SKEW_SECS)
            || now_unix_secs.saturating_sub(issued) > self.lifetime_secs
        {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }

    /// The issue time written in a nonce, unauthenticated: call only after
    /// [`check_scoped`](Self::check_scoped) said the nonce is ours.
    pub fn issued_at(nonce: &str) -> Option<u64> {
        decode(nonce).map(|raw| u64::from_be_bytes(raw_ts(&raw)))
    }

    fn mac(&self, ts: &[u8], salt: &[u8], scope: &[u8]) -> HmacSha256 {
        // HMAC pads a short key with zeros to the block size, so building it
        // from the padded block is the same function and cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.key);
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
        mac.update(CONTEXT);
        mac.update(ts);
        mac.update(salt);
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope);
        mac
    }
}

fn raw_ts(raw: &[u8; RAW_LEN]) -> [u8; TS_LEN] {
    let mut ts = [0u8; TS_LEN];
    ts.copy_from_slice(&raw[..TS_LEN]);
    ts
}

fn decode(nonce: &str) -> Option<[u8; RAW_LEN]> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
        Ok(RAW_LEN) => Some(raw),
        _ => None,
    }
}

/// What the nonce-count tracker says about a (nonce, nc) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcStatus {
    /// nc is higher than any seen for this nonce; it is now recorded.
    Fresh,
    /// nc was not higher than the last accepted one: a replayed request.
    Replay { last: u32 },
    /// The nonce may have been seen but its entry was evicted, so a replay
    /// cannot be ruled out; answer stale so the client takes a new nonce.
    Forgotten,
}

/// Remembers the highest nonce count accepted per nonce, in bounded memory.
///
/// SIP requests from one phone are sequential, so nc must strictly increase.
/// When full, the entries of the oldest nonces are dropped and a floor
/// remembers up to which issue time entries were lost: an unknown nonce
/// issued at or before the floor is [`NcStatus::Forgotten`] rather than
/// silently fresh, which would let a captured request be replayed.
#[derive(Debug, Clone)]
pub struct NonceCounter {
    capacity: usize,
    lifetime_secs: u64,
    last: HashMap<String, (u64, u32)>,
    by_age: BTreeSet<(u64, String)>,
    forgotten_through: Option<u64>,
}

impl NonceCounter {
    /// `lifetime` should be the issuer's: older entries are useless (their
    /// nonce is stale anyway) and are dropped.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        NonceCounter {
            capacity: capacity.max(1),
            lifetime_secs: lifetime.as_secs(),
            last: HashMap::new(),
            by_age: BTreeSet::new(),
            forgotten_through: None,
        }
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Checks `nc` for `nonce` (issued at `issued_at`) and records it when
    /// fresh. Call only for requests whose response was already verified,
    /// or an attacker could burn a victim's counts with bogus requests.
    pub fn check_and_record(&mut self, nonce: &str, issued_at: u64, nc: u32, now: u64) -> NcStatus {
        self.expire(now);
        if let Some((_, last)) = self.last.get_mut(nonce) {
            if nc <= *last {
                return NcStatus::Replay { last: *last };
            }
            *last = nc;
            return NcStatus::Fresh;
        }
        if self.forgotten_through.is_some_and(|f| issued_at <= f) {
            return NcStatus::Forgotten;
        }
        while self.last.len() >= self.capacity {
            let Some((ts, old)) = self.by_age.pop_first() else {
                break;
            };
            self.last.remove(&old);
            self.forgotten_through = Some(self.forgotten_through.map_or(ts, |f| f.max(ts)));
        }
        self.last.insert(nonce.to_owned(), (issued_at, nc));
        self.by_age.insert((issued_at, nonce.to_owned()));
        NcStatus::Fresh
    }

    /// Drops entries of nonces past their lifetime; they are rejected as
    /// stale before reaching the counter.
    fn expire(&mut self, now: u64) {
        while let Some((ts, _)) = self.by_age.first() {
            if now.saturating_sub(*ts) <= self.lifetime_secs {
                break;
            }
            if let Some((ts, old)) = self.by_age.pop_first() {
                self.last.remove(&old);
                self.forgotten_through = Some(self.forgotten_through.map_or(ts, |f| f.max(ts)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const T0: u64 = 1_750_000_000;

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(KEY, Duration::from_secs(300))
    }

    #[test]
    fn hmac_from_padded_block_equals_hmac_from_key() {
        let mut a = HmacSha256::new_from_slice(&KEY).unwrap();
        a.update(b"x");
        let mut b = <HmacSha256 as hmac::digest::KeyInit>::new(
            &{
                let mut k = [0u8; 64];
                k[..32].copy_from_slice(&KEY);
                k
            }
            .into(),
        );
        b.update(b"x");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    }

    #[test]
    fn fresh_nonce_is_valid_until_lifetime_then_stale() {
        let i = issuer();
        let n = i.issue(T0);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(i.check(&n, T0), NonceStatus::Valid);
        assert_eq!(i.check(&n, T0 + 300), NonceStatus::Valid);
        assert_eq!(i.check(&n, T0 + 301), NonceStatus::Stale);
        assert_eq!(i.check(&n, u64::MAX), NonceStatus::Stale);
        // Clock moved back a little: fine; a lot: stale, never invalid.
        assert_eq!(i.check(&n, T0 - 30), NonceStatus::Valid);
        assert_eq!(i.check(&n, T0 - 3600), NonceStatus::Stale);
        assert_eq!(NonceIssuer::issued_at(&n), Some(T0));
    }

    #[test]
    fn nonces_are_unique() {
        let i = issuer();
        assert_ne!(i.issue(T0), i.issue(T0));
    }

    #[test]
    fn forged_tampered_or_foreign_nonces_are_invalid() {
        let i = issuer();
        let n = i.issue_with_salt(T0, b"realm-a", [1; 8]);
        assert_eq!(i.check_scoped(&n, b"realm-a", T0), NonceStatus::Valid);
        assert_eq!(i.check_scoped(&n, b"realm-b", T0), NonceStatus::Invalid);
        assert_eq!(i.check(&n, T0), NonceStatus::Invalid);
        // Another key.
        let other = NonceIssuer::new([8; 32], Duration::from_secs(300));
        assert_eq!(other.check_scoped(&n, b"realm-a", T0), NonceStatus::Invalid);
        // Every single-character change is detected.
        for pos in 0..n.len() {
            let mut bytes = n.clone().into_bytes();
            let orig = bytes[pos];
            bytes[pos] = if orig == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let st = i.check_scoped(&tampered, b"realm-a", T0);
            // The last char also carries 2 spare bits, which decode rejects.
            assert_eq!(st, NonceStatus::Invalid, "pos {pos}");
        }
        // Forging an old timestamp into a new nonce does not work either.
        let mut raw = decode(&n).unwrap();
        raw[..8].copy_from_slice(&(T0 + 100).to_be_bytes());
        assert_eq!(
            i.check_scoped(&URL_SAFE_NO_PAD.encode(raw), b"realm-a", T0 + 100),
            NonceStatus::Invalid
        );
        for junk in [
            "",
            "x",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            &"A".repeat(43),
            &"=".repeat(43),
            "ü",
        ] {
            assert_eq!(i.check(junk, T0), NonceStatus::Invalid, "{junk}");
        }
    }

    #[test]
    fn scope_length_is_bound() {
        // ("ab", "") and ("a", "b") style ambiguity cannot arise: the scope
        // is length-prefixed, and two different scopes never share a nonce.
        let i = issuer();
        let n = i.issue_with_salt(T0, b"ab", [0; 8]);
        assert_eq!(i.check_scoped(&n, b"a", T0), NonceStatus::Invalid);
    }

    #[test]
    fn counter_accepts_increasing_nc_and_flags_replay() {
        let mut c = NonceCounter::new(10, Duration::from_secs(300));
        assert_eq!(c.check_and_record("n1", T0, 1, T0), NcStatus::Fresh);
        assert_eq!(c.check_and_record("n1", T0, 2, T0), NcStatus::Fresh);
        assert_eq!(
            c.check_and_record("n1", T0, 2, T0),
            NcStatus::Replay { last: 2 }
        );
        assert_eq!(
            c.check_and_record("n1", T0, 1, T0),
            NcStatus::Replay { last: 2 }
        );
        assert_eq!(c.check_and_record("n2", T0, 1, T0), NcStatus::Fresh);
        assert_eq!(c.check_and_record("n1", T0, 5, T0), NcStatus::Fresh);
    }

    #[test]
    fn counter_is_bounded_and_never_forgets_silently() {
        let mut c = NonceCounter::new(3, Duration::from_secs(300));
        for k in 0..3u64 {
            assert_eq!(
                c.check_and_record(&format!("n{k}"), T0 + k, 1, T0 + 3),
                NcStatus::Fresh
            );
        }
        // A fourth evicts n0 (the oldest).
        assert_eq!(c.check_and_record("n3", T0 + 3, 1, T0 + 3), NcStatus::Fresh);
        assert_eq!(c.len(), 3);
        // n0 replayed after eviction is not accepted as fresh.
        assert_eq!(c.check_and_record("n0", T0, 1, T0 + 3), NcStatus::Forgotten);
        // Newer nonces still work.
        assert_eq!(c.check_and_record("n4", T0 + 4, 1, T0 + 4), NcStatus::Fresh);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn counter_drops_expired_entries() {
        let mut c = NonceCounter::new(100, Duration::from_secs(10));
        c.check_and_record("a", T0, 1, T0);
        c.check_and_record("b", T0 + 5, 1, T0 + 5);
        assert_eq!(c.len(), 2);
        c.check_and_record("c", T0 + 12, 1, T0 + 12);
        assert_eq!(c.len(), 2);
        assert_eq!(c.check_and_record("a", T0, 2, T0 + 12), NcStatus::Forgotten);
    }
}
