//! Staged rollouts of an agent release: canary, waves, pause, failure
//! threshold, pause/resume/abort, offline hosts remembered.
//!
//! This file owns starting a rollout (checking the operator's input,
//! finding the release, choosing and planning the hosts), the operator's
//! actions (pause, resume, abort), the JSON the API and pages show, and
//! the live event. The rounding rules are in [`plan`]; moving a rollout
//! forward (sending `agent.update`, following hosts, halting) is the
//! lease holder's duty in [`engine`]. The release rows are
//! `agent_releases`' (read here, never written).
//!
//! States of a rollout: `running` → `done`, or `paused` (operator) ↔
//! `running`, or `halted` (failures, canary failure, yank) / `aborted`
//! (operator), both final. States of a host: `pending` → (`offline`) →
//! `downloading` → `installed` → `healthy` | `rolled_back` | `failed`;
//! `skipped` when it already ran the version at the start.

pub mod engine;
pub mod entity;
pub mod plan;
mod sending;
mod views;

use std::collections::BTreeMap;

use bus_schema::now_ms;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent_releases::entity as release;
use crate::state::AppState;
use crate::windows::SelectorInput;
use entity::{host, rollout};
pub use plan::Amount;
pub use sending::update_params;
pub use views::{detail, list, summary};

/// Rollout states that are final.
pub const FINAL_STATES: [&str; 3] = ["halted", "aborted", "done"];

/// Host states that are final for the host.
pub const HOST_FINAL: [&str; 4] = ["healthy", "rolled_back", "failed", "skipped"];

/// Host states, in the order pages and counts show them.
pub const HOST_STATES: [&str; 8] = [
    "pending",
    "offline",
    "downloading",
    "installed",
    "healthy",
    "rolled_back",
    "failed",
    "skipped",
];

/// The body of `POST /api/v1/rollouts`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    /// The release's version (`1.4.0`).
    pub version: String,
    /// JSON (`{"all": true}`) or the text form (`label:env=prod`).
    pub selector: SelectorInput,
    /// `3` or `5%`; absent or "" = no canary.
    #[serde(default)]
    pub canary: Option<String>,
    /// Cumulative percentages, `10%,50%,100%`; absent = `100%`.
    #[serde(default)]
    pub waves: Option<String>,
    /// After each wave is through: `30s`, `10m`, `2h`, `0`.
    #[serde(default)]
    pub pause: Option<String>,
    /// `2` or `2%` of the rollout's hosts; failures beyond it halt.
    /// Absent = `0` (the first failure halts).
    #[serde(default)]
    pub max_failures: Option<String>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Absent = this control plane's own platform (`linux-x86_64`).
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Bad input: the text says what to write instead.
    #[error("{0}")]
    Invalid(String),
    #[error("no rollout {0}; `drover rollout list` shows them")]
    NotFound(String),
    /// The rollout is not in a state the action applies to.
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// Finds the release `version` for `platform`, refusing an unknown or
/// yanked one with what to do instead.
pub async fn find_release(
    state: &AppState,
    version: &str,
    platform: &str,
) -> Result<release::Model, RolloutError> {
    let r = release::Entity::find()
        .filter(release::Column::Version.eq(version))
        .filter(release::Column::Platform.eq(platform))
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            RolloutError::Invalid(format!(
                "no release {version} for {platform}; publish it first (drover releases publish) \
                 or pick one from drover releases list"
            ))
        })?;
    if r.yanked_at.is_some() {
        return Err(RolloutError::Invalid(format!(
            "release {version} for {platform} was yanked ({}); a yanked release is never \
             rolled out again: publish a fixed version",
            r.yank_reason.as_deref().unwrap_or("no reason given")
        )));
    }
    crate::agent_releases::store::check_control_plane_version(&r.min_control_plane, version)
        .map_err(RolloutError::Invalid)?;
    Ok(r)
}

