//! `drover-rootd`: the root daemon beside each agent. See `server.rs` for the
//! request path and `actions/` for what it can run.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

mod actions;
mod box_key;
mod config;
mod exec;
mod replay;
mod sealing;
mod server;
mod supervise;
mod toolkit;
mod update_state;

/// Drover's root daemon: runs verified, allow-listed privileged actions for
/// the local agent over a Unix socket.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as
    /// `DROVER_ROOTD_<KEY>` in the environment.
    #[arg(long, short, env = "DROVER_ROOTD_CONFIG")]
    config: Option<PathBuf>,
}

// One thread: rootd serves one agent; its actions are child processes and
// blocking calls go to `spawn_blocking`, so workers would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Before any other thread: which libraries the program started with
    // (`settle` may later drop their code pages).
    bus_schema::resident::note_start();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg =
        config::RootdConfig::load(cli.config.as_deref()).context("loading rootd configuration")?;
    server::run(cfg).await
}
