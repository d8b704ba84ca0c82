//! The bridge's registrations to the trunks that say `register` (SPEC §9
//! "Alone"): one `crate::sip::registration` client per trunk, driven from
//! signalling's task. A background reader ([`keep_targets`]) reads the
//! trunks and their secrets from the store — at once on every API change
//! (the numbering-plan signal) and every 30 s — resolves their hosts and
//! hands signalling the list; a changed trunk is unregistered and
//! registered again, a deleted one (or `register` turned off) unregistered.
//! Each trunk's state is published into the `TrunkRegistrationsView` (the
//! API's `/trunks/{id}/status`) and into `/metrics`
//! (`pbx_trunk_registered{trunk}`, `pbx_trunk_register_attempts_total{trunk,result}`).
//!
//! Responses reach the right client by Call-ID (each client keeps one);
//! transaction timeouts and transport errors by the transaction key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::domain::{Id, TrunkRegState, TrunkRegistration};
use crate::plan_changes::PlanChanges;
use crate::sip::message::SipMessage;
use crate::sip::registration::{
    Failure, Output, RegState, RegistrationClient, RegistrationConfig, RegistrationStatus,
};
use crate::sip::transaction::{TransactionKey, Transport};
use crate::store::Store;
use crate::trunk_registrations::TrunkRegistrationsView;

/// How often the trunks are re-read without an API change (other nodes,
/// DNS changes, hosts that did not resolve).
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// One trunk to register with, as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkTarget {
    pub id: Id,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: String,
    pub password: String,
    pub expires: u32,
    /// Where the host resolved to, or why it did not.
    pub destination: Result<SocketAddr, String>,
}

