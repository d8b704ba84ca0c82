//! The registrar's glue to the service: credentials from the store (kept
//! in memory, reloaded periodically), the registrations view the API and
//! the calls read (bindings and lockouts published incrementally), and the
//! logs and metrics of failed authentications. The registrar itself
//! (`crate::sip::registrar`) is sans-IO and knows none of this.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};

use crate::domain::{AuthLockout, Registration};
use crate::registrations::RegistrationsView;
use crate::sip::auth::{Algorithm, LockoutConfig};
use crate::sip::message::SipMessage;
use crate::sip::registrar::{
    BindingChange, ChangeCause, Credential, Handled, Registrar, RegistrarConfig,
};
use crate::sip::transaction::Transport;
use crate::store::{Store, StoreError};

/// The extensions' SIP credentials, in memory so a REGISTER never waits on
/// the database. Cheap to clone; clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct Credentials(Arc<RwLock<HashMap<String, Credential>>>);

impl Credentials {
    /// The credentials of extension `number`, if it exists.
    pub fn get(&self, number: &str) -> Option<Credential> {
        self.0.read().ok()?.get(number).cloned()
    }

    /// Re-reads every extension's credentials from the database.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let rows = store.extension_secrets().await?;
        let map: HashMap<String, Credential> = rows
            .into_iter()
            .map(|(number, secret, algorithms, active)| {
                let algorithms = algorithms
                    .iter()
                    .filter_map(|a| a.as_str().parse::<Algorithm>().ok())
                    .collect();
                (
                    number,
                    Credential {
                        secret,
                        algorithms,
                        active,
                    },
                )
            })
            .collect();
        if let Ok(mut c) = self.0.write() {
            *c = map;
        }
        Ok(())
    }
}

/// The registrar's settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub lockout: LockoutConfig,
    pub default_algorithms: Vec<Algorithm>,
    /// Signs nonces (kept in the database: nonces survive restarts and
    /// are valid on every node).
    pub nonce_key: [u8; 32],
}

/// The registrar, fed from the credentials and publishing into the view.
pub struct Registry {
    registrar: Registrar,
    credentials: Credentials,
    view: RegistrationsView,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_time(secs: u64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .single()
        .unwrap_or_default()
}

impl Registry {
    pub fn new(
        config: RegistryConfig,
        credentials: Credentials,
        view: RegistrationsView,
    ) -> Registry {
        let registrar = Registrar::new(
            RegistrarConfig {
                realm: config.realm,
                min_expires: config.min_expires,
                max_expires: config.max_expires,
                default_expires: config.max_expires.min(3600).max(config.min_expires),
                max_contacts: 1,
                default_algorithms: config.default_algorithms,
                lockout: config.lockout,
            },
            config.nonce_key,
        );
        Registry {
            registrar,
            credentials,
            view,
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Handles a REGISTER: the answer to send (if any); bindings changed
    /// and failures are published and logged.
    pub fn register(
        &mut self,
        request: &SipMessage,
        source: SocketAddr,
        transport: Transport,
    ) -> Option<SipMessage> {
        let credentials = &self.credentials;
        let lookup = |user: &str| credentials.get(user);
        let handled = self
            .registrar
            .handle(request, source, transport, unix_now(), lookup);
        self.note_auth_failure(&handled, request, source);
        self.publish_changes(&handled.changes);
        handled.response
    }

    /// Whether `user` is one of our extensions.
    pub fn is_extension(&self, user: &str) -> bool {
        self.credentials.get(user).is_some()
    }

    /// Digest authentication of a call from an extension (407 challenge,
    /// same credentials and lockout as REGISTER): `Ok` names the
    /// extension; `Err` carries the answer to send (failures are logged).
    pub fn authorize_call(
        &mut self,
        request: &SipMessage,
        source: SocketAddr,
    ) -> Result<String, Option<Box<SipMessage>>> {
        let credentials = &self.credentials;
        let lookup = |user: &str| credentials.get(user);
        match self
            .registrar
            .authorize_call(request, source, unix_now(), lookup)
        {
            Ok(user) => Ok(user),
            Err(handled) => {
                self.note_auth_failure(&handled, request, source);
                Err(handled.response.map(Box::new))
            }
        }
    }

    /// Drops expired bindings and lockouts from the view.
    pub fn expire(&mut self) {
        let changes = self.registrar.expire(unix_now());
        self.publish_changes(&changes);
        self.publish_lockouts();
    }

    /// Logs a failed authentication (REGISTER or INVITE) so *erro de
    /// autenticação* is diagnosable, and publishes the lockouts.
    fn note_auth_failure(&self, handled: &Handled, request: &SipMessage, source: SocketAddr) {
        if let Some(reason) = &handled.auth_failure {
            tracing::warn!(
                %source,
                call_id = request.call_id().unwrap_or_default(),
                status = handled.status,
                locked_out = handled.locked_out,
                "SIP authentication failed: {reason}"
            );
            metrics::counter!("pbx_sip_auth_failures_total").increment(1);
            self.publish_lockouts();
        }
    }

    fn publish_changes(&self, changes: &[BindingChange]) {
        if changes.is_empty() {
            return;
        }
        for change in changes {
            let b = &change.binding;
            match change.cause {
                ChangeCause::Refreshed => {}
                cause => tracing::info!(
                    extension = %b.aor,
                    contact = %b.contact,
                    source = %b.source,
                    call_id = %b.call_id,
                    ?cause,
                    "registration changed"
                ),
            }
        }
        // Incremental: a refresh must not copy every binding (thousands of
        // phones re-register all the time).
        self.view.update(|view| {
            for change in changes {
                let b = &change.binding;
                let entry = Registration {
                    extension: b.aor.clone(),
                    contact: b.contact.clone(),
                    source: b.source.to_string(),
                    transport: b.transport.as_str().to_ascii_lowercase(),
                    user_agent: b.user_agent.clone(),
                    registered_at: to_time(b.registered_at),
                    expires_at: to_time(b.expires_at),
                };
                let at = view
                    .items
                    .iter()
                    .position(|r| r.extension == entry.extension && r.contact == entry.contact);
                match (change.cause, at) {
                    (ChangeCause::Registered | ChangeCause::Refreshed, Some(i)) => {
                        view.items[i] = entry
                    }
                    (ChangeCause::Registered | ChangeCause::Refreshed, None) => {
                        view.items.push(entry)
                    }
                    (_, Some(i)) => {
                        view.items.swap_remove(i);
                    }
                    (_, None) => {}
                }
            }
            metrics::gauge!("pbx_registrations").set(view.items.len() as f64);
        });
    }

    fn publish_lockouts(&self) {
        let lockouts: Vec<AuthLockout> = self
            .registrar
            .lockouts(unix_now())
            .into_iter()
            .map(|l| AuthLockout {
                address: l.addr.to_string(),
                prefix_len: l.prefix_len,
                failures: l.info.failures,
                since: to_time(l.info.since),
                until: to_time(l.info.until),
                reason: l.info.reason,
            })
            .collect();
        self.view.update(|r| r.lockouts = lockouts);
    }
}

/// Keeps the in-memory credentials fresh: at start, then every few seconds
/// (another node may have changed an extension; this node's API reloads
/// them itself).
pub async fn keep_credentials(credentials: Credentials, store: Store) {
    loop {
        if let Err(e) = credentials.reload(&store).await {
            tracing::warn!(error = %e, "cannot load extension credentials");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
