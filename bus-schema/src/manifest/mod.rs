//! App manifests (`manifests/<id>/manifest.yml`): what an app is, what it
//! needs, the inputs its install form asks for, and the scripts that install
//! it. One validator, used by the control plane before it signs and by rootd
//! before it runs.
//!
//! Inputs reach scripts only as upper-case environment variables; sensitive
//! ones are masked everywhere else ([`Manifest::mask`]).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalogue::{check_app_id, MASK};

mod inputs;

use inputs::check_value;
pub use inputs::scrub;

/// The file name of a manifest inside its app directory.
pub const MANIFEST_FILE: &str = "manifest.yml";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    BadId(String),
    #[error("no app {0:?} in the manifest directory")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0:?} leaves the manifest directory")]
    Escapes(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and `-`; the same as its directory name.
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub category: String,
    #[serde(default)]
    pub os: OsRequirements,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub inputs: Vec<Input>,
    pub scripts: Scripts,
    /// How long the install may run.
    pub timeout_secs: u32,
    /// A second run with the same inputs changes nothing.
    pub idempotent: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsRequirements {
    /// `ID` or `ID_LIKE` values from os-release (debian, ubuntu, rhel...).
    #[serde(default)]
    pub families: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub min_ram_mb: u64,
    #[serde(default)]
    pub min_disk_mb: u64,
    #[serde(default)]
    pub min_cpu_cores: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripts {
    /// A file name in the app directory, e.g. `install.sh`.
    pub install: String,
    #[serde(default)]
    pub uninstall: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Boolean,
    Password,
    Select,
    Email,
    Port,
    Hostname,
    Path,
    Url,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Lower-case letters, digits and `_`; the script sees it upper-cased.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: InputType,
    pub label: String,
    #[serde(default)]
    pub help: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    /// For `select` (and to restrict any string).
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// Shown (and checked) only when every named input has the given value,
    /// or one of the values when a list is given.
    #[serde(default)]
    pub visible_if: BTreeMap<String, Value>,
    /// Never logged, stored or shown again. Passwords always are.
    #[serde(default)]
    pub sensitive: bool,
}

impl Input {
    pub fn is_sensitive(&self) -> bool {
        self.sensitive || self.kind == InputType::Password
    }

    /// The environment variable the script reads.
    pub fn env_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }
}

/// One input that did not pass, for the form to show beside the field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Inputs that passed, as the strings the script will see.
pub type CheckedInputs = BTreeMap<String, String>;

/// A given value that was not used, and why (shown to the operator).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IgnoredInput {
    pub field: String,
    pub reason: String,
}

/// The outcome of [`Manifest::resolve_inputs`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedInputs {
    /// What the script sees: every shown input with a value or default.
    pub checked: CheckedInputs,
    /// The operator's own values of shown inputs, as given: what a command
    /// carries and a job records (masked where sensitive).
    pub kept: Map<String, Value>,
    /// Values given for hidden inputs: neither checked, passed nor recorded.
    pub ignored: Vec<IgnoredInput>,
}