/// Re-reads the registering trunks into `targets` on every plan change
/// and every [`RELOAD_EVERY`]. A failed read keeps the last list.
pub async fn keep_targets(
    store: Store,
    changes: PlanChanges,
    targets: watch::Sender<Option<Vec<TrunkTarget>>>,
) {
    let mut changed = changes.subscribe();
    loop {
        match read_targets(&store).await {
            Ok(list) => {
                targets.send_if_modified(|t| {
                    let new = Some(list);
                    let differs = *t != new;
                    *t = new;
                    differs
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the trunks to register"),
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep(RELOAD_EVERY) => {}
        }
    }
}

async fn read_targets(store: &Store) -> Result<Vec<TrunkTarget>, crate::store::StoreError> {
    let mut out = Vec::new();
    for (trunk, secret) in store.registering_trunks().await? {
        let destination = crate::sip::transport::resolve(&trunk.host, trunk.port)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", trunk.host));
        out.push(TrunkTarget {
            id: trunk.id,
            username: trunk.username.clone().unwrap_or_default(),
            password: secret.unwrap_or_default(),
            host: trunk.host,
            port: trunk.port,
            transport: match trunk.transport {
                crate::domain::Transport::Udp => Transport::Udp,
                crate::domain::Transport::Tcp => Transport::Tcp,
            },
            expires: trunk.register_expires_s,
            name: trunk.name,
            destination,
        });
    }
    Ok(out)
}

/// One client and what it was built from.
struct Entry {
    target: TrunkTarget,
    client: RegistrationClient,
    destination: SocketAddr,
    /// Being unregistered (trunk changed, deleted or no longer registering).
    retiring: bool,
    published: Option<RegistrationStatus>,
}

/// The trunk registrations signalling drives (see the module documentation).
pub struct TrunkRegistrations {
    view: TrunkRegistrationsView,
    /// Where carriers reach us (Contact and Via).
    advertised: SocketAddr,
    /// Every client by Call-ID, active and retiring.
    clients: HashMap<String, Entry>,
    /// The active client of each trunk (its Call-ID).
    active: HashMap<Id, String>,
    /// Trunks listed without a client (their host did not resolve).
    unresolved: HashMap<Id, TrunkTarget>,
    /// Our REGISTER transactions (to route timeouts and transport errors).
    keys: HashMap<TransactionKey, String>,
}

impl TrunkRegistrations {
    pub fn new(view: TrunkRegistrationsView, advertised: SocketAddr) -> TrunkRegistrations {
        TrunkRegistrations {
            view,
            advertised,
            clients: HashMap::new(),
            active: HashMap::new(),
            unresolved: HashMap::new(),
            keys: HashMap::new(),
        }
    }

    /// The trunks to register now: new ones start, changed ones are
    /// replaced, missing ones are unregistered.
    pub fn apply(&mut self, targets: &[TrunkTarget], now: Instant) {
        let wanted: HashMap<Id, &TrunkTarget> = targets.iter().map(|t| (t.id, t)).collect();
        let current: Vec<(Id, String)> = self.active.iter().map(|(i, c)| (*i, c.clone())).collect();
        for (id, call_id) in current {
            let same = self
                .clients
                .get(&call_id)
                .is_some_and(|e| wanted.get(&id).is_some_and(|t| **t == e.target));
            if !same {
                self.retire(id, now);
                if !wanted.contains_key(&id) {
                    self.view.remove(id);
                }
            }
        }
        self.unresolved.retain(|id, _| wanted.contains_key(id));
        for target in targets {
            if self.active.contains_key(&target.id) {
                continue;
            }
            match &target.destination {
                Ok(destination) => self.start(target.clone(), *destination, now),
                Err(error) => {
                    if self.unresolved.get(&target.id) != Some(target) {
                        tracing::warn!(trunk = %target.name, %error, "cannot register with the trunk");
                    }
                    self.unresolved.insert(target.id, target.clone());
                    self.view.set(TrunkRegistration {
                        trunk_id: target.id,
                        state: TrunkRegState::Failed,
                        expires_at: None,
                        last_error: Some(error.clone()),
                        last_status: None,
                        next_attempt_at: None,
                    });
                    metrics::gauge!("pbx_trunk_registered", "trunk" => target.name.clone())
                        .set(0.0);
                }
            }
        }
    }

    fn start(&mut self, target: TrunkTarget, destination: SocketAddr, now: Instant) {
        self.unresolved.remove(&target.id);
        let config = client_config(&target, self.advertised);
        let client = RegistrationClient::new(config, rand::random(), now);
        let call_id = client.call_id().to_owned();
        self.active.insert(target.id, call_id.clone());
        self.clients.insert(
            call_id,
            Entry {
                target,
                client,
                destination,
                retiring: false,
                published: None,
            },
        );
    }

    fn retire(&mut self, id: Id, now: Instant) {
        if let Some(call_id) = self.active.remove(&id)
            && let Some(e) = self.clients.get_mut(&call_id)
        {
            e.retiring = true;
            e.client.unregister(now);
            metrics::gauge!("pbx_trunk_registered", "trunk" => e.target.name.clone()).set(0.0);
        }
    }

    /// Unregisters every trunk (shutdown).
    pub fn unregister_all(&mut self, now: Instant) {
        let ids: Vec<Id> = self.active.keys().copied().collect();
        for id in ids {
            self.retire(id, now);
        }
    }

    /// When [`TrunkRegistrations::on_tick`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(|e| e.client.poll_timeout())
            .min()
    }

    pub fn on_tick(&mut self, now: Instant) {
        for e in self.clients.values_mut() {
            if e.client.poll_timeout().is_some_and(|at| at <= now) {
                e.client.on_tick(now);
            }
        }
    }

    /// A response to one of our REGISTERs (true), or not ours (false).
    pub fn on_response(&mut self, response: &SipMessage, now: Instant) -> bool {
        let call_id = response.call_id().unwrap_or_default();
        match self.clients.get_mut(call_id) {
            Some(e) => {
                e.client.on_response(response, now);
                true
            }
            None => false,
        }
    }

    /// A timeout or transport error of transaction `key`: true when it was
    /// one of our REGISTERs.
    pub fn on_failure(&mut self, key: &TransactionKey, timeout: bool, now: Instant) -> bool {
        let Some(call_id) = self.keys.remove(key) else {
            return false;
        };
        if let Some(e) = self.clients.get_mut(&call_id) {
            let kind = if timeout {
                Failure::Timeout
            } else {
                Failure::Transport
            };
            e.client.on_failure(kind, now);
        }
        true
    }

    /// Transaction `key` is over.
    pub fn on_terminated(&mut self, key: &TransactionKey) -> bool {
        self.keys.remove(key).is_some()
    }

    /// The REGISTERs to send now (request, destination, transport), after
    /// which the driver reports each transaction key with
    /// [`TrunkRegistrations::note_key`]; publishes states and metrics and
    /// drops retired clients that are done.
    pub fn take_requests(&mut self, now: Instant) -> Vec<(SipMessage, SocketAddr, Transport)> {
        let mut out = Vec::new();
        for e in self.clients.values_mut() {
            while let Some(o) = e.client.poll_output() {
                match o {
                    Output::Send(request) => out.push((request, e.destination, e.target.transport)),
                    Output::Attempt(result) => {
                        metrics::counter!("pbx_trunk_register_attempts_total",
                            "trunk" => e.target.name.clone(), "result" => result.as_str())
                        .increment(1);
                        if let Some(error) = &e.client.status().last_error
                            && !matches!(
                                result,
                                crate::sip::registration::AttemptResult::Registered
                                    | crate::sip::registration::AttemptResult::Unregistered
                            )
                        {
                            tracing::warn!(trunk = %e.target.name, result = result.as_str(), %error, "trunk registration failed");
                        }
                    }
                }
            }
            if !e.retiring && e.published.as_ref() != Some(e.client.status()) {
                let status = e.client.status().clone();
                let registered = status.state == RegState::Registered;
                metrics::gauge!("pbx_trunk_registered", "trunk" => e.target.name.clone())
                    .set(if registered { 1.0 } else { 0.0 });
                self.view.set(publish(e.target.id, &status, now));
                e.published = Some(status);
            }
        }
        self.clients
            .retain(|_, e| !(e.retiring && e.client.is_done()));
        out
    }

    /// Our REGISTER with Call-ID `call_id` went out as transaction `key`.
    pub fn note_key(&mut self, call_id: &str, key: TransactionKey) {
        self.keys.insert(key, call_id.to_owned());
    }

    /// A REGISTER could not be sent at all.
    pub fn send_failed(&mut self, call_id: &str, now: Instant) {
        if let Some(e) = self.clients.get_mut(call_id) {
            e.client.on_failure(Failure::Transport, now);
        }
    }
}

/// The registration of `target`, reached at `advertised`.
fn client_config(target: &TrunkTarget, advertised: SocketAddr) -> RegistrationConfig {
    let host = if target.host.contains(':') && !target.host.starts_with('[') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let tcp = if target.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    let user = if target.username.is_empty() {
        "pbx-bridge"
    } else {
        &target.username
    };
    let parse = |s: String| {
        s.parse()
            .unwrap_or_else(|_| crate::sip::message::Uri::Other {
                scheme: "sip".into(),
                rest: s.trim_start_matches("sip:").to_owned(),
            })
    };
    let local = super::local_party(advertised, target.transport);
    RegistrationConfig {
        registrar: parse(format!("sip:{host}:{}{tcp}", target.port)),
        aor: parse(format!("sip:{user}@{host}")),
        contact: parse(format!("sip:{user}@{advertised}{tcp}")),
        local,
        username: user.to_owned(),
        password: target.password.clone(),
        expires: target.expires,
    }
}

/// The API's view of a client's status (instants become wall-clock times).
fn publish(trunk_id: Id, status: &RegistrationStatus, now: Instant) -> TrunkRegistration {
    let wall = Utc::now();
    let at = |i: Option<Instant>| -> Option<DateTime<Utc>> {
        let i = i?;
        let delta = if i >= now {
            chrono::Duration::from_std(i - now).ok()?
        } else {
            -chrono::Duration::from_std(now - i).ok()?
        };
        Some(wall + delta)
    };
    TrunkRegistration {
        trunk_id,
        state: match status.state {
            RegState::Unregistered => TrunkRegState::Unregistered,
            RegState::Registering => TrunkRegState::Registering,
            RegState::Registered => TrunkRegState::Registered,
            RegState::AuthFailed => TrunkRegState::AuthFailed,
            RegState::Failed => TrunkRegState::Failed,
        },
        expires_at: at(status.expires_at),
        last_error: status.last_error.clone(),
        last_status: status.last_status,
        next_attempt_at: at(status.next_attempt_at),
    }
}
