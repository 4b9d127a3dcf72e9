//! `app`: install and uninstall apps from manifests. Which inputs are
//! sensitive depends on the manifest, so masking exactly those is the
//! manifest's job (see [`crate::manifest`]); without the manifest the
//! catalogue masks every input value (`opaque_maps`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_app_id, ActionSpec, Params, RunsIn};

/// Params of `app.install`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallParams {
    /// The manifest id, e.g. `nginx`.
    pub app: String,
    /// The manifest's inputs by name; checked against the manifest by the
    /// control plane and again by rootd.
    #[serde(default)]
    pub inputs: serde_json::Map<String, serde_json::Value>,
}
impl Params for InstallParams {
    fn check(&self) -> Result<(), String> {
        check_app_id(&self.app)
    }
}

/// Params of `app.uninstall`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UninstallParams {
    pub app: String,
}
impl Params for UninstallParams {
    fn check(&self) -> Result<(), String> {
        check_app_id(&self.app)
    }
}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<InstallParams>(
            "app.install",
            "Install an app from its manifest, with the manifest's inputs.",
            RunsIn::Rootd,
            1800,
        )
        // Without the manifest at hand, every input value may be a secret.
        .with_opaque_maps(&["inputs"]),
        ActionSpec::new::<UninstallParams>(
            "app.uninstall",
            "Uninstall an app installed from its manifest.",
            RunsIn::Rootd,
            900,
        ),
    ]
}
