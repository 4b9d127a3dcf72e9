//! The rollout engine: one round of every live rollout per tick (a duty
//! under the lease, every 2 s). Idempotent: each step moves a row on only
//! from the state it was read in, and each host's `agent.update` goes
//! through `jobs::submit` with an idempotency key per rollout and host
//! (`rollout-<id>-<agent>`), so a tick repeated after a crash sends
//! nothing twice.
//!
//! A round: (1) follow every host that has an open `agent.update` (its
//! command's state, the agent's reported version, the result's
//! `UpdateReport.outcome`); (2) for each `running` rollout: halt on a yank,
//! on any canary failure, or when failures (failed + rolled_back) exceed
//! `max_failures` of its hosts; move to the next wave once no host of the
//! current one is pending/downloading/installed and the pause after it
//! has run; `done` after the last wave; (3) send the due hosts (waves up
//! to the current one): online ones get `agent.update`, offline ones are
//! marked `offline` and sent when they are back. A `done` rollout keeps
//! sending to its remembered offline hosts when they return (unless the
//! release was yanked); `paused`, `halted` and `aborted` ones send nothing.
//! A host some enabled maintenance window covers is sent only while one
//! of its windows is open.
//!
//! Owns moving rollouts forward; not starting them or the operator's
//! actions (`mod.rs`), not the self-test that proves an update
//! (`agent_releases::selftest`).

use std::collections::{HashMap, HashSet};

use bus_schema::CommandStatus;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use super::entity::{host, rollout};
use super::{audit_step, plan, publish, Amount};
use crate::agent_releases::entity as release;
use crate::db::entities::{agent, command};
use crate::state::AppState;
use crate::updates::entities::window;

/// The action a rollout sends.
pub const UPDATE_ACTION: &str = "agent.update";

/// Host states still on their way (they keep a wave open).
const MOVING: [&str; 3] = ["pending", "downloading", "installed"];

/// Advances every live rollout once. Errors of one rollout are logged and
/// do not stop the others.
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let mut changed = follow(state, now_ms).await?;
    let mut live = rollout::Entity::find()
        .filter(rollout::Column::State.is_in(["running", "paused"]))
        .all(&state.db)
        .await?;
    // Done rollouts that still remember offline hosts.
    let offline_of: HashSet<String> = host::Entity::find()
        .filter(host::Column::State.eq("offline"))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|h| h.rollout_id)
        .collect();
    if !offline_of.is_empty() {
        live.extend(
            rollout::Entity::find()
                .filter(rollout::Column::State.eq("done"))
                .filter(rollout::Column::Id.is_in(offline_of))
                .all(&state.db)
                .await?,
        );
    }
    let windows = window::Entity::find()
        .filter(window::Column::Enabled.eq(true))
        .all(&state.db)
        .await?;
    for r in live {
        let id = r.id.clone();
        match advance(state, r, &windows, now_ms).await {
            Ok(true) => {
                changed.insert(id);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(rollout = %id, error = %format!("{e:#}"), "rollout not advanced")
            }
        }
    }
    for id in changed {
        if let Ok(Some(r)) = rollout::Entity::find_by_id(id).one(&state.db).await {
            publish(state, &r).await;
        }
    }
    Ok(())
}

