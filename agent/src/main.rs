//! `drover-agent`: the unprivileged agent on each host.
//!
//! `run.rs` starts the parts around the shared state ([`state`]): identity
//! ([`identity`]), heartbeats ([`heartbeat`], [`metrics`]), the command loop
//! ([`commands`]) with its on-disk journal ([`journal`]), redeliveries
//! ([`redelivery`]), results and refusal reports ([`report`]), the built-in
//! actions ([`sys`]), the client for the root daemon ([`rootd_client`]) and
//! the version it reports ([`version`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod commands;
mod config;
mod credentials;
mod enroll;
mod heartbeat;
mod identity;
mod instance;
mod journal;
mod metrics;
mod redelivery;
mod report;
mod result_fit;
mod rootd_client;
mod rotate;
mod run;
mod simulate;
mod state;
mod sys;
mod sys_inspect;
mod update;
mod version;
mod watch;

/// Drover's agent: heartbeats, metrics and commands for one host, over NATS.
#[derive(Parser, Debug)]
#[command(name = "drover-agent", version = version::display(), about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Every key can also be set as
    /// `DROVER_AGENT_<KEY>` in the environment.
    #[arg(long, short, env = "DROVER_AGENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the agent (the default).
    Run,
    /// Print this host's agent id (creating the identity if needed) and exit.
    Id,
    /// Run N light virtual agents in this process, for load tests.
    Simulate(Box<simulate::SimulateArgs>),
}

fn main() -> anyhow::Result<()> {
    // Before any other thread: which libraries the program started with
    // (`settle` may later drop their code pages).
    bus_schema::resident::note_start();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(Cmd::Simulate(args)) = cli.cmd {
        // Many connections: a bigger runtime, and no config file needed.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return rt.block_on(simulate::run(*args));
    }
    let cfg =
        config::AgentConfig::load(cli.config.as_deref()).context("loading agent configuration")?;
    if matches!(cli.cmd, None | Some(Cmd::Run)) {
        if let Some(dir) = &cfg.agent_releases_dir {
            update::exec_current_release(dir);
        }
    }
    // One thread: the agent is mostly idle and should stay light (each
    // worker thread is a stack and, with glibc, an allocator arena).
    // Blocking work (process sampling, statvfs) goes to `spawn_blocking`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.cmd.unwrap_or(Cmd::Run) {
        Cmd::Run => rt.block_on(run::run(cfg)),
        Cmd::Simulate(_) => unreachable!("handled above"),
        Cmd::Id => {
            let id = identity::Identity::load_or_create(&cfg.state_dir)?;
            println!("{}", id.agent_id());
            Ok(())
        }
    }
}
