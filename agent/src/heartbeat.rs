//! Heartbeats: every `heartbeat_secs` when idle, every `busy_heartbeat_secs`
//! while an operation runs, and at once when one starts or ends.

use std::sync::Arc;
use std::time::Duration;

use bus_schema::catalogue::{self, RunsIn};
use bus_schema::{subjects, Heartbeat};

use crate::metrics::{self, Collector};
use crate::run::Agent;

/// Modules this host can run now: the agent's own, plus rootd's when its
/// socket is there.
pub fn modules(agent: &Agent) -> Vec<String> {
    let rootd_up = agent.cfg.rootd_socket.exists();
    let mut out: Vec<String> = Vec::new();
    for a in catalogue::ACTIONS {
        let available = a.runs_in == RunsIn::Agent || rootd_up;
        if available && !out.iter().any(|m| m == a.module()) {
            out.push(a.module().to_string());
        }
    }
    out
}

pub async fn run_loop(agent: Arc<Agent>) {
    let mut collector = Collector::new();
    let hostname = metrics::hostname();
    let os = metrics::os();
    let kernel = metrics::kernel();
    let subject = subjects::heartbeat(&agent.id);
    let mut seq = 0u64;
    loop {
        let operations = agent.ops.lock().await.clone();
        let interval = if operations.is_empty() {
            agent.cfg.heartbeat_secs
        } else {
            agent.cfg.busy_heartbeat_secs
        }
        .max(1);
        seq += 1;
        let hb = Heartbeat {
            agent_id: agent.id.clone(),
            hostname: hostname.clone(),
            seq,
            sent_at: bus_schema::now_ms(),
            interval_secs: interval,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            os: os.clone(),
            kernel: kernel.clone(),
            metrics: collector.sample(),
            modules: modules(&agent),
            operations,
        };
        // Core publish: the stream captures it; a lost heartbeat is replaced
        // by the next one, so no ack is awaited.
        if let Err(e) = agent
            .client
            .publish(subject.clone(), bus_schema::encode(&hb).into())
            .await
        {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval as u64)) => {}
            _ = agent.ops_changed.notified() => {}
        }
    }
}
