//! `drover keys rotate`: makes a new key generation, signs the rotation
//! with the key it replaces, records it and sends it as `agent.rotate_key`
//! to every approved host (hosts offline find it in their durable queue
//! until the overlap ends). Command keys are made here (the seed in a 0600
//! file under `<data_dir>/keys/`); release keys are not held by the control
//! plane, so a release rotation arrives already signed by the old release
//! key (the CLI signs it on the operator's machine) and is checked here
//! against the release key the control plane trusts now.
//!
//! Owns the rotation steps; the checks are `bus_schema::signing::rotation`'s.

use bus_schema::catalogue::agent::RotateKeyParams;
use bus_schema::signing::rotation::{key_fingerprint, KeyKind, KeyRotation, MAX_OVERLAP_MS};
use bus_schema::{now_ms, CommandSigner, Source};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use tracing::info;

use super::entity::signing_key;
use crate::db::entities::agent;
use crate::state::AppState;

/// Shortest overlap accepted, in seconds.
pub const MIN_OVERLAP_SECS: i64 = 1;

/// Why a rotation was not made. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Bad input (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// Not now (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Internal(String),
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotated {
    pub which: &'static str,
    pub generation: u32,
    /// The new key's `SHA256:<base64>`.
    pub fingerprint: String,
    /// Until when (ms) hosts still accept the old key.
    pub overlap_end_ms: i64,
    /// Hosts the rotation was sent to.
    pub sent: usize,
    /// Hosts it could not be sent to, with the reason.
    pub failed: Vec<(String, String)>,
}

static ROTATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `overlap` (`24h`, `90m`, `7d`, seconds) as ms, within the bounds.
pub fn parse_overlap(overlap: &str) -> Result<i64, RotateError> {
    let secs = crate::tokens::parse_duration_secs(overlap).map_err(RotateError::Invalid)?;
    let ms = secs.saturating_mul(1000);
    if secs < MIN_OVERLAP_SECS || ms > MAX_OVERLAP_MS {
        return Err(RotateError::Invalid(format!(
            "overlap {overlap}: between {MIN_OVERLAP_SECS} s and {} days, e.g. 24h",
            MAX_OVERLAP_MS / 86_400_000
        )));
    }
    Ok(ms)
}

fn still_overlapping(rows: &[signing_key::Model], now: i64) -> Result<(), RotateError> {
    if let Some(last) = rows.last().filter(|r| r.overlap_end > now) {
        return Err(RotateError::Conflict(format!(
            "generation {} is still in its overlap (hosts accept the old key until {} ms since the epoch); \
             rotate again after it ends, so no host is left two keys behind",
            last.generation, last.overlap_end
        )));
    }
    Ok(())
}

/// Rotates the command-signing key: a new generation signs every command
/// from now on (hosts that have not adopted it yet get the old key's
/// signature until the overlap ends).
pub async fn rotate_command(
    state: &AppState,
    overlap_ms: i64,
    by: &str,
) -> Result<Rotated, RotateError> {
    let _turn = ROTATING.lock().await;
    let now = now_ms();
    still_overlapping(&super::generations(state, KeyKind::Command).await?, now)?;
    let (generation, _) = state.keys.current();
    let next = generation + 1;
    let new = CommandSigner::generate();
    let rotation = KeyRotation {
        which: KeyKind::Command,
        generation: next,
        new_key: new.public().to_base64(),
        overlap_end_ms: now + overlap_ms,
        at_ms: now,
    };
    let (text, signature) = rotation
        .sign_command(&state.keys.current_signer())
        .map_err(|e| RotateError::Internal(e.to_string()))?;
    let path = super::key_path(&state.cfg, KeyKind::Command, next);
    new.save_new(&path).map_err(|e| {
        RotateError::Internal(format!(
            "{e}; remove {} if it is left from a failed rotation",
            path.display()
        ))
    })?;
    record(state, &rotation, &text, &signature, by).await?;
    // Sent while the old key still signs: every host can check it.
    let (sent, failed) = fan_out(state, &text, &signature, overlap_ms, by).await?;
    state.keys.install(next, new, rotation.overlap_end_ms);
    info!(generation = next, fingerprint = %key_fingerprint(&rotation.new_key), sent, "command-signing key rotated");
    finish(state, rotation, sent, failed, by).await
}

