//! Publishing and yanking agent releases, and the checks made with them:
//! the pinned release key from `release_key` ([`release_key`]), a signed
//! manifest plus its binary checked and stored ([`publish`]: object in the
//! releases bucket under `ReleaseManifest::object_name`, row in
//! `agent_releases`), the look-ups the rollout engine uses ([`find`],
//! [`is_yanked`]), [`yank`], and [`check_update`], which refuses an
//! `agent.update` whose release is yanked or not signed by the fleet's key.
//!
//! Owns the rules for writing `agent_releases` rows. It does not serve
//! HTTP (`api::agent_releases`), render pages (`ui::releases`) or sign
//! anything: the release key's private half never reaches the control
//! plane.

use std::collections::HashMap;

use async_nats::jetstream::object_store;
use bus_schema::catalogue::agent::UpdateParams;
use bus_schema::now_ms;
use bus_schema::signing::release::{ReleaseError, ReleaseKey, ReleaseManifest};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::entity;
use crate::config::Config;
use crate::state::AppState;

/// Largest agent binary accepted, in bytes (the upload's body limit too).
pub const MAX_BINARY_BYTES: usize = 256 * 1024 * 1024;
/// Longest yank reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// At most this many releases are listed (newest first).
pub const LISTED: u64 = 1000;
pub use crate::releases::{KIND_AGENT_RELEASE, KIND_KEY};

/// What to do next when no release key is configured.
pub const NO_KEY_HELP: &str = "no release key is configured on the control plane: run \
`drover releases keygen --out release.key` on your own machine, set release_key = \"<the base64 \
it prints>\" (or the path of release.key.pub) in drover.toml or DROVER_RELEASE_KEY, and restart \
`drover serve`";

