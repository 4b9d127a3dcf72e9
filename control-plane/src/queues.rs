//! Keeps one command queue (durable consumer) on the broker for every
//! approved agent.
//!
//! The per-agent consumers keep their state in the broker's memory, not in
//! files: with a file per consumer the broker rewrote one state file per
//! agent for every delivery and ack, which was two thirds of its CPU during
//! a fan-out (see docs/performance.md). The price is that a broker restart
//! forgets them. The commands themselves are in the (file) stream and
//! survive; the `queue_keeper` duty (the duties module, on the replica
//! holding the lease) notices missing queues and declares them again, and
//! agents retry their pulls until then.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use tracing::{info, warn};

use crate::db::entities::agent;
use crate::state::AppState;

/// How often the consumer count is compared with the approved agents.
/// (The `queue_keeper` duty's period, on the replica holding the lease.)
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Consumer declarations in flight at once while repairing.
const PARALLEL: usize = 32;

/// Cheap when all is well: one count per shard and one count in the
/// database. Only when fewer queues exist than approved agents are the
/// names listed and the missing ones declared.
pub async fn check_once(state: &AppState) -> anyhow::Result<usize> {
    let approved = agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .count(&state.db)
        .await? as usize;
    let mut existing = 0usize;
    for k in 0..bus_schema::subjects::CMD_SHARDS {
        let s = state
            .js
            .get_stream(bus_schema::subjects::cmd_stream_of_shard(k).0)
            .await?;
        existing += s.cached_info().state.consumer_count;
    }
    if existing >= approved {
        return Ok(0);
    }
    repair(state).await
}

/// Declares the queue of every approved agent that has none, and makes the
/// in-memory set of known queues match the broker.
pub async fn repair(state: &AppState) -> anyhow::Result<usize> {
    let present: HashSet<String> = crate::bus::existing_agent_consumers(&state.js)
        .await?
        .into_iter()
        .collect();
    let approved: Vec<String> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .into_tuple()
        .all(&state.db)
        .await?;
    let missing: Vec<String> = approved
        .into_iter()
        .filter(|a| !present.contains(a))
        .collect();
    *state.consumers.lock().await = present;
    if missing.is_empty() {
        return Ok(0);
    }
    info!(
        count = missing.len(),
        "declaring missing agent command queues (broker restarted?)"
    );
    let made: Vec<String> = futures::stream::iter(missing)
        .map(|a| async move {
            match crate::bus::ensure_agent_consumer(&state.js, &a, state.cfg.command_ack_wait()).await {
                Ok(()) => Some(a),
                Err(e) => {
                    warn!(agent_id = %a, error = %format!("{e:#}"), "cannot declare the command queue");
                    None
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    let n = made.len();
    state.consumers.lock().await.extend(made);
    info!(count = n, "agent command queues declared");
    Ok(n)
}
