//! Start-up and shutdown of the whole service: open the database, make sure
//! an admin can get in, serve the API, run the housekeeping tasks, and on
//! SIGTERM stop taking work, let in-flight work finish and exit cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::calls::{CallEngine, CallHandles, CallSettings};
use crate::config::Settings;
use crate::domain::AclApplies;
use crate::domain::{ApiTokenInput, Scope};
use crate::ledger::{Ledger, LedgerConfig};
use crate::signalling::registry::RegistryConfig;
use crate::signalling::{Handles, Signalling, SignallingConfig, local_party};
use crate::sip::stack::{AddressFilter, SipStack, StackConfig};
use crate::sip::transaction::Transport;
use crate::sip::transport::{Inbound, SipTransport};
use crate::store::{Store, hash_token};

/// A service that has bound its sockets and is ready to serve.
pub struct Service {
    app: App,
    http: TcpListener,
    sip: (SipTransport, tokio::sync::mpsc::Receiver<Inbound>),
    /// The admin token created at this start, if one was (first start).
    pub bootstrap_token: Option<String>,
}

impl Service {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    redact(&settings.database_url)
                )
            })?;
        let bootstrap_token = ensure_admin_token(&store, settings.admin_token.as_deref()).await?;
        std::fs::create_dir_all(&settings.recordings_dir).with_context(|| {
            format!(
                "cannot create recordings dir {}",
                settings.recordings_dir.display()
            )
        })?;
        // Its replay reaches the database before crash recovery looks.
        let ledger = Ledger::start(
            store.clone(),
            LedgerConfig::new(
                settings.data_dir.join("journal"),
                settings.node_id.clone(),
                settings.time_zone,
            ),
        )
        .await
        .with_context(|| {
            format!(
                "cannot start the attendance ledger in {}",
                settings.data_dir.join("journal").display()
            )
        })?;
        recover_calls(&store, &settings).await;
        let http = TcpListener::bind(settings.http_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on PBX_BRIDGE_HTTP_LISTEN {}",
                    settings.http_listen
                )
            })?;
        let sip = SipTransport::bind(settings.sip_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on PBX_BRIDGE_SIP_LISTEN {}",
                    settings.sip_listen
                )
            })?;
        let app = App::new(store, ledger, settings, crate::telemetry::init_metrics());
        app.reload_acl().await?;
        app.reload_credentials().await?;
        app.set_sip_addr(Some(sip.0.local_addr()));
        Ok(Self {
            app,
            http,
            sip,
            bootstrap_token,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| self.app.settings().http_listen)
    }

    /// Where SIP (UDP and TCP) listens.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip.0.local_addr()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` fires, then drains: new connections are
    /// refused, in-flight requests finish, bounded by the grace period.
    pub async fn serve(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let app = self.app.clone();
        let housekeeping = tokio::spawn(housekeeping(app.clone(), shutdown.clone()));
        let http_addr = self.http_addr();
        let (transport, inbound) = self.sip;
        let signalling = signalling(&app, transport, inbound).await?;
        let mut sip = tokio::spawn(signalling.run(shutdown.clone()));
        let ami = tokio::spawn(crate::ami::client::run(ami_handles(&app), shutdown.clone()));
        tracing::info!(sip = %app.sip_addr().map(|a| a.to_string()).unwrap_or_default(), "SIP listening (UDP and TCP)");
        tracing::info!(http = %http_addr, "admin API listening");
        let router = crate::api::router(app.clone());
        let grace = app.settings().shutdown_grace;
        let drain_app = app.clone();
        let drain_signal = shutdown.clone();
        let server = axum::serve(
            self.http,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            signalled(drain_signal).await;
            drain_app.start_draining();
            tracing::info!("shutting down: draining in-flight requests");
        });
        let mut server = tokio::spawn(server.into_future());
        let result = tokio::select! {
            r = &mut server => r,
            _ = signalled(shutdown) => match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(?grace, "grace period over; closing remaining connections");
                    server.abort();
                    Ok(Ok(()))
                }
            },
        };
        housekeeping.abort();
        // The AMI client logs off and writes its queued call decisions.
        if tokio::time::timeout(Duration::from_secs(5), ami)
            .await
            .is_err()
        {
            tracing::warn!("AMI client did not stop in time");
        }
        // Live calls go on for the grace period, then are hung up;
        // signalling ends once they are all over.
        if tokio::time::timeout(grace + Duration::from_secs(6), &mut sip)
            .await
            .is_err()
        {
            tracing::warn!("SIP calls did not end in time");
            sip.abort();
        }
        app.set_sip_addr(None);
        // What the calls recorded reaches the database, or stays journaled
        // for the next start.
        app.ledger().shutdown(grace).await;
        app.store().close().await;
        result
            .context("admin API task")?
            .context("admin API failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Ends the calls the previous run left live (before SIP can take new
/// ones). A failure is logged and the start goes on: a service that does
/// not start loses more calls than one with stale attendances.
async fn recover_calls(store: &Store, settings: &Settings) {
    match crate::calls::recovery::recover(
        store,
        &settings.recordings_dir,
        settings.time_zone,
        &settings.node_id,
    )
    .await
    {
        Ok(r) if r.is_empty() => {}
        Ok(r) => tracing::info!(
            ended = r.ended,
            closed = r.closed,
            recordings_repaired = r.recordings_repaired,
            "crash recovery: calls left live by the previous run are ended"
        ),
        Err(e) => tracing::error!(error = %e, "crash recovery failed; starting anyway"),
    }
}

/// Wires SIP: the stack over the bound transport (the ACL as its address
/// filter), the call engine, and the signalling transaction user that
/// drives both. The call engine and signalling get only narrow handles,
/// taken from the `App`'s parts (the API shares the same ones).
async fn signalling(
    app: &App,
    transport: SipTransport,
    inbound: tokio::sync::mpsc::Receiver<Inbound>,
) -> anyhow::Result<Signalling> {
    let s = app.settings();
    let rtp_ports = crate::media::ports::PortPool::new(s.rtp_ports.clone())
        .context("the RTP port range holds no port pair")?;
    // Phones must reach what we advertise: a wildcard listener advertises
    // the media address.
    let sip_addr = {
        let bound = app.sip_addr().context("SIP is not bound")?;
        if bound.ip().is_unspecified() {
            SocketAddr::new(s.media_address, bound.port())
        } else {
            bound
        }
    };
    let config = SignallingConfig {
        registry: registry_config(app).await?,
        shutdown_grace: s.shutdown_grace,
        advertised: sip_addr,
    };
    let acl = app.clone();
    let filter: AddressFilter = std::sync::Arc::new(move |ip| acl.acl_allows(ip, AclApplies::Sip));
    let stack = SipStack::new(
        transport,
        inbound,
        StackConfig::new(crate::signalling::ALLOW),
        filter,
    );
    let pbx_peer = crate::pbx_peer::PbxPeer::default();
    let (calls, commands) = CallEngine::new(
        call_handles(app, pbx_peer.clone()),
        rtp_ports,
        local_party(sip_addr, Transport::Udp),
        local_party(sip_addr, Transport::Tcp),
    );
    let handles = Handles {
        credentials: app.credentials().clone(),
        registrations: app.registrations_view().clone(),
        draining: app.drain_flag().clone(),
        live_calls: app.calls().clone(),
        store: app.store().clone(),
        pbx_peer,
        trunk_registrations: app.trunk_registrations().clone(),
        plan_changes: app.plan_changes().clone(),
        originations: app.originations().clone(),
    };
    Ok(Signalling::new(stack, config, handles, calls, commands))
}

/// What the call engine needs, from the `App`'s parts.
fn call_handles(app: &App, pbx_peer: crate::pbx_peer::PbxPeer) -> CallHandles {
    let s = app.settings();
    CallHandles {
        store: app.store().clone(),
        ledger: app.ledger().clone(),
        live_calls: app.calls().clone(),
        traces: app.traces().clone(),
        registrations: app.registrations_view().clone(),
        plan_changes: app.plan_changes().clone(),
        pbx_peer,
        pbx_presence: app.pbx_presence().clone(),
        settings: CallSettings {
            node_id: s.node_id.clone(),
            media_address: s.media_address,
            rtp_timeout: s.rtp_timeout,
            recordings_dir: s.recordings_dir.clone(),
        },
    }
}

/// What the AMI client needs, from the `App`'s parts (the API shares the
/// same [`crate::ami::AmiHandle`] and plan-change handle).
pub fn ami_handles(app: &App) -> crate::ami::AmiHandles {
    crate::ami::AmiHandles {
        store: app.store().clone(),
        time_zone: app.settings().time_zone,
        ami: app.ami().clone(),
        plan_changes: app.plan_changes().clone(),
        presence: app.pbx_presence().clone(),
    }
}

/// The registrar's settings, with the nonce key kept in the database so
/// phones holding a nonce across a restart (or another node) are told
/// `stale` instead of being refused.
async fn registry_config(app: &App) -> anyhow::Result<RegistryConfig> {
    use rand::RngCore;
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let stored = app
        .store()
        .setting_or_insert("sip_nonce_key", &hex::encode(fresh))
        .await?;
    let mut nonce_key = [0u8; 32];
    hex::decode_to_slice(&stored, &mut nonce_key).context("stored sip_nonce_key is corrupt")?;
    let s = app.settings();
    Ok(RegistryConfig {
        realm: s.sip_realm.clone(),
        min_expires: s.register_min_expires_s,
        max_expires: s.register_max_expires_s,
        lockout: crate::sip::auth::LockoutConfig {
            max_failures: s.auth_max_failures,
            window: s.auth_failure_window,
            lockout: s.auth_lockout,
            ..Default::default()
        },
        default_algorithms: s
            .default_digest_algorithms
            .iter()
            .filter_map(|a| a.as_str().parse().ok())
            .collect(),
        nonce_key,
    })
}

/// Resolves once the shutdown watch turns true (or its sender is gone).
async fn signalled(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let service = Service::start(settings).await?;
    if let Some(token) = &service.bootstrap_token {
        // Printed once, on stdout, so it can be captured; never logged.
        println!("pbx-bridge: created the admin token (shown only this once): {token}");
    }
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    service.serve(rx).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Makes sure an admin can reach the API: the configured token is stored
/// (hashed) if new; with none configured and no token at all, one is made.
async fn ensure_admin_token(
    store: &Store,
    configured: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let admin = ApiTokenInput {
        name: "admin".into(),
        scopes: vec![Scope::Admin],
        allowed_networks: vec![],
    };
    if let Some(token) = configured {
        if token.len() < 16 {
            anyhow::bail!("invalid setting PBX_BRIDGE_ADMIN_TOKEN: must be at least 16 characters");
        }
        if store.authenticate(token).await?.is_none() {
            store.insert_token(&admin, token).await?;
        }
        return Ok(None);
    }
    // Only one of several nodes starting together may create it.
    let marker = hash_token("bootstrap");
    if store.count_tokens().await? > 0 || store.setting("admin_token_created").await?.is_some() {
        return Ok(None);
    }
    let won = store
        .setting_or_insert("admin_token_created", &marker)
        .await?
        == marker
        && store.count_tokens().await? == 0;
    if !won {
        return Ok(None);
    }
    let (_, value) = store.create_token(&admin).await?;
    Ok(Some(value))
}

/// The database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Periodic work: re-read the ACL (other nodes may change it) and close
/// attendances idle past the inactivity rule.
async fn housekeeping(app: App, shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = signalled(shutdown.clone()) => return,
        }
        ticks += 1;
        if let Err(e) = app.reload_acl().await {
            tracing::warn!(error = %e, "cannot reload the ACL");
        }
        if ticks % 6 == 1 {
            let idle = app.settings().inactivity_close.as_millis() as i64;
            match app.store().close_inactive_attendances(idle).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(closed = n, "attendances closed for inactivity"),
                Err(e) => tracing::warn!(error = %e, "inactivity sweep failed"),
            }
        }
        if let Some(m) = app.metrics() {
            m.run_upkeep();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            super::redact("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}
