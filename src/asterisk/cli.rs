//! `pbx-bridge asterisk …`: the commands behind `render` and `reload`,
//! with the same settings resolution as `run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{BridgeAddress, load_snapshot, reload, render, write_files};
use crate::config::Settings;
use crate::store::Store;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AsteriskCommand {
    /// Write pjsip and dialplan files for Asterisk from the database
    /// (`pjsip_pbx_bridge.conf`, `extensions_pbx_bridge.conf`).
    Render {
        /// Directory to write into (created if missing); existing files
        /// are replaced atomically.
        #[arg(long)]
        out: PathBuf,
    },
    /// Ask Asterisk to reload its configuration (AMI `Reload`), with the
    /// PBX connection stored in the database.
    Reload {
        /// Seconds to wait for Asterisk.
        #[arg(long, default_value_t = 10)]
        timeout_s: u64,
    },
}

pub async fn run(settings: Settings, command: AsteriskCommand) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| "cannot open the database")?;
    let result = match command {
        AsteriskCommand::Render { out } => render_to(&store, &settings, &out).await,
        AsteriskCommand::Reload { timeout_s } => {
            reload_pbx(&store, Duration::from_secs(timeout_s)).await
        }
    };
    store.close().await;
    result
}

async fn render_to(
    store: &Store,
    settings: &Settings,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let snapshot = load_snapshot(store, BridgeAddress::from_settings(settings))
        .await
        .context("cannot read the configuration")?;
    let config = render(&snapshot)?;
    let written = write_files(out, &config)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

async fn reload_pbx(store: &Store, timeout: Duration) -> anyhow::Result<()> {
    let pbx = store
        .get_pbx()
        .await
        .context("cannot read the PBX settings")?;
    if !pbx.enabled {
        bail!("the PBX is disabled (pbx.enabled is false): enable it with PUT /api/v1/pbx first");
    }
    let Some(secret) = store.pbx_ami_secret().await? else {
        bail!("the PBX has no AMI secret: set ami_secret with PUT /api/v1/pbx first");
    };
    let message = reload(
        &pbx.ami_host,
        pbx.ami_port,
        &pbx.ami_username,
        &secret,
        timeout,
    )
    .await?;
    println!(
        "Asterisk at {}:{} reloaded{}",
        pbx.ami_host,
        pbx.ami_port,
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    );
    Ok(())
}
