//! The transport a transaction runs over, as far as the transaction layer
//! cares: whether it is reliable.
//!
//! RFC 3261 §17 changes behaviour on reliable transports: no request or
//! response retransmissions (Timers A, E, G are not started, §17.1.1.2,
//! §17.1.2.2, §17.2.1) and the "absorb stray retransmissions" waits collapse
//! to zero (Timers D, I, J, K, Table 4).

use std::fmt;

/// A SIP transport (the `transport` token of a Via, RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    /// RFC 7118.
    Ws,
    /// RFC 7118.
    Wss,
}

impl Transport {
    /// True when the transport itself retransmits (everything but UDP).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via token (`UDP`, `TCP`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Parses a Via transport token (case-insensitive); `None` if unknown.
    pub fn from_token(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            "SCTP" => Transport::Sctp,
            "WS" => Transport::Ws,
            "WSS" => Transport::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
