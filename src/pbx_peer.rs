//! Where Asterisk's SIP side is (`pbx.sip_host:sip_port`), as this bridge
//! knows it: INVITEs from there are the PBX's own — Asterisk relaying a
//! call to a department — trusted without a digest challenge (the
//! rendered `bridge` endpoint has no credentials) and never mistaken for a
//! carrier. Matched by address AND port: on a one-host installation the
//! phones share Asterisk's address but not its SIP port. Over TCP the
//! source port is the PBX's ephemeral one, so only UDP (the rendered
//! `bridge` endpoint's transport) is recognised.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use crate::sip::transaction::Transport;

/// Shared and cheap to clone: the call plan's reader sets it, signalling
/// reads it on every new INVITE.
#[derive(Clone, Default)]
pub struct PbxPeer(Arc<RwLock<Option<SocketAddr>>>);

impl PbxPeer {
    /// The PBX's SIP address now (`None`: no PBX, or disabled).
    pub fn set(&self, addr: Option<SocketAddr>) {
        let mut a = self.0.write().unwrap_or_else(|e| e.into_inner());
        if *a != addr {
            tracing::info!(pbx = ?addr, "the PBX's SIP address is trusted for calls to the bridge");
        }
        *a = addr;
    }

    pub fn get(&self) -> Option<SocketAddr> {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request from `source` over `transport` comes from the PBX.
    pub fn is_pbx(&self, source: SocketAddr, transport: Transport) -> bool {
        transport == Transport::Udp
            && self
                .get()
                .is_some_and(|pbx| pbx.ip() == source.ip() && pbx.port() == source.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pbx_sip_port_over_udp_is_the_pbx() {
        let peer = PbxPeer::default();
        let pbx: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        assert!(!peer.is_pbx(pbx, Transport::Udp), "no PBX configured");
        peer.set(Some(pbx));
        assert!(peer.is_pbx(pbx, Transport::Udp));
        assert!(
            !peer.is_pbx("127.0.0.1:5070".parse().unwrap(), Transport::Udp),
            "a phone on the same host"
        );
        assert!(!peer.is_pbx(pbx, Transport::Tcp));
        peer.set(None);
        assert!(!peer.is_pbx(pbx, Transport::Udp));
    }
}
