//! `agent`: the agent's own life cycle. `agent.update` installs a signed
//! agent release (the agent fetches and checks the binary, rootd checks it
//! again, installs it beside the current one, restarts the agent and rolls
//! back unless the new one proves itself); `agent.selftest` is the proof:
//! the control plane sends it once the new version heartbeats, and rootd,
//! receiving it through the new agent, confirms the update.
//!
//! `agent.watch` hands the agent the systemd units it watches (the union of
//! the watched-service lists that match the host); the agent reports their
//! states in its heartbeats.
//!
//! Owns the params and the result's `data` shape ([`UpdateReport`]); the
//! release manifest and its signature are `signing::release`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionSpec, Params, RunsIn};
use crate::signing::release::{ReleaseManifest, MAX_MANIFEST_BYTES};

/// Params of `agent.update`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    /// The version to install; must equal the manifest's.
    pub version: String,
    /// The release manifest's JSON text, exactly as the release key signed it.
    pub manifest: String,
    /// Base64 Ed25519 signature by the release key over the manifest.
    pub signature: String,
    /// Allow installing a version older than the highest this host ever
    /// installed (an operator's explicit downgrade). Default false: rootd
    /// refuses a rollback to an older release.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// The rollout this update belongs to, for the reports ("" = none).
    #[serde(default)]
    pub rollout_id: String,
}

impl UpdateParams {
    /// The manifest as sent (not verified: only for display and early
    /// checks; every reader verifies the signature with its pinned key).
    pub fn unverified_manifest(&self) -> Result<ReleaseManifest, String> {
        serde_json::from_str(&self.manifest).map_err(|e| format!("manifest: {e}"))
    }
}

impl Params for UpdateParams {
    fn check(&self) -> Result<(), String> {
        if self.manifest.len() > MAX_MANIFEST_BYTES {
            return Err(format!("manifest: at most {MAX_MANIFEST_BYTES} bytes"));
        }
        if self.signature.len() > 128 {
            return Err("signature: at most 128 characters of base64".into());
        }
        if self.rollout_id.len() > 64 {
            return Err("rollout_id: at most 64 characters".into());
        }
        let m = self.unverified_manifest()?;
        m.check().map_err(|e| e.to_string())?;
        if m.version != self.version {
            return Err(format!(
                "version {} does not match the manifest's {}",
                self.version, m.version
            ));
        }
        Ok(())
    }
}

/// The `requested_by` of the self-test that proves update `command_id`:
/// the control plane's `update_proofs` duty sends it as the system under
/// this name, and rootd confirms an update only with a self-test so
/// requested.
pub fn proof_requester(command_id: &str) -> String {
    format!("update:{command_id}")
}

/// Params of `agent.selftest`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelftestParams {
    /// The version the control plane saw this host heartbeat with; rootd
    /// confirms a pending update only to this version.
    pub version: String,
}
impl Params for SelftestParams {}

/// Params of `agent.watch`: the complete set of units the host watches
/// from now on (replacing the previous one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchParams {
    /// Unit names (systemd's rules, see `parse_unit`; not templates), at
    /// most [`crate::MAX_WATCHED_UNITS`]; the agent stores them in full
    /// form (`nginx` → `nginx.service`).
    pub units: Vec<String>,
    /// [`watch_revision`] of `units`; the agent reports it in its
    /// heartbeats, so the control plane knows the list arrived.
    pub revision: String,
}

impl WatchParams {
    /// The units in full form, sorted, without repeats.
    pub fn normalized(&self) -> Result<Vec<String>, String> {
        normalize_units(&self.units)
    }
}

impl Params for WatchParams {
    fn check(&self) -> Result<(), String> {
        let units = self.normalized()?;
        let want = watch_revision(&units);
        if self.revision != want {
            return Err(format!(
                "revision {:?} does not match the units (expected {want:?})",
                self.revision
            ));
        }
        Ok(())
    }
}

