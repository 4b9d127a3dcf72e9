//! The catalogue of actions: what each `module.action` is, where it runs, how
//! long it may take, and the typed params it accepts. The control plane
//! validates params here before it signs; rootd validates again before it runs.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Which process runs an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunsIn {
    /// The unprivileged agent.
    Agent,
    /// The root daemon, reached over its Unix socket.
    Rootd,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub runs_in: RunsIn,
    pub default_timeout_secs: u32,
    #[serde(skip)]
    validate: fn(&serde_json::Value) -> Result<(), String>,
}

impl ActionSpec {
    pub fn module(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }

    pub fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        (self.validate)(params)
    }
}

/// Params of actions that take none. Unknown fields are refused, so a typo
/// never passes silently.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Params of `sys.cancel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelParams {
    /// The running command to stop.
    pub command_id: String,
}

fn typed<T: DeserializeOwned>(params: &serde_json::Value) -> Result<(), String> {
    // `null` means "no params" for every action.
    let v = if params.is_null() {
        serde_json::json!({})
    } else {
        params.clone()
    };
    serde_json::from_value::<T>(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "sys.ping",
        description: "Answer at once; proves the command path end to end.",
        runs_in: RunsIn::Agent,
        default_timeout_secs: 10,
        validate: typed::<NoParams>,
    },
    ActionSpec {
        name: "sys.info",
        description: "Host facts: OS, kernel, CPU, memory, disks, uptime.",
        runs_in: RunsIn::Agent,
        default_timeout_secs: 30,
        validate: typed::<NoParams>,
    },
    ActionSpec {
        name: "sys.cancel",
        description:
            "Stop a command that is running on this agent (its process group in rootd too).",
        runs_in: RunsIn::Agent,
        default_timeout_secs: 10,
        validate: typed::<CancelParams>,
    },
    ActionSpec {
        name: "pkg.scan",
        description:
            "List upgradable packages with current and candidate version and a security flag.",
        runs_in: RunsIn::Rootd,
        default_timeout_secs: 300,
        validate: typed::<NoParams>,
    },
];

pub fn lookup(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Modules named in the catalogue, in order, without repeats.
pub fn modules() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in ACTIONS {
        if !out.contains(&a.module()) {
            out.push(a.module());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_validate() {
        let ping = lookup("sys.ping").unwrap();
        assert_eq!(ping.runs_in, RunsIn::Agent);
        assert!(ping.validate(&serde_json::json!({})).is_ok());
        assert!(ping.validate(&serde_json::Value::Null).is_ok());
        assert!(ping.validate(&serde_json::json!({"x": 1})).is_err());
        assert!(lookup("sys.nope").is_none());
        assert_eq!(modules(), vec!["sys", "pkg"]);
    }
}
