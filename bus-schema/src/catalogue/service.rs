//! `service`: systemd units through `systemctl`, limited to rootd's allow-list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_unit, ActionSpec, Params, RunsIn};

/// Params of every `service.*` action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceParams {
    /// The systemd unit, e.g. `nginx`, `nginx.service`, `getty@tty1` or
    /// `site\x2da.service` (systemd's own naming and escaping rules; see
    /// [`super::UNIT_FORMS`]); without a type `.service` is meant. It must
    /// be on rootd's allow-list (a template entry covers its instances).
    pub unit: String,
}
impl Params for ServiceParams {
    fn check(&self) -> Result<(), String> {
        check_unit(&self.unit)
    }
}

/// The `service.*` verbs and what each does.
pub const VERBS: &[(&str, &str)] = &[
    (
        "status",
        "Whether the unit is active, enabled, and since when.",
    ),
    ("start", "Start the unit."),
    ("stop", "Stop the unit."),
    ("restart", "Stop and start the unit."),
    ("reload", "Ask the unit to reload its configuration."),
    ("enable", "Start the unit at boot."),
    ("disable", "Do not start the unit at boot."),
];

pub fn specs() -> Vec<ActionSpec> {
    const NAMES: [&str; 7] = [
        "service.status",
        "service.start",
        "service.stop",
        "service.restart",
        "service.reload",
        "service.enable",
        "service.disable",
    ];
    NAMES
        .iter()
        .zip(VERBS)
        .map(|(name, (_, desc))| ActionSpec::new::<ServiceParams>(name, desc, RunsIn::Rootd, 120))
        .collect()
}
