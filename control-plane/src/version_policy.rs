//! The version policy: which agents this control plane works with. An agent
//! is judged by the version and wire protocol version it reports (its row's
//! `agent_version` and `protocol_version`, from every heartbeat and from its
//! enrolment claim):
//!
//! - **incompatible** — it speaks another wire protocol version than
//!   [`PROTOCOL_VERSION`];
//! - **outdated** — its version is older than the minimum agent version
//!   (`min_agent_version` in the configuration, else
//!   [`BUILTIN_MIN_AGENT_VERSION`]);
//! - **unknown** — it has not said (no heartbeat yet) or its version is not
//!   a semantic version (a development build): shown, not refused;
//! - **current** — otherwise.
//!
//! Incompatible and outdated agents are shown with a badge and the reason,
//! get no new command but [`EXEMPT_ACTIONS`] (the job still gets a row per
//! target, ended `rejected` with the reason: `commands::issue`), and are
//! counted by `drover security`. The check is made when the heartbeat is
//! judged, not when the broker connection is made: the broker authenticates
//! the connection by its JWT and knows nothing of Drover's protocol, so the
//! first heartbeat is the first thing the control plane hears from a
//! connected agent.
//!
//! This module decides; it refuses an enrolment claim of another protocol
//! version in `enroll.rs`, and writes nothing itself.

use std::collections::HashMap;

use bus_schema::signing::PROTOCOL_VERSION;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{json, Value};

use crate::config::Config;
use crate::db::entities::agent;

/// The oldest agent this control plane works with when the configuration
/// does not say: the workspace version's `MAJOR.MINOR.0` or lower, so the
/// agents built with this control plane are always current (a unit test
/// holds it there).
pub const BUILTIN_MIN_AGENT_VERSION: &str = "0.1.0";

/// Actions an incompatible or outdated agent still gets: the way out.
pub const EXEMPT_ACTIONS: &[&str] = &["agent.update", "agent.selftest", "agent.rotate_key"];

/// Most agents listed by name in the security findings (all are counted).
const MAX_LISTED: usize = 500;

/// A `min_agent_version` that is not a version.
#[derive(Debug, thiserror::Error)]
#[error("min_agent_version {0:?} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 0.1.0); fix it in drover.toml or DROVER_MIN_AGENT_VERSION, or remove it to use the built-in {BUILTIN_MIN_AGENT_VERSION}")]
pub struct PolicyError(pub String);

/// The compatible range: the minimum agent version and the one protocol
/// version spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub min_agent_version: semver::Version,
    /// True when the minimum comes from the configuration.
    pub configured: bool,
}

/// How an agent stands against the [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Current,
    /// No version reported yet, or not a semantic version.
    Unknown,
    /// Older than the minimum; the text says why and what to do.
    Outdated(String),
    /// Another wire protocol version; the text says why and what to do.
    Incompatible(String),
}

impl Standing {
    /// `current`, `unknown`, `outdated` or `incompatible`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Standing::Current => "current",
            Standing::Unknown => "unknown",
            Standing::Outdated(_) => "outdated",
            Standing::Incompatible(_) => "incompatible",
        }
    }

    /// Why the agent gets no new commands, when it gets none.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Standing::Outdated(r) | Standing::Incompatible(r) => Some(r),
            _ => None,
        }
    }
}

impl Policy {
    /// The policy the configuration asks for; an unparsable
    /// `min_agent_version` is an error (`drover serve` refuses to start).
    pub fn from_config(cfg: &Config) -> Result<Self, PolicyError> {
        match cfg.min_agent_version.as_deref().map(str::trim) {
            None | Some("") => Ok(Self::builtin()),
            Some(v) => semver::Version::parse(v)
                .map(|min_agent_version| Self {
                    min_agent_version,
                    configured: true,
                })
                .map_err(|_| PolicyError(v.to_string())),
        }
    }

    /// The policy in force ([`Policy::from_config`]; the built-in one if the
    /// configuration is bad, which `serve` refuses at start).
    pub fn of(cfg: &Config) -> Self {
        Self::from_config(cfg).unwrap_or_else(|_| Self::builtin())
    }

    fn builtin() -> Self {
        Self {
            min_agent_version: semver::Version::parse(BUILTIN_MIN_AGENT_VERSION)
                .expect("the built-in minimum is a version"),
            configured: false,
        }
    }

    /// Judges an agent by what it reported: `id` names it in the advice.
    pub fn assess(&self, id: &str, version: &str, protocol_version: i32) -> Standing {
        if protocol_version != PROTOCOL_VERSION as i32 {
            let what = if protocol_version > PROTOCOL_VERSION as i32 {
                "upgrade the control plane to one that speaks it, or install an agent release \
                 that speaks this one"
            } else {
                "update the agent"
            };
            return Standing::Incompatible(format!(
                "the agent speaks wire protocol version {protocol_version}, this control plane \
                 speaks {PROTOCOL_VERSION}: it gets no command but agent.update until it is \
                 compatible; {what} (drover rollout start <version> --selector id:{id})"
            ));
        }
        let Ok(v) = semver::Version::parse(version.trim()) else {
            return Standing::Unknown;
        };
        if v < self.min_agent_version {
            let min = &self.min_agent_version;
            return Standing::Outdated(format!(
                "agent version {v} is older than this control plane's minimum agent version \
                 {min}: it gets no command but agent.update until it is updated; run `drover \
                 rollout start <version ≥ {min}> --selector id:{id}` (or --selector \
                 fact:agent_version={v} for every host on {v})"
            ));
        }
        Standing::Current
    }

