//! The proof an updated agent works: once a host with an open
//! `agent.update` heartbeats with the new version, one `agent.selftest` is
//! sent to it (a duty under the lease, every second).
//!
//! Owns only deciding which self-tests are due and submitting them. It does
//! not follow rollouts (`rollouts::engine`) or read the update's result
//! (the agent publishes it once rootd confirmed the self-test).
//!
//! Exactly once per update: a self-test is submitted as a job requested by
//! `update:<update command id>` with the idempotency key
//! `selftest-<update command id>`; an update that already has a command
//! requested that way is skipped.

use bus_schema::{CommandStatus, Source};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::db::entities::{agent, command};
use crate::idempotency::Requester;
use crate::jobs::{self, NewJob, Selector};
use crate::state::AppState;

/// The action that installs a release, and its proof.
const UPDATE: &str = "agent.update";
const SELFTEST: &str = "agent.selftest";

/// Who a self-test is requested by: `update:<update command id>` (the
/// name rootd checks before it confirms an update).
pub fn requester_of(update_command_id: &str) -> String {
    bus_schema::catalogue::agent::proof_requester(update_command_id)
}

/// Sends the self-tests that are due.
pub async fn tick(state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    let open: Vec<command::Model> = command::Entity::find()
        .filter(command::Column::Action.eq(UPDATE))
        .filter(
            command::Column::Status.is_in(
                CommandStatus::ALL
                    .iter()
                    .filter(|s| !s.is_final())
                    .map(|s| s.as_str()),
            ),
        )
        .all(&state.db)
        .await?;
    for upd in open {
        let Some(target) = serde_json::from_str::<serde_json::Value>(&upd.params)
            .ok()
            .and_then(|p| p["version"].as_str().map(str::to_string))
        else {
            continue;
        };
        let Some(host) = agent::Entity::find_by_id(upd.agent_id.clone())
            .one(&state.db)
            .await?
        else {
            continue;
        };
        if host.agent_version != target {
            continue;
        }
        let who = requester_of(&upd.id);
        let sent = command::Entity::find()
            .filter(command::Column::Action.eq(SELFTEST))
            .filter(command::Column::RequestedBy.eq(who.clone()))
            .one(&state.db)
            .await?;
        if sent.is_some() {
            continue;
        }
        let req = NewJob {
            selector: Selector {
                agents: vec![upd.agent_id.clone()],
                ..Default::default()
            },
            action: SELFTEST.into(),
            params: serde_json::json!({ "version": target }),
            timeout_secs: None,
            ttl_secs: None,
            idempotency_key: Some(format!("selftest-{}", upd.id)),
        };
        let requester = Requester {
            name: who.clone(),
            scope: who,
        };
        match jobs::submit(state, req, &requester, Source::System).await {
            Ok((job, _)) => tracing::info!(
                update = %upd.id, agent = %upd.agent_id, version = %target, job = %job.id,
                "the updated agent heartbeats its new version; self-test sent"
            ),
            Err(e) => tracing::warn!(
                update = %upd.id, agent = %upd.agent_id, error = %e,
                "could not send the self-test; trying again on the next tick"
            ),
        }
    }
    Ok(())
}