/// Starts a rollout: checks the input, finds the release, plans the
/// selector's approved agents (those already at the version are
/// `skipped`), and stores it `running`; the engine's next tick sends the
/// first wave.
pub async fn start(
    state: &AppState,
    input: StartInput,
    by: &str,
) -> Result<rollout::Model, RolloutError> {
    let version = input.version.trim().to_string();
    if version.is_empty() {
        return Err(RolloutError::Invalid(
            "version is empty; name a published release, e.g. 1.4.0".into(),
        ));
    }
    let sel = input
        .selector
        .clone()
        .resolve_selector()
        .map_err(RolloutError::Invalid)?;
    let canary_text = input.canary.clone().unwrap_or_default().trim().to_string();
    // `0` means no canary, as an empty one does.
    let canary = if canary_text.is_empty() || canary_text == "0" {
        None
    } else {
        Some(Amount::parse("canary", &canary_text).map_err(RolloutError::Invalid)?)
    };
    let waves_text = input.waves.clone().unwrap_or_default().trim().to_string();
    let waves = plan::parse_waves(&waves_text).map_err(RolloutError::Invalid)?;
    let pause_secs =
        plan::parse_pause(input.pause.as_deref().unwrap_or("0")).map_err(RolloutError::Invalid)?;
    let max_failures = input
        .max_failures
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| "0".into())
        .trim()
        .to_string();
    Amount::parse("max-failures", &max_failures).map_err(RolloutError::Invalid)?;
    let platform = input
        .platform
        .clone()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| bus_schema::signing::release::platform().to_string());
    let rel = find_release(state, &version, &platform).await?;
    // One rollout at a time: two would send a host two updates at once.
    if let Some(busy) = rollout::Entity::find()
        .filter(rollout::Column::State.is_in(["running", "paused"]))
        .one(&state.db)
        .await?
    {
        return Err(RolloutError::Conflict(format!(
            "rollout {} of {} is still {}: one rollout runs at a time, so no host gets two \
             updates at once; wait for it to end or abort it (drover rollout abort {})",
            busy.id, busy.version, busy.state, busy.id
        )));
    }
    let targets = crate::jobs::targets(state, &sel).await?;
    if targets.is_empty() {
        return Err(RolloutError::Invalid(
            "the selector matches no approved agent; check it with drover agents list".into(),
        ));
    }
    // Already there, or newer without --allow-downgrade: skipped.
    let newer = |a: &crate::db::entities::agent::Model| {
        !input.allow_downgrade
            && !a.agent_version.is_empty()
            && bus_schema::signing::release::compare_versions(&a.agent_version, &version)
                == std::cmp::Ordering::Greater
    };
    let (skip, todo): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|a| a.agent_version == version || newer(a));
    if todo.is_empty() {
        return Err(RolloutError::Invalid(format!(
            "every host the selector matches already runs {version} or newer; nothing to \
             roll out (--allow-downgrade sends an older version)"
        )));
    }
    let waves_stored = waves
        .iter()
        .map(|p| format!("{p}%"))
        .collect::<Vec<_>>()
        .join(",");
    let assignment = plan::assign(todo.len(), canary, &waves);
    let now = now_ms();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let row = rollout::ActiveModel {
        id: Set(id.clone()),
        release_id: Set(rel.id.clone()),
        version: Set(version.clone()),
        selector: Set(serde_json::to_string(&sel).unwrap_or_default()),
        canary: Set(canary_text),
        waves: Set(waves_stored),
        pause_secs: Set(pause_secs),
        max_failures: Set(max_failures),
        allow_downgrade: Set(input.allow_downgrade),
        state: Set("running".into()),
        current_wave: Set(if canary.is_some() { 0 } else { 1 }),
        wave_done_at: Set(None),
        halted_reason: Set(None),
        created_by: Set(by.into()),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    };
    let mut hosts: Vec<host::ActiveModel> = Vec::new();
    for (a, w) in todo.iter().zip(assignment) {
        hosts.push(host_row(&id, &a.id, w, "pending", &a.agent_version, now));
    }
    for a in &skip {
        let mut row = host_row(&id, &a.id, -1, "skipped", &a.agent_version, now);
        if a.agent_version != version {
            row.reason = Set(Some(format!(
                "runs {}, newer than {version} (a downgrade needs --allow-downgrade)",
                a.agent_version
            )));
        }
        hosts.push(row);
    }
    let r = {
        let _turn = state.writer.lock().await;
        let txn = crate::db::begin_write(&state.db).await?;
        let r = rollout::Entity::insert(row)
            .exec_with_returning(&txn)
            .await?;
        for chunk in hosts.chunks(500) {
            host::Entity::insert_many(chunk.to_vec()).exec(&txn).await?;
        }
        txn.commit().await?;
        r
    };
    tracing::info!(rollout = %r.id, version = %version, hosts = todo.len(), skipped = skip.len(), by, "rollout started");
    publish(state, &r).await;
    Ok(r)
}

fn host_row(
    rollout_id: &str,
    agent_id: &str,
    wave: i32,
    state: &str,
    from: &str,
    now: i64,
) -> host::ActiveModel {
    host::ActiveModel {
        rollout_id: Set(rollout_id.into()),
        agent_id: Set(agent_id.into()),
        wave: Set(wave),
        state: Set(state.into()),
        from_version: Set(from.into()),
        command_id: Set(None),
        selftest_command_id: Set(None),
        reason: Set(None),
        updated_at: Set(now),
    }
}

