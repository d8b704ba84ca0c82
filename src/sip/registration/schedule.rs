//! When a registration client tries again: the refresh point of a granted
//! binding, the exponential backoff after failures (with jitter from an
//! injected source, never decreasing until a success), and that source.

use std::time::Duration;

/// The first retry after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// The longest nominal wait between failed attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(600);
/// The shortest wait after the registrar refused our credentials (403, or
/// a second challenge): a wrong password is retried slowly.
pub const AUTH_FAILED_MIN: Duration = Duration::from_secs(60);

/// When to refresh a binding granted for `granted_s` seconds: at 80 % or
/// 30 s before expiry, whichever is sooner, but never before half the
/// interval nor sooner than 1 s (a registrar granting tiny intervals gets
/// no storm).
pub fn refresh_after(granted_s: u32) -> Duration {
    let e = u64::from(granted_s) * 1000;
    let eighty = e * 4 / 5;
    let margin = e.saturating_sub(30_000);
    let at = eighty.min(margin).max(e / 2).max(1000);
    Duration::from_millis(at)
}

/// A small deterministic pseudo-random source (SplitMix64): jitter, tags,
/// branches, Call-IDs and cnonces. Seeded by the driver (randomly) or by a
/// test (fixed), so simulated runs replay exactly.
#[derive(Debug, Clone)]
pub struct Entropy(u64);

impl Entropy {
    pub fn new(seed: u64) -> Entropy {
        Entropy(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// 16 lower-case hex digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// Exponential backoff: 5 s, 10 s, 20 s … capped at 10 min, each plus up
/// to 25 % jitter, and never shorter than the previous wait until
/// [`Backoff::reset`] (a success).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
    last: Duration,
}

impl Backoff {
    /// The wait before the next attempt after one more failure, at least
    /// `floor`.
    pub fn next(&mut self, entropy: &mut Entropy, floor: Duration) -> Duration {
        let nominal = BACKOFF_BASE
            .saturating_mul(1u32 << self.failures.min(16))
            .min(BACKOFF_CAP);
        self.failures = self.failures.saturating_add(1);
        let jitter = nominal.mul_f64(entropy.fraction() / 4.0);
        let wait = (nominal + jitter).max(floor).max(self.last);
        self.last = wait;
        wait
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_points() {
        assert_eq!(refresh_after(3600), Duration::from_secs(2880));
        assert_eq!(refresh_after(120), Duration::from_secs(90));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(10), Duration::from_secs(5));
        assert_eq!(refresh_after(1), Duration::from_secs(1));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut e = Entropy::new(7);
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..12).map(|_| b.next(&mut e, Duration::ZERO)).collect();
        assert!(waits[0] >= BACKOFF_BASE && waits[0] < BACKOFF_BASE.mul_f64(1.25));
        assert!(waits[1] >= Duration::from_secs(10));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert!(waits.iter().all(|w| *w < BACKOFF_CAP.mul_f64(1.25)));
        assert!(waits[11] >= BACKOFF_CAP);
        b.reset();
        assert!(b.next(&mut e, Duration::ZERO) < Duration::from_secs(7));
        assert!(b.next(&mut e, AUTH_FAILED_MIN) >= AUTH_FAILED_MIN);
    }
}
