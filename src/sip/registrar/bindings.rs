//! Contact bindings of each address-of-record (an extension number).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::sip::transaction::Transport;

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The extension number (the AOR's user part).
    pub aor: String,
    /// The Contact URI as the UA sent it.
    pub contact: String,
    /// Where the REGISTER came from: where requests for the AOR go when the
    /// UA is behind NAT (RFC 5626 style "flow" reuse).
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// Unix seconds.
    pub registered_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Why a binding appeared or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    Registered,
    Refreshed,
    Unregistered,
    /// Replaced by a newer contact of the same AOR (one device per
    /// extension, like `max_contacts=1, remove_existing=yes`).
    Replaced,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingChange {
    pub cause: ChangeCause,
    pub binding: Binding,
}

/// All bindings, by AOR, bounded by the number of extensions times
/// `max_per_aor`.
#[derive(Debug, Default)]
pub struct BindingTable {
    by_aor: HashMap<String, Vec<Binding>>,
}

impl BindingTable {
    pub fn of(&self, aor: &str) -> &[Binding] {
        self.by_aor.get(aor).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    pub fn len(&self) -> usize {
        self.by_aor.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_aor.is_empty()
    }

    /// Adds or refreshes `binding`, keeping at most `max_per_aor` per AOR
    /// (the oldest go first).
    pub fn upsert(&mut self, binding: Binding, max_per_aor: usize, out: &mut Vec<BindingChange>) {
        let list = self.by_aor.entry(binding.aor.clone()).or_default();
        if let Some(existing) = list.iter_mut().find(|b| b.contact == binding.contact) {
            *existing = binding.clone();
            out.push(BindingChange {
                cause: ChangeCause::Refreshed,
                binding,
            });
            return;
        }
        list.push(binding.clone());
        out.push(BindingChange {
            cause: ChangeCause::Registered,
            binding,
        });
        let max = max_per_aor.max(1);
        while list.len() > max {
            let old = list.remove(0);
            out.push(BindingChange {
                cause: ChangeCause::Replaced,
                binding: old,
            });
        }
    }

    pub fn remove(&mut self, aor: &str, contact: &str, out: &mut Vec<BindingChange>) {
        if let Some(list) = self.by_aor.get_mut(aor) {
            if let Some(i) = list.iter().position(|b| b.contact == contact) {
                out.push(BindingChange {
                    cause: ChangeCause::Unregistered,
                    binding: list.remove(i),
                });
            }
            if list.is_empty() {
                self.by_aor.remove(aor);
            }
        }
    }

    pub fn remove_all(&mut self, aor: &str, out: &mut Vec<BindingChange>) {
        for binding in self.by_aor.remove(aor).unwrap_or_default() {
            out.push(BindingChange {
                cause: ChangeCause::Unregistered,
                binding,
            });
        }
    }

    /// Removes bindings whose time is up at `now` (unix seconds).
    pub fn expire(&mut self, now: u64, out: &mut Vec<BindingChange>) {
        self.by_aor.retain(|_, list| {
            list.retain(|b| {
                let alive = b.expires_at > now;
                if !alive {
                    out.push(BindingChange {
                        cause: ChangeCause::Expired,
                        binding: b.clone(),
                    });
                }
                alive
            });
            !list.is_empty()
        });
    }

    /// The earliest expiry, for the driver's timer.
    pub fn next_expiry(&self) -> Option<u64> {
        self.iter().map(|b| b.expires_at).min()
    }
}
