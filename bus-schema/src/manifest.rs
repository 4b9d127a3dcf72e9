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

    /// Is this input shown, given the values? Only when every `visible_if`
    /// condition holds, and each input a condition names is itself shown
    /// (a hidden input's value or default never shows anything). A value
    /// compares as text, as the install form compares it (`true`, `443`).
    pub fn visible(&self, input: &Input, values: &Map<String, Value>) -> bool {
        self.visible_within(input, values, self.inputs.len() + 1)
    }

    fn visible_within(&self, input: &Input, values: &Map<String, Value>, depth: usize) -> bool {
        if depth == 0 {
            return false;
        }
        input.visible_if.iter().all(|(field, want)| {
            let Some(ctl) = self.inputs.iter().find(|i| &i.name == field) else {
                return false;
            };
            if !self.visible_within(ctl, values, depth - 1) {
                return false;
            }
            let Some(have) = effective(ctl, values) else {
                return false;
            };
            match want {
                Value::Array(options) => options.iter().any(|w| loosely_equal(w, &have)),
                w => loosely_equal(w, &have),
            }
        })
    }

    /// Checks the operator's values against the inputs: unknown names,
    /// missing required ones, types, patterns, lengths, ranges, allowed
    /// values. Hidden inputs (`visible_if` false) are neither required nor
    /// checked nor passed on. Every string is refused if it holds a control
    /// character (newlines included).
    pub fn check_inputs(
        &self,
        values: &Map<String, Value>,
    ) -> Result<CheckedInputs, Vec<FieldError>> {
        self.resolve_inputs(values).map(|r| r.checked)
    }

    /// Like [`Manifest::check_inputs`], and also says which given values
    /// are passed on and recorded ([`ResolvedInputs::kept`]) and which were
    /// ignored because their input is hidden, and why.
    pub fn resolve_inputs(
        &self,
        values: &Map<String, Value>,
    ) -> Result<ResolvedInputs, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut out = ResolvedInputs::default();
        for name in values.keys() {
            if !self.inputs.iter().any(|i| &i.name == name) {
                errors.push(FieldError {
                    field: name.clone(),
                    message: format!("{} has no input named {name:?}", self.id),
                });
            }
        }
        for input in &self.inputs {
            if !self.visible(input, values) {
                if let Some(v) = values.get(&input.name) {
                    if !is_blank(v) {
                        out.ignored.push(IgnoredInput {
                            field: input.name.clone(),
                            reason: format!(
                                "hidden: {} is asked only when {}",
                                input.label,
                                self.condition_text(input)
                            ),
                        });
                    }
                }
                continue;
            }
            if let Some(v) = values.get(&input.name).filter(|v| !is_blank(v)) {
                out.kept.insert(input.name.clone(), v.clone());
            }
            let Some(value) = effective(input, values) else {
                if input.required {
                    errors.push(FieldError {
                        field: input.name.clone(),
                        message: format!("{} is required", input.label),
                    });
                }
                continue;
            };
            match check_value(input, &value) {
                Ok(s) => {
                    out.checked.insert(input.name.clone(), s);
                }
                Err(message) => errors.push(FieldError {
                    field: input.name.clone(),
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// `enable_tls is true and mode is one of a, b`, for messages.
    fn condition_text(&self, input: &Input) -> String {
        input
            .visible_if
            .iter()
            .map(|(field, want)| match want {
                Value::Array(o) => format!(
                    "{field} is one of {}",
                    o.iter().map(value_text).collect::<Vec<_>>().join(", ")
                ),
                w => format!("{field} is {}", value_text(w)),
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// The environment the script runs with: each input upper-cased.
    pub fn env(&self, checked: &CheckedInputs) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .filter_map(|i| checked.get(&i.name).map(|v| (i.env_name(), v.clone())))
            .collect()
    }

    /// The values with every sensitive input replaced by the mask.
    pub fn mask(&self, values: &Map<String, Value>) -> Map<String, Value> {
        let mut out = values.clone();
        for i in self.inputs.iter().filter(|i| i.is_sensitive()) {
            if let Some(v) = out.get_mut(&i.name) {
                *v = Value::String(MASK.into());
            }
        }
        out
    }

    /// The secret values in use, so output lines can be scrubbed of them.
    pub fn secrets(&self, checked: &CheckedInputs) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|i| i.is_sensitive())
            .filter_map(|i| checked.get(&i.name).cloned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Replaces every occurrence of each secret in `line` with the mask.
pub fn scrub(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Nothing given: null or an empty string (the form's empty field).
fn is_blank(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str().is_some_and(str::is_empty)
}

/// The value an input has: the one given, else its default.
fn effective(input: &Input, values: &Map<String, Value>) -> Option<Value> {
    match values.get(&input.name) {
        Some(v) if !is_blank(v) => Some(v.clone()),
        _ => input.default.clone(),
    }
}

/// A scalar as text: `true`, `443`, `basic`.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Equal as text, so `true` equals `"true"` and `443` equals `"443"`, as
/// in the install form (which compares `String(a) === String(b)`).
fn loosely_equal(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            want == have
        }
        (a, b) => value_text(a) == value_text(b),
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

fn check_value(input: &Input, value: &Value) -> Result<String, String> {
    let s = match (input.kind, value) {
        (InputType::Boolean, Value::Bool(b)) => return Ok(b.to_string()),
        (InputType::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            return Ok(s.clone())
        }
        (InputType::Boolean, _) => return Err("must be true or false".into()),
        (InputType::Integer | InputType::Port, Value::Number(n)) => n.to_string(),
        (_, Value::String(s)) => s.clone(),
        _ => return Err("must be a string".into()),
    };
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters or newlines".into());
    }
    let n = s.chars().count();
    if let Some(min) = input.min_length {
        if n < min {
            return Err(format!("must be at least {min} characters"));
        }
    }
    if let Some(max) = input.max_length.or(Some(4096)) {
        if n > max {
            return Err(format!("must be at most {max} characters"));
        }
    }
    match input.kind {
        InputType::Integer | InputType::Port => {
            let v: i64 = s
                .parse()
                .map_err(|_| "must be a whole number".to_string())?;
            let (lo, hi) = if input.kind == InputType::Port {
                (input.min.unwrap_or(1), input.max.unwrap_or(65535))
            } else {
                (input.min.unwrap_or(i64::MIN), input.max.unwrap_or(i64::MAX))
            };
            if v < lo.max(if input.kind == InputType::Port {
                1
            } else {
                i64::MIN
            }) || v > hi.min(if input.kind == InputType::Port {
                65535
            } else {
                i64::MAX
            }) {
                return Err(format!("must be between {lo} and {hi}"));
            }
        }
        InputType::Email => {
            let ok = regex::Regex::new(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
                .expect("valid regex")
                .is_match(&s);
            if !ok {
                return Err("must be an email address".into());
            }
        }
        InputType::Hostname => {
            let ok = s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                return Err("must be a host name (letters, digits, - and dots)".into());
            }
        }
        InputType::Path => {
            let p = Path::new(&s);
            if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err("must be an absolute path without ..".into());
            }
        }
        InputType::Url => {
            let ok = (s.starts_with("http://") || s.starts_with("https://"))
                && !s.contains(char::is_whitespace)
                && s.len() > "https://".len();
            if !ok {
                return Err("must be an http:// or https:// URL".into());
            }
        }
        InputType::Select => {}
        InputType::String | InputType::Password | InputType::Boolean => {}
    }
    if !input.allowed_values.is_empty() && !input.allowed_values.contains(&s) {
        return Err(format!(
            "must be one of: {}",
            input.allowed_values.join(", ")
        ));
    }
    if let Some(p) = &input.pattern {
        let re = regex::Regex::new(p).map_err(|e| format!("bad pattern in manifest: {e}"))?;
        if !re.is_match(&s) {
            return Err(format!("does not match the pattern {p}"));
        }
    }
    Ok(s)
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
mod tests {
    use super::*;
    use serde_json::json;

    const YML: &str = r#"
id: demo
name: Demo
version: "1.0"
description: A demo app
category: web
inputs:
  - name: server_name
    type: hostname
    label: Server name
    required: true
  - name: enable_tls
    type: boolean
    label: TLS
    default: false
  - name: tls_email
    type: email
    label: Email for certificates
    required: true
    visible_if: { enable_tls: true }
  - name: admin_password
    type: password
    label: Admin password
    min_length: 12
  - name: flavour
    type: select
    label: Flavour
    allowed_values: [small, large]
    default: small
scripts: { install: install.sh }
timeout_secs: 600
idempotent: true
"#;

    fn demo() -> Manifest {
        Manifest::parse(YML, Path::new("demo/manifest.yml")).unwrap()
    }

    #[test]
    fn visible_if_hides_and_shows() {
        let m = demo();
        let ok = m
            .check_inputs(json!({"server_name": "example.org"}).as_object().unwrap())
            .unwrap();
        assert!(!ok.contains_key("tls_email"));
        assert_eq!(ok["flavour"], "small");
        let err = m
            .check_inputs(
                json!({"server_name": "example.org", "enable_tls": true})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(err[0].field, "tls_email");
    }

    #[test]
    fn hidden_inputs_chain_are_ignored_and_compare_as_text() {
        let yml = YML.replace(
            "    visible_if: { enable_tls: true }\n",
            "    visible_if: { enable_tls: true }\n  - name: ocsp\n    type: string\n    label: OCSP\n    required: true\n    visible_if: { tls_email: [\"a@b.org\"] }\n",
        );
        let m = Manifest::parse(&yml, Path::new("x")).unwrap();
        // tls_email hidden: the ocsp it would show is not required.
        let r = m
            .resolve_inputs(
                json!({"server_name": "x.org", "tls_email": "a@b.org", "ocsp": "1"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let ignored: Vec<&str> = r.ignored.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(ignored, vec!["tls_email", "ocsp"]);
        assert!(!r.kept.contains_key("tls_email") && !r.checked.contains_key("ocsp"));
        assert_eq!(r.kept.len(), 1);
        // "true" shows what true shows.
        let err = m
            .check_inputs(
                json!({"server_name": "x.org", "enable_tls": "true"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(err[0].field, "tls_email");
    }

    #[test]
    fn manifest_faults_are_named() {
        let looped = YML.replace(
            "    default: false\n",
            "    default: false\n    visible_if: { tls_email: x@y.org }\n",
        );
        let e = Manifest::parse(&looped, Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
        let bad_default = YML.replace("default: small", "default: huge");
        let e = Manifest::parse(&bad_default, Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("default"), "{e}");
    }

    #[test]
    fn hostile_values_are_refused_and_env_is_upper_case() {
        let m = demo();
        for bad in ["a;reboot", "$(reboot)", "`id`", "a\nb", "../etc"] {
            let r = m.check_inputs(json!({"server_name": bad}).as_object().unwrap());
            assert!(r.is_err(), "{bad:?}");
        }
        let r = m.check_inputs(
            json!({"server_name": "x.org", "nope": 1})
                .as_object()
                .unwrap(),
        );
        assert!(r.is_err());
        let ok = m
            .check_inputs(
                json!({"server_name": "x.org", "admin_password": "correct horse battery"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let env = m.env(&ok);
        assert!(env.contains(&("SERVER_NAME".into(), "x.org".into())));
        assert_eq!(m.secrets(&ok), vec!["correct horse battery".to_string()]);
        assert_eq!(
            scrub("pw is correct horse battery!", &m.secrets(&ok)),
            format!("pw is {MASK}!")
        );
        let masked = m.mask(json!({"admin_password": "x"}).as_object().unwrap());
        assert_eq!(masked["admin_password"], MASK);
    }

    /// The installers shipped in `manifests/` all load, and their scripts
    /// are at least valid bash.
    #[test]
    fn shipped_manifests_load_and_scripts_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let (good, bad) = load_all(&root);
        assert!(bad.is_empty(), "{bad:?}");
        let ids: Vec<&str> = good.iter().map(|m| m.id.as_str()).collect();
        for want in [
            "nginx",
            "mariadb",
            "redis",
            "docker",
            "postgresql",
            "caddy",
            "node-exporter",
        ] {
            assert!(ids.contains(&want), "{want} in {ids:?}");
        }
        for m in &good {
            let (_, dir) = load(&root, &m.id).unwrap();
            let mut scripts = vec![m.scripts.install.clone()];
            scripts.extend(m.scripts.uninstall.clone());
            for s in scripts {
                let p = script_path(&dir, &s).unwrap();
                let out = std::process::Command::new("bash")
                    .arg("-n")
                    .arg(&p)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    #[test]
    fn ids_and_scripts_cannot_leave_the_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("demo")).unwrap();
        std::fs::write(root.path().join("demo/manifest.yml"), YML).unwrap();
        std::fs::write(root.path().join("demo/install.sh"), "#!/bin/sh\n").unwrap();
        let (m, dir) = load(root.path(), "demo").unwrap();
        assert_eq!(m.id, "demo");
        assert!(script_path(&dir, "install.sh").is_ok());
        assert!(script_path(&dir, "../demo/install.sh").is_err());
        assert!(script_path(&dir, "/bin/sh").is_err());
        for bad in ["../demo", "demo/../demo", "/etc", "..", "demo;x"] {
            assert!(load(root.path(), bad).is_err(), "{bad}");
        }
        // A symlink that points out of the root is refused.
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("evil")).unwrap();
        std::fs::write(
            outside.path().join("evil/manifest.yml"),
            YML.replace("id: demo", "id: evil"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil"), root.path().join("evil")).unwrap();
        assert!(matches!(
            load(root.path(), "evil"),
            Err(ManifestError::Escapes(_))
        ));
        let bad_script = YML.replace("install: install.sh", "install: ../x.sh");
        assert!(Manifest::parse(&bad_script, Path::new("x")).is_err());
    }
}
