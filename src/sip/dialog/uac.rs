//! The INVITE the bridge sends to an agent (or a trunk), and its CANCEL.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::DialogError;
use super::ids::IdSource;
use super::message::{HeaderError, HeaderName, MessageBuilder, Method, NameAddr, SipMessage, Uri};
use super::model::{LocalParty, MAX_FORWARDS};

/// An initial INVITE (§8.1.1, §13.2.1) to build.
///
/// ```text
/// INVITE <target> SIP/2.0
/// Via: SIP/2.0/<transport> <host>:<port>;branch=z9hG4bK..;rport
/// Max-Forwards: 70
/// Route: ...                       (preloaded, optional)
/// From: <bridge identity>;tag=<fresh>
/// To: <agent AOR>
/// Call-ID: <fresh>@<host>           (or given)
/// CSeq: 1 INVITE
/// Contact: <bridge contact>
/// <extra headers in order>           (Allow, Supported, X-...)
/// Content-Type: application/sdp      (with a body)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UacInvite {
    /// Request-URI: the agent's registered contact.
    pub target: Uri,
    /// The bridge identity; a fresh tag replaces any tag given.
    pub from: NameAddr,
    /// The agent's AOR (any tag is removed).
    pub to: NameAddr,
    /// `None`: a fresh one from the `IdSource`.
    pub call_id: Option<String>,
    /// Initial CSeq number (default 1; must stay below 2^31, §8.1.1.5).
    pub cseq: u32,
    /// Preloaded Route set (outbound proxy), written in order.
    pub route: Vec<NameAddr>,
    /// Extra headers, written in order after Contact.
    pub headers: Vec<(String, String)>,
    /// SDP offer.
    pub sdp: Option<Bytes>,
}

impl UacInvite {
    pub fn new(target: Uri, from: NameAddr, to: NameAddr) -> UacInvite {
        UacInvite {
            target,
            from,
            to,
            call_id: None,
            cseq: 1,
            route: Vec::new(),
            headers: Vec::new(),
            sdp: None,
        }
    }

    /// Adds an extra header.
    pub fn header(mut self, name: &str, value: &str) -> UacInvite {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the SDP offer.
    pub fn sdp(mut self, sdp: impl Into<Bytes>) -> UacInvite {
        self.sdp = Some(sdp.into());
        self
    }

    /// Uses this Call-ID instead of a fresh one.
    pub fn call_id(mut self, call_id: &str) -> UacInvite {
        self.call_id = Some(call_id.to_owned());
        self
    }

    /// Builds the INVITE: a fresh From tag, branch and (unless given)
    /// Call-ID from `ids`.
    pub fn build(
        &self,
        local: &LocalParty,
        ids: &mut dyn IdSource,
    ) -> Result<SipMessage, DialogError> {
        let mut from = self.from.clone();
        from.params.set("tag", Some(&ids.tag()));
        let mut to = self.to.clone();
        to.params.remove("tag");
        let call_id = match &self.call_id {
            Some(c) => c.clone(),
            None => ids.call_id(&local.host.to_string()),
        };
        let mut b = MessageBuilder::request(&Method::Invite, &self.target)
            .header("Via", local.via(&ids.branch()))
            .header("Max-Forwards", MAX_FORWARDS);
        for r in &self.route {
            b = b.header("Route", r);
        }
        b = b
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{} INVITE", self.cseq))
            .header("Contact", &local.contact);
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        if let Some(sdp) = &self.sdp {
            b = b.body("application/sdp", sdp.clone());
        }
        Ok(b.build()?)
    }
}

/// The CANCEL for `invite` as it was sent (§9.1): same Request-URI,
/// Call-ID, From, To and CSeq number (method CANCEL), a single Via equal to
/// the INVITE's top Via (so it reaches the same server transaction, and
/// the transaction layer pairs it with the INVITE client transaction), the
/// INVITE's Route headers, no body.  Fields are copied byte for byte.
///
/// §9.1: send it only once a provisional response has arrived.
pub fn cancel_for(invite: &SipMessage) -> Result<SipMessage, DialogError> {
    if invite.method() != Some(&Method::Invite) {
        return Err(DialogError::Mismatch("not an INVITE"));
    }
    let uri = invite.request_uri_raw().ok_or(DialogError::NotARequest)?;
    let cseq = invite.cseq()?;
    invite.call_id()?;
    invite.from()?;
    invite.to()?;
    let top_via = invite.top_via()?;
    let field = |kind: HeaderName, label: &'static str| {
        invite
            .fields()
            .iter()
            .find(|f| f.kind() == kind)
            .ok_or(HeaderError::Missing(label))
    };
    let via = field(HeaderName::Via, "Via")?;
    let mut b = BytesMut::with_capacity(512);
    b.put_slice(b"CANCEL ");
    b.put_slice(uri);
    b.put_slice(b" SIP/2.0\r\n");
    if via.value_text().contains(',') {
        b.put_slice(format!("Via: {top_via}\r\n").as_bytes());
    } else {
        b.put_slice(via.raw());
    }
    b.put_slice(format!("Max-Forwards: {MAX_FORWARDS}\r\n").as_bytes());
    for route in invite.fields_of(HeaderName::Route) {
        b.put_slice(route.raw());
    }
    for (kind, label) in [
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
    ] {
        b.put_slice(field(kind, label)?.raw());
    }
    b.put_slice(format!("CSeq: {} CANCEL\r\n", cseq.seq).as_bytes());
    b.put_slice(b"Content-Length: 0\r\n\r\n");
    Ok(super::message::parse(b.freeze()).map_err(super::message::BuildError::from)?)
}