impl SelectorInput {
    /// The selector, checked; the error says what is wrong.
    fn resolve_selector(self) -> Result<crate::selector::Selector, String> {
        let s = match self {
            Self::Json(s) => s,
            Self::Text(t) => {
                crate::selector::Selector::parse(&t).map_err(|e| format!("selector: {e}"))?
            }
        };
        s.check().map_err(|e| format!("selector: {e}"))?;
        Ok(s)
    }
}

/// The rollout `id`.
pub async fn get(state: &AppState, id: &str) -> Result<rollout::Model, RolloutError> {
    rollout::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| RolloutError::NotFound(id.to_string()))
}

/// An operator's action on a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stops new sends; hosts already sent go on and are followed.
    Pause,
    /// A paused rollout runs again.
    Resume,
    /// Ends the rollout for good; updates already sent are not undone.
    Abort,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
        }
    }
}

/// Applies an operator's action; refuses one that does not fit the state
/// (with the state it is in).
pub async fn act(
    state: &AppState,
    id: &str,
    action: Action,
    by: &str,
) -> Result<rollout::Model, RolloutError> {
    let r = get(state, id).await?;
    let now = now_ms();
    let mut m: rollout::ActiveModel = r.clone().into();
    match (action, r.state.as_str()) {
        (Action::Pause, "running") => m.state = Set("paused".into()),
        (Action::Resume, "paused") => {
            // A release yanked meanwhile is never sent again.
            let rel = release::Entity::find_by_id(r.release_id.clone())
                .one(&state.db)
                .await?;
            if rel.is_none_or(|x| x.yanked_at.is_some()) {
                return Err(RolloutError::Conflict(format!(
                    "release {} was yanked; this rollout cannot resume (abort it)",
                    r.version
                )));
            }
            m.state = Set("running".into());
        }
        (Action::Abort, "running" | "paused") => {
            m.state = Set("aborted".into());
            m.halted_reason = Set(Some(format!("aborted by {by}")));
            m.finished_at = Set(Some(now));
        }
        (a, s) => {
            let hint = match a {
                Action::Pause => "only a running rollout can be paused",
                Action::Resume => "only a paused rollout can be resumed",
                Action::Abort => "only a running or paused rollout can be aborted",
            };
            return Err(RolloutError::Conflict(format!(
                "rollout {id} is {s}; {hint}"
            )));
        }
    }
    m.updated_at = Set(now);
    let r = m.update(&state.db).await?;
    tracing::info!(rollout = %r.id, action = action.as_str(), by, "rollout {}", r.state);
    publish(state, &r).await;
    Ok(r)
}

/// Publishes the rollout's live event (`drover.evt.rollout.<id>`).
pub async fn publish(state: &AppState, r: &rollout::Model) {
    crate::events::publish(
        state,
        &bus_schema::Event::Rollout {
            rollout_id: r.id.clone(),
            state: r.state.clone(),
            current_wave: r.current_wave,
        },
    )
    .await;
}

/// Host counts by state, every state present (0 when none).
pub fn count_states<'a>(states: impl Iterator<Item = &'a str>) -> BTreeMap<String, i64> {
    let mut m: BTreeMap<String, i64> = HOST_STATES.iter().map(|s| (s.to_string(), 0)).collect();
    for s in states {
        *m.entry(s.to_string()).or_default() += 1;
    }
    m
}

/// The audit trail's description of a successful rollout request (called
/// by `auth::describe` for `/api/v1/rollouts…`).
pub fn describe(
    method: &str,
    template: &str,
    id: &str,
    req: &Value,
    resp: &Value,
) -> Option<(String, String, Value)> {
    let id = id.to_string();
    Some(match (method, template) {
        ("POST", "/api/v1/rollouts") => (
            "rollout.start".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({
                "version": req["version"], "selector": req["selector"],
                "canary": req["canary"], "waves": req["waves"], "pause": req["pause"],
                "max_failures": req["max_failures"], "allow_downgrade": req["allow_downgrade"],
                "platform": req["platform"], "hosts": resp["host_count"],
            }),
        ),
        ("POST", "/api/v1/rollouts/{id}/pause") => ("rollout.pause".into(), id, json!({})),
        ("POST", "/api/v1/rollouts/{id}/resume") => ("rollout.resume".into(), id, json!({})),
        ("POST", "/api/v1/rollouts/{id}/abort") => ("rollout.abort".into(), id, json!({})),
        _ => return None,
    })
}

/// Records a step the engine took (wave start, halt, done) in the audit
/// trail, as `rollout:<id>`.
pub async fn audit_step(state: &AppState, r: &rollout::Model, action: &str, detail: Value) {
    let e = crate::audit::Entry::new(&format!("rollout:{}", r.id), action, &r.id, "", detail);
    if let Err(e) = crate::audit::record(&state.db, e).await {
        tracing::warn!(rollout = %r.id, error = %e, "rollout step not audited");
    }
}
