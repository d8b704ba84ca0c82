//! Asterisk configuration rendered from the database
//! (`pbx-bridge asterisk render`) and the `Reload` that makes Asterisk read
//! it (`pbx-bridge asterisk reload`).
//!
//! Rendering is pure: [`render`] turns a [`Snapshot`] (the configured
//! extensions, trunks, departments and outbound routes, with the secrets
//! Asterisk needs, plus the bridge's SIP address) into the text of two files
//! that `pjsip.conf` and `extensions.conf` `#include`. The conventions are
//! those of the working installation in `tests/fixtures/asterisk-config/`
//! (templates with `type =` lines, `auth_type = userpass`, a `bridge`
//! endpoint with an identify section, `Dial(PJSIP/${EXTEN}@bridge)`); the
//! tests check it against those files. [`load_snapshot`] reads the snapshot
//! from the [`Store`] and [`write_files`] writes the result atomically.
//!
//! Dialplan contexts (see `dialplans/README.md`):
//! - `pbx-bridge-extensions`: extension-to-extension dialing;
//! - `pbx-bridge-departments`: PABX codes, sent to the bridge;
//! - `pbx-bridge-route-<id>`: one per outbound route, its patterns with
//!   strip/prepend and its trunks in failover order;
//! - `pbx-bridge-ext-<number>`: the context of each extension's endpoint,
//!   including the three above (only the routes it may use, by priority);
//! - `pbx-bridge-from-bridge`: calls the bridge sends to Asterisk;
//! - `pbx-bridge-from-trunk-<name>`: calls from a trunk, by DID.

pub mod cli;
mod dialplan;
mod names;
mod pjsip;
pub mod reload;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::domain::{Department, Extension, Id, OutboundRoute, Trunk};
use crate::store::{Store, StoreError};

pub(crate) use dialplan::TO_BRIDGE as TO_BRIDGE_CONTEXT;
pub use dialplan::{FROM_BRIDGE as FROM_BRIDGE_CONTEXT, trunk_context};
pub use names::RenderError;
pub use pjsip::BRIDGE as BRIDGE_ENDPOINT;
pub use reload::{ReloadError, reload};

/// File names of the rendered configuration.
pub const PJSIP_FILE: &str = "pjsip_pbx_bridge.conf";
pub const EXTENSIONS_FILE: &str = "extensions_pbx_bridge.conf";

/// An extension with the secret its softphone registers with.
#[derive(Debug, Clone)]
pub struct ExtensionAccount {
    pub extension: Extension,
    pub secret: String,
}

/// A trunk with its stored secret (absent when it needs none).
#[derive(Debug, Clone)]
pub struct TrunkAccount {
    pub trunk: Trunk,
    pub secret: Option<String>,
}

/// Where Asterisk reaches the bridge over SIP (the `bridge` endpoint's
/// contact and the address its calls are identified by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeAddress(pub SocketAddr);

impl BridgeAddress {
    /// The SIP listen address, or, when it listens on every interface
    /// (`0.0.0.0`/`::`), the media address on the same port.
    pub fn from_settings(settings: &Settings) -> Self {
        let sip = settings.sip_listen;
        let ip = if sip.ip().is_unspecified() {
            settings.media_address
        } else {
            sip.ip()
        };
        BridgeAddress(SocketAddr::new(ip, sip.port()))
    }

    /// `host:port` as written in a SIP URI or an identify `match`
    /// (`[::1]:5070` for IPv6).
    pub fn host_port(&self) -> String {
        match self.0.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", self.0.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.0.port()),
        }
    }
}

/// Everything the configuration is rendered from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub extensions: Vec<ExtensionAccount>,
    pub trunks: Vec<TrunkAccount>,
    pub departments: Vec<Department>,
    pub outbound_routes: Vec<OutboundRoute>,
    pub bridge: BridgeAddress,
    /// The PBX's own SIP address (`pbx.sip_host`), when it is an IP: a
    /// trunk whose inbound networks hold it is how the bridge once had to
    /// admit Asterisk, and is never written into Asterisk itself (on one
    /// host, its `match` would capture every local phone).
    pub pbx_sip_host: Option<std::net::IpAddr>,
}

/// The rendered files: (file name, contents), in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    pub files: Vec<(String, String)>,
}