/// Moves every host with an open update on from its command and its
/// agent's reported version; returns the rollouts that changed.
async fn follow(state: &AppState, now: i64) -> anyhow::Result<HashSet<String>> {
    let open = host::Entity::find()
        .filter(host::Column::CommandId.is_not_null())
        .filter(host::Column::State.is_in(MOVING))
        .all(&state.db)
        .await?;
    let mut changed = HashSet::new();
    if open.is_empty() {
        return Ok(changed);
    }
    let rids: HashSet<String> = open.iter().map(|h| h.rollout_id.clone()).collect();
    let targets: HashMap<String, String> = rollout::Entity::find()
        .filter(rollout::Column::Id.is_in(rids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.version))
        .collect();
    for chunk in open.chunks(500) {
        let cids: Vec<String> = chunk.iter().filter_map(|h| h.command_id.clone()).collect();
        let cmds: HashMap<String, command::Model> = command::Entity::find()
            .filter(command::Column::Id.is_in(cids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let aids: Vec<String> = chunk.iter().map(|h| h.agent_id.clone()).collect();
        let versions: HashMap<String, String> = agent::Entity::find()
            .filter(agent::Column::Id.is_in(aids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|a| (a.id, a.agent_version))
            .collect();
        for h in chunk {
            let (Some(c), Some(target)) = (
                h.command_id.as_ref().and_then(|id| cmds.get(id)),
                targets.get(&h.rollout_id),
            ) else {
                continue;
            };
            let running = versions.get(&h.agent_id).map(String::as_str).unwrap_or("");
            let (next, reason) = host_state(&h.state, c, running, target);
            if next != h.state || (reason.is_some() && reason != h.reason) {
                let mut m: host::ActiveModel = h.clone().into();
                m.state = Set(next.to_string());
                if reason.is_some() {
                    m.reason = Set(reason);
                }
                m.updated_at = Set(now);
                m.update(&state.db).await?;
                changed.insert(h.rollout_id.clone());
            }
        }
    }
    Ok(changed)
}

/// A host's state from its `agent.update` command `c` and the version its
/// agent reports (`running`): a final command decides by its
/// `UpdateReport.outcome` (healthy, rolled_back; anything else failed); an
/// open one is `installed` once the agent reports `target`, `downloading`
/// once accepted. Never moves a host back.
pub fn host_state(
    now: &str,
    c: &command::Model,
    running: &str,
    target: &str,
) -> (&'static str, Option<String>) {
    let status = CommandStatus::parse(&c.status).unwrap_or(CommandStatus::Queued);
    if status.is_final() {
        let data: Value = c
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        let said = data["reason"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| c.summary.clone());
        return match data["outcome"].as_str() {
            Some("healthy") => ("healthy", None),
            Some("rolled_back") => ("rolled_back", Some(said)),
            None if status == CommandStatus::Succeeded && running == target => ("healthy", None),
            _ => {
                let why = if said.is_empty() {
                    format!("the update command ended {}", status.as_str())
                } else {
                    format!("{}: {said}", status.as_str())
                };
                ("failed", Some(why))
            }
        };
    }
    if running == target {
        return ("installed", None);
    }
    match (now, status) {
        ("installed", _) => ("installed", None),
        (_, CommandStatus::Accepted | CommandStatus::Running) => ("downloading", None),
        ("downloading", _) => ("downloading", None),
        _ => ("pending", None),
    }
}

/// One rollout's round; true when it changed.
async fn advance(
    state: &AppState,
    mut r: rollout::Model,
    windows: &[window::Model],
    now: i64,
) -> anyhow::Result<bool> {
    let rel = release::Entity::find_by_id(r.release_id.clone())
        .one(&state.db)
        .await?;
    let yanked = match &rel {
        None => Some("its release row is gone".to_string()),
        Some(x) if x.yanked_at.is_some() => Some(format!(
            "release {} was yanked: {}",
            x.version,
            x.yank_reason.as_deref().unwrap_or("no reason given")
        )),
        Some(_) => None,
    };
    let mut changed = false;
    if r.state == "running" {
        let hosts = hosts_of(state, &r.id).await?;
        if let Some(why) = yanked.clone().or_else(|| failure_halt(&r, &hosts)) {
            halt(state, &mut r, why, now).await?;
            return Ok(true);
        }
        changed |= progress(state, &mut r, &hosts, now).await?;
    }
    let (Some(rel), None) = (rel, yanked) else {
        return Ok(changed);
    };
    if r.state == "running" || r.state == "done" {
        changed |= super::sending::send_due(state, &r, &rel, windows, now).await?;
    }
    Ok(changed)
}

async fn hosts_of(state: &AppState, id: &str) -> Result<Vec<host::Model>, sea_orm::DbErr> {
    host::Entity::find()
        .filter(host::Column::RolloutId.eq(id))
        .all(&state.db)
        .await
}

/// Why the failures so far halt the rollout, if they do: any failed or
/// rolled-back canary host; failures beyond `max_failures` of its hosts.
fn failure_halt(r: &rollout::Model, hosts: &[host::Model]) -> Option<String> {
    let failed = |h: &&host::Model| h.state == "failed" || h.state == "rolled_back";
    if let Some(h) = hosts.iter().filter(|h| h.wave == 0).find(failed) {
        return Some(format!(
            "canary host {} {}: {}",
            h.agent_id,
            h.state.replace('_', " "),
            h.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    let planned = hosts.iter().filter(|h| h.state != "skipped").count();
    let failures = hosts.iter().filter(failed).count();
    let max = Amount::parse("max-failures", &r.max_failures)
        .map(|a| a.of(planned))
        .unwrap_or(0);
    (failures > max).then(|| {
        format!(
            "{failures} hosts failed or rolled back, more than max_failures = {} ({max} of {planned} hosts)",
            r.max_failures
        )
    })
}

async fn save(state: &AppState, r: &rollout::Model, now: i64) -> anyhow::Result<rollout::Model> {
    let mut m: rollout::ActiveModel = r.clone().into();
    m.state = Set(r.state.clone());
    m.current_wave = Set(r.current_wave);
    m.wave_done_at = Set(r.wave_done_at);
    m.halted_reason = Set(r.halted_reason.clone());
    m.finished_at = Set(r.finished_at);
    m.updated_at = Set(now);
    // Only from the state it was read in: an operator's pause or abort
    // meanwhile wins.
    let res = rollout::Entity::update_many()
        .set(m)
        .filter(rollout::Column::Id.eq(r.id.clone()))
        .filter(rollout::Column::State.eq("running"))
        .exec(&state.db)
        .await?;
    if res.rows_affected == 0 {
        anyhow::bail!("rollout {} changed meanwhile; next round", r.id);
    }
    Ok(r.clone())
}

async fn halt(
    state: &AppState,
    r: &mut rollout::Model,
    why: String,
    now: i64,
) -> anyhow::Result<()> {
    tracing::warn!(rollout = %r.id, reason = %why, "rollout halted");
    r.state = "halted".into();
    r.halted_reason = Some(why.clone());
    r.finished_at = Some(now);
    save(state, r, now).await?;
    audit_step(
        state,
        r,
        "rollout.halt",
        json!({"reason": why, "wave": r.current_wave}),
    )
    .await;
    Ok(())
}

/// Moves to the next wave when the current one is through and its pause
/// has run; ends the rollout after the last wave.
async fn progress(
    state: &AppState,
    r: &mut rollout::Model,
    hosts: &[host::Model],
    now: i64,
) -> anyhow::Result<bool> {
    let last = plan::parse_waves(&r.waves).map(|w| w.len()).unwrap_or(1) as i32;
    let mut changed = false;
    for _ in 0..=last + 1 {
        let w = r.current_wave;
        let of: Vec<&host::Model> = hosts.iter().filter(|h| h.wave == w).collect();
        if of.iter().any(|h| MOVING.contains(&h.state.as_str())) {
            break;
        }
        if w >= last {
            r.state = "done".into();
            r.finished_at = Some(now);
            save(state, r, now).await?;
            let offline = hosts.iter().filter(|h| h.state == "offline").count();
            audit_step(state, r, "rollout.done", json!({"offline_hosts": offline})).await;
            tracing::info!(rollout = %r.id, offline, "rollout done");
            return Ok(true);
        }
        // An empty wave (small fleet) is skipped without a pause.
        if !of.is_empty() && r.pause_secs > 0 {
            match r.wave_done_at {
                None => {
                    r.wave_done_at = Some(now);
                    save(state, r, now).await?;
                    changed = true;
                    break;
                }
                Some(at) if now < at + r.pause_secs * 1000 => break,
                Some(_) => {}
            }
        }
        r.current_wave = w + 1;
        r.wave_done_at = None;
        save(state, r, now).await?;
        let n = hosts.iter().filter(|h| h.wave == w + 1).count();
        audit_step(
            state,
            r,
            "rollout.wave_start",
            json!({"wave": w + 1, "hosts": n}),
        )
        .await;
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(status: &str, result: Option<&str>, summary: &str) -> command::Model {
        command::Model {
            id: "c".into(),
            agent_id: "a".into(),
            job_id: None,
            action: UPDATE_ACTION.into(),
            params: "{}".into(),
            status: status.into(),
            requested_by: "rollout:r".into(),
            source: "system".into(),
            created_at: 0,
            updated_at: 0,
            expires_at: 0,
            timeout_secs: 900,
            exit_code: None,
            summary: summary.into(),
            result: result.map(str::to_string),
            attempts: 1,
            finished_at: None,
            stream_seq: None,
            outcome_source: None,
            inferred_status: None,
            inferred_summary: None,
            inferred_at: None,
        }
    }

    #[test]
    fn a_host_follows_its_command_and_version() {
        let t = "2.0.0";
        assert_eq!(
            host_state("pending", &cmd("queued", None, ""), "1.0.0", t).0,
            "pending"
        );
        assert_eq!(
            host_state("pending", &cmd("running", None, ""), "1.0.0", t).0,
            "downloading"
        );
        assert_eq!(
            host_state("downloading", &cmd("running", None, ""), t, t).0,
            "installed"
        );
        // Never back: installed stays installed while the command is open.
        assert_eq!(
            host_state("installed", &cmd("running", None, ""), "1.0.0", t).0,
            "installed"
        );
        let healthy = r#"{"outcome":"healthy","from_version":"1.0.0","to_version":"2.0.0","running_version":"2.0.0","reason":""}"#;
        assert_eq!(
            host_state("installed", &cmd("succeeded", Some(healthy), ""), t, t),
            ("healthy", None)
        );
        let back = r#"{"outcome":"rolled_back","reason":"exited at start"}"#;
        assert_eq!(
            host_state("installed", &cmd("failed", Some(back), "x"), "1.0.0", t),
            ("rolled_back", Some("exited at start".into()))
        );
        let (s, why) = host_state("pending", &cmd("expired", None, ""), "1.0.0", t);
        assert_eq!(s, "failed");
        assert!(why.unwrap().contains("expired"));
        let (s, why) = host_state(
            "pending",
            &cmd("rejected", None, "bad signature"),
            "1.0.0",
            t,
        );
        assert_eq!(
            (s, why.as_deref()),
            ("failed", Some("rejected: bad signature"))
        );
    }
}
