//! Secrets sealed to each host's rootd: pinning the rootd box keys hosts
//! report (at enrolment and in heartbeats), refusing a changed one until an
//! operator accepts it, and sealing a command's sensitive values to its
//! host's pinned key before it is signed ([`bus_schema::sealed`]).
//!
//! Trust model, like the machine-id binding: the first key a host reports is
//! pinned (trust on first use, over the agent's authenticated connection); a
//! different key later is never taken silently. It is recorded as
//! `offered_key` with an audit entry, secrets stay sealed to the pinned key
//! (which the new rootd cannot open), and commands carrying secrets to that
//! host are refused at submit until an operator accepts the new key
//! (`drover agents accept-box-key`), because a new key is also what a
//! takeover of the agent's user would present.
//!
//! Does not decide which fields are secret (catalogue and manifests do) and
//! does not sign or publish (`commands` does).

use std::collections::HashMap;

use bus_schema::sealed::{self, BoxPublicKey};
use bus_schema::{now_ms, Command};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::{info, warn};

use crate::db::entities::rootd_box_key;
use crate::state::AppState;

/// Why a command's secrets cannot be sealed for a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealRefusal {
    #[error(
        "agent {0} has no pinned rootd box key, so its secrets cannot be sealed (they are never \
         sent in clear); start drover-rootd on the host (systemctl start drover-rootd) and, \
         once a heartbeat reports its key (`drover agents box-key {0}` shows it), try again"
    )]
    NoKey(String),
    #[error(
        "rootd on agent {0} now reports a different box key than the one pinned; secrets are not \
         sent until an operator checks the host and accepts it with \
         `drover agents accept-box-key {0}`"
    )]
    KeyChanged(String),
    #[error("sealing for agent {0} failed: {1}")]
    Seal(String, String),
}

