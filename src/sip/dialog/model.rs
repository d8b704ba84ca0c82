//! One dialog (RFC 3261 §12): its state, creation from either side of an
//! INVITE, in-dialog requests (§12.2.1.1), the ACK for a 2xx (§13.2.2.4),
//! and what incoming requests and responses do to it (§12.2.2, §12.2.1.2).

use super::error::DialogError;
use super::ids::IdSource;
use super::message::{
    BuildError, Contacts, HeaderError, HeaderName, Host, MessageBuilder, Method, NameAddr,
    SipMessage, Uri, Via, response_to,
};
use super::transaction::Transport;

/// Max-Forwards of every request the dialog layer builds (§8.1.1.6).
pub const MAX_FORWARDS: u8 = 70;

/// What the bridge writes about itself in the requests it sends: the Via
/// sent-by (transport, host, port) and the Contact (its remote target as
/// seen by the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalParty {
    pub transport: Transport,
    pub host: Host,
    pub port: Option<u16>,
    /// The Contact value of dialog-creating and target-refresh messages.
    pub contact: NameAddr,
}

impl LocalParty {
    /// A party whose Contact is `contact` (written `<contact>`).
    pub fn new(transport: Transport, host: Host, port: Option<u16>, contact: Uri) -> LocalParty {
        LocalParty {
            transport,
            host,
            port,
            contact: NameAddr::new(contact),
        }
    }

    /// The Via value of a request we send with this branch (with `rport`,
    /// RFC 3581).
    pub fn via(&self, branch: &str) -> String {
        Via::new(
            self.transport.as_str(),
            self.host.clone(),
            self.port,
            branch,
        )
        .to_string()
    }
}

/// Dialog identifier (§12): Call-ID, local tag and remote tag.  A missing
/// tag (RFC 2543 peers) is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request names: local tag = To tag, remote
    /// tag = From tag (§12.2.2).
    pub fn of_request(request: &SipMessage) -> Result<DialogId, HeaderError> {
        Ok(DialogId {
            call_id: request.call_id()?.to_owned(),
            local_tag: request.to()?.tag().unwrap_or("").to_owned(),
            remote_tag: request.from()?.tag().unwrap_or("").to_owned(),
        })
    }

    /// The dialog a response to one of our requests names: local tag =
    /// From tag, remote tag = To tag (§12.1.2).
    pub fn of_response(response: &SipMessage) -> Result<DialogId, HeaderError> {
        Ok(DialogId {
            call_id: response.call_id()?.to_owned(),
            local_tag: response.from()?.tag().unwrap_or("").to_owned(),
            remote_tag: response.to()?.tag().unwrap_or("").to_owned(),
        })
    }
}

/// §12: a dialog created by a provisional response is early; a 2xx
/// confirms it; BYE (or a non-2xx final to the initial INVITE, or a
/// 481/408 to an in-dialog request) terminates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Which side of the dialog-creating INVITE we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogRole {
    /// We sent the INVITE (the agent leg of the B2BUA).
    Uac,
    /// We received it (the caller leg).
    Uas,
}

/// Why an incoming in-dialog request is refused, with the status to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
    /// Seconds for a `Retry-After` header (§14.2's 500 to an overlapping
    /// INVITE).
    pub retry_after: Option<u32>,
}

impl Rejection {
    const OUT_OF_ORDER: Rejection = Rejection::new(500, "CSeq Out of Order");
    const NO_DIALOG: Rejection = Rejection::new(481, "Call/Transaction Does Not Exist");
    const GLARE: Rejection = Rejection::new(491, "Request Pending");

    pub const fn new(status: u16, reason: &'static str) -> Rejection {
        Rejection {
            status,
            reason,
            retry_after: None,
        }
    }

    /// The response to `request` (§8.2.6.2 headers copied).
    pub fn response(&self, request: &SipMessage) -> Result<SipMessage, BuildError> {
        let b = response_to(request, self.status, Some(self.reason))?;
        match self.retry_after {
            Some(s) => b.header("Retry-After", s).build(),
            None => b.build(),
        }
    }
}

