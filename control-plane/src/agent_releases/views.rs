//! The JSON shapes of agent releases that the API answers and the
//! Releases page reads: one release ([`release`]), the release key's state
//! ([`key`]). Owns no rule and writes nothing (`store`).

use serde_json::{json, Value};

use super::entity;
use crate::config::Config;

/// One release: `id`, `version`, `platform`, `channel`, `sha256` (hex),
/// `size` (bytes), `min_control_plane` ("" = any), `notes`, `object_name`
/// (in the releases bucket), `published_at` (ms), `published_by`,
/// `yanked` (bool), `yanked_at` (ms or null), `yanked_by`, `yank_reason`;
/// with `full`, also the signed `manifest` text and its `signature`.
pub fn release(r: &entity::Model, full: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "version": r.version,
        "platform": r.platform,
        "channel": r.channel,
        "sha256": r.sha256,
        "size": r.size,
        "min_control_plane": r.min_control_plane,
        "notes": r.notes,
        "object_name": r.object_name,
        "published_at": r.published_at,
        "published_by": r.published_by,
        "yanked": r.yanked_at.is_some(),
        "yanked_at": r.yanked_at,
        "yanked_by": r.yanked_by,
        "yank_reason": r.yank_reason,
    });
    if full {
        v["manifest"] = json!(r.manifest);
        v["signature"] = json!(r.signature);
    }
    v
}

/// The release key as configured: `{"configured": bool, "public_key":
/// base64|null, "fingerprint": "SHA256:…"|null, "error": text|null}`
/// (`error` when `release_key` is set but unusable).
pub fn key(cfg: &Config) -> Value {
    match super::store::release_key(cfg) {
        Ok(Some(k)) => json!({
            "configured": true,
            "public_key": k.to_base64(),
            "fingerprint": k.fingerprint(),
            "error": null,
        }),
        Ok(None) => json!({
            "configured": false, "public_key": null, "fingerprint": null,
            "error": null,
        }),
        Err(e) => json!({
            "configured": false, "public_key": null, "fingerprint": null,
            "error": e.to_string(),
        }),
    }
}