/// Why a release request was refused. The text is shown to operators.
#[derive(Debug, thiserror::Error)]
pub enum AgentReleaseError {
    /// No `release_key` configured (HTTP 409).
    #[error("{NO_KEY_HELP}")]
    NoKey,
    /// `release_key` is set but unreadable (HTTP 500: the control plane's
    /// configuration, not the caller).
    #[error("the configured release_key cannot be used: {0}")]
    BadKey(String),
    /// The signature, manifest or bytes do not hold (HTTP 422).
    #[error("{0}")]
    Refused(String),
    /// The request itself is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Same version and platform with other bytes, or already yanked (409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The broker's object store (HTTP 503).
    #[error("the releases bucket: {0}")]
    Store(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The pinned release key from `cfg.release_key`: base64 of the 32 raw
/// bytes, or the path of a file holding that (what `drover releases keygen`
/// writes as `<name>.pub`). `Ok(None)`: not configured.
pub fn release_key(cfg: &Config) -> Result<Option<ReleaseKey>, AgentReleaseError> {
    let Some(v) = cfg.release_key.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    ReleaseKey::from_setting(v)
        .map(Some)
        .map_err(|e| AgentReleaseError::BadKey(e.to_string()))
}

fn refused(e: ReleaseError) -> AgentReleaseError {
    AgentReleaseError::Refused(e.to_string())
}

/// A published release and whether this request stored it (false: the
/// identical release was there already).
#[derive(Debug, Clone)]
pub struct Published {
    pub release: entity::Model,
    pub created: bool,
}

/// Checks and stores one release: the signature over `manifest_text` with
/// the control plane's pinned key, the manifest's fields, `bytes` against
/// its size and SHA-256; then the object (name `object_name()`) and the
/// row. The same version and platform with the same SHA-256 again is
/// idempotent; with other bytes it is a [`AgentReleaseError::Conflict`].
/// Nothing is stored when any check fails.
pub async fn publish(
    state: &AppState,
    manifest_text: &str,
    signature: &str,
    bytes: &[u8],
    by: &str,
) -> Result<Published, AgentReleaseError> {
    let key = release_key(&state.cfg)?.ok_or(AgentReleaseError::NoKey)?;
    if bytes.len() > MAX_BINARY_BYTES {
        return Err(AgentReleaseError::Invalid(format!(
            "the binary is {} bytes, more than the {MAX_BINARY_BYTES} allowed",
            bytes.len()
        )));
    }
    // The configured key, or the one a recorded rotation moved it to.
    let m = match crate::keys::release_ring(state).await? {
        Some(ring) => ring.open_release(manifest_text, signature, bus_schema::now_ms()),
        None => key.open(manifest_text, signature),
    }
    .map_err(refused)?;
    m.check_bytes(bytes).map_err(refused)?;
    if let Some(existing) = find(&state.db, &m.version, &m.platform).await? {
        if existing.sha256 != m.sha256 {
            return Err(AgentReleaseError::Conflict(format!(
                "release {} for {} is already published with SHA-256 {} (other bytes): a \
                 published version never changes; publish the new build as a new version",
                m.version, m.platform, existing.sha256
            )));
        }
        if existing.channel != m.channel
            || existing.notes != m.notes
            || existing.min_control_plane != m.min_control_plane
        {
            return Err(AgentReleaseError::Conflict(format!(
                "release {} for {} is already published with other metadata (channel {}, \
                 min control plane {:?}, its notes): a published release never changes; \
                 publish it again as a new version",
                m.version, m.platform, existing.channel, existing.min_control_plane
            )));
        }
        // Identical: make sure the object is there too (a crash between the
        // two writes leaves a row without its object).
        put_object(state, &m, bytes).await?;
        return Ok(Published {
            release: existing,
            created: false,
        });
    }
    // The row first: the unique (version, platform) index decides between
    // two publishers racing, so the loser never overwrites the object.
    let row = entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        version: Set(m.version.clone()),
        platform: Set(m.platform.clone()),
        channel: Set(m.channel.clone()),
        sha256: Set(m.sha256.clone()),
        size: Set(m.size as i64),
        manifest: Set(manifest_text.to_string()),
        signature: Set(signature.trim().to_string()),
        min_control_plane: Set(m.min_control_plane.clone()),
        notes: Set(m.notes.clone()),
        object_name: Set(m.object_name()),
        published_at: Set(now_ms()),
        published_by: Set(by.to_string()),
        yanked_at: Set(None),
        yanked_by: Set(None),
        yank_reason: Set(None),
    };
    let inserted = {
        let _turn = state.writer.lock().await;
        row.insert(&state.db).await
    };
    let release = match inserted {
        Ok(r) => r,
        Err(e) => {
            return match find(&state.db, &m.version, &m.platform).await? {
                Some(other) if other.sha256 == m.sha256 => {
                    put_object(state, &m, bytes).await?;
                    Ok(Published {
                        release: other,
                        created: false,
                    })
                }
                Some(other) => Err(AgentReleaseError::Conflict(format!(
                    "release {} for {} was just published with SHA-256 {} (other bytes)",
                    m.version, m.platform, other.sha256
                ))),
                None => Err(e.into()),
            };
        }
    };
    if let Err(e) = put_object(state, &m, bytes).await {
        // Without its object the row would offer a release no host can
        // fetch: take it back, so publishing again starts clean.
        let _turn = state.writer.lock().await;
        let _ = entity::Entity::delete_by_id(release.id.clone())
            .exec(&state.db)
            .await;
        return Err(e);
    }
    announce(state, &release).await;
    Ok(Published {
        release,
        created: true,
    })
}

/// The live event of a published or yanked release
/// (`drover.evt.release`).
async fn announce(state: &AppState, r: &entity::Model) {
    crate::events::publish(
        state,
        &bus_schema::Event::Release {
            version: r.version.clone(),
            platform: r.platform.clone(),
            yanked: r.yanked_at.is_some(),
        },
    )
    .await;
}

/// Stores the binary unless the bucket holds it with the same SHA-256.
async fn put_object(
    state: &AppState,
    m: &ReleaseManifest,
    bytes: &[u8],
) -> Result<(), AgentReleaseError> {
    let store = crate::releases::bucket(&state.js)
        .await
        .map_err(|e| AgentReleaseError::Store(e.to_string()))?;
    let name = m.object_name();
    if let Ok(info) = store.info(&name).await {
        if !info.deleted && info.metadata.get("sha256") == Some(&m.sha256) {
            return Ok(());
        }
    }
    let metadata: HashMap<String, String> = [
        (KIND_KEY, KIND_AGENT_RELEASE),
        ("version", m.version.as_str()),
        ("platform", m.platform.as_str()),
        ("sha256", m.sha256.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let meta = object_store::ObjectMetadata {
        name: name.clone(),
        description: Some(format!("{} {} ({})", m.name, m.version, m.platform)),
        metadata,
        ..Default::default()
    };
    store
        .put(meta, &mut &bytes[..])
        .await
        .map_err(|e| AgentReleaseError::Store(e.to_string()))?;
    Ok(())
}

/// The release of `version` for `platform`, if published.
pub async fn find(
    db: &DatabaseConnection,
    version: &str,
    platform: &str,
) -> Result<Option<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .filter(entity::Column::Version.eq(version))
        .filter(entity::Column::Platform.eq(platform))
        .one(db)
        .await
}

/// Every platform's release of `version`.
pub async fn of_version(
    db: &DatabaseConnection,
    version: &str,
) -> Result<Vec<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .filter(entity::Column::Version.eq(version))
        .order_by_asc(entity::Column::Platform)
        .all(db)
        .await
}

/// The releases, newest first (at most [`LISTED`]).
pub async fn list(db: &DatabaseConnection) -> Result<Vec<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .order_by_desc(entity::Column::PublishedAt)
        .limit(LISTED)
        .all(db)
        .await
}