/// What to do with an incoming request that names this dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDecision {
    /// Process it.  `target_refreshed`: a re-INVITE or UPDATE changed the
    /// remote target.  A BYE has terminated the dialog (answer it 200).
    Accept { target_refreshed: bool },
    /// The ACK for our 2xx to the INVITE with this dialog's last remote
    /// INVITE CSeq (no response is ever sent to an ACK).
    Ack,
    /// Answer with this status and do not process (500 out of order, 481
    /// other/terminated dialog, 400 broken headers).
    Reject(Rejection),
    /// Ignore silently (a stray or broken ACK).
    Drop,
}

/// One dialog.  Sans-IO: builds messages and updates state; the driver
/// sends them through the transaction layer (or directly, for ACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    role: DialogRole,
    state: DialogState,
    /// Our From (UAC) / To (UAS) without the tag.
    local_uri: NameAddr,
    remote_uri: NameAddr,
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    remote_target: Uri,
    /// In the order Route headers are written in our requests.
    route_set: Vec<NameAddr>,
    secure: bool,
    local: LocalParty,
    /// CSeq of the last INVITE we sent in (or to create) this dialog.
    local_invite_seq: Option<u32>,
    /// CSeq of the last INVITE received in (or creating) this dialog.
    remote_invite_seq: Option<u32>,
    /// Our INVITE has no final response yet (§14.1).
    local_invite_pending: bool,
    /// We have not sent the final response to the peer's INVITE (§14.2).
    remote_invite_pending: bool,
    /// The ACK last built, by the CSeq of the INVITE it acknowledges: a
    /// retransmitted 2xx gets the same ACK again (§13.2.2.4).
    last_ack: Option<(u32, SipMessage)>,
    /// Extra headers the requests this dialog builds carry, by method, in
    /// the order they were set (see `set_request_header`).
    request_headers: Vec<(Method, String, String)>,
}

fn without_tag(mut na: NameAddr) -> NameAddr {
    na.params.remove("tag");
    na
}

fn with_tag(na: &NameAddr, tag: &str) -> NameAddr {
    let mut na = na.clone();
    if !tag.is_empty() {
        na.params.set("tag", Some(tag));
    }
    na
}

/// The first Contact's URI; `Ok(None)` when there is no Contact.
fn contact_uri(msg: &SipMessage) -> Result<Option<Uri>, DialogError> {
    match msg.contacts()? {
        Contacts::Wildcard => Err(DialogError::Contact("Contact: * in a dialog")),
        Contacts::List(list) => Ok(list.into_iter().next().map(|c| c.uri)),
    }
}

fn is_sips(uri: &Uri) -> bool {
    uri.as_sip().is_some_and(|u| u.secure)
}

fn is_target_refresh(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update)
}

/// Methods whose requests carry our Contact: target refreshes, and the
/// ones RFC 3515/6665 require it on.
fn carries_contact(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Refer | Method::Subscribe | Method::Notify
    )
}

impl Dialog {
    // ----- creation --------------------------------------------------------

