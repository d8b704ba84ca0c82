//! The messages of a UAC registration (RFC 3261 §10.2): the REGISTER we
//! send, and what we read from the registrar's answers — the binding it
//! granted, its digest challenges, Min-Expires and Retry-After.

use crate::sip::auth::{Challenge, Credentials, Qop};
use crate::sip::dialog::LocalParty;
use crate::sip::message::{BuildError, Contacts, MessageBuilder, Method, SipMessage, Uri};

/// Who registers where (one trunk, one binding).
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The request-URI: the registrar's domain (`sip:host[:port]`).
    pub registrar: Uri,
    /// The address-of-record, written in To and From (`sip:user@host`).
    pub aor: Uri,
    /// The binding we ask for.
    pub contact: Uri,
    /// How we appear in Via (transport, host, port).
    pub local: LocalParty,
    /// The digest user name (usually the AOR's user).
    pub username: String,
    pub password: String,
    /// The interval asked for, in seconds.
    pub expires: u32,
}

/// The parts of one REGISTER that change between sends.
pub(super) struct RegisterParts<'a> {
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub branch: &'a str,
    pub cseq: u32,
    pub expires: u32,
    /// `Authorization` (false) or `Proxy-Authorization` (true), and its value.
    pub credentials: Option<(bool, &'a Credentials)>,
}

/// A REGISTER for `config`'s binding.
pub(super) fn register(
    config: &RegistrationConfig,
    parts: &RegisterParts<'_>,
) -> Result<SipMessage, BuildError> {
    let mut b = MessageBuilder::request(&Method::Register, &config.registrar)
        .header("Via", config.local.via(parts.branch))
        .header("Max-Forwards", 70)
        .header("From", format!("<{}>;tag={}", config.aor, parts.from_tag))
        .header("To", format!("<{}>", config.aor))
        .header("Call-ID", parts.call_id)
        .header("CSeq", format!("{} REGISTER", parts.cseq))
        .header("Contact", format!("<{}>", config.contact))
        .header("Expires", parts.expires)
        .header("User-Agent", "pbx-bridge");
    if let Some((proxy, credentials)) = parts.credentials {
        let name = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        b = b.header(name, credentials);
    }
    b.build()
}

/// The interval a 2xx granted our binding: the `expires` of our Contact in
/// the answer, else its Expires header, else what we asked for.
pub(super) fn granted_expires(response: &SipMessage, contact: &Uri, asked: u32) -> u32 {
    let ours = |uri: &Uri| match (uri.as_sip(), contact.as_sip()) {
        (Some(a), Some(b)) => {
            a.user == b.user
                && a.host.to_string().eq_ignore_ascii_case(&b.host.to_string())
                && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
        }
        _ => uri == contact,
    };
    if let Ok(Contacts::List(list)) = response.contacts()
        && let Some(e) = list.iter().find(|c| ours(&c.uri)).and_then(|c| c.expires())
    {
        return e;
    }
    match response.expires() {
        Ok(Some(e)) => e,
        _ => asked,
    }
}

/// The challenge to answer in a 401 (`WWW-Authenticate`) or 407
/// (`Proxy-Authenticate`): the first we can answer (RFC 8760 §2.4: the
/// registrar lists them in its order of preference; an unknown algorithm
/// does not parse), skipping `userhash`, `auth-int`-only ones and `-sess`
/// ones without qop. `None` when no challenge is usable.
pub(super) fn pick_challenge(response: &SipMessage) -> Option<(bool, Challenge)> {
    let proxy = response.status() == Some(407);
    let name = if proxy {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    response
        .headers(name)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .filter_map(|v| Challenge::parse(v).ok())
        .find(|c| {
            let auth = c.qop.contains(&Qop::Auth);
            !c.userhash && (auth || (c.qop.is_empty() && !c.algorithm.is_session()))
        })
        .map(|c| (proxy, c))
}

/// A 423's Min-Expires.
pub(super) fn min_expires(response: &SipMessage) -> Option<u32> {
    let v = response.header("Min-Expires")?;
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// A 503's Retry-After, in seconds (the delta form only).
pub(super) fn retry_after(response: &SipMessage) -> Option<u32> {
    let v = response.header("Retry-After")?;
    let v = std::str::from_utf8(v).ok()?;
    v.split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .find(|s| !s.is_empty())?
        .parse()
        .ok()
}
