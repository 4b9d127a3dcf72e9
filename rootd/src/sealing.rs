//! Opening the sealed secrets of a verified command ([`bus_schema::sealed`]):
//! which fields may be sealed (the catalogue's sensitive fields, an app
//! manifest's sensitive inputs), and that every non-blank one is. Called by
//! the server after the signature check and before validation.
//!
//! Does not keep the key (`box_key`) and does not validate the opened
//! params (the catalogue does, right after).

use bus_schema::catalogue::{self, ActionSpec};
use bus_schema::sealed::{self, BoxSecretKey};
use bus_schema::{manifest, Command};

use crate::config::RootdConfig;

/// The command's params with its sealed values opened, or why not (a
/// message naming the field; never the value).
pub fn open(
    cfg: &RootdConfig,
    key: &BoxSecretKey,
    spec: &ActionSpec,
    cmd: &Command,
) -> Result<serde_json::Value, String> {
    // An app's secret inputs are named by its manifest; one that does not
    // load is refused later by the app action with its own message, and
    // then no input counts as sensitive here (a sealed one is refused).
    let m = if cmd.action == "app.install" {
        catalogue::parse::<catalogue::app::InstallParams>(&cmd.params)
            .ok()
            .and_then(|p| manifest::load(&cfg.manifests_dir, &p.app).ok())
            .map(|(m, _)| m)
    } else {
        None
    };
    let paths = sealed::sensitive_paths(spec, m.as_ref());
    sealed::open_params(key, &cmd.id, &cmd.params, |p| paths.iter().any(|s| s == p))
        .map_err(|e| format!("{e}"))
}