/// Records the keys hosts reported (`(agent id, base64 key)`): pins the
/// first one per agent, ignores a repeat, and records a different one as
/// offered (refused) with a warning and an audit entry. A report that is not
/// a key is logged and ignored. `source` says where it came from
/// (`enrolment`, `heartbeat`).
pub async fn observe(
    state: &AppState,
    reports: &[(String, String)],
    source: &str,
) -> Result<(), sea_orm::DbErr> {
    let reports: Vec<(String, String)> = reports
        .iter()
        .filter_map(|(a, k)| match BoxPublicKey::parse(k) {
            Ok(key) => Some((a.clone(), key.to_base64())),
            Err(e) => {
                warn!(agent_id = %a, error = %e, "ignored a rootd box key that is not one");
                None
            }
        })
        .collect();
    if reports.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = reports.iter().map(|(a, _)| a.clone()).collect();
    let pinned = pins(state, &ids).await?;
    let now = now_ms();
    let mut changed = Vec::new();
    let mut fresh = Vec::new();
    for (agent, key) in reports {
        match pinned.get(&agent) {
            None => fresh.push((agent, key)),
            Some(p) if p.public_key == key => {}
            Some(p) if p.offered_key.as_deref() == Some(key.as_str()) => {}
            Some(p) => changed.push((agent, key, p.public_key.clone())),
        }
    }
    if fresh.is_empty() && changed.is_empty() {
        return Ok(());
    }
    let _turn = state.writer.lock().await;
    for (agent, key) in &fresh {
        rootd_box_key::Entity::insert(rootd_box_key::ActiveModel {
            agent_id: Set(agent.clone()),
            public_key: Set(key.clone()),
            pinned_at: Set(now),
            pinned_by: Set(source.into()),
            offered_key: Set(None),
            offered_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(rootd_box_key::Column::AgentId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&state.db)
        .await?;
        info!(agent_id = %agent, box_key = %key, source, "pinned the rootd box key");
    }
    for (agent, key, old) in &changed {
        rootd_box_key::Entity::update_many()
            .col_expr(
                rootd_box_key::Column::OfferedKey,
                sea_orm::sea_query::Expr::value(key.clone()),
            )
            .col_expr(
                rootd_box_key::Column::OfferedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(rootd_box_key::Column::AgentId.eq(agent.clone()))
            .exec(&state.db)
            .await?;
        warn!(agent_id = %agent, pinned = %old, offered = %key, "refused a changed rootd box key; secrets for this host are refused until an operator accepts it");
    }
    // The audit chain takes the write turn itself.
    drop(_turn);
    for (agent, key, old) in &changed {
        let _ = crate::audit::record(
            &state.db,
            crate::audit::Entry::new(
                "system",
                "rootd_box_key.refused",
                agent,
                "",
                serde_json::json!({ "pinned": old, "offered": key, "source": source }),
            ),
        )
        .await;
    }
    Ok(())
}

/// The pinned keys of `agents` (those that have one).
pub async fn pins(
    state: &AppState,
    agents: &[String],
) -> Result<HashMap<String, rootd_box_key::Model>, sea_orm::DbErr> {
    let mut out = HashMap::new();
    for chunk in agents.chunks(500) {
        for m in rootd_box_key::Entity::find()
            .filter(rootd_box_key::Column::AgentId.is_in(chunk.to_vec()))
            .all(&state.db)
            .await?
        {
            out.insert(m.agent_id.clone(), m);
        }
    }
    Ok(out)
}

/// What an operator's acceptance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The offered key is now the pinned one.
    Pinned { public_key: String },
    /// Nothing was offered: the pinned key stays.
    NothingOffered,
}

/// Pins the key the host offered in place of the pinned one (an operator
/// checked the host: rootd was reinstalled or its state lost). Unknown
/// agent: `Ok(None)`.
pub async fn accept(
    state: &AppState,
    agent_id: &str,
    by: &str,
) -> Result<Option<Accepted>, sea_orm::DbErr> {
    let _turn = state.writer.lock().await;
    let Some(row) = rootd_box_key::Entity::find_by_id(agent_id.to_string())
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    let Some(offered) = row.offered_key.clone() else {
        return Ok(Some(Accepted::NothingOffered));
    };
    rootd_box_key::Entity::update(rootd_box_key::ActiveModel {
        agent_id: Set(row.agent_id.clone()),
        public_key: Set(offered.clone()),
        pinned_at: Set(now_ms()),
        pinned_by: Set(by.into()),
        offered_key: Set(None),
        offered_at: Set(None),
    })
    .exec(&state.db)
    .await?;
    info!(agent_id, by, box_key = %offered, "accepted a new rootd box key");
    Ok(Some(Accepted::Pinned {
        public_key: offered,
    }))
}

/// The paths of `params` (clear, validated) to seal: the action's
/// sensitive fields (for `app.install` the manifest's sensitive inputs),
/// or none when no secret is given.
pub fn paths_to_seal(
    spec: &bus_schema::catalogue::ActionSpec,
    manifest: Option<&bus_schema::manifest::Manifest>,
    params: &serde_json::Value,
) -> Vec<String> {
    let paths = sealed::sensitive_paths(spec, manifest);
    if sealed::has_secrets(params, |p| paths.iter().any(|s| s == p)) {
        paths
    } else {
        Vec::new()
    }
}

/// Whether `agent` can receive these secrets: a pinned key, and no
/// different key offered since.
pub fn check(agent: &str, pin: Option<&rootd_box_key::Model>) -> Result<BoxPublicKey, SealRefusal> {
    let pin = pin.ok_or_else(|| SealRefusal::NoKey(agent.into()))?;
    if pin.offered_key.is_some() {
        return Err(SealRefusal::KeyChanged(agent.into()));
    }
    BoxPublicKey::parse(&pin.public_key).map_err(|e| SealRefusal::Seal(agent.into(), e.to_string()))
}

/// Whether every agent in `agents` can receive `spec`'s secrets (always,
/// when it carries none); the first refusal otherwise.
pub async fn require(
    state: &AppState,
    spec: &crate::command_spec::CommandSpec,
    agents: &[String],
) -> Result<Result<(), SealRefusal>, sea_orm::DbErr> {
    if spec.sealed_paths.is_empty() {
        return Ok(Ok(()));
    }
    let pins = pins(state, agents).await?;
    Ok(agents
        .iter()
        .try_for_each(|a| check(a, pins.get(a)).map(|_| ())))
}

/// Seals each command's secrets to its host's pinned key. A command whose
/// host cannot get them has its params replaced by the masked ones (never
/// kept in clear, even unsent) and is returned with the refusal, by agent.
pub async fn seal_all(
    state: &AppState,
    spec: &crate::command_spec::CommandSpec,
    cmds: &mut [Command],
) -> Result<HashMap<String, SealRefusal>, sea_orm::DbErr> {
    let mut refused = HashMap::new();
    if spec.sealed_paths.is_empty() {
        return Ok(refused);
    }
    let agents: Vec<String> = cmds.iter().map(|c| c.agent_id.clone()).collect();
    let pins = pins(state, &agents).await?;
    for cmd in cmds.iter_mut() {
        let sealed = check(&cmd.agent_id, pins.get(&cmd.agent_id))
            .and_then(|key| seal(cmd, &key, &spec.sealed_paths));
        if let Err(e) = sealed {
            cmd.params = spec.shown_params.clone();
            refused.insert(cmd.agent_id.clone(), e);
        }
    }
    Ok(refused)
}

/// Seals `cmd`'s values at `paths` to `key` (its params are replaced).
pub fn seal(cmd: &mut Command, key: &BoxPublicKey, paths: &[String]) -> Result<(), SealRefusal> {
    let (params, _) =
        sealed::seal_params(key, &cmd.id, &cmd.params, |p| paths.iter().any(|s| s == p))
            .map_err(|e| SealRefusal::Seal(cmd.agent_id.clone(), e.to_string()))?;
    cmd.params = params;
    Ok(())
}