impl RenderedConfig {
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// Renders the pjsip and dialplan files. Deterministic: the same snapshot
/// gives the same bytes whatever the order of its lists.
pub fn render(snapshot: &Snapshot) -> Result<RenderedConfig, RenderError> {
    let plan = Plan::new(snapshot)?;
    Ok(RenderedConfig {
        files: vec![
            (PJSIP_FILE.to_owned(), pjsip::render(&plan)?),
            (EXTENSIONS_FILE.to_owned(), dialplan::render(&plan)?),
        ],
    })
}

/// The snapshot in rendering order, with the names of its sections.
pub(crate) struct Plan<'a> {
    /// Active extensions by number (shorter numbers first).
    pub extensions: Vec<&'a ExtensionAccount>,
    /// Trunks by endpoint name, with it.
    pub trunks: Vec<(String, &'a TrunkAccount)>,
    pub trunk_names: HashMap<Id, String>,
    /// Active departments that have a PABX code, by code.
    pub departments: Vec<&'a Department>,
    /// Routes by (priority, id).
    pub routes: Vec<&'a OutboundRoute>,
    pub extension_numbers: HashMap<Id, &'a str>,
    pub bridge: BridgeAddress,
}

impl<'a> Plan<'a> {
    fn new(s: &'a Snapshot) -> Result<Self, RenderError> {
        let mut extensions: Vec<_> = s.extensions.iter().filter(|e| e.extension.active).collect();
        extensions.sort_by(|a, b| {
            let (a, b) = (&a.extension.number, &b.extension.number);
            (a.len(), a).cmp(&(b.len(), b))
        });
        for e in &extensions {
            names::check_number("extension number", &e.extension.number)?;
        }
        let trunk_names =
            trunk_endpoints(s.trunks.iter().map(|t| (t.trunk.id, t.trunk.name.as_str())));
        let mut trunks: Vec<_> = s
            .trunks
            .iter()
            .filter(|t| {
                !s.pbx_sip_host
                    .is_some_and(|pbx| t.trunk.inbound.iter().any(|n| n.contains(&pbx)))
            })
            .map(|t| (trunk_names[&t.trunk.id].clone(), t))
            .collect();
        trunks.sort_by(|a, b| a.0.cmp(&b.0));
        let mut departments: Vec<_> = s
            .departments
            .iter()
            .filter(|d| d.active && d.pabx_code.is_some())
            .collect();
        departments.sort_by_key(|d| (d.pabx_code, d.id));
        let mut routes: Vec<_> = s.outbound_routes.iter().collect();
        routes.sort_by_key(|r| (r.priority, r.id));
        let extension_numbers = s
            .extensions
            .iter()
            .map(|e| (e.extension.id, e.extension.number.as_str()))
            .collect();
        Ok(Plan {
            extensions,
            trunks,
            trunk_names,
            departments,
            routes,
            extension_numbers,
            bridge: s.bridge,
        })
    }

    /// The routes extension `id` may use, in priority order.
    pub fn routes_of(&self, id: Id) -> impl Iterator<Item = &&'a OutboundRoute> {
        self.routes.iter().filter(move |r| {
            r.allowed_extension_ids.is_empty() || r.allowed_extension_ids.contains(&id)
        })
    }
}

/// The PJSIP endpoint name of each trunk (id, name) as rendered: the name
/// itself when it is a safe section name, else `trunk-<slug>`. The AMI
/// tracker can use it to know which channels are trunks.
pub fn trunk_endpoints<'n>(trunks: impl IntoIterator<Item = (Id, &'n str)>) -> HashMap<Id, String> {
    let mut by_id: Vec<(Id, &str)> = trunks.into_iter().collect();
    by_id.sort_by_key(|(id, _)| *id);
    let mut taken = HashSet::new();
    let mut out = HashMap::new();
    for (id, name) in by_id {
        let endpoint = names::trunk_endpoint(name, id, &taken);
        taken.insert(endpoint.clone());
        out.insert(id, endpoint);
    }
    out
}

/// Reads the snapshot from the store; `bridge` comes from the settings.
pub async fn load_snapshot(store: &Store, bridge: BridgeAddress) -> Result<Snapshot, StoreError> {
    let extensions = store
        .extension_accounts()
        .await?
        .into_iter()
        .map(|(extension, secret)| ExtensionAccount { extension, secret })
        .collect();
    let trunks = store
        .trunk_accounts()
        .await?
        .into_iter()
        .map(|(trunk, secret)| TrunkAccount { trunk, secret })
        .collect();
    Ok(Snapshot {
        extensions,
        trunks,
        departments: store.all_departments().await?,
        outbound_routes: store.all_outbound_routes().await?,
        bridge,
        pbx_sip_host: store.get_pbx().await?.sip_host.parse().ok(),
    })
}

/// Writes every file into `dir` (created if missing), each through a
/// temporary file renamed over the old one, so Asterisk never reads half a
/// file. Returns the paths written.
pub fn write_files(dir: &Path, config: &RenderedConfig) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in &config.files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            std::fs::remove_file(&tmp).ok();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot write {}: {e}", path.display()),
            ));
        }
        written.push(path);
    }
    Ok(written)
}
