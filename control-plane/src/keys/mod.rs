//! Signing-key rotation on the control plane: which command-signing key
//! signs each command ([`KeyState`], [`sign`]), the key generations
//! (`signing_keys`, [`entity`]), which keys each host reported accepting
//! ([`record_heartbeats`]), rotating a key and sending the rotation to every
//! host ([`rotate`]), and the overview the API, CLI and page show
//! ([`view`]).
//!
//! During a rotation's overlap a host that has not reported the new key yet
//! still gets commands signed by the old one, so nothing in flight or
//! queued behind the rotation is refused; once it reports the new key, or
//! the overlap ends, it gets the new key's signatures only.
//!
//! Private key halves live in 0600 files under `<data_dir>/keys/`, never in
//! the database. Does not own the hosts' side (`bus_schema::signing`).

pub mod active;
pub mod entity;
pub mod rotate;
pub mod view;

use std::path::PathBuf;

use anyhow::Context;
use bus_schema::signing::rotation::{KeyKind, KeyRing};
use bus_schema::{now_ms, Command, CommandSigner, Heartbeat, SignedCommand};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::config::Config;
use crate::state::AppState;
pub use active::KeyState;
use entity::{host_key, signing_key};

/// The catalogue action that carries a rotation to the hosts.
pub const ROTATE_ACTION: &str = "agent.rotate_key";

/// The file holding generation `generation`'s seed of `which`.
pub fn key_path(cfg: &Config, which: KeyKind, generation: u32) -> PathBuf {
    cfg.data_dir
        .join("keys")
        .join(format!("{}-{generation}.key", which.as_str()))
}

/// Signs `cmd` for its host: with the current key, except during an
/// overlap for a host that has not reported the current key yet (it gets
/// the previous key's signature, which it still accepts).
pub fn sign(state: &AppState, cmd: &Command) -> SignedCommand {
    let a = state.keys.active.read().expect("key state lock");
    if let Some((prev, overlap_end)) = &a.previous {
        if now_ms() < *overlap_end
            && !state
                .keys
                .holds(&cmd.agent_id, &a.current.public().fingerprint())
        {
            return prev.sign(cmd);
        }
    }
    a.current.sign(cmd)
}

/// At start: the newest command-key generation in the database becomes the
/// signing key (its seed file must be there and match), and the hosts'
/// reported keys are loaded.
pub async fn load(state: &AppState) -> anyhow::Result<()> {
    let rows = signing_key::Entity::find()
        .filter(signing_key::Column::Kind.eq(KeyKind::Command.as_str()))
        .order_by_asc(signing_key::Column::Generation)
        .all(&state.db)
        .await?;
    for row in rows {
        let path = key_path(&state.cfg, KeyKind::Command, row.generation as u32);
        let signer = CommandSigner::load(&path).with_context(|| {
            format!(
                "command-signing key generation {} is recorded but its seed file cannot be read; \
                 restore {} from a backup",
                row.generation,
                path.display()
            )
        })?;
        anyhow::ensure!(
            signer.public().to_base64() == row.public_key,
            "{} does not hold the recorded key of generation {}",
            path.display(),
            row.generation
        );
        state
            .keys
            .install(row.generation as u32, signer, row.overlap_end);
    }
    let reported = host_key::Entity::find().all(&state.db).await?;
    let mut map = state.keys.reported.lock().expect("reported lock");
    for r in reported {
        map.insert(
            r.agent_id,
            serde_json::from_str(&r.fingerprints).unwrap_or_default(),
        );
    }
    Ok(())
}

/// Longest list of fingerprints kept per host.
const MAX_REPORTED: usize = 8;

/// Stores the key fingerprints heartbeats report, when they changed.
pub async fn record_heartbeats(state: &AppState, hbs: &[Heartbeat]) -> Result<(), sea_orm::DbErr> {
    let now = now_ms();
    let changed: Vec<(String, Vec<String>)> = {
        let mut map = state.keys.reported.lock().expect("reported lock");
        hbs.iter()
            .filter_map(|h| {
                let mut f = h.key_fingerprints.clone()?;
                f.truncate(MAX_REPORTED);
                // By characters: a byte cut inside one would panic.
                f.iter_mut()
                    .for_each(|x| *x = bus_schema::text::storable(x, 64));
                if map.get(&h.agent_id) == Some(&f) {
                    return None;
                }
                map.insert(h.agent_id.clone(), f.clone());
                Some((h.agent_id.clone(), f))
            })
            .collect()
    };
    for (agent_id, f) in changed {
        let row = host_key::ActiveModel {
            agent_id: Set(agent_id),
            fingerprints: Set(serde_json::to_string(&f).unwrap_or_default()),
            reported_at: Set(now),
        };
        host_key::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(host_key::Column::AgentId)
                    .update_columns([host_key::Column::Fingerprints, host_key::Column::ReportedAt])
                    .to_owned(),
            )
            .exec(&state.db)
            .await?;
    }
    Ok(())
}

/// The control plane's view of the release keys: the configured
/// `release_key` (generation 0) moved on by each recorded rotation. `None`
/// when no release key is configured.
pub async fn release_ring(state: &AppState) -> Result<Option<KeyRing>, sea_orm::DbErr> {
    let Some(pinned) = crate::agent_releases::release_key(&state.cfg)
        .ok()
        .flatten()
    else {
        return Ok(None);
    };
    let mut ring = KeyRing::pinned(KeyKind::Release, &pinned.to_base64());
    for row in generations(state, KeyKind::Release).await? {
        ring.previous = Some(std::mem::replace(&mut ring.current, row.public_key));
        ring.generation = row.generation as u32;
        ring.overlap_end_ms = row.overlap_end;
    }
    Ok(Some(ring))
}

/// The recorded generations of `which`, oldest first.
pub async fn generations(
    state: &AppState,
    which: KeyKind,
) -> Result<Vec<signing_key::Model>, sea_orm::DbErr> {
    signing_key::Entity::find()
        .filter(signing_key::Column::Kind.eq(which.as_str()))
        .order_by_asc(signing_key::Column::Generation)
        .all(&state.db)
        .await
}