/// The yanked release that matches `version`+`platform` or `sha256`, if
/// any: a yanked build is refused under any name.
pub async fn is_yanked(
    db: &DatabaseConnection,
    version: &str,
    platform: &str,
    sha256: &str,
) -> Result<Option<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .filter(entity::Column::YankedAt.is_not_null())
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(entity::Column::Version.eq(version))
                        .add(entity::Column::Platform.eq(platform)),
                )
                .add(entity::Column::Sha256.eq(sha256)),
        )
        .one(db)
        .await
}

/// Yanks every platform's release of `version` (or only `platform`'s):
/// never offered again. Returns the yanked rows. Already yanked is a
/// conflict that says when and by whom; an empty or long reason is invalid.
pub async fn yank(
    state: &AppState,
    version: &str,
    platform: Option<&str>,
    reason: &str,
    by: &str,
) -> Result<Vec<entity::Model>, AgentReleaseError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AgentReleaseError::Invalid(
            "a reason is required: say why the release must not be installed (it is shown to \
             operators and stops rollouts of it)"
                .into(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AgentReleaseError::Invalid(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    let rows: Vec<_> = of_version(&state.db, version)
        .await?
        .into_iter()
        .filter(|r| platform.is_none_or(|p| r.platform == p))
        .collect();
    if rows.is_empty() {
        return Err(AgentReleaseError::NotFound(format!(
            "no agent release {version}{}; see `drover releases list`",
            platform.map(|p| format!(" for {p}")).unwrap_or_default()
        )));
    }
    let open: Vec<_> = rows.iter().filter(|r| r.yanked_at.is_none()).collect();
    if open.is_empty() {
        let r = &rows[0];
        return Err(AgentReleaseError::Conflict(format!(
            "release {version} is already yanked (by {}: {})",
            r.yanked_by.as_deref().unwrap_or("?"),
            r.yank_reason.as_deref().unwrap_or("")
        )));
    }
    let now = now_ms();
    let _turn = state.writer.lock().await;
    let mut out = Vec::with_capacity(open.len());
    for r in open {
        let mut a: entity::ActiveModel = r.clone().into();
        a.yanked_at = Set(Some(now));
        a.yanked_by = Set(Some(by.to_string()));
        a.yank_reason = Set(Some(reason.to_string()));
        out.push(a.update(&state.db).await?);
    }
    drop(_turn);
    for r in &out {
        announce(state, r).await;
    }
    cancel_queued_updates(state, &out, by).await;
    Ok(out)
}

/// Cancels every `agent.update` of a just-yanked release that still waits
/// in a host's queue (an offline host's, or a rollout's not yet taken), so
/// a yank also stops what was submitted before it: matched by version and
/// platform or by SHA-256, as [`check_update`] matches. Updates a host
/// already took run to their end (rootd is mid-install; the rollout halts).
async fn cancel_queued_updates(state: &AppState, yanked: &[entity::Model], by: &str) {
    use crate::db::entities::command;
    let queued = match command::Entity::find()
        .filter(command::Column::Action.eq("agent.update"))
        .filter(command::Column::Status.eq(bus_schema::CommandStatus::Queued.as_str()))
        .all(&state.db)
        .await
    {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "yank: could not list queued agent updates to cancel");
            return;
        }
    };
    for c in queued {
        let Ok(p) = serde_json::from_str::<serde_json::Value>(&c.params)
            .map_err(|e| e.to_string())
            .and_then(|v| bus_schema::catalogue::parse::<UpdateParams>(&v))
        else {
            continue;
        };
        let Ok(m) = p.unverified_manifest() else {
            continue;
        };
        let hit = yanked
            .iter()
            .any(|y| (y.version == m.version && y.platform == m.platform) || y.sha256 == m.sha256);
        if !hit {
            continue;
        }
        match crate::cancel::cancel(state, &c.id, by).await {
            Ok(_) => {
                tracing::info!(command = %c.id, agent = %c.agent_id, version = %m.version, "yank: cancelled a queued update")
            }
            Err(e) => {
                tracing::warn!(command = %c.id, error = %e, "yank: could not cancel a queued update")
            }
        }
    }
}

