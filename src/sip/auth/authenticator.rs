//! The registrar's digest authentication decision, sans-IO: challenges out,
//! credentials in, an outcome with a specific, loggable reason.
//!
//! Nothing here looks anything up or reads a clock: the caller finds the
//! extension's secret and algorithms by the credentials' user name and passes
//! `now`. That keeps the security decision testable in simulated time.

use std::fmt;
use std::time::Duration;

use super::algorithm::Algorithm;
use super::digest::{self, DigestInput, QopParams};
use super::header::{Challenge, Credentials, Qop};
use super::nonce::{NcStatus, NonceCounter, NonceIssuer, NonceStatus};

/// Settings of an [`Authenticator`].
#[derive(Debug, Clone)]
pub struct AuthenticatorConfig {
    /// Refuse RFC 2069-style answers without qop. Off by default because
    /// some deployed phones still answer that way; without qop there is no
    /// nonce count, so a captured request can be replayed within the nonce
    /// lifetime.
    pub require_qop: bool,
    /// Sent in every challenge and required back verbatim when set.
    pub opaque: Option<String>,
    /// How many nonces the replay tracker remembers; 0 disables it.
    pub nc_capacity: usize,
}

impl Default for AuthenticatorConfig {
    fn default() -> Self {
        AuthenticatorConfig {
            require_qop: false,
            opaque: None,
            nc_capacity: 4096,
        }
    }
}

/// What the caller knows about the request being authenticated.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// SIP method of the request (`REGISTER`, `INVITE`, ...).
    pub method: &'a str,
    pub credentials: &'a Credentials,
    /// The realm this server challenges with.
    pub realm: &'a str,
    /// The extension's password, or `None` when no active extension has the
    /// credentials' user name.
    pub secret: Option<&'a str>,
    /// The extension's `digest_algorithms`: what was offered.
    pub allowed: &'a [Algorithm],
    /// When set, the credentials' `uri` must equal it (exact string match).
    pub request_uri: Option<&'a str>,
    pub now: u64,
}

/// Why authentication failed; `Display` is meant for the logs and the
/// registrations API (never contains the secret or the expected response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    UnknownUser {
        username: String,
    },
    WrongRealm {
        got: String,
        expected: String,
    },
    AlgorithmNotOffered {
        algorithm: Algorithm,
    },
    QopRequired,
    UnsupportedQop {
        qop: Qop,
    },
    UserhashUnsupported,
    /// Malformed, forged, or issued for another realm.
    BadNonce,
    OpaqueMismatch,
    UriMismatch {
        got: String,
        expected: String,
    },
    /// Malformed answer (e.g. `-sess` without cnonce).
    Malformed {
        detail: String,
    },
    /// The password (or user name) is wrong.
    WrongResponse {
        username: String,
        algorithm: Algorithm,
    },
    /// A nonce count was reused: a replayed request.
    NonceCountReplay {
        nc: u32,
        last: u32,
    },
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::UnknownUser { username } => write!(f, "unknown user {username:?}"),
            FailReason::WrongRealm { got, expected } => {
                write!(f, "wrong realm {got:?} (expected {expected:?})")
            }
            FailReason::AlgorithmNotOffered { algorithm } => {
                write!(f, "algorithm {algorithm} was not offered")
            }
            FailReason::QopRequired => f.write_str("answer without qop refused"),
            FailReason::UnsupportedQop { qop } => write!(f, "qop={qop} not supported"),
            FailReason::UserhashUnsupported => f.write_str("userhash not supported"),
            FailReason::BadNonce => f.write_str("bad or forged nonce"),
            FailReason::OpaqueMismatch => f.write_str("opaque does not match"),
            FailReason::UriMismatch { got, expected } => {
                write!(
                    f,
                    "digest uri {got:?} does not match request uri {expected:?}"
                )
            }
            FailReason::Malformed { detail } => write!(f, "malformed credentials: {detail}"),
            FailReason::WrongResponse {
                username,
                algorithm,
            } => write!(f, "wrong password for user {username:?} ({algorithm})"),
            FailReason::NonceCountReplay { nc, last } => {
                write!(f, "nonce count {nc:08x} replayed (last {last:08x})")
            }
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated.
    Ok,
    /// The password was right but the nonce expired (or the replay tracker
    /// lost track of it): send fresh challenges with `stale=true`.
    Stale,
    /// Refused; answer 401 with fresh challenges (or 403) and count a failure.
    Failed(FailReason),
}

/// Issues challenges and verifies credentials for one server key.
#[derive(Debug, Clone)]
pub struct Authenticator {
    nonces: NonceIssuer,
    counter: Option<NonceCounter>,
    config: AuthenticatorConfig,
}

impl Authenticator {
    pub fn new(nonces: NonceIssuer, config: AuthenticatorConfig) -> Self {
        let counter = (config.nc_capacity > 0)
            .then(|| NonceCounter::new(config.nc_capacity, nonces.lifetime()));
        Authenticator {
            nonces,
            counter,
            config,
        }
    }

    /// Convenience: a key and a nonce lifetime with default settings.
    pub fn with_key(key: [u8; 32], nonce_lifetime: Duration) -> Self {
        Self::new(
            NonceIssuer::new(key, nonce_lifetime),
            AuthenticatorConfig::default(),
        )
    }

