//! `service`: systemd units through `systemctl`, limited to rootd's allow-list
//! (`service.list` reads every unit and says which are on that list).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::listing::{check_limit, check_pattern};
use super::{check_unit, ActionSpec, Params, RunsIn, UNIT_TYPES};

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

/// Most units `service.list` returns.
pub const LIST_MAX: u32 = 2000;

/// The active states `service.list` filters by (systemd's `ActiveState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActiveFilter {
    Active,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Reloading,
}

impl ActiveFilter {
    /// As systemd spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Failed => "failed",
            Self::Activating => "activating",
            Self::Deactivating => "deactivating",
            Self::Reloading => "reloading",
        }
    }
}

/// Params of `service.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceListParams {
    /// Only units whose full name (`nginx.service`) matches this glob, e.g.
    /// `ngin*` or `getty@*` (see [`super::listing::PATTERN_FORMS`]).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Only units in this active state.
    #[serde(default)]
    pub state: Option<ActiveFilter>,
    /// The unit type: `service` (default), another systemd type (`timer`,
    /// `socket`...) or `all`.
    #[serde(default = "default_type", rename = "type")]
    pub unit_type: String,
    /// Most units returned, 1 to 2000 (default 500); the result says when
    /// there were more.
    #[serde(default = "default_list_limit")]
    pub limit: u32,
}

fn default_type() -> String {
    "service".into()
}
fn default_list_limit() -> u32 {
    500
}

impl Params for ServiceListParams {
    fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.pattern {
            check_pattern("pattern", p)?;
        }
        if self.unit_type != "all" && !UNIT_TYPES.contains(&self.unit_type.as_str()) {
            return Err(format!(
                "type {:?} is not a systemd unit type; give all or one of {}",
                self.unit_type,
                UNIT_TYPES.join(", ")
            ));
        }
        check_limit(self.limit, LIST_MAX)
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
    let mut v: Vec<ActionSpec> = NAMES
        .iter()
        .zip(VERBS)
        .map(|(name, (_, desc))| ActionSpec::new::<ServiceParams>(name, desc, RunsIn::Rootd, 120))
        .collect();
    v.push(ActionSpec::new::<ServiceListParams>(
        "service.list",
        "List the host's systemd units (load, active and sub state, description), filtered by a name glob, state and type, each marked when it is on rootd's allow-list (the units service.start and the others may touch).",
        RunsIn::Rootd,
        60,
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::parse;
    use serde_json::json;

    #[test]
    fn list_params_are_checked() {
        let p: ServiceListParams = parse(&json!({})).unwrap();
        assert_eq!(
            (p.unit_type.as_str(), p.limit, p.state),
            ("service", 500, None)
        );
        let p: ServiceListParams =
            parse(&json!({"pattern": "ngin*", "state": "failed", "type": "all", "limit": 2000}))
                .unwrap();
        assert_eq!(p.state, Some(ActiveFilter::Failed));
        let bad = |v| parse::<ServiceListParams>(&v).unwrap_err();
        assert!(bad(json!({"limit": 2001})).contains("1 to 2000"));
        assert!(bad(json!({"limit": 0})).contains("1 to 2000"));
        assert!(bad(json!({"pattern": "x; rm -rf /"})).contains("not allowed"));
        assert!(bad(json!({"pattern": "$(id)"})).contains("not allowed"));
        assert!(bad(json!({"state": "running"})).contains("unknown variant"));
        assert!(bad(json!({"type": "sh"})).contains("not a systemd unit type"));
        assert!(bad(json!({"unit": "nginx"})).contains("unknown field"));
    }
}
