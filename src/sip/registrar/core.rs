//! REGISTER processing: authenticate, then add, refresh, remove or list the
//! bindings of the extension.

use std::net::SocketAddr;

use super::bindings::{Binding, BindingChange, BindingTable};
use crate::sip::auth::{
    Algorithm, AuthOutcome, Authenticator, AuthenticatorConfig, Credentials, FailReason,
    LockedAddress, Lockout, LockoutConfig, NonceIssuer, VerifyRequest,
};

/// Nonces whose counts are tracked for replay. A nonce forgotten is
/// answered `stale`, so this must exceed the nonces issued per lifetime
/// second at the busiest: 64k covers thousands of registrations a second.
const NONCE_COUNTS: usize = 65_536;
use crate::sip::message::{Contacts, SipMessage, Uri, response_to};
use crate::sip::transaction::Transport;

/// Who challenges: the registrar (401 / `WWW-Authenticate` /
/// `Authorization`) or the bridge as a proxy for a call (407 /
/// `Proxy-Authenticate` / `Proxy-Authorization`), RFC 3261 §22.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenger {
    Registrar,
    Proxy,
}

impl Challenger {
    fn status(self) -> u16 {
        match self {
            Challenger::Registrar => 401,
            Challenger::Proxy => 407,
        }
    }

    fn challenge_header(self) -> &'static str {
        match self {
            Challenger::Registrar => "WWW-Authenticate",
            Challenger::Proxy => "Proxy-Authenticate",
        }
    }

    fn credentials_header(self) -> &'static str {
        match self {
            Challenger::Registrar => "Authorization",
            Challenger::Proxy => "Proxy-Authorization",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Challenger::Registrar => "register",
            Challenger::Proxy => "call",
        }
    }
}

/// What the registrar needs to know about an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub secret: String,
    /// Offered in this order (RFC 8760).
    pub algorithms: Vec<Algorithm>,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The digest realm (the bridge's SIP host).
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Used when the UA asks for no particular expiry.
    pub default_expires: u32,
    /// Contacts kept per extension; a newer one replaces the oldest.
    pub max_contacts: usize,
    /// Offered to unknown users so a 401 does not reveal which extensions
    /// exist.
    pub default_algorithms: Vec<Algorithm>,
    pub lockout: LockoutConfig,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            realm: "pbx-bridge".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 1,
            default_algorithms: vec![Algorithm::Md5],
            lockout: LockoutConfig::default(),
        }
    }
}

/// The result of one REGISTER.
#[derive(Debug)]
pub struct Handled {
    /// The response to send through the server transaction (`None` only if
    /// the request lacked what a response copies, which the message layer's
    /// checks already exclude).
    pub response: Option<SipMessage>,
    pub status: u16,
    pub changes: Vec<BindingChange>,
    /// Set when authentication failed or the address is locked out: why,
    /// for the logs (*erro de autenticação de usuário no PABX*).
    pub auth_failure: Option<String>,
    /// Set when this failure locked the address out.
    pub locked_out: bool,
}

pub struct Registrar {
    config: RegistrarConfig,
    auth: Authenticator,
    lockout: Lockout,
    bindings: BindingTable,
    tag_seq: u64,
}

impl Registrar {
    /// `key` signs nonces; keep it across restarts so phones holding a
    /// nonce are told `stale` rather than refused.
    pub fn new(config: RegistrarConfig, key: [u8; 32]) -> Self {
        let lifetime = std::time::Duration::from_secs(300);
        Self {
            lockout: Lockout::new(config.lockout.clone()),
            auth: Authenticator::new(
                NonceIssuer::new(key, lifetime),
                AuthenticatorConfig {
                    nc_capacity: NONCE_COUNTS,
                    ..AuthenticatorConfig::default()
                },
            ),
            config,
            bindings: BindingTable::default(),
            tag_seq: 0,
        }
    }

    pub fn bindings(&self) -> &BindingTable {
        &self.bindings
    }

