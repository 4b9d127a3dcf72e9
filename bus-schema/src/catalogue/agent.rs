//! `agent`: the agent's own life cycle. `agent.update` installs a signed
//! agent release (the agent fetches and checks the binary, rootd checks it
//! again, installs it beside the current one, restarts the agent and rolls
//! back unless the new one proves itself); `agent.selftest` is the proof:
//! the control plane sends it once the new version heartbeats, and rootd,
//! receiving it through the new agent, confirms the update.
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
    ]
}
