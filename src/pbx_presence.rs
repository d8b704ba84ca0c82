//! Where each extension stands on Asterisk (SPEC §9: an agent's
//! availability on the PBX comes from AMI, device and contact state): the
//! AMI client publishes into it, the calls read it to ring agents whose
//! phones register on Asterisk "through the PBX". Neutral ground, like
//! [`crate::registrations`], so neither side imports the other.
//!
//! Only what AMI said on the session that is up counts: the client clears
//! it when the session drops or the PBX is disabled, and replaces it with a
//! fresh list after every login. Unknown is never available, so stale
//! presence never rings anyone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// An Asterisk device state, in either spelling Asterisk uses
/// (`DeviceStateChange`'s `NOT_INUSE`, `PJSIPShowEndpoints`' `Not in use`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    NotInUse,
    InUse,
    Busy,
    Ringing,
    RingInUse,
    OnHold,
    Unavailable,
    Invalid,
    Unknown,
}

impl DeviceState {
    pub fn parse(text: &str) -> DeviceState {
        let key: String = text
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match key.as_str() {
            // `ExtensionStatus` says `Idle` for a free hint.
            "NOTINUSE" | "IDLE" => DeviceState::NotInUse,
            "INUSE" => DeviceState::InUse,
            "BUSY" => DeviceState::Busy,
            "RINGING" => DeviceState::Ringing,
            "RINGINUSE" | "INUSERINGING" => DeviceState::RingInUse,
            "ONHOLD" | "HOLD" | "INUSEHOLD" => DeviceState::OnHold,
            "UNAVAILABLE" => DeviceState::Unavailable,
            "INVALID" => DeviceState::Invalid,
            _ => DeviceState::Unknown,
        }
    }

    /// In a call (or ringing) there: not to be rung again.
    fn occupied(self) -> bool {
        matches!(
            self,
            DeviceState::InUse
                | DeviceState::Busy
                | DeviceState::Ringing
                | DeviceState::RingInUse
                | DeviceState::OnHold
        )
    }
}

/// How an extension stands on the PBX, for the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// AMI said nothing (yet), or is down: never rung.
    Unknown,
    /// No reachable contact, or the device is unavailable.
    Unreachable,
    /// Reachable and not in use: may be rung through the PBX.
    Free,
    /// Reachable and in a call (or ringing, on hold) there.
    InUse,
}

/// What AMI told about one extension (its PJSIP endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionPresence {
    /// The contacts of its AOR (URI) and whether each is reachable.
    pub contacts: BTreeMap<String, bool>,
    /// The endpoint as a whole (`PeerStatus`).
    pub peer_reachable: Option<bool>,
    pub device: Option<DeviceState>,
}

impl ExtensionPresence {
    /// Reachable when a contact is (or, with no contact reported, when the
    /// peer is); a peer reported unreachable overrides its contacts.
    fn reachable(&self) -> Option<bool> {
        if self.peer_reachable == Some(false) {
            return Some(false);
        }
        if self.contacts.is_empty() {
            self.peer_reachable
        } else {
            Some(self.contacts.values().any(|r| *r))
        }
    }

    pub fn availability(&self) -> Availability {
        match (self.reachable(), self.device) {
            (Some(false), _) | (_, Some(DeviceState::Unavailable | DeviceState::Invalid)) => {
                Availability::Unreachable
            }
            (Some(true), Some(DeviceState::NotInUse)) => Availability::Free,
            (Some(true), Some(d)) if d.occupied() => Availability::InUse,
            _ => Availability::Unknown,
        }
    }
}

/// Extensions on the PBX by number (the PJSIP endpoint's name).
pub type PresenceBook = HashMap<String, ExtensionPresence>;

/// Shared and cheap to clone: the AMI client writes, calls read (sync, no
/// await, a read lock).
#[derive(Debug, Clone, Default)]
pub struct PbxPresence(Arc<RwLock<PresenceBook>>);

impl PbxPresence {
    /// How extension `number` stands on the PBX now.
    pub fn availability(&self, number: &str) -> Availability {
        self.0
            .read()
            .map(|b| {
                b.get(number)
                    .map_or(Availability::Unknown, ExtensionPresence::availability)
            })
            .unwrap_or(Availability::Unknown)
    }

    /// Every extension AMI reported, with how it stands.
    pub fn snapshot(&self) -> HashMap<String, Availability> {
        self.0
            .read()
            .map(|b| {
                b.iter()
                    .map(|(n, p)| (n.clone(), p.availability()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut PresenceBook)) {
        let mut b = self.0.write().unwrap_or_else(|e| e.into_inner());
        f(&mut b);
    }

    /// A fresh list read after a login replaces everything.
    pub fn replace(&self, book: PresenceBook) {
        self.update(|b| *b = book);
    }

    /// AMI is down or the PBX disabled: nothing is known any more.
    pub fn clear(&self) {
        self.update(PresenceBook::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(contact: Option<bool>, peer: Option<bool>, device: Option<&str>) -> ExtensionPresence {
        ExtensionPresence {
            contacts: contact
                .map(|r| ("sip:1001@127.0.0.1:5090".to_owned(), r))
                .into_iter()
                .collect(),
            peer_reachable: peer,
            device: device.map(DeviceState::parse),
        }
    }

    #[test]
    fn both_spellings_of_device_states() {
        assert_eq!(DeviceState::parse("NOT_INUSE"), DeviceState::NotInUse);
        assert_eq!(DeviceState::parse("Not in use"), DeviceState::NotInUse);
        assert_eq!(DeviceState::parse("In use"), DeviceState::InUse);
        assert_eq!(DeviceState::parse("RINGINUSE"), DeviceState::RingInUse);
        assert_eq!(DeviceState::parse("Ring+Inuse"), DeviceState::RingInUse);
        assert_eq!(DeviceState::parse("On Hold"), DeviceState::OnHold);
        assert_eq!(DeviceState::parse("UNAVAILABLE"), DeviceState::Unavailable);
        assert_eq!(DeviceState::parse("what"), DeviceState::Unknown);
    }

    #[test]
    fn free_only_when_reachable_and_not_in_use() {
        use Availability::*;
        let cases = [
            (ext(Some(true), None, Some("NOT_INUSE")), Free),
            (ext(None, Some(true), Some("NOT_INUSE")), Free),
            (ext(Some(true), Some(false), Some("NOT_INUSE")), Unreachable),
            (ext(Some(false), None, Some("NOT_INUSE")), Unreachable),
            (ext(Some(true), None, Some("UNAVAILABLE")), Unreachable),
            (ext(Some(true), None, Some("INUSE")), InUse),
            (ext(Some(true), None, Some("RINGING")), InUse),
            (ext(Some(true), None, Some("BUSY")), InUse),
            (ext(Some(true), None, None), Unknown),
            (ext(None, None, Some("NOT_INUSE")), Unknown),
            (ext(Some(true), None, Some("UNKNOWN")), Unknown),
        ];
        for (p, want) in cases {
            assert_eq!(p.availability(), want, "{p:?}");
        }
    }

    #[test]
    fn cleared_presence_is_unknown() {
        let presence = PbxPresence::default();
        presence.update(|b| {
            b.insert("1001".into(), ext(Some(true), None, Some("NOT_INUSE")));
        });
        assert_eq!(presence.availability("1001"), Availability::Free);
        assert_eq!(presence.snapshot()["1001"], Availability::Free);
        presence.clear();
        assert_eq!(presence.availability("1001"), Availability::Unknown);
        assert!(presence.snapshot().is_empty());
    }
}
