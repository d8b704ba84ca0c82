//! The `pbx-bridge` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pbx_bridge::config::{RawSettings, resolve};

#[derive(Parser)]
#[command(
    name = "pbx-bridge",
    version,
    about = "SIP/AMI telephony bridge for customer service"
)]
struct Cli {
    #[command(flatten)]
    settings: RawSettings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Asterisk configuration: render it from the database, reload it.
    Asterisk {
        #[command(subcommand)]
        command: pbx_bridge::asterisk::cli::AsteriskCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match resolve(&cli.settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pbx-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = pbx_bridge::telemetry::init_logging(&settings) {
        eprintln!("pbx-bridge: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pbx-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => runtime.block_on(pbx_bridge::service::run(settings)),
        Command::Asterisk { command } => {
            runtime.block_on(pbx_bridge::asterisk::cli::run(settings, command))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pbx-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
