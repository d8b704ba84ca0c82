//! What flows between signalling and a call task: the messages of
//! the call's legs in, the messages to send out. Signalling owns the
//! transaction layer; a call never touches it directly.

use std::net::SocketAddr;

use tokio::sync::mpsc::UnboundedSender;

use crate::sip::message::SipMessage;
use crate::sip::transaction::{TransactionKey, Transport};

/// A message for one call, routed by Call-ID.
#[derive(Debug)]
pub enum CallInput {
    /// A request of one of the call's legs (BYE, re-INVITE, REFER, INFO...)
    /// through server transaction `key`.
    Request {
        key: TransactionKey,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
    },
    /// The caller CANCELled its INVITE (signalling answered the CANCEL).
    Cancelled,
    /// An ACK for a 2xx the call sent.
    Ack { request: SipMessage },
    /// A response to one of the call's requests (retransmitted 2xx
    /// included: they need the same ACK again).
    Response { response: SipMessage },
    /// One of the call's client transactions timed out or could not be
    /// sent.
    TransactionFailed { key: TransactionKey },
}

/// What a call asks signalling to do.
#[derive(Debug)]
pub enum Command {
    /// Send a request through a new client transaction (its Call-ID is
    /// routed to the call from now on).
    Request {
        request: SipMessage,
        destination: SocketAddr,
        transport: Transport,
    },
    /// Answer server transaction `key`.
    Respond {
        key: TransactionKey,
        response: SipMessage,
    },
    /// Send without a transaction: the ACK for a 2xx (§13.2.2.4).
    Transmit {
        message: SipMessage,
        destination: SocketAddr,
        transport: Transport,
    },
    /// The call is over: forget its routes.
    Ended,
}

/// A call's way to signalling: its commands, tagged with its id.
#[derive(Debug, Clone)]
pub struct Outbox {
    id: u64,
    tx: UnboundedSender<(u64, Command)>,
}

impl Outbox {
    pub(super) fn new(id: u64, tx: UnboundedSender<(u64, Command)>) -> Outbox {
        Outbox { id, tx }
    }

    pub(super) fn send(&self, command: Command) {
        // Signalling is gone only at shutdown; nothing is left to send to.
        let _ = self.tx.send((self.id, command));
    }
}