/// Records and sends a release-key rotation signed by the current release
/// key (`text`, `signature`: what `drover keys rotate --which release`
/// signed with the old key's seed).
pub async fn rotate_release(
    state: &AppState,
    text: &str,
    signature: &str,
    by: &str,
) -> Result<Rotated, RotateError> {
    let _turn = ROTATING.lock().await;
    let now = now_ms();
    still_overlapping(&super::generations(state, KeyKind::Release).await?, now)?;
    let mut ring = super::release_ring(state).await?.ok_or_else(|| {
        RotateError::Conflict(
            "no release key is configured (release_key in drover.toml), so there is none to rotate"
                .into(),
        )
    })?;
    let rotation = ring
        .apply(text, signature)
        .map_err(|e| RotateError::Invalid(e.to_string()))?;
    if rotation.overlap_end_ms <= now {
        return Err(RotateError::Invalid(
            "the rotation's overlap has already ended; sign a new one".into(),
        ));
    }
    record(state, &rotation, text, signature, by).await?;
    let overlap_ms = rotation.overlap_end_ms - now;
    let (sent, failed) = fan_out(state, text, signature, overlap_ms, by).await?;
    info!(generation = rotation.generation, fingerprint = %key_fingerprint(&rotation.new_key), sent, "release key rotated");
    finish(state, rotation, sent, failed, by).await
}

async fn record(
    state: &AppState,
    r: &KeyRotation,
    text: &str,
    signature: &str,
    by: &str,
) -> Result<(), RotateError> {
    signing_key::Entity::insert(signing_key::ActiveModel {
        kind: Set(r.which.as_str().into()),
        generation: Set(r.generation as i32),
        public_key: Set(r.new_key.clone()),
        fingerprint: Set(key_fingerprint(&r.new_key)),
        created_at: Set(r.at_ms),
        created_by: Set(by.into()),
        overlap_end: Set(r.overlap_end_ms),
        rotation: Set(text.into()),
        signature: Set(signature.into()),
        ..Default::default()
    })
    .exec(&state.db)
    .await?;
    Ok(())
}

/// Sends the rotation to every approved host; returns how many got it and
/// those that could not.
async fn fan_out(
    state: &AppState,
    text: &str,
    signature: &str,
    overlap_ms: i64,
    by: &str,
) -> Result<(usize, Vec<(String, String)>), RotateError> {
    let agents: Vec<String> = agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    if agents.is_empty() {
        return Ok((0, vec![]));
    }
    let params = serde_json::to_value(RotateKeyParams {
        rotation: text.into(),
        signature: signature.into(),
    })
    .expect("params serialise");
    let spec = crate::commands::validate(
        state,
        super::ROTATE_ACTION,
        params,
        None,
        Some((overlap_ms / 1000).max(60) as u64),
        by,
        Source::System,
    )
    .await
    .map_err(|e| RotateError::Internal(e.to_string()))?;
    let issued = crate::commands::issue(state, &spec, &agents, crate::commands::InJob::No)
        .await
        .map_err(|e| RotateError::Internal(e.to_string()))?;
    let mut failed = vec![];
    let mut sent = 0;
    for (m, err) in issued {
        match err {
            Some(e) => failed.push((m.agent_id, e.to_string())),
            None => sent += 1,
        }
    }
    Ok((sent, failed))
}

async fn finish(
    state: &AppState,
    r: KeyRotation,
    sent: usize,
    failed: Vec<(String, String)>,
    by: &str,
) -> Result<Rotated, RotateError> {
    let out = Rotated {
        which: r.which.as_str(),
        generation: r.generation,
        fingerprint: key_fingerprint(&r.new_key),
        overlap_end_ms: r.overlap_end_ms,
        sent,
        failed,
    };
    let _ = crate::audit::record(
        &state.db,
        crate::audit::Entry::new(
            by,
            "keys.rotate",
            r.which.as_str(),
            "",
            json!({
                "generation": out.generation,
                "fingerprint": out.fingerprint,
                "overlap_end_ms": out.overlap_end_ms,
                "sent": out.sent,
                "failed": out.failed.len(),
            }),
        ),
    )
    .await;
    Ok(out)
}
