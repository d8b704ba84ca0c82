//! The ACK an INVITE client transaction sends for a non-2xx final response
//! (RFC 3261 §17.1.1.3).
//!
//! That ACK is hop-by-hop and part of the INVITE transaction: same
//! Request-URI, Call-ID, From, CSeq number and a single Via equal to the
//! INVITE's top Via (so the server transaction matches it), the Route
//! headers of the INVITE, and the To of the response (which carries the
//! server's tag).  Everything but the To is fixed when the INVITE is sent,
//! so it is prepared then and a broken request is refused up front.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::TransactionError;
use super::message::{HeaderError, HeaderName, SipMessage};

/// An ACK waiting for the To header of the response it acknowledges.
#[derive(Debug, Clone)]
pub(crate) struct AckTemplate {
    /// Start line, Via, Max-Forwards, Route..., From.
    before_to: Bytes,
    /// Call-ID, CSeq, Content-Length and the empty line.
    after_to: Bytes,
}

impl AckTemplate {
    /// Prepares the ACK for `invite`.
    pub(crate) fn new(invite: &SipMessage) -> Result<AckTemplate, TransactionError> {
        let uri = invite
            .request_uri_raw()
            .ok_or(TransactionError::NotARequest)?;
        let cseq = invite.cseq()?;
        invite.call_id()?;
        let field = |kind: HeaderName, label: &'static str| {
            invite
                .fields()
                .iter()
                .find(|f| f.kind() == kind)
                .ok_or(HeaderError::Missing(label))
        };
        let via = field(HeaderName::Via, "Via")?;
        let from = field(HeaderName::From, "From")?;
        let call_id = field(HeaderName::CallId, "Call-ID")?;

        let mut b = BytesMut::with_capacity(512);
        b.put_slice(b"ACK ");
        b.put_slice(uri);
        b.put_slice(b" SIP/2.0\r\n");
        if via.value_text().contains(',') {
            // Only the top value of a Via list belongs in the ACK.
            b.put_slice(format!("Via: {}\r\n", invite.top_via()?).as_bytes());
        } else {
            b.put_slice(via.raw());
        }
        b.put_slice(b"Max-Forwards: 70\r\n");
        for route in invite
            .fields()
            .iter()
            .filter(|f| f.kind() == HeaderName::Route)
        {
            b.put_slice(route.raw());
        }
        b.put_slice(from.raw());
        let before_to = b.split().freeze();

        b.put_slice(call_id.raw());
        b.put_slice(format!("CSeq: {} ACK\r\n", cseq.seq).as_bytes());
        b.put_slice(b"Content-Length: 0\r\n\r\n");
        Ok(AckTemplate {
            before_to,
            after_to: b.freeze(),
        })
    }

    /// The ACK for `response`; `None` when the response has no To (the
    /// message layer's inbound validation drops such responses anyway).
    pub(crate) fn build(&self, response: &SipMessage) -> Option<Bytes> {
        let to = response
            .fields()
            .iter()
            .find(|f| f.kind() == HeaderName::To)?;
        let mut b =
            BytesMut::with_capacity(self.before_to.len() + to.raw().len() + self.after_to.len());
        b.put_slice(&self.before_to);
        b.put_slice(to.raw());
        b.put_slice(&self.after_to);
        Some(b.freeze())
    }
}