impl Manifest {
    /// Parses and checks a manifest's own text (not its inputs' values).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let m: Manifest = crate::codec::decode_yaml(text).map_err(|e| invalid(e.to_string()))?;
        m.check().map_err(invalid)?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        check_app_id(&self.id)?;
        check_script_name(&self.scripts.install)?;
        if let Some(u) = &self.scripts.uninstall {
            check_script_name(u)?;
        }
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            return Err("timeout_secs must be 1 to 3600".into());
        }
        let mut seen = Vec::new();
        for i in &self.inputs {
            let ok = i.name.len() <= 64
                && i.name.starts_with(|c: char| c.is_ascii_lowercase())
                && i.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(format!(
                    "input name {:?}: use lower-case letters, digits and _",
                    i.name
                ));
            }
            if seen.contains(&&i.name) {
                return Err(format!("input {:?} is declared twice", i.name));
            }
            seen.push(&i.name);
            if let Some(p) = &i.pattern {
                regex::Regex::new(p).map_err(|e| format!("input {}: bad pattern: {e}", i.name))?;
            }
            if i.kind == InputType::Select && i.allowed_values.is_empty() {
                return Err(format!("input {}: a select needs allowed_values", i.name));
            }
            if i.is_sensitive() && i.default.is_some() {
                return Err(format!(
                    "input {}: a sensitive input has no default",
                    i.name
                ));
            }
        }
        for i in &self.inputs {
            for other in i.visible_if.keys() {
                if !self.inputs.iter().any(|x| &x.name == other) {
                    return Err(format!(
                        "input {}: visible_if names unknown input {other:?}",
                        i.name
                    ));
                }
                if other == &i.name {
                    return Err(format!("input {}: visible_if names itself", i.name));
                }
            }
            // A default the input itself refuses would blame every operator
            // for the manifest's mistake.
            if let Some(d) = &i.default {
                check_value(i, d).map_err(|why| {
                    format!("input {}: its default {d} is not valid: {why}", i.name)
                })?;
            }
        }
        // visible_if may chain (a hidden input hides those that depend on
        // it) but never loop.
        for i in &self.inputs {
            let mut path = vec![i.name.as_str()];
            self.no_cycle(i, &mut path)?;
        }
        Ok(())
    }

    fn no_cycle<'a>(&'a self, i: &'a Input, path: &mut Vec<&'a str>) -> Result<(), String> {
        for other in i.visible_if.keys() {
            if path.contains(&other.as_str()) {
                path.push(other);
                return Err(format!("visible_if conditions loop: {}", path.join(" -> ")));
            }
            if let Some(o) = self.inputs.iter().find(|x| &x.name == other) {
                path.push(&o.name);
                self.no_cycle(o, path)?;
                path.pop();
            }
        }
        Ok(())
    }
}

fn check_script_name(s: &str) -> Result<(), String> {
    let p = Path::new(s);
    let plain =
        p.components().count() == 1 && matches!(p.components().next(), Some(Component::Normal(_)));
    if !plain || s.starts_with('.') {
        return Err(format!(
            "script {s:?} must be a file name in the app directory"
        ));
    }
    Ok(())
}
/// The manifests under `root`, one directory per app. Each is loaded
/// through [`load`], so the same checks apply; broken ones are returned as
/// errors beside the good ones.
pub fn load_all(root: &Path) -> (Vec<Manifest>, Vec<ManifestError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(source) => {
            bad.push(ManifestError::Io {
                path: root.to_path_buf(),
                source,
            });
            return (good, bad);
        }
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(MANIFEST_FILE).is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    for id in ids {
        match load(root, &id) {
            Ok((m, _)) => good.push(m),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

/// One app's manifest and its directory. The id is checked before it
/// touches the file system, and the resolved directory must stay inside
/// `root` (a symlink out is refused too).
pub fn load(root: &Path, id: &str) -> Result<(Manifest, PathBuf), ManifestError> {
    check_app_id(id).map_err(ManifestError::BadId)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestError::Io { path, source }
    };
    let root = root.canonicalize().map_err(io(root))?;
    let dir = root.join(id);
    if !dir.exists() {
        return Err(ManifestError::NotFound(id.into()));
    }
    let dir = dir.canonicalize().map_err(io(&dir))?;
    if !dir.starts_with(&root) {
        return Err(ManifestError::Escapes(dir));
    }
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let m = Manifest::parse(&text, &path)?;
    if m.id != id {
        return Err(ManifestError::Invalid {
            path,
            reason: format!("id {:?} does not match its directory {id:?}", m.id),
        });
    }
    Ok((m, dir))
}

/// The full path of one of the app's scripts, refused if it resolves
/// outside the app directory.
pub fn script_path(dir: &Path, script: &str) -> Result<PathBuf, ManifestError> {
    check_script_name(script).map_err(|reason| ManifestError::Invalid {
        path: dir.to_path_buf(),
        reason,
    })?;
    let p = dir.join(script);
    let real = p.canonicalize().map_err(|source| ManifestError::Io {
        path: p.clone(),
        source,
    })?;
    if !real.starts_with(dir) {
        return Err(ManifestError::Escapes(real));
    }
    Ok(real)
}

#[cfg(test)]
mod tests;
