//! Sending a rollout's due hosts their `agent.update`: which hosts are
//! due, offline ones marked `offline` (and sent when back), window-covered
//! ones held until one of their maintenance windows is open, and the
//! submission itself through `jobs::submit` with an idempotency key per
//! rollout and host. Owns sending; when a wave is due and following the
//! hosts afterwards are `engine.rs`'s.

use std::collections::HashMap;

use bus_schema::catalogue::agent::UpdateParams;
use bus_schema::Source;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::engine::UPDATE_ACTION;
use super::entity::{host, rollout};
use crate::agent_releases::entity as release;
use crate::db::entities::{agent, command};
use crate::idempotency::Requester;
use crate::jobs::{self, NewJob, Selector};
use crate::state::AppState;
use crate::updates::entities::window;

/// Why a window-covered host must wait now (None: it may be sent).
fn window_wait(a: &agent::Model, windows: &[window::Model], now: i64) -> Option<String> {
    let mine: Vec<&window::Model> = windows
        .iter()
        .filter(|w| serde_json::from_str::<Selector>(&w.selector).is_ok_and(|s| s.matches(a)))
        .collect();
    if mine.is_empty()
        || mine
            .iter()
            .any(|w| crate::windows::schedule_of(w).is_some_and(|s| s.open_at(now).is_some()))
    {
        return None;
    }
    let names: Vec<&str> = mine.iter().map(|w| w.name.as_str()).collect();
    Some(format!(
        "waiting for maintenance window {}",
        names.join(", ")
    ))
}

/// Sends the due hosts (waves up to the current one, not yet sent) that
/// are online and allowed by their windows; marks the others offline.
pub(super) async fn send_due(
    state: &AppState,
    r: &rollout::Model,
    rel: &release::Model,
    windows: &[window::Model],
    now: i64,
) -> anyhow::Result<bool> {
    let due = host::Entity::find()
        .filter(host::Column::RolloutId.eq(r.id.clone()))
        .filter(host::Column::CommandId.is_null())
        .filter(host::Column::State.is_in(["pending", "offline"]))
        .filter(host::Column::Wave.lte(r.current_wave))
        .filter(host::Column::Wave.gte(0))
        .all(&state.db)
        .await?;
    let mut changed = false;
    for chunk in due.chunks(100) {
        // An operator's pause or abort meanwhile stops the sending here.
        let now_state = rollout::Entity::find_by_id(r.id.clone())
            .one(&state.db)
            .await?
            .map(|x| x.state);
        if !matches!(now_state.as_deref(), Some("running" | "done")) {
            break;
        }
        let ids: Vec<String> = chunk.iter().map(|h| h.agent_id.clone()).collect();
        let agents: HashMap<String, agent::Model> = agent::Entity::find()
            .filter(agent::Column::Id.is_in(ids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        for h in chunk {
            let a = agents.get(&h.agent_id);
            let online = a.is_some_and(|a| a.status == "online");
            let mut m: host::ActiveModel = h.clone().into();
            m.updated_at = Set(now);
            if !online {
                if h.state != "offline" {
                    m.state = Set("offline".into());
                    m.reason = Set(Some("offline at its turn: sent when it is back".into()));
                    m.update(&state.db).await?;
                    changed = true;
                }
                continue;
            }
            let a = a.expect("online implies present");
            if let Some(wait) = window_wait(a, windows, now) {
                if h.reason.as_deref() != Some(wait.as_str()) {
                    m.reason = Set(Some(wait));
                    m.update(&state.db).await?;
                    changed = true;
                }
                continue;
            }
            match send(state, r, rel, &h.agent_id).await {
                Ok(cid) => {
                    m.command_id = Set(Some(cid));
                    m.state = Set("pending".into());
                    m.reason = Set(None);
                }
                Err(e) => {
                    tracing::warn!(rollout = %r.id, agent_id = %h.agent_id, error = %e, "update not sent");
                    m.state = Set("failed".into());
                    m.reason = Set(Some(format!("not sent: {e}")));
                }
            }
            m.update(&state.db).await?;
            changed = true;
        }
    }
    Ok(changed)
}

/// The params of a rollout's `agent.update` (from the release row).
pub fn update_params(r: &rollout::Model, rel: &release::Model) -> UpdateParams {
    UpdateParams {
        version: rel.version.clone(),
        manifest: rel.manifest.clone(),
        signature: rel.signature.clone(),
        allow_downgrade: r.allow_downgrade,
        rollout_id: r.id.clone(),
    }
}

/// Submits one host's `agent.update` (source system, requested by
/// `rollout:<id>`, key `rollout-<id>-<agent>`); returns its command id.
async fn send(
    state: &AppState,
    r: &rollout::Model,
    rel: &release::Model,
    agent_id: &str,
) -> anyhow::Result<String> {
    let who = Requester {
        name: format!("rollout:{}", r.id),
        scope: format!("rollout:{}", r.id),
    };
    let req = NewJob {
        selector: Selector {
            agents: vec![agent_id.to_string()],
            ..Default::default()
        },
        action: UPDATE_ACTION.into(),
        params: serde_json::to_value(update_params(r, rel))?,
        timeout_secs: None,
        ttl_secs: None,
        idempotency_key: Some(format!("rollout-{}-{agent_id}", r.id)),
    };
    let (j, _) = jobs::submit(state, req, &who, Source::System).await?;
    let c = command::Entity::find()
        .filter(command::Column::JobId.eq(j.id.clone()))
        .one(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job {} has no command", j.id))?;
    Ok(c.id)
}
