//! What the layer asks its driver to do: send bytes, or tell the TU.
//!
//! Sans-IO: the layer only appends `Output`s to a queue the driver drains
//! (`TransactionLayer::take_outputs`) after each input.

use std::net::SocketAddr;

use bytes::Bytes;

use super::key::TransactionKey;
use super::message::SipMessage;
use super::timers::Timer;
use super::transport::Transport;

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "outputs are short-lived and moved once; boxing would add an allocation per event"
)]
pub enum Output {
    /// Send these bytes.  On a reliable transport, `destination` names the
    /// connection (for a server transaction: the one the request came in on,
    /// §18.2.2).
    Transmit {
        bytes: Bytes,
        destination: SocketAddr,
        transport: Transport,
    },
    /// Hand an event to the transaction user.
    ToTu(TuEvent),
}

/// An event for the transaction user (UA core / B2BUA).
#[derive(Debug, Clone, PartialEq)]
pub enum TuEvent {
    /// A new request created server transaction `key`; answer it with
    /// `TransactionLayer::send_response(key, ..)`.  For a CANCEL,
    /// `cancels` names the INVITE server transaction it matches, if it
    /// still exists (§9.2: the TU answers the CANCEL 200 and, if no final
    /// was sent yet, the INVITE 487).
    Request {
        key: TransactionKey,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
        cancels: Option<TransactionKey>,
    },
    /// An ACK the transactions do not absorb: the ACK for a 2xx, which is
    /// end-to-end and belongs to the dialog (§13.3.1.4, §17.2.1).  `key` is
    /// the INVITE server transaction it matched (RFC 6026 Accepted state),
    /// `None` when it matched none (the usual case: a 2xx ACK has its own
    /// branch).
    Ack {
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
        key: Option<TransactionKey>,
    },
    /// A response for client transaction `key`.  Retransmissions are not
    /// repeated, except 2xx to INVITE in the Accepted state, which the TU
    /// must ACK again (RFC 6026 §7.2, RFC 3261 §13.2.2.4).
    Response {
        key: TransactionKey,
        response: SipMessage,
    },
    /// A 2xx to INVITE that matched no client transaction (it outlived
    /// Timer M); the TU may still ACK it (§13.2.2.4).  Other unmatched
    /// responses are dropped (§18.1.2).
    StrayResponse { response: SipMessage },
    /// The transaction timed out (Timer B, F or H, or the TU guard).
    Timeout { key: TransactionKey, timer: Timer },
    /// The driver reported a transport failure (§17.1.4, §17.2.4).
    TransportError { key: TransactionKey },
    /// The transaction is gone; the key may be forgotten.
    Terminated { key: TransactionKey },
}

/// The per-transaction view of the output queue a machine writes to.
pub(crate) struct Sink<'a> {
    pub(crate) out: &'a mut Vec<Output>,
    pub(crate) key: &'a TransactionKey,
    pub(crate) peer: SocketAddr,
    pub(crate) transport: Transport,
}

impl Sink<'_> {
    /// Queues bytes to the transaction's peer.
    pub(crate) fn transmit(&mut self, bytes: Bytes) {
        self.out.push(Output::Transmit {
            bytes,
            destination: self.peer,
            transport: self.transport,
        });
    }

    /// Queues an event for the TU.
    pub(crate) fn tu_event(&mut self, event: TuEvent) {
        self.out.push(Output::ToTu(event));
    }

    /// Reports a timeout of this transaction to the TU.
    pub(crate) fn timeout(&mut self, timer: Timer) {
        let key = self.key.clone();
        self.tu_event(TuEvent::Timeout { key, timer });
    }

    /// Passes a response of this (client) transaction to the TU.
    pub(crate) fn response(&mut self, response: SipMessage) {
        let key = self.key.clone();
        self.tu_event(TuEvent::Response { key, response });
    }

    /// Reports a transport error of this transaction to the TU.
    pub(crate) fn transport_error(&mut self) {
        let key = self.key.clone();
        self.tu_event(TuEvent::TransportError { key });
    }

    /// True when the transaction's transport is reliable.
    pub(crate) fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}