    /// The UAS side (§12.1.1): `invite` as received and `response`, the
    /// 101..=299 we send to it with our To tag (see `dialog_response`).
    /// Route set = the INVITE's Record-Route in order; remote target = its
    /// Contact; remote CSeq = its CSeq; local CSeq empty.
    pub fn uas(
        invite: &SipMessage,
        response: &SipMessage,
        local: LocalParty,
    ) -> Result<Dialog, DialogError> {
        let (status, call_id, cseq) = dialog_creating_pair(invite, response)?;
        let to = response.to()?;
        let local_tag = to.tag().ok_or(DialogError::NoToTag)?.to_owned();
        let from = invite.from()?;
        let remote_tag = from.tag().unwrap_or("").to_owned();
        let remote_target =
            contact_uri(invite)?.ok_or(DialogError::Contact("the INVITE has no Contact"))?;
        let request_uri = invite.request_uri()?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag,
                remote_tag,
            },
            role: DialogRole::Uas,
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            local_seq: None,
            remote_seq: Some(cseq.seq),
            remote_target,
            route_set: invite.record_route()?,
            secure: is_sips(&request_uri) && local.transport == Transport::Tls,
            local,
            local_invite_seq: None,
            remote_invite_seq: Some(cseq.seq),
            local_invite_pending: false,
            remote_invite_pending: status < 200,
            last_ack: None,
            request_headers: Vec::new(),
        })
    }

    /// A dialog-creating response to `invite` (§12.1.1): the §8.2.6.2
    /// headers, our To tag, the INVITE's Record-Route fields byte for byte
    /// and our Contact.  Add a body (SDP) with `.body(..)`.
    pub fn dialog_response(
        invite: &SipMessage,
        status: u16,
        to_tag: &str,
        contact: &NameAddr,
    ) -> Result<MessageBuilder, DialogError> {
        let mut b = response_to(invite, status, None)?.to_tag(to_tag);
        for rr in invite.fields_of(HeaderName::RecordRoute) {
            b = b.raw_field(rr.clone());
        }
        Ok(b.header("Contact", contact))
    }

    /// The UAC side (§12.1.2): `invite` as we sent it and a 101..=299
    /// response with a To tag.  Route set = the response's Record-Route
    /// reversed; remote target = its Contact (a provisional without Contact
    /// falls back to the Request-URI); local CSeq = the INVITE's.
    pub fn uac(
        invite: &SipMessage,
        response: &SipMessage,
        local: LocalParty,
    ) -> Result<Dialog, DialogError> {
        let (status, call_id, cseq) = dialog_creating_pair(invite, response)?;
        let from = invite.from()?;
        let local_tag = from
            .tag()
            .ok_or(DialogError::Mismatch("the INVITE has no From tag"))?
            .to_owned();
        if response.from()?.tag() != Some(local_tag.as_str()) {
            return Err(DialogError::Mismatch("From tag"));
        }
        let to = response.to()?;
        let remote_tag = to.tag().ok_or(DialogError::NoToTag)?.to_owned();
        let request_uri = invite.request_uri()?;
        let remote_target = match contact_uri(response)? {
            Some(uri) => uri,
            None if status < 200 => request_uri.clone(),
            None => return Err(DialogError::Contact("the 2xx has no Contact")),
        };
        let mut route_set = response.record_route()?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag,
                remote_tag,
            },
            role: DialogRole::Uac,
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            local_seq: Some(cseq.seq),
            remote_seq: None,
            remote_target,
            route_set,
            secure: is_sips(&request_uri) && local.transport == Transport::Tls,
            local,
            local_invite_seq: Some(cseq.seq),
            remote_invite_seq: None,
            local_invite_pending: status < 200,
            remote_invite_pending: false,
            last_ack: None,
            request_headers: Vec::new(),
        })
    }

    // ----- reads ----------------------------------------------------------

    pub fn id(&self) -> &DialogId {
        &self.id
    }
    pub fn role(&self) -> DialogRole {
        self.role
    }
    pub fn state(&self) -> DialogState {
        self.state
    }
    /// Our URI (From of our requests), without tag.
    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }
    /// The peer's URI (To of our requests), without tag.
    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote_uri
    }
    /// CSeq of the last request we sent (`None`: none yet, UAS side).
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }
    /// CSeq of the last request the peer sent.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }
    /// Where our requests go (the peer's Contact).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }
    /// Route set, in the order our Route headers are written.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }
    pub fn secure(&self) -> bool {
        self.secure
    }
    pub fn local_party(&self) -> &LocalParty {
        &self.local
    }

    /// Makes every `method` request this dialog builds (`request`,
    /// `request_builder`) carry `name: value`, after its Contact; setting
    /// the same method and name again replaces the value.  The dialog core
    /// gives such headers no meaning (the application's own, e.g. an
    /// `X-` header on re-INVITEs); the ACK for a 2xx and CANCEL carry none.
    pub fn set_request_header(&mut self, method: Method, name: &str, value: &str) {
        match self
            .request_headers
            .iter_mut()
            .find(|(m, n, _)| *m == method && n.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.2 = value.to_owned(),
            None => self
                .request_headers
                .push((method, name.to_owned(), value.to_owned())),
        }
    }

    /// The value `set_request_header` gave `name` on `method` requests.
    pub fn request_header(&self, method: &Method, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(m, n, _)| m == method && n.eq_ignore_ascii_case(name))
            .map(|(_, _, v)| v.as_str())
    }

    /// An INVITE transaction of this dialog, in either direction, has no
    /// final response yet: no new INVITE may be sent (§14.1).
    pub fn invite_pending(&self) -> bool {
        self.local_invite_pending || self.remote_invite_pending
    }

    /// Ends the dialog (we sent or received a final answer that ends it,
    /// or the call was torn down otherwise).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    // ----- requests we send -------------------------------------------------

    /// A new in-dialog request (§12.2.1.1) with a fresh branch from `ids`.
    pub fn request(
        &mut self,
        method: Method,
        ids: &mut dyn IdSource,
    ) -> Result<SipMessage, DialogError> {
        let branch = ids.branch();
        Ok(self.request_builder(method, &branch)?.build()?)
    }

    /// Like `request`, returning the builder so headers (Refer-To, Reason)
    /// and a body (SDP) can be added.  The CSeq is taken now:
    /// a builder thrown away leaves a gap, which §12.2.1.1 allows.
    ///
    /// ACK (use `ack_for_2xx`) and CANCEL (use `cancel_for`) are refused, so
    /// is anything on a terminated dialog and BYE from a UAS on an early
    /// dialog (§15), and an INVITE while another INVITE transaction of the
    /// dialog is in progress (§14.1).  Building a BYE terminates the
    /// dialog.  Target refreshes (and REFER, NOTIFY, SUBSCRIBE) carry
    /// Contact; every request carries the headers `set_request_header` set
    /// for its method.
    pub fn request_builder(
        &mut self,
        method: Method,
        branch: &str,
    ) -> Result<MessageBuilder, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::Method(method));
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if method == Method::Bye && self.role == DialogRole::Uas && self.state == DialogState::Early
        {
            return Err(DialogError::Method(method));
        }
        if method == Method::Invite && self.invite_pending() {
            return Err(DialogError::InvitePending);
        }
        let seq = match self.local_seq {
            None => 1,
            Some(s) => s.checked_add(1).ok_or(DialogError::CSeqExhausted)?,
        };
        let b = self.base(&method, seq, &method, branch);
        let mut b = if carries_contact(&method) {
            b.header("Contact", &self.local.contact)
        } else {
            b
        };
        for (_, name, value) in self.request_headers.iter().filter(|(m, ..)| *m == method) {
            b = b.header(name, value);
        }
        self.local_seq = Some(seq);
        match method {
            Method::Invite => {
                self.local_invite_seq = Some(seq);
                self.local_invite_pending = true;
            }
            Method::Bye => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(b)
    }

    /// Start line, Via, Max-Forwards, Route, From, To, Call-ID, CSeq.
    fn base(
        &self,
        method: &Method,
        seq: u32,
        cseq_method: &Method,
        branch: &str,
    ) -> MessageBuilder {
        let (uri, routes) = self.target_and_routes();
        let mut b = MessageBuilder::request(method, &uri)
            .header("Via", self.local.via(branch))
            .header("Max-Forwards", MAX_FORWARDS);
        for r in &routes {
            b = b.header("Route", r);
        }
        b.header("From", with_tag(&self.local_uri, &self.id.local_tag))
            .header("To", with_tag(&self.remote_uri, &self.id.remote_tag))
            .header("Call-ID", &self.id.call_id)
            .header("CSeq", format!("{seq} {cseq_method}"))
    }

    /// Request-URI and Route headers (§12.2.1.1): loose routing when the
    /// first route has `lr`; otherwise (strict router) the first route is
    /// the Request-URI and the remote target goes last.
    fn target_and_routes(&self) -> (Uri, Vec<NameAddr>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let strict = first.uri.as_sip().is_some_and(|u| !u.params.contains("lr"));
        if !strict {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        let mut uri = first.uri.clone();
        if let Uri::Sip(u) = &mut uri {
            // Not allowed in a Request-URI (§19.1.1, Table 1).
            u.params.remove("method");
            u.headers = None;
        }
        let mut routes: Vec<NameAddr> = self.route_set.iter().skip(1).cloned().collect();
        routes.push(NameAddr::new(self.remote_target.clone()));
        (uri, routes)
    }

    /// The ACK for a 2xx to an INVITE of this dialog (§13.2.2.4): built
    /// like any in-dialog request, but with the INVITE's CSeq number and
    /// method ACK, and a new branch.  It first applies the 2xx to the
    /// dialog (`on_response`: confirms an early dialog, refreshes the
    /// remote target).  A retransmitted 2xx gets the identical ACK back.
    /// Add an SDP answer with `SipMessage::set_body` when the INVITE had no
    /// offer.
    pub fn ack_for_2xx(
        &mut self,
        response: &SipMessage,
        ids: &mut dyn IdSource,
    ) -> Result<SipMessage, DialogError> {
        let status = response.status().ok_or(DialogError::NotAResponse)?;
        if !(200..=299).contains(&status) {
            return Err(DialogError::Mismatch("not a 2xx"));
        }
        let cseq = response.cseq()?;
        if cseq.method != Method::Invite {
            return Err(DialogError::Mismatch("not a response to INVITE"));
        }
        if let Some((seq, ack)) = &self.last_ack
            && *seq == cseq.seq
            && DialogId::of_response(response)? == self.id
        {
            return Ok(ack.clone());
        }
        self.on_response(response)?;
        let branch = ids.branch();
        let ack = self
            .base(&Method::Ack, cseq.seq, &Method::Ack, &branch)
            .build()?;
        self.last_ack = Some((cseq.seq, ack.clone()));
        Ok(ack)
    }

    // ----- what the peer sends ----------------------------------------------

    /// A response to a request of this dialog (or to the INVITE that
    /// created it).  2xx to our INVITE confirms an early dialog (the UAC
    /// recomputes the route set from it, §13.2.2.4); 1xx/2xx to INVITE and
    /// 2xx to UPDATE refresh the remote target from Contact; a non-2xx
    /// final to the initial INVITE ends an early dialog (§12.3); 481 and
    /// 408 end the dialog (§12.2.1.2).  Returns the resulting state.
    pub fn on_response(&mut self, response: &SipMessage) -> Result<DialogState, DialogError> {
        let status = response.status().ok_or(DialogError::NotAResponse)?;
        if DialogId::of_response(response)? != self.id {
            return Err(DialogError::Mismatch("dialog id"));
        }
        let cseq = response.cseq()?;
        let our_invite = cseq.method == Method::Invite && Some(cseq.seq) == self.local_invite_seq;
        if our_invite && status >= 200 {
            self.local_invite_pending = false;
        }
        if self.state == DialogState::Terminated {
            return Ok(self.state);
        }
        if matches!(status, 408 | 481) {
            self.state = DialogState::Terminated;
            return Ok(self.state);
        }
        let refreshes = (our_invite && status < 300)
            || (cseq.method == Method::Update && (200..300).contains(&status));
        if refreshes && let Some(uri) = contact_uri(response)? {
            self.remote_target = uri;
        }
        if our_invite && self.state == DialogState::Early {
            if (200..300).contains(&status) {
                self.state = DialogState::Confirmed;
                if self.role == DialogRole::Uac {
                    let mut rs = response.record_route()?;
                    rs.reverse();
                    self.route_set = rs;
                }
            } else if status >= 300 {
                self.state = DialogState::Terminated;
            }
        }
        Ok(self.state)
    }

    /// A response we send to a request of the peer in this dialog (UAS of
    /// the INVITE: 2xx confirms the early dialog, 300-699 ends it, §12.3).
    pub fn on_sent_response(&mut self, response: &SipMessage) -> Result<DialogState, DialogError> {
        let status = response.status().ok_or(DialogError::NotAResponse)?;
        let cseq = response.cseq()?;
        let their_invite =
            cseq.method == Method::Invite && Some(cseq.seq) == self.remote_invite_seq;
        if their_invite && status >= 200 {
            self.remote_invite_pending = false;
        }
        if their_invite && self.state == DialogState::Early {
            if (200..300).contains(&status) {
                self.state = DialogState::Confirmed;
            } else if status >= 300 {
                self.state = DialogState::Terminated;
            }
        }
        Ok(self.state)
    }

    /// An incoming request that names this dialog (§12.2.2).  Checks the
    /// dialog id and the CSeq order (a CSeq not above the last one is out
    /// of order: 500; an equal one that reaches the TU is not a
    /// retransmission, which the transaction layer absorbs, so it is
    /// refused too), records the remote CSeq, refreshes the remote target
    /// on re-INVITE/UPDATE with a Contact, and terminates on BYE.  ACK and
    /// CANCEL never move the remote CSeq.  A re-INVITE while our INVITE is
    /// in progress is refused 491 (§14.2, glare); while the peer's previous
    /// INVITE has no final response from us (tell the dialog with
    /// `on_sent_response`), 500 with Retry-After 0..=10 s derived from the
    /// CSeq (§14.2).
    pub fn on_request(&mut self, request: &SipMessage) -> RequestDecision {
        let Some(method) = request.method() else {
            return RequestDecision::Drop;
        };
        let is_ack = *method == Method::Ack;
        let bad = |reason| {
            if is_ack {
                RequestDecision::Drop
            } else {
                RequestDecision::Reject(Rejection::new(400, reason))
            }
        };
        let Ok(cseq) = request.cseq() else {
            return bad("Bad CSeq");
        };
        if cseq.method != *method {
            return bad("CSeq Method Mismatch");
        }
        let Ok(id) = DialogId::of_request(request) else {
            return bad("Bad Dialog Headers");
        };
        if id != self.id || self.state == DialogState::Terminated {
            return if is_ack {
                RequestDecision::Drop
            } else {
                RequestDecision::Reject(Rejection::NO_DIALOG)
            };
        }
        match method {
            Method::Ack => {
                if Some(cseq.seq) == self.remote_invite_seq {
                    RequestDecision::Ack
                } else {
                    RequestDecision::Drop
                }
            }
            Method::Cancel => RequestDecision::Accept {
                target_refreshed: false,
            },
            _ => {
                if self.remote_seq.is_some_and(|r| cseq.seq <= r) {
                    return RequestDecision::Reject(Rejection::OUT_OF_ORDER);
                }
                if *method == Method::Invite {
                    if self.local_invite_pending {
                        return RequestDecision::Reject(Rejection::GLARE);
                    }
                    if self.remote_invite_pending {
                        return RequestDecision::Reject(Rejection {
                            retry_after: Some(cseq.seq % 11),
                            ..Rejection::new(500, "Previous INVITE Pending")
                        });
                    }
                }
                let new_target = if is_target_refresh(method) {
                    match contact_uri(request) {
                        Ok(t) => t,
                        Err(_) => return bad("Bad Contact"),
                    }
                } else {
                    None
                };
                self.remote_seq = Some(cseq.seq);
                let target_refreshed = new_target.is_some();
                if let Some(t) = new_target {
                    self.remote_target = t;
                }
                match method {
                    Method::Invite => {
                        self.remote_invite_seq = Some(cseq.seq);
                        self.remote_invite_pending = true;
                    }
                    Method::Bye => self.state = DialogState::Terminated,
                    _ => {}
                }
                RequestDecision::Accept { target_refreshed }
            }
        }
    }
}

/// Checks that `response` is a dialog-creating answer (101..=299) to the
/// INVITE `invite`, as both sides require (§12.1.1, §12.1.2), and gives
/// back its status, Call-ID and CSeq.
fn dialog_creating_pair<'a>(
    invite: &'a SipMessage,
    response: &SipMessage,
) -> Result<(u16, &'a str, super::message::CSeq), DialogError> {
    if invite.method() != Some(&Method::Invite) {
        return Err(DialogError::Mismatch("not an INVITE"));
    }
    let status = response.status().ok_or(DialogError::NotAResponse)?;
    if !(101..=299).contains(&status) {
        return Err(DialogError::NotDialogCreating(status));
    }
    let call_id = invite.call_id()?;
    if response.call_id()? != call_id {
        return Err(DialogError::Mismatch("Call-ID"));
    }
    let cseq = invite.cseq()?;
    if response.cseq()? != cseq {
        return Err(DialogError::Mismatch("CSeq"));
    }
    Ok((status, call_id, cseq))
}
