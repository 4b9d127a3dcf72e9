//! The catalogue of actions: what each `module.action` is, where it runs, how
//! long it may take, the typed params it accepts and their JSON Schema (which
//! the UI turns into forms). The control plane validates params here before
//! it signs; rootd validates again, with the same code, before it runs.
//!
//! One file per module holds its params structs and its [`ActionSpec`]s.

use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

pub mod agent;
pub mod app;
pub mod firewall;
pub mod listing;
pub mod mariadb;
pub mod pkg;
pub mod service;
pub mod sys;
mod validate;

pub use validate::*;

/// Which process runs an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunsIn {
    /// The unprivileged agent.
    Agent,
    /// The root daemon, reached over its Unix socket.
    Rootd,
}

/// Typed params of one action: serde for the shape, `check` for the rules
/// serde cannot say (name patterns, ranges, allow-lists).
pub trait Params: DeserializeOwned + JsonSchema {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the catalogue says about one action.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub runs_in: RunsIn,
    pub default_timeout_secs: u32,
    /// Params fields that carry secrets: masked before anything is stored,
    /// logged or shown.
    pub sensitive: &'static [&'static str],
    /// Params fields that are maps whose entries may each be a secret, and
    /// which entries are is known only elsewhere (`app.install`'s `inputs`:
    /// the manifest says). [`ActionSpec::mask`] masks every value in them;
    /// a caller that has the manifest masks more finely.
    pub opaque_maps: &'static [&'static str],
    check: fn(&Value) -> Result<(), String>,
    schema: fn() -> Value,
}

impl ActionSpec {
    /// The spec of an action whose params are `P`.
    pub fn new<P: Params>(
        name: &'static str,
        description: &'static str,
        runs_in: RunsIn,
        default_timeout_secs: u32,
    ) -> Self {
        Self {
            name,
            description,
            runs_in,
            default_timeout_secs,
            sensitive: &[],
            opaque_maps: &[],
            check: |v| parse::<P>(v).map(|_| ()),
            schema: || serde_json::to_value(schemars::schema_for!(P)).unwrap_or(Value::Null),
        }
    }

    /// Marks `fields` as maps whose every value may be a secret (see
    /// [`ActionSpec::opaque_maps`]).
    pub fn with_opaque_maps(mut self, fields: &'static [&'static str]) -> Self {
        self.opaque_maps = fields;
        self
    }

    pub fn with_sensitive(mut self, fields: &'static [&'static str]) -> Self {
        self.sensitive = fields;
        self
    }

    pub fn module(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }

    pub fn validate(&self, params: &Value) -> Result<(), String> {
        (self.check)(params)
    }

    /// JSON Schema of the params.
    pub fn params_schema(&self) -> Value {
        (self.schema)()
    }

    /// The params with every sensitive field replaced by a mask.
    pub fn mask(&self, params: &Value) -> Value {
        let mut out = params.clone();
        if let Value::Object(map) = &mut out {
            for f in self.sensitive {
                if let Some(v) = map.get_mut(*f) {
                    *v = Value::String(MASK.into());
                }
            }
            for f in self.opaque_maps {
                match map.get_mut(*f) {
                    Some(Value::Object(entries)) => {
                        for v in entries.values_mut() {
                            *v = Value::String(MASK.into());
                        }
                    }
                    Some(v) => *v = Value::String(MASK.into()),
                    None => {}
                }
            }
        }
        out
    }

    /// What the API and `drover actions` show.
    pub fn view(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "module": self.module(),
            "description": self.description,
            "runs_in": self.runs_in,
            "default_timeout_secs": self.default_timeout_secs,
            "sensitive": self.sensitive,
            "params_schema": self.params_schema(),
        })
    }
}

/// What a masked secret looks like wherever it is shown.
pub const MASK: &str = "********";

/// Typed params from JSON; `null` means "no params" for every action.
pub fn parse<P: Params>(params: &Value) -> Result<P, String> {
    let v = if params.is_null() {
        serde_json::json!({})
    } else {
        params.clone()
    };
    let p: P = serde_json::from_value(v).map_err(|e| e.to_string())?;
    p.check()?;
    Ok(p)
}

/// Params of actions that take none. Unknown fields are refused, so a typo
/// never passes silently.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}
impl Params for NoParams {}

static ACTIONS: LazyLock<Vec<ActionSpec>> = LazyLock::new(|| {
    let mut v = Vec::new();
    v.extend(sys::specs());
    v.extend(service::specs());
    v.extend(pkg::specs());
    v.extend(firewall::specs());
    v.extend(mariadb::specs());
    v.extend(app::specs());
    v.extend(agent::specs());
    v
});

/// Every action, module by module.
pub fn all() -> &'static [ActionSpec] {
    &ACTIONS
}

pub fn lookup(name: &str) -> Option<&'static ActionSpec> {
    all().iter().find(|a| a.name == name)
}

/// Modules named in the catalogue, in order, without repeats.
pub fn modules() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in all() {
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
        assert_eq!(
            modules(),
            vec!["sys", "service", "pkg", "firewall", "mariadb", "app", "agent"]
        );
    }

    #[test]
    fn every_action_has_a_schema_and_a_sane_timeout() {
        for a in all() {
            let s = a.params_schema();
            assert!(s.is_object(), "{} has a schema", a.name);
            assert!(a.default_timeout_secs > 0 && a.default_timeout_secs <= 3600);
            assert!(!a.description.is_empty());
        }
    }

    #[test]
    fn sensitive_fields_are_masked() {
        let spec = lookup("mariadb.user_create").unwrap();
        let masked = spec.mask(&serde_json::json!({"user": "u", "password": "hunter22hunter"}));
        assert_eq!(masked["password"], MASK);
        assert_eq!(masked["user"], "u");
    }

    #[test]
    fn app_install_inputs_are_all_masked_without_the_manifest() {
        let spec = lookup("app.install").unwrap();
        let masked = spec.mask(&serde_json::json!({
            "app": "wp", "inputs": {"db_password": "s3cret-value", "port": 8080}
        }));
        assert_eq!(masked["app"], "wp");
        assert_eq!(masked["inputs"]["db_password"], MASK);
        assert_eq!(masked["inputs"]["port"], MASK);
        assert!(!masked.to_string().contains("s3cret-value"));
        // A malformed `inputs` is masked whole, not echoed.
        let odd = spec.mask(&serde_json::json!({"app": "wp", "inputs": "s3cret-value"}));
        assert_eq!(odd["inputs"], MASK);
    }
}
