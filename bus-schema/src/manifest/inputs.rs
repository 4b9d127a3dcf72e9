//! The inputs of an app's install form, once a manifest is loaded: which
//! are shown (`visible_if`), checking and resolving given values (hidden
//! inputs are neither required, passed nor recorded), the environment a
//! script gets, and masking and scrubbing secret values. Loading and
//! validating the manifest itself is `mod.rs`'s.

use serde_json::{Map, Value};

use super::*;

impl Manifest {
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

pub(super) fn check_value(input: &Input, value: &Value) -> Result<String, String> {
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
