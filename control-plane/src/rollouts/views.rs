//! Rollouts as the API, the CLI and the pages show them: a summary per
//! rollout (counts by host state) and the detail (per-wave counts and one
//! row per host). Reads only; owns the JSON shapes.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{json, Value};

use super::entity::{host, rollout};
use super::{count_states, RolloutError};
use crate::db::entities::agent;
use crate::state::AppState;

/// One rollout with `counts` (hosts by state) and `host_count` (hosts
/// planned, skipped ones excluded). Times in ms since the epoch.
pub fn summary(r: &rollout::Model, counts: &BTreeMap<String, i64>) -> Value {
    let host_count: i64 = counts
        .iter()
        .filter(|(k, _)| k.as_str() != "skipped")
        .map(|(_, n)| n)
        .sum();
    json!({
        "id": r.id,
        "release_id": r.release_id,
        "version": r.version,
        "selector": serde_json::from_str::<Value>(&r.selector).unwrap_or(Value::Null),
        "selector_text": crate::selector::Selector::text_of(
            &serde_json::from_str::<Value>(&r.selector).unwrap_or(Value::Null)),
        "canary": r.canary,
        "waves": r.waves,
        "pause_secs": r.pause_secs,
        "max_failures": r.max_failures,
        "allow_downgrade": r.allow_downgrade,
        "state": r.state,
        "current_wave": r.current_wave,
        "wave_done_at": r.wave_done_at,
        "halted_reason": r.halted_reason,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "finished_at": r.finished_at,
        "host_count": host_count,
        "counts": counts,
    })
}

/// `{"rollouts": [summary, ...]}`, newest first, at most 200.
pub async fn list(state: &AppState) -> Result<Value, sea_orm::DbErr> {
    let rs = rollout::Entity::find()
        .order_by_desc(rollout::Column::CreatedAt)
        .limit(200)
        .all(&state.db)
        .await?;
    let ids: Vec<String> = rs.iter().map(|r| r.id.clone()).collect();
    let rows: Vec<(String, String, i64)> = host::Entity::find()
        .select_only()
        .column(host::Column::RolloutId)
        .column(host::Column::State)
        .column_as(host::Column::AgentId.count(), "n")
        .filter(host::Column::RolloutId.is_in(ids))
        .group_by(host::Column::RolloutId)
        .group_by(host::Column::State)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut by: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    for (rid, st, n) in rows {
        *by.entry(rid)
            .or_insert_with(|| count_states(std::iter::empty()))
            .entry(st)
            .or_default() += n;
    }
    let empty = count_states(std::iter::empty());
    Ok(json!({
        "rollouts": rs.iter().map(|r| summary(r, by.get(&r.id).unwrap_or(&empty))).collect::<Vec<_>>()
    }))
}

/// The summary plus `waves_detail` (`[{"wave", "name", "share", "total",
/// "counts"}]`, wave 0 the canary) and `hosts` (`[{"agent_id",
/// "hostname", "wave", "state", "from_version", "to_version",
/// "running_version", "reason", "command_id", "agent_status",
/// "updated_at"}]`).
pub async fn detail(state: &AppState, id: &str) -> Result<Value, RolloutError> {
    let r = super::get(state, id).await?;
    let hs = host::Entity::find()
        .filter(host::Column::RolloutId.eq(id))
        .order_by_asc(host::Column::Wave)
        .order_by_asc(host::Column::AgentId)
        .all(&state.db)
        .await?;
    let mut agents: HashMap<String, (String, String, String)> = HashMap::new();
    let ids: Vec<String> = hs.iter().map(|h| h.agent_id.clone()).collect();
    for chunk in ids.chunks(500) {
        for (aid, hostname, status, version) in agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::Hostname)
            .column(agent::Column::Status)
            .column(agent::Column::AgentVersion)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple::<(String, String, String, String)>()
            .all(&state.db)
            .await?
        {
            agents.insert(aid, (hostname, status, version));
        }
    }
    let counts = count_states(hs.iter().map(|h| h.state.as_str()));
    let mut v = summary(&r, &counts);
    let shares: Vec<String> = r.waves.split(',').map(|s| s.to_string()).collect();
    let mut waves = Vec::new();
    for w in 0..=shares.len() as i32 {
        let of: Vec<&host::Model> = hs.iter().filter(|h| h.wave == w).collect();
        if w == 0 && of.is_empty() {
            continue;
        }
        waves.push(json!({
            "wave": w,
            "name": if w == 0 { "canary".to_string() } else { format!("wave {w}") },
            "share": if w == 0 { r.canary.clone() } else { shares[(w - 1) as usize].clone() },
            "total": of.len(),
            "counts": count_states(of.iter().map(|h| h.state.as_str())),
        }));
    }
    v["waves_detail"] = Value::Array(waves);
    v["hosts"] = Value::Array(
        hs.iter()
            .map(|h| {
                let (hostname, status, running) =
                    agents.get(&h.agent_id).cloned().unwrap_or_default();
                json!({
                    "agent_id": h.agent_id,
                    "hostname": hostname,
                    "wave": h.wave,
                    "state": h.state,
                    "from_version": h.from_version,
                    "to_version": r.version,
                    "running_version": running,
                    "reason": h.reason,
                    "command_id": h.command_id,
                    "selftest_command_id": h.selftest_command_id,
                    "agent_status": status,
                    "updated_at": h.updated_at,
                })
            })
            .collect(),
    );
    Ok(v)
}
