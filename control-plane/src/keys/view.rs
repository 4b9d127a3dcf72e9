//! The key-rotation overview shown by `GET /api/v1/keys`, `drover keys`
//! and the Keys page: per kind of key, its generations, the key trusted
//! now, the overlap end, and which approved hosts report holding the
//! current key. Owns the shape; reads only.

use bus_schema::now_ms;
use bus_schema::signing::rotation::{key_fingerprint, KeyKind};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::db::entities::agent;
use crate::state::AppState;

/// One host as the overview lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostHolding {
    pub id: String,
    pub hostname: String,
    /// Whether the host reported accepting the current key.
    pub holds_current: bool,
}

/// `{"command": {...}, "release": {...} | null}`; each kind:
/// `generation`, `fingerprint` (the current key), `overlap_end_ms` (0 =
/// none), `overlap_active`, `generations` (`[{generation, fingerprint,
/// created_at, created_by, overlap_end_ms, hosts_holding}]`, generation 0
/// first), `hosts_total`, `hosts_with_current`, `hosts` (`[{id, hostname,
/// holds_current}]`).
pub async fn overview(state: &AppState) -> Result<Value, sea_orm::DbErr> {
    let hosts: Vec<(String, String)> = agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.hostname))
        .collect();
    let command_gen0 = state.signer.public().to_base64();
    let command = kind(state, KeyKind::Command, &command_gen0, &hosts).await?;
    let release = match crate::agent_releases::release_key(&state.cfg)
        .ok()
        .flatten()
    {
        Some(k) => kind(state, KeyKind::Release, &k.to_base64(), &hosts).await?,
        None => Value::Null,
    };
    Ok(json!({ "command": command, "release": release }))
}

async fn kind(
    state: &AppState,
    which: KeyKind,
    gen0: &str,
    hosts: &[(String, String)],
) -> Result<Value, sea_orm::DbErr> {
    let now = now_ms();
    let rows = super::generations(state, which).await?;
    let mut gens = vec![(0u32, key_fingerprint(gen0), 0i64, String::new(), 0i64)];
    for r in &rows {
        gens.push((
            r.generation as u32,
            r.fingerprint.clone(),
            r.created_at,
            r.created_by.clone(),
            r.overlap_end,
        ));
    }
    let (generation, fingerprint, _, _, overlap_end) = gens.last().cloned().expect("gen 0");
    let list: Vec<HostHolding> = hosts
        .iter()
        .map(|(id, hostname)| HostHolding {
            id: id.clone(),
            hostname: hostname.clone(),
            holds_current: state.keys.holds(id, &fingerprint),
        })
        .collect();
    let generations: Vec<Value> = gens
        .iter()
        .map(|(g, fp, at, by, end)| {
            json!({
                "generation": g,
                "fingerprint": fp,
                "created_at": at,
                "created_by": by,
                "overlap_end_ms": end,
                "hosts_holding": hosts.iter().filter(|(id, _)| state.keys.holds(id, fp)).count(),
            })
        })
        .collect();
    Ok(json!({
        "which": which.as_str(),
        "generation": generation,
        "fingerprint": fingerprint,
        "overlap_end_ms": overlap_end,
        "overlap_active": overlap_end > now,
        "generations": generations,
        "hosts_total": list.len(),
        "hosts_with_current": list.iter().filter(|h| h.holds_current).count(),
        "hosts": list,
    }))
}
