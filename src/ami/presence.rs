//! Extension presence on Asterisk from AMI, sans-IO: the events that
//! change it (`ContactStatus`, `PeerStatus`, `DeviceStateChange`,
//! `ExtensionStatus`, and the items of `PJSIPShowContacts`) and the list
//! read after every login (`PJSIPShowEndpoints`: each endpoint's contacts
//! and device state in one answer, as Asterisk 22 gives them in
//! `tests/fixtures/ami/a-login-coresettings-endpoints`). The client keeps
//! the result in [`crate::pbx_presence::PbxPresence`].

use crate::pbx_presence::{DeviceState, ExtensionPresence, PbxPresence, PresenceBook};

use super::packet::Packet;
use super::session::{Output, SessionState};

/// What the client does with each of the session's outputs for presence:
/// events update it, the list read after a login replaces it, and any
/// state but logged in clears it (stale presence must never ring anyone).
pub fn follow(presence: &PbxPresence, output: &Output) {
    match output {
        Output::Event(p) if is_presence_event(p) => presence.update(|b| {
            apply_event(b, p);
        }),
        Output::Presence(endpoints) => presence.replace(from_endpoint_list(endpoints)),
        Output::StateChanged(state, _) if *state != SessionState::Connected => presence.clear(),
        _ => {}
    }
}

/// The endpoint of a PJSIP device (`PJSIP/1001`); channels
/// (`PJSIP/1001-00000009`) and other technologies are none.
fn pjsip_endpoint(device: &str) -> Option<&str> {
    let name = device.strip_prefix("PJSIP/")?;
    (!name.is_empty() && !name.contains(['-', '/', '&'])).then_some(name)
}

/// Contact states (`ContactStatus`'s `ContactStatus`, `ContactList`'s
/// `Status`): `None` for a removed contact. Qualify off reports a new
/// contact as `NonQualified`; `Unknown` is a contact whose qualify has not
/// answered yet.
fn contact_reachable(status: &str) -> Option<bool> {
    match status.to_ascii_lowercase().as_str() {
        "removed" => None,
        "created" | "reachable" | "nonqualified" | "updated" => Some(true),
        _ => Some(false),
    }
}

/// Whether `packet` is an event this module reads.
pub fn is_presence_event(packet: &Packet) -> bool {
    matches!(
        packet.event_name(),
        Some(
            "ContactStatus"
                | "PeerStatus"
                | "DeviceStateChange"
                | "ExtensionStatus"
                | "ContactList"
                | "EndpointList"
        )
    )
}

/// Applies one event; returns whether it changed anything.
pub fn apply_event(book: &mut PresenceBook, packet: &Packet) -> bool {
    let before = book.clone();
    match packet.event_name() {
        Some("DeviceStateChange") => {
            if let (Some(ext), Some(state)) = (
                packet.get("Device").and_then(pjsip_endpoint),
                packet.get("State"),
            ) {
                book.entry(ext.to_owned()).or_default().device = Some(DeviceState::parse(state));
            }
        }
        Some("ExtensionStatus") => {
            if let (Some(ext), Some(state)) = (
                packet.get("Hint").and_then(pjsip_endpoint),
                packet.get("StatusText"),
            ) {
                book.entry(ext.to_owned()).or_default().device = Some(DeviceState::parse(state));
            }
        }
        Some("PeerStatus") => {
            if let (Some(ext), Some(status)) = (
                packet.get("Peer").and_then(pjsip_endpoint),
                packet.get("PeerStatus"),
            ) {
                let reachable = matches!(
                    status.to_ascii_lowercase().as_str(),
                    "reachable" | "registered" | "lagged"
                );
                book.entry(ext.to_owned()).or_default().peer_reachable = Some(reachable);
            }
        }
        Some("ContactStatus") => contact(
            book,
            packet.get("EndpointName").or(packet.get("AOR")),
            packet.get("URI"),
            packet.get("ContactStatus"),
        ),
        Some("ContactList") => contact(
            book,
            packet.get("Endpoint"),
            packet.get("Uri"),
            packet.get("Status"),
        ),
        Some("EndpointList") => {
            if let Some((name, p)) = endpoint(packet) {
                book.insert(name, p);
            }
        }
        _ => return false,
    }
    *book != before
}

fn contact(book: &mut PresenceBook, ext: Option<&str>, uri: Option<&str>, status: Option<&str>) {
    let (Some(ext), Some(uri), Some(status)) = (ext, uri, status) else {
        return;
    };
    if ext.is_empty() || uri.is_empty() {
        return;
    }
    let entry = book.entry(ext.to_owned()).or_default();
    match contact_reachable(status) {
        Some(r) => {
            entry.contacts.insert(uri.to_owned(), r);
        }
        None => {
            entry.contacts.remove(uri);
        }
    }
}

/// One `EndpointList` item: `Contacts: 1001/sip:1001@127.0.0.1:5090,`
/// (every contact of its AORs, `aor/uri`, comma-terminated) and
/// `DeviceState: Not in use`. An unreachable contact makes the device
/// `Unavailable`, so a listed contact counts as reachable.
fn endpoint(item: &Packet) -> Option<(String, ExtensionPresence)> {
    let name = item.get("ObjectName").filter(|n| !n.is_empty())?;
    let contacts = item
        .get("Contacts")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| (c.split_once('/').map_or(c, |(_, uri)| uri).to_owned(), true))
        .collect();
    Some((
        name.to_owned(),
        ExtensionPresence {
            contacts,
            peer_reachable: None,
            device: item.get("DeviceState").map(DeviceState::parse),
        },
    ))
}

/// The book a `PJSIPShowEndpoints` list makes (its `EndpointList` items).
pub fn from_endpoint_list(items: &[Packet]) -> PresenceBook {
    items
        .iter()
        .filter(|p| p.is_event("EndpointList"))
        .filter_map(endpoint)
        .collect()
}