    pub fn lockouts(&self, now: u64) -> Vec<LockedAddress> {
        self.lockout.snapshot(now)
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Removes expired bindings and old lockout entries.
    pub fn expire(&mut self, now: u64) -> Vec<BindingChange> {
        let mut out = Vec::new();
        self.bindings.expire(now, &mut out);
        self.lockout.prune(now);
        out
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.bindings.next_expiry()
    }

    fn next_tag(&mut self) -> String {
        self.tag_seq = self.tag_seq.wrapping_add(1);
        format!("reg{:x}", self.tag_seq)
    }

    /// Handles one REGISTER from `source` at `now` (unix seconds).
    pub fn handle(
        &mut self,
        request: &SipMessage,
        source: SocketAddr,
        transport: Transport,
        now: u64,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> Handled {
        if let Some(refused) = self.refuse_if_locked(request, source, now) {
            return refused;
        }
        let aor = match request.to().map(|to| to.uri) {
            Ok(uri) => match uri.user_text() {
                Some(user) => user,
                None if matches!(uri, Uri::Sip(_)) => {
                    return self.reply(request, 404, None, vec![], None, false);
                }
                None => {
                    return self.reply(
                        request,
                        400,
                        Some("To must be a SIP URI"),
                        vec![],
                        None,
                        false,
                    );
                }
            },
            Err(_) => return self.reply(request, 400, Some("Malformed To"), vec![], None, false),
        };
        match self.authenticate(request, &aor, Challenger::Registrar, now, source, &lookup) {
            Ok(()) => self.apply(request, &aor, source, transport, now),
            Err(handled) => *handled,
        }
    }

    /// 403 for an address locked out after repeated failures.
    fn refuse_if_locked(
        &mut self,
        request: &SipMessage,
        source: SocketAddr,
        now: u64,
    ) -> Option<Handled> {
        let lock = self.lockout.is_locked(source.ip(), now)?;
        let reason = format!(
            "address locked out until {} after {} failures (last: {})",
            lock.until, lock.failures, lock.reason
        );
        Some(self.reply(
            request,
            403,
            Some("Forbidden (locked out)"),
            vec![],
            Some(reason),
            false,
        ))
    }

    /// Authenticates a call from an extension (RFC 3261 §22.3: the bridge
    /// challenges as a proxy, 407 with `Proxy-Authenticate`). The caller is
    /// the From user; `Ok` names it, `Err` is the answer to send (the 407
    /// challenge, or 403 with the failure for the logs).
    pub fn authorize_call(
        &mut self,
        request: &SipMessage,
        source: SocketAddr,
        now: u64,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> Result<String, Box<Handled>> {
        if let Some(refused) = self.refuse_if_locked(request, source, now) {
            return Err(Box::new(refused));
        }
        let Some(user) = request.from().ok().and_then(|f| f.uri.user_text()) else {
            return Err(Box::new(self.reply(
                request,
                403,
                None,
                vec![],
                None,
                false,
            )));
        };
        self.authenticate(request, &user, Challenger::Proxy, now, source, &lookup)?;
        Ok(user)
    }

    /// Digest authentication of `user` (RFC 8760): challenge when there are
    /// no credentials or the nonce is stale, 403 (counted for the lockout)
    /// when they are wrong.
    fn authenticate(
        &mut self,
        request: &SipMessage,
        user: &str,
        challenger: Challenger,
        now: u64,
        source: SocketAddr,
        lookup: &dyn Fn(&str) -> Option<Credential>,
    ) -> Result<(), Box<Handled>> {
        let ip = source.ip();
        let credential = lookup(user).filter(|c| c.active);
        let algorithms = credential
            .as_ref()
            .map(|c| c.algorithms.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.config.default_algorithms.clone());

        let Some(header) = request.header(challenger.credentials_header()) else {
            return Err(Box::new(self.challenge(
                request,
                challenger,
                &algorithms,
                now,
                false,
            )));
        };
        let header = String::from_utf8_lossy(header);
        let credentials = match Credentials::parse(&header) {
            Ok(c) => c,
            Err(e) => {
                return Err(Box::new(self.fail(
                    request,
                    ip,
                    now,
                    format!("malformed {}: {e}", challenger.credentials_header()),
                )));
            }
        };
        if credentials.username != user {
            return Err(Box::new(self.fail(
                request,
                ip,
                now,
                format!(
                    "user {:?} tried to {} as extension {user:?}",
                    credentials.username,
                    challenger.action()
                ),
            )));
        }
        let realm = self.config.realm.clone();
        let method = request
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let outcome = self.auth.verify(&VerifyRequest {
            method: &method,
            credentials: &credentials,
            realm: &realm,
            secret: credential.as_ref().map(|c| c.secret.as_str()),
            allowed: &algorithms,
            request_uri: None,
            now,
        });
        match outcome {
            AuthOutcome::Ok => {
                self.lockout.record_success(ip, now);
                Ok(())
            }
            AuthOutcome::Stale => Err(Box::new(self.challenge(
                request,
                challenger,
                &algorithms,
                now,
                true,
            ))),
            AuthOutcome::Failed(reason) => {
                let text = match &reason {
                    FailReason::UnknownUser { .. } => {
                        format!("unknown or inactive extension {user:?}")
                    }
                    other => other.to_string(),
                };
                Err(Box::new(self.fail(request, ip, now, text)))
            }
        }
    }

    fn challenge(
        &mut self,
        request: &SipMessage,
        challenger: Challenger,
        algorithms: &[Algorithm],
        now: u64,
        stale: bool,
    ) -> Handled {
        let challenges = self
            .auth
            .challenges(&self.config.realm, algorithms, now, stale);
        let tag = self.next_tag();
        let status = challenger.status();
        let built = response_to(request, status, None).and_then(|mut b| {
            b = b.to_tag(&tag);
            for c in &challenges {
                b = b.header(challenger.challenge_header(), c);
            }
            b.build()
        });
        Handled {
            response: built.ok(),
            status,
            changes: vec![],
            auth_failure: None,
            locked_out: false,
        }
    }

    fn fail(
        &mut self,
        request: &SipMessage,
        ip: std::net::IpAddr,
        now: u64,
        reason: String,
    ) -> Handled {
        let locked = self.lockout.record_failure(ip, now, &reason).is_some();
        self.reply(request, 403, None, vec![], Some(reason), locked)
    }

    fn reply(
        &mut self,
        request: &SipMessage,
        status: u16,
        reason: Option<&str>,
        extra: Vec<(&'static str, String)>,
        auth_failure: Option<String>,
        locked_out: bool,
    ) -> Handled {
        let tag = self.next_tag();
        let built = response_to(request, status, reason).and_then(|mut b| {
            b = b.to_tag(&tag);
            for (name, value) in &extra {
                b = b.header(name, value);
            }
            b.build()
        });
        Handled {
            response: built.ok(),
            status,
            changes: vec![],
            auth_failure,
            locked_out,
        }
    }

    /// Applies an authenticated REGISTER (§10.3 steps 6–8).
    fn apply(
        &mut self,
        request: &SipMessage,
        aor: &str,
        source: SocketAddr,
        transport: Transport,
        now: u64,
    ) -> Handled {
        let header_expires = match request.expires() {
            Ok(e) => e,
            Err(_) => {
                return self.reply(request, 400, Some("Malformed Expires"), vec![], None, false);
            }
        };
        let contacts = match request.contacts() {
            Ok(c) => c,
            Err(_) => {
                return self.reply(request, 400, Some("Malformed Contact"), vec![], None, false);
            }
        };
        let (Ok(call_id), Ok(cseq)) = (request.call_id(), request.cseq()) else {
            return self.reply(request, 400, None, vec![], None, false);
        };
        let mut changes = Vec::new();
        match contacts {
            Contacts::Wildcard => {
                if header_expires != Some(0) {
                    return self.reply(
                        request,
                        400,
                        Some("Contact * needs Expires: 0"),
                        vec![],
                        None,
                        false,
                    );
                }
                self.bindings.remove_all(aor, &mut changes);
            }
            Contacts::List(list) => {
                for contact in &list {
                    let asked = contact
                        .expires()
                        .or(header_expires)
                        .unwrap_or(self.config.default_expires);
                    let uri = contact.uri.to_string();
                    if asked == 0 {
                        self.bindings.remove(aor, &uri, &mut changes);
                        continue;
                    }
                    if asked < self.config.min_expires {
                        return self.reply(
                            request,
                            423,
                            None,
                            vec![("Min-Expires", self.config.min_expires.to_string())],
                            None,
                            false,
                        );
                    }
                    let existing = self.bindings.of(aor).iter().find(|b| b.contact == uri);
                    // §10.3 step 7: an older CSeq of the same Call-ID is a
                    // reordered request and changes nothing.
                    if existing.is_some_and(|b| b.call_id == call_id && b.cseq > cseq.seq) {
                        continue;
                    }
                    let registered_at = existing.map(|b| b.registered_at).unwrap_or(now);
                    let expires = asked.min(self.config.max_expires);
                    let binding = Binding {
                        aor: aor.to_owned(),
                        contact: uri,
                        source,
                        transport,
                        user_agent: request.user_agent(),
                        call_id: call_id.to_owned(),
                        cseq: cseq.seq,
                        registered_at,
                        expires_at: now + u64::from(expires),
                    };
                    self.bindings
                        .upsert(binding, self.config.max_contacts, &mut changes);
                }
            }
        }
        let current: Vec<(&'static str, String)> = self
            .bindings
            .of(aor)
            .iter()
            .map(|b| {
                (
                    "Contact",
                    format!(
                        "<{}>;expires={}",
                        b.contact,
                        b.expires_at.saturating_sub(now)
                    ),
                )
            })
            .collect();
        let mut handled = self.reply(request, 200, None, current, None, false);
        handled.changes = changes;
        handled
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