    /// One challenge per offered algorithm, in the extension's order of
    /// preference (RFC 8760 §2.4: a client takes the first it supports).
    /// They share one nonce, bound to the realm. An empty `algorithms` list
    /// offers MD5, the documented default.
    pub fn challenges(
        &self,
        realm: &str,
        algorithms: &[Algorithm],
        now: u64,
        stale: bool,
    ) -> Vec<Challenge> {
        let nonce = self.nonces.issue_scoped(now, realm.as_bytes());
        let default = [Algorithm::Md5];
        let algorithms = if algorithms.is_empty() {
            &default[..]
        } else {
            algorithms
        };
        let mut out: Vec<Challenge> = Vec::with_capacity(algorithms.len());
        for &alg in algorithms {
            if out.iter().any(|c| c.algorithm == alg) {
                continue;
            }
            let mut c = Challenge::new(realm, nonce.clone(), alg);
            c.opaque = self.config.opaque.clone();
            c.stale = stale;
            out.push(c);
        }
        out
    }

    /// Decides whether `req.credentials` prove knowledge of `req.secret`.
    ///
    /// Checks run cheapest and least secret first; the nonce count is only
    /// recorded after the response proved correct, so forged requests cannot
    /// burn a phone's counts. A wrong password never yields `Ok` or `Stale`.
    pub fn verify(&mut self, req: &VerifyRequest<'_>) -> AuthOutcome {
        let c = req.credentials;
        let fail = AuthOutcome::Failed;
        if c.realm != req.realm {
            return fail(FailReason::WrongRealm {
                got: c.realm.clone(),
                expected: req.realm.to_owned(),
            });
        }
        let offered_default = [Algorithm::Md5];
        let allowed = if req.allowed.is_empty() {
            &offered_default[..]
        } else {
            req.allowed
        };
        if !allowed.contains(&c.algorithm) {
            return fail(FailReason::AlgorithmNotOffered {
                algorithm: c.algorithm,
            });
        }
        if c.userhash {
            return fail(FailReason::UserhashUnsupported);
        }
        let qop = match (c.qop, &c.cnonce, c.nc) {
            (Some(Qop::AuthInt), _, _) => {
                return fail(FailReason::UnsupportedQop { qop: Qop::AuthInt });
            }
            (Some(qop), Some(cnonce), Some(nc)) => Some(QopParams {
                qop,
                nc,
                cnonce: cnonce.as_str(),
            }),
            (Some(_), _, _) => {
                return fail(FailReason::Malformed {
                    detail: "qop without cnonce or nc".into(),
                });
            }
            (None, _, _) if self.config.require_qop => return fail(FailReason::QopRequired),
            (None, _, _) => None,
        };
        let nonce_status = self
            .nonces
            .check_scoped(&c.nonce, req.realm.as_bytes(), req.now);
        if nonce_status == NonceStatus::Invalid {
            return fail(FailReason::BadNonce);
        }
        if let Some(expected) = &self.config.opaque
            && c.opaque.as_deref() != Some(expected.as_str())
        {
            return fail(FailReason::OpaqueMismatch);
        }
        if let Some(ruri) = req.request_uri
            && c.uri != ruri
        {
            return fail(FailReason::UriMismatch {
                got: c.uri.clone(),
                expected: ruri.to_owned(),
            });
        }
        let Some(secret) = req.secret else {
            return fail(FailReason::UnknownUser {
                username: c.username.clone(),
            });
        };
        let expected = match digest::compute_response(&DigestInput {
            algorithm: c.algorithm,
            username: &c.username,
            realm: &c.realm,
            password: secret,
            method: req.method,
            uri: &c.uri,
            nonce: &c.nonce,
            qop,
        }) {
            Ok(r) => r,
            Err(e) => {
                return fail(FailReason::Malformed {
                    detail: e.to_string(),
                });
            }
        };
        if !digest::response_matches(&expected, &c.response) {
            return fail(FailReason::WrongResponse {
                username: c.username.clone(),
                algorithm: c.algorithm,
            });
        }
        if nonce_status == NonceStatus::Stale {
            return AuthOutcome::Stale;
        }
        if let (Some(q), Some(counter)) = (qop, self.counter.as_mut()) {
            let issued = NonceIssuer::issued_at(&c.nonce).unwrap_or(0);
            match counter.check_and_record(&c.nonce, issued, q.nc, req.now) {
                NcStatus::Fresh => {}
                NcStatus::Replay { last } => {
                    return fail(FailReason::NonceCountReplay { nc: q.nc, last });
                }
                NcStatus::Forgotten => return AuthOutcome::Stale,
            }
        }
        AuthOutcome::Ok
    }
}

/// Answers a challenge as a client would (the bridge registering to a trunk,
/// and the tests): computes the response and fills the credentials.
pub fn answer_challenge(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, digest::DigestError> {
    let qop = challenge.qop.contains(&Qop::Auth).then_some(QopParams {
        qop: Qop::Auth,
        nc,
        cnonce,
    });
    let response = digest::compute_response(&DigestInput {
        algorithm: challenge.algorithm,
        username,
        realm: &challenge.realm,
        password,
        method,
        uri,
        nonce: &challenge.nonce,
        qop,
    })?;
    Ok(Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: challenge.algorithm,
        cnonce: qop.map(|q| q.cnonce.to_owned()),
        opaque: challenge.opaque.clone(),
        qop: qop.map(|q| q.qop),
        nc: qop.map(|q| q.nc),
        userhash: false,
        params: Vec::new(),
    })
}