    /// [`Policy::assess`] of an agent row.
    pub fn of_agent(&self, a: &agent::Model) -> Standing {
        self.assess(&a.id, &a.agent_version, a.protocol_version)
    }

    /// What the API's agent view adds: `agent_channel`, `protocol_version`,
    /// `version_standing`, `outdated` (true for outdated and incompatible
    /// agents: both get no new commands), `incompatible`, and
    /// `outdated_reason` (null unless outdated).
    pub fn decorate(&self, v: &mut Value, a: &agent::Model) {
        let s = self.of_agent(a);
        v["agent_channel"] = json!(a.agent_channel);
        v["protocol_version"] = json!(a.protocol_version);
        v["version_standing"] = json!(s.as_str());
        v["outdated"] = json!(s.reason().is_some());
        v["incompatible"] = json!(matches!(s, Standing::Incompatible(_)));
        v["outdated_reason"] = json!(s.reason());
    }

    /// The range as the security overview shows it.
    fn range_json(&self) -> Value {
        json!({
            "min_agent_version": self.min_agent_version.to_string(),
            "min_agent_version_from": if self.configured { "config" } else { "built-in" },
            "protocol_version": PROTOCOL_VERSION,
        })
    }
}

/// True for actions every agent gets whatever its standing.
pub fn exempt(action: &str) -> bool {
    EXEMPT_ACTIONS.contains(&action)
}

/// The agents among `ids` the policy refuses new commands, each with the
/// reason. Empty for an [`exempt`] action.
pub async fn refusals(
    db: &DatabaseConnection,
    policy: &Policy,
    action: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, DbErr> {
    let mut out = HashMap::new();
    if exempt(action) {
        return Ok(out);
    }
    // SQLite allows a limited number of bound variables per statement.
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String, i32)> = agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::AgentVersion)
            .column(agent::Column::ProtocolVersion)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        for (id, version, protocol) in rows {
            if let Some(why) = policy.assess(&id, &version, protocol).reason() {
                out.insert(id.clone(), why.to_string());
            }
        }
    }
    Ok(out)
}

/// The security overview's `agent_versions`: the compatible range, how
/// many approved agents are outdated or incompatible, and which (the first
/// [`MAX_LISTED`]).
pub async fn findings(db: &DatabaseConnection, policy: &Policy) -> Result<Value, DbErr> {
    let rows: Vec<(String, String, String, i32)> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::Hostname)
        .column(agent::Column::AgentVersion)
        .column(agent::Column::ProtocolVersion)
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .into_tuple()
        .all(db)
        .await?;
    let (mut outdated, mut incompatible) = (0u64, 0u64);
    let mut listed = Vec::new();
    for (id, hostname, version, protocol) in rows {
        let s = policy.assess(&id, &version, protocol);
        match s {
            Standing::Outdated(_) => outdated += 1,
            Standing::Incompatible(_) => incompatible += 1,
            _ => continue,
        }
        if listed.len() < MAX_LISTED {
            listed.push(json!({
                "id": id, "hostname": hostname, "agent_version": version,
                "protocol_version": protocol, "standing": s.as_str(), "reason": s.reason(),
            }));
        }
    }
    let mut v = policy.range_json();
    v["outdated"] = json!(outdated);
    v["incompatible"] = json!(incompatible);
    v["agents"] = json!(listed);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: &str) -> Policy {
        Policy {
            min_agent_version: semver::Version::parse(min).unwrap(),
            configured: true,
        }
    }

    #[test]
    fn the_builtin_minimum_keeps_this_workspaces_agents_current() {
        let build = semver::Version::parse(env!("CARGO_PKG_VERSION")).unwrap();
        let floor = semver::Version::new(build.major, build.minor, 0);
        let min = semver::Version::parse(BUILTIN_MIN_AGENT_VERSION).unwrap();
        assert!(min <= floor, "{min} must be at most {floor}");
        let p = Policy::builtin();
        assert_eq!(
            p.assess("U1", env!("CARGO_PKG_VERSION"), PROTOCOL_VERSION as i32),
            Standing::Current
        );
    }

    #[test]
    fn older_than_the_minimum_is_outdated_other_protocols_incompatible() {
        let p = policy("1.2.0");
        assert_eq!(p.assess("U1", "1.2.0", 1), Standing::Current);
        assert_eq!(p.assess("U1", "1.10.0", 1), Standing::Current);
        let s = p.assess("U1", "1.1.9", 1);
        assert_eq!(s.as_str(), "outdated");
        let why = s.reason().unwrap();
        assert!(why.contains("1.1.9") && why.contains("1.2.0"), "{why}");
        assert!(why.contains("drover rollout start"), "{why}");
        // A pre-release sorts before its release.
        assert_eq!(p.assess("U1", "1.2.0-rc.1", 1).as_str(), "outdated");
        // Not reported or not a version: shown, never refused.
        assert_eq!(p.assess("U1", "", 1), Standing::Unknown);
        assert_eq!(p.assess("U1", "dev", 1), Standing::Unknown);
        // The protocol comes first: a new version on another protocol.
        for pv in [0, 2] {
            let s = p.assess("U1", "9.0.0", pv);
            assert_eq!(s.as_str(), "incompatible");
            assert!(s.reason().unwrap().contains("protocol"));
        }
    }

    #[test]
    fn only_the_update_actions_are_exempt() {
        assert!(exempt("agent.update") && exempt("agent.selftest"));
        assert!(!exempt("sys.ping") && !exempt("pkg.install"));
    }
}
