//! Start-up and the parts that live for the whole run.

use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;
use bus_schema::{subjects, VerifyingKey};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::journal::Journal;
use bus_schema::ActiveOperation;

/// Everything the loops share.
pub struct Agent {
    pub id: String,
    pub cfg: AgentConfig,
    pub key: VerifyingKey,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub journal: Mutex<Journal>,
    pub ops: Mutex<Vec<ActiveOperation>>,
    pub ops_changed: Notify,
}

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let identity = Identity::load_or_create(&cfg.state_dir)?;
    let id = identity.agent_id();
    let key = cfg.key()?;
    let journal = Journal::open(&cfg.state_dir, bus_schema::now_ms())
        .with_context(|| format!("opening the journal in {}", cfg.state_dir.display()))?;
    info!(agent_id = %id, control_plane_key = %key.fingerprint(), nats = %cfg.nats_url, "agent starting");

    let client = async_nats::ConnectOptions::new()
        .name(format!("drover-agent {id}"))
        .custom_inbox_prefix(subjects::inbox_prefix(&id))
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => info!("connected to NATS"),
                async_nats::Event::Disconnected => warn!("disconnected from NATS; reconnecting"),
                other => info!(event = %other, "NATS event"),
            }
        })
        .connect(&cfg.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", cfg.nats_url))?;
    let js = jetstream::new(client.clone());

    let agent = Arc::new(Agent {
        id,
        cfg,
        key,
        client,
        js,
        journal: Mutex::new(journal),
        ops: Mutex::new(Vec::new()),
        ops_changed: Notify::new(),
    });

    // Results from before a crash that the broker never confirmed.
    let pending = agent.journal.lock().await.unconfirmed();
    if !pending.is_empty() {
        info!(
            count = pending.len(),
            "re-sending unconfirmed results from the journal"
        );
        for (_, r) in pending {
            crate::commands::publish_confirmed(&agent, &r).await;
        }
    }

    let hb = tokio::spawn(crate::heartbeat::run_loop(agent.clone()));
    let cmds = tokio::spawn(crate::commands::run_loop(agent.clone()));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("agent stopping");
    cmds.abort();
    hb.abort();
    // Flush what is buffered (heartbeats, output) before leaving.
    let _ = agent.client.flush().await;
    Ok(())
}
