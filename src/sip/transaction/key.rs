//! Transaction identification (RFC 3261 §17.1.3, §17.2.3, §9.2).
//!
//! - A **client** transaction is named by the branch of the top Via of the
//!   request it sent plus the CSeq method: a response matches when its top
//!   Via branch and CSeq method are equal (§17.1.3).  The method is needed
//!   because a CANCEL reuses its INVITE's branch (§9.1).
//! - A **server** transaction is named by branch, sent-by and method of the
//!   top Via of the request (§17.2.3), with ACK counted as INVITE so that the
//!   ACK for a non-2xx final finds its INVITE transaction.  A CANCEL is its
//!   own transaction (method CANCEL) but `cancel_target` gives the key of the
//!   INVITE it cancels (§9.2).
//! - A request whose branch lacks the `z9hG4bK` cookie comes from an RFC 2543
//!   element and is named by Request-URI, Call-ID, From tag, CSeq number and
//!   the whole top Via (§17.2.3, second half).  The To tag is deliberately
//!   left out so the ACK (whose To carries our tag) still matches its INVITE;
//!   this loses only the RFC 2543 fork distinction, which a B2BUA never sees
//!   on its server side.

use std::fmt;

use bytes::Bytes;

use super::error::TransactionError;
use super::message::{Host, Method, SipMessage, Via};

/// Which side of the exchange a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// The sent-by of a Via: host (case-folded) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SentBy {
    host: String,
    port: Option<u16>,
}

impl SentBy {
    fn of(via: &Via) -> SentBy {
        let host = match &via.host {
            Host::Domain(d) => d.to_ascii_lowercase(),
            other => other.to_string(),
        };
        SentBy {
            host,
            port: via.port,
        }
    }
}

impl fmt::Display for SentBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Id {
    /// RFC 3261 branch; `sent_by` only for server transactions.
    Branch {
        branch: String,
        sent_by: Option<SentBy>,
    },
    /// RFC 2543 request (server side only).
    Legacy {
        request_uri: Bytes,
        call_id: String,
        from_tag: Option<String>,
        cseq: u32,
        top_via: String,
    },
}

/// Names one transaction.  Cheap to clone, hashable, and printable for logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    role: Role,
    method: Method,
    id: Id,
}

impl TransactionKey {
    /// The key of the client transaction that sends `request`.  Our own
    /// requests must carry an RFC 3261 branch (§8.1.1.7).
    pub fn client(request: &SipMessage) -> Result<TransactionKey, TransactionError> {
        let method = request
            .method()
            .ok_or(TransactionError::NotARequest)?
            .clone();
        let via = request.top_via()?;
        if !via.has_rfc3261_branch() {
            return Err(TransactionError::NoRfc3261Branch);
        }
        let branch = via.branch.unwrap_or_default();
        Ok(TransactionKey {
            role: Role::Client,
            method,
            id: Id::Branch {
                branch,
                sent_by: None,
            },
        })
    }

    /// The key of the client transaction a response belongs to (§17.1.3):
    /// top Via branch plus CSeq method.
    pub fn for_response(response: &SipMessage) -> Result<TransactionKey, TransactionError> {
        if !response.is_response() {
            return Err(TransactionError::NotAResponse);
        }
        let via = response.top_via()?;
        let method = response.cseq()?.method;
        let branch = via.branch.ok_or(TransactionError::NoRfc3261Branch)?;
        Ok(TransactionKey {
            role: Role::Client,
            method,
            id: Id::Branch {
                branch,
                sent_by: None,
            },
        })
    }

    /// The key of the server transaction a received request belongs to
    /// (§17.2.3); an ACK maps to its INVITE's key.
    pub fn server(request: &SipMessage) -> Result<TransactionKey, TransactionError> {
        let method = match request.method().ok_or(TransactionError::NotARequest)? {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        let via = request.top_via()?;
        let id = if via.has_rfc3261_branch() {
            Id::Branch {
                sent_by: Some(SentBy::of(&via)),
                branch: via.branch.unwrap_or_default(),
            }
        } else {
            Id::Legacy {
                request_uri: Bytes::copy_from_slice(request.request_uri_raw().unwrap_or_default()),
                call_id: request.call_id()?.to_owned(),
                from_tag: request.from()?.tag().map(str::to_owned),
                cseq: request.cseq()?.seq,
                top_via: via.to_string(),
            }
        };
        Ok(TransactionKey {
            role: Role::Server,
            method,
            id,
        })
    }

    /// For a CANCEL transaction, the key of the INVITE transaction it
    /// targets (§9.1/§9.2: same branch, sent-by and Call-ID rules, method
    /// INVITE), on the same side.
    pub fn cancel_target(&self) -> Option<TransactionKey> {
        (self.method == Method::Cancel).then(|| TransactionKey {
            role: self.role,
            method: Method::Invite,
            id: self.id.clone(),
        })
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The transaction's method (INVITE for an INVITE server transaction
    /// even when reached through its ACK).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Via branch, when the key is an RFC 3261 one.
    pub fn branch(&self) -> Option<&str> {
        match &self.id {
            Id::Branch { branch, .. } => Some(branch),
            Id::Legacy { .. } => None,
        }
    }

    /// True for INVITE transactions (which have their own state machines).
    pub fn is_invite(&self) -> bool {
        self.method == Method::Invite
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        write!(f, "{role} {} ", self.method)?;
        match &self.id {
            Id::Branch {
                branch,
                sent_by: Some(s),
            } => write!(f, "{branch}@{s}"),
            Id::Branch { branch, .. } => f.write_str(branch),
            Id::Legacy { call_id, cseq, .. } => write!(f, "rfc2543 {call_id} {cseq}"),
        }
    }
}