/// Refuses a release that needs a newer control plane than this one
/// (`min_control_plane` of its manifest against this build's version).
pub fn check_control_plane_version(min_control_plane: &str, version: &str) -> Result<(), String> {
    let this = env!("CARGO_PKG_VERSION");
    if !min_control_plane.is_empty()
        && bus_schema::signing::release::compare_versions(this, min_control_plane)
            == std::cmp::Ordering::Less
    {
        return Err(format!(
            "release {version} needs a control plane of version {min_control_plane} or later; \
             this one is {this}: upgrade the control plane first"
        ));
    }
    Ok(())
}

/// Checked when an `agent.update` is submitted: the release's signature
/// must verify with the control plane's pinned release key, the release
/// must not need a newer control plane, and it must not be yanked
/// (matched by version+platform and by SHA-256). A release not in the
/// table is allowed when its signature holds. `Err` is the reason shown to the requester.
pub async fn check_update(state: &AppState, p: &UpdateParams) -> Result<(), String> {
    let key = release_key(&state.cfg)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("agent.update needs the fleet's release key: {NO_KEY_HELP}"))?;
    let ring = crate::keys::release_ring(state)
        .await
        .map_err(|e| e.to_string())?;
    let m = match ring {
        Some(ring) => ring.open_release(&p.manifest, &p.signature, bus_schema::now_ms()),
        None => key.open(&p.manifest, &p.signature),
    }
    .map_err(|e| format!("the release is refused: {e}"))?;
    if m.version != p.version {
        return Err(format!(
            "version {} does not match the signed manifest's {}",
            p.version, m.version
        ));
    }
    check_control_plane_version(&m.min_control_plane, &m.version)?;
    match is_yanked(&state.db, &m.version, &m.platform, &m.sha256).await {
        Ok(None) => Ok(()),
        Ok(Some(y)) => Err(format!(
            "release {} ({}) was yanked by {}: {}; it is never offered again, publish a fixed \
             release and update to that",
            y.version,
            y.platform,
            y.yanked_by.as_deref().unwrap_or("?"),
            y.yank_reason.as_deref().unwrap_or("")
        )),
        Err(e) => Err(format!("could not check the release's yank state: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::check_control_plane_version;

    #[test]
    fn a_release_for_a_newer_control_plane_is_refused() {
        assert!(check_control_plane_version("", "1.0.0").is_ok());
        assert!(check_control_plane_version("0.0.1", "1.0.0").is_ok());
        let e = check_control_plane_version("99.0.0", "1.0.0").unwrap_err();
        assert!(e.contains("upgrade the control plane first"), "{e}");
    }
}
