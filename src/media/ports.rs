//! RTP port allocation over the configured range (`Settings::rtp_ports`).
//!
//! Every lease is a pair: an even RTP port and the odd RTCP port after it
//! (RFC 3550 §11). The pair goes back to the pool when the [`PortLease`] is
//! dropped, so a call that ends any way at all (normal end, error, early
//! return, panic unwinding through its task) gives its ports back.
//!
//! Allocation is round-robin from the last allocated pair, so a port that was
//! just given back is the last to be handed out again: late packets of an
//! ended call do not land in a new one, and a pair that fails to bind (taken
//! by another process) is not offered again at once.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

/// The range holds no usable even/odd pair, or every pair is leased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("the RTP port range {start}-{end} holds no even RTP port with RTP+1 for RTCP")]
    EmptyRange { start: u16, end: u16 },
    #[error("all {pairs} RTP port pairs are in use")]
    Exhausted { pairs: usize },
}

#[derive(Debug)]
struct PoolState {
    in_use: Vec<bool>,
    used: usize,
    next: usize,
}

/// A shared pool of RTP/RTCP port pairs. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    pairs: usize,
    state: Arc<Mutex<PoolState>>,
}

/// A leased RTP/RTCP pair; returned to the pool on drop.
#[derive(Debug)]
pub struct PortLease {
    index: usize,
    rtp: u16,
    pool: Arc<Mutex<PoolState>>,
}

impl PortPool {
    /// A pool over `range`: RTP on the even ports, RTCP on each one's +1,
    /// both inside the range.
    pub fn new(range: RangeInclusive<u16>) -> Result<PortPool, PortError> {
        let (start, end) = (*range.start(), *range.end());
        let empty = PortError::EmptyRange { start, end };
        let first = start.checked_add(start % 2).ok_or(empty.clone())?;
        if first >= end || start > end {
            return Err(empty);
        }
        // Pairs (first + 2k, first + 2k + 1) with first + 2k + 1 <= end.
        let pairs = (end as usize - first as usize).div_ceil(2);
        Ok(PortPool {
            first,
            pairs,
            state: Arc::new(Mutex::new(PoolState {
                in_use: vec![false; pairs],
                used: 0,
                next: 0,
            })),
        })
    }

    /// How many pairs the pool holds.
    pub fn capacity(&self) -> usize {
        self.pairs
    }

    /// How many pairs are leased now.
    pub fn in_use(&self) -> usize {
        lock(&self.state).used
    }

    /// Leases a free pair, or fails when all are in use.
    pub fn allocate(&self) -> Result<PortLease, PortError> {
        let mut s = lock(&self.state);
        if s.used == self.pairs {
            return Err(PortError::Exhausted { pairs: self.pairs });
        }
        let mut i = s.next;
        while s.in_use[i] {
            i = (i + 1) % self.pairs;
        }
        s.in_use[i] = true;
        s.used += 1;
        s.next = (i + 1) % self.pairs;
        Ok(PortLease {
            index: i,
            rtp: self.first + 2 * i as u16,
            pool: self.state.clone(),
        })
    }
}

impl PortLease {
    /// The even RTP port.
    pub fn rtp(&self) -> u16 {
        self.rtp
    }

    /// The RTCP port (RTP + 1).
    pub fn rtcp(&self) -> u16 {
        self.rtp + 1
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut s = lock(&self.pool);
        if std::mem::replace(&mut s.in_use[self.index], false) {
            s.used -= 1;
        }
    }
}

/// The pool's state stays consistent under every panic point (each update is
/// a plain store), so a poisoned lock is still usable.
fn lock(m: &Mutex<PoolState>) -> std::sync::MutexGuard<'_, PoolState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn pairs_are_even_and_inside_the_range() {
        let pool = PortPool::new(20001..=20010).unwrap();
        // 20002..=20009 → 4 pairs; 20010 has no 20011.
        assert_eq!(pool.capacity(), 4);
        let leases: Vec<_> = (0..4).map(|_| pool.allocate().unwrap()).collect();
        let ports: Vec<_> = leases.iter().map(|l| (l.rtp(), l.rtcp())).collect();
        assert_eq!(
            ports,
            [
                (20002, 20003),
                (20004, 20005),
                (20006, 20007),
                (20008, 20009)
            ]
        );
        assert_eq!(
            pool.allocate().unwrap_err(),
            PortError::Exhausted { pairs: 4 }
        );
        drop(leases);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn default_range_and_empty_ranges() {
        assert_eq!(PortPool::new(20000..=20999).unwrap().capacity(), 500);
        assert!(PortPool::new(20001..=20001).is_err());
        assert!(PortPool::new(20000..=20000).is_err());
        assert!(PortPool::new(65535..=65535).is_err());
        assert_eq!(PortPool::new(65534..=65535).unwrap().capacity(), 1);
    }

    #[test]
    fn round_robin_does_not_reuse_a_just_freed_pair() {
        let pool = PortPool::new(30000..=30005).unwrap();
        let a = pool.allocate().unwrap();
        let a_port = a.rtp();
        drop(a);
        let b = pool.allocate().unwrap();
        assert_ne!(b.rtp(), a_port);
    }

    #[test]
    fn ports_come_back_after_a_panic() {
        let pool = PortPool::new(30000..=30001).unwrap();
        let p = pool.clone();
        let r = std::panic::catch_unwind(move || {
            let _lease = p.allocate().unwrap();
            panic!("call task died");
        });
        assert!(r.is_err());
        assert_eq!(pool.in_use(), 0);
        assert!(pool.allocate().is_ok());
    }

    #[test]
    fn concurrent_leases_never_overlap() {
        let pool = PortPool::new(40000..=40199).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let held: Vec<_> = (0..10).map(|_| pool.allocate().unwrap()).collect();
                        let set: HashSet<_> = held.iter().map(|l| l.rtp()).collect();
                        assert_eq!(set.len(), held.len());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.in_use(), 0);
    }

    proptest! {
        /// Any sequence of allocations and releases: live leases are
        /// distinct, valid pairs; exhaustion only when all are live; every
        /// pair comes back at the end.
        #[test]
        fn leases_never_overlap_and_all_return(
            start in 1024u16..60000,
            len in 1u16..40,
            ops in proptest::collection::vec(any::<(bool, u8)>(), 1..200),
        ) {
            let end = start + len;
            let Ok(pool) = PortPool::new(start..=end) else {
                prop_assert!(!(start..end).any(|p| p % 2 == 0));
                return Ok(());
            };
            let mut live: Vec<PortLease> = Vec::new();
            for (alloc, pick) in ops {
                if alloc {
                    match pool.allocate() {
                        Ok(l) => {
                            prop_assert_eq!(l.rtp() % 2, 0);
                            prop_assert!(l.rtp() >= start && l.rtcp() <= end);
                            prop_assert!(live.iter().all(|o| o.rtp() != l.rtp()));
                            live.push(l);
                        }
                        Err(PortError::Exhausted { .. }) => {
                            prop_assert_eq!(live.len(), pool.capacity());
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                } else if !live.is_empty() {
                    let i = pick as usize % live.len();
                    live.swap_remove(i);
                }
                prop_assert_eq!(pool.in_use(), live.len());
            }
            drop(live);
            prop_assert_eq!(pool.in_use(), 0);
            let all: Vec<_> = (0..pool.capacity()).map(|_| pool.allocate().unwrap()).collect();
            let set: HashSet<_> = all.iter().map(|l| l.rtp()).collect();
            prop_assert_eq!(set.len(), pool.capacity());
        }
    }
}