/// Unit names in full form (`nginx` → `nginx.service`), sorted, without
/// repeats. Refuses an invalid name or a template (the error names it) and
/// more than [`crate::MAX_WATCHED_UNITS`] units.
pub fn normalize_units(units: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(units.len());
    for u in units {
        super::check_unit(u)?;
        out.push(super::parse_unit(u)?.full());
    }
    out.sort();
    out.dedup();
    if out.len() > crate::MAX_WATCHED_UNITS {
        return Err(format!(
            "{} units: a host watches at most {}",
            out.len(),
            crate::MAX_WATCHED_UNITS
        ));
    }
    Ok(out)
}

/// The revision of a watch set: "" for no units, else the first 16 bytes
/// of SHA-256 over the sorted full names joined by newlines, in hex (32
/// characters). Callers pass [`normalize_units`]' output.
pub fn watch_revision(units: &[String]) -> String {
    use sha2::{Digest, Sha256};
    if units.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(units.join("\n").as_bytes());
    hex::encode(&digest[..16])
}

/// Params of `agent.rotate_key`: a key rotation signed by the key it
/// replaces (`signing::rotation`). The agent applies it to its own key ring,
/// then rootd (receiving the same command) to its own.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyParams {
    /// The rotation's JSON text, exactly as the old key signed it.
    pub rotation: String,
    /// Base64 Ed25519 signature by the old key over the rotation.
    pub signature: String,
}

impl Params for RotateKeyParams {
    fn check(&self) -> Result<(), String> {
        if self.signature.len() > 128 {
            return Err("signature: at most 128 characters of base64".into());
        }
        crate::signing::rotation::KeyRotation::parse_unverified(&self.rotation)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How an update ended on the host (`agent.update` result `data.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// The new agent runs and proved itself.
    Healthy,
    /// The new agent did not prove itself in time; the previous one runs again.
    RolledBack,
    /// Nothing was installed (refused artifact, download failure...).
    Failed,
}

/// `data` of an `agent.update` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateReport {
    pub outcome: UpdateOutcome,
    /// The version before the update.
    pub from_version: String,
    /// The version the update installed (or tried to).
    pub to_version: String,
    /// The version running now.
    pub running_version: String,
    /// Why it was rolled back or failed ("" when healthy).
    #[serde(default)]
    pub reason: String,
}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<UpdateParams>(
            "agent.update",
            "Install a signed agent release: fetched and checked by the agent, checked again and installed by rootd beside the current one, rolled back unless the new agent proves itself.",
            RunsIn::Rootd,
            900,
        ),
        ActionSpec::new::<SelftestParams>(
            "agent.selftest",
            "Prove the running agent works end to end; confirms a pending update on rootd.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<RotateKeyParams>(
            "agent.rotate_key",
            "Adopt a new command-signing or release key: the rotation is signed by the key it replaces; the host accepts both until the overlap ends, then only the new one. Sent by `drover keys rotate`.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<WatchParams>(
            "agent.watch",
            "Set the systemd units this host watches (it reports their states in its heartbeats); sent by the control plane from the watched-service lists.",
            RunsIn::Agent,
            60,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_units_are_normalized_and_revision_checked() {
        let units =
            normalize_units(&["php-fpm".into(), "nginx.service".into(), "nginx".into()]).unwrap();
        assert_eq!(units, ["nginx.service", "php-fpm.service"]);
        let rev = watch_revision(&units);
        assert_eq!(rev.len(), 32);
        assert_eq!(watch_revision(&[]), "");
        let ok = WatchParams {
            units: vec!["php-fpm".into(), "nginx".into()],
            revision: rev.clone(),
        };
        assert!(ok.check().is_ok());
        let stale = WatchParams {
            units: vec!["nginx".into()],
            revision: rev,
        };
        assert!(stale.check().unwrap_err().contains("does not match"));
        for bad in ["-x", "a b", "getty@.service", ""] {
            assert!(normalize_units(&[bad.into()]).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("u{i}")).collect();
        assert!(normalize_units(&many).unwrap_err().contains("at most 64"));
    }
}
