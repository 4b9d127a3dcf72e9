//! Which agents a job targets: the [`Selector`] (API/bus JSON and the CLI's
//! `label:k=v,os:debian` form), its checks and limits, and how it matches a
//! host described by a [`SelectorTarget`].
//!
//! Matching is exact: a value matches a fact, label or hostname only when
//! the whole value is equal (ASCII case-insensitive for facts), and `*` /
//! `?` are wildcards only where the operator wrote them. An empty value is
//! an error, never "anything".
//!
//! A selector comes from outside (API bodies, signed job submissions on the
//! bus, the CLI), so its size is bounded: [`MAX_SELECTOR_BYTES`] of text,
//! [`MAX_SELECTOR_TERMS`] terms, [`MAX_SELECTOR_VALUE_BYTES`] per name or
//! value. This module does not know where hosts are stored: the control
//! plane implements [`SelectorTarget`] for its agent rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest selector text ([`Selector::parse`]), in bytes.
pub const MAX_SELECTOR_BYTES: usize = 4096;
/// Most terms in one selector (agent ids, labels and facts together).
pub const MAX_SELECTOR_TERMS: usize = 256;
/// Longest agent id, label or fact name or value, or hostname pattern, in
/// bytes.
pub const MAX_SELECTOR_VALUE_BYTES: usize = 256;

/// What a selector needs to know about one host to match it. Each method is
/// called only when the selector has a term of that kind.
pub trait SelectorTarget {
    /// The agent id (`U...`).
    fn agent_id(&self) -> &str;
    fn hostname(&self) -> &str;
    /// The host's labels (name → value).
    fn labels(&self) -> BTreeMap<String, String>;
    /// The host's facts as of now (`os`, `os_id`, `kernel`, ...).
    fn facts(&self) -> Map<String, Value>;
}

/// Which agents a job targets. Ids are alternatives; every other condition
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Every approved agent.
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Labels that must be equal (exactly, case-sensitively).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Glob over the whole hostname (`web-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Facts whose whole value must equal this one, ASCII case-insensitively
    /// (`kernel=6.1.0-18-amd64`); `*` and `?` are wildcards (`kernel=6.1.*`).
    /// `os` also matches the distribution id (`os=debian`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("an empty selector would match every agent; say `all` to mean that")]
    Empty,
    #[error("selector term {0:?} is not understood; use all, id:<id>, label:<k>=<v>, host:<glob>, os:<name>, kernel:<release> or fact:<k>=<v>")]
    Term(String),
    #[error("hostname pattern {0:?} is not a valid glob")]
    Glob(String),
    /// Over one of the size limits; `what` names which.
    #[error("{what} is too long: at most {limit}; split the job or name fewer hosts")]
    TooLong { what: &'static str, limit: usize },
    /// A term with nothing to compare: the text says what to write instead.
    #[error("{what} has an empty value, which would match nothing or everything; {instead}")]
    EmptyValue { what: String, instead: String },
}

impl Selector {
    /// The CLI form, which [`Selector::parse`] reads back: `all`,
    /// `label:env=prod,host:web-*`... What pages and the CLI show.
    pub fn to_text(&self) -> String {
        let mut t: Vec<String> = Vec::new();
        if self.all {
            t.push("all".into());
        }
        t.extend(self.agents.iter().map(|a| format!("id:{a}")));
        t.extend(self.labels.iter().map(|(k, v)| format!("label:{k}={v}")));
        t.extend(self.hostname.iter().map(|h| format!("host:{h}")));
        t.extend(self.facts.iter().map(|(k, v)| {
            if k == "os" || k == "kernel" {
                format!("{k}:{v}")
            } else {
                format!("fact:{k}={v}")
            }
        }));
        t.join(",")
    }

    /// A stored selector (JSON text or value) in the CLI form; the JSON
    /// itself when it is not a selector.
    pub fn text_of(json: &serde_json::Value) -> String {
        let parsed = match json {
            Value::String(t) => serde_json::from_str::<Selector>(t).ok(),
            v => serde_json::from_value::<Selector>(v.clone()).ok(),
        };
        match (parsed, json) {
            (Some(s), _) => s.to_text(),
            (None, Value::String(t)) => t.clone(),
            (None, v) => v.to_string(),
        }
    }

    /// The CLI form: `all`, or comma-separated terms `id:…`, `label:k=v`,
    /// `host:glob`, `os:name`, `fact:k=v`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError::TooLong {
                what: "the selector text (bytes)",
                limit: MAX_SELECTOR_BYTES,
            });
        }
        let mut s = Selector::default();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let kv = |v: &str| {
                v.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            };
            match term.split_once(':') {
                None if term == "all" || term == "*" => s.all = true,
                Some(("id", v)) => s.agents.push(v.to_string()),
                Some(("host", v)) => s.hostname = Some(v.to_string()),
                Some(("os", v)) => {
                    s.facts.insert("os".into(), v.to_string());
                }
                // Shorthand for `fact:kernel=<v>`.
                Some(("kernel", v)) => {
                    s.facts.insert("kernel".into(), v.to_string());
                }
                Some(("label", v)) => {
                    let (k, v) = kv(v).ok_or_else(|| SelectorError::Term(term.into()))?;
                    s.labels.insert(k, v);
                }
                Some(("fact", v)) => {
                    let (k, v) = kv(v).ok_or_else(|| SelectorError::Term(term.into()))?;
                    s.facts.insert(k, v);
                }
                _ => return Err(SelectorError::Term(term.into())),
            }
        }
        s.check()?;
        Ok(s)
    }

    /// Refuses a selector that means nothing (no term at all, an empty
    /// value or name anywhere, a hostname glob that does not parse) or that
    /// is over a size limit ([`SelectorError::TooLong`]).
    pub fn check(&self) -> Result<(), SelectorError> {
        self.check_size()?;
        if !self.all
            && self.agents.is_empty()
            && self.labels.is_empty()
            && self.hostname.is_none()
            && self.facts.is_empty()
        {
            return Err(SelectorError::Empty);
        }
        let empty = |what: String, instead: String| SelectorError::EmptyValue { what, instead };
        if self.agents.iter().any(|a| a.trim().is_empty()) {
            return Err(empty(
                "an agent id".into(),
                "write id:<agent id> (see `drover agents`)".into(),
            ));
        }
        for (k, v) in &self.labels {
            if k.trim().is_empty() {
                return Err(empty(
                    "a label name".into(),
                    "write label:<name>=<value>".into(),
                ));
            }
            if v.is_empty() {
                return Err(empty(
                    format!("label {k:?}"),
                    format!("write label:{k}=<value> for one value, or label:{k}=* for any"),
                ));
            }
        }
        for (k, v) in &self.facts {
            if k.trim().is_empty() {
                return Err(empty(
                    "a fact name".into(),
                    "write fact:<name>=<value>".into(),
                ));
            }
            if v.trim().is_empty() {
                return Err(empty(
                    format!("fact {k:?}"),
                    format!(
                        "write fact:{k}=<value> for the exact value, {k}=<prefix>* for a prefix, or fact:{k}=* for any value"
                    ),
                ));
            }
        }
        if let Some(h) = &self.hostname {
            if h.trim().is_empty() {
                return Err(empty(
                    "the hostname pattern".into(),
                    "write host:<name> or host:<glob> such as host:web-*".into(),
                ));
            }
            glob::Pattern::new(h).map_err(|_| SelectorError::Glob(h.clone()))?;
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), SelectorError> {
        let terms = self.agents.len() + self.labels.len() + self.facts.len();
        if terms > MAX_SELECTOR_TERMS {
            return Err(SelectorError::TooLong {
                what: "the list of terms",
                limit: MAX_SELECTOR_TERMS,
            });
        }
        let long = |s: &String| s.len() > MAX_SELECTOR_VALUE_BYTES;
        if self.agents.iter().any(long)
            || self.labels.iter().any(|(k, v)| long(k) || long(v))
            || self.facts.iter().any(|(k, v)| long(k) || long(v))
            || self.hostname.as_ref().is_some_and(long)
        {
            return Err(SelectorError::TooLong {
                what: "a name or value (bytes)",
                limit: MAX_SELECTOR_VALUE_BYTES,
            });
        }
        Ok(())
    }

    /// True when the host matches every condition (and one of the ids,
    /// when ids are given).
    pub fn matches<T: SelectorTarget + ?Sized>(&self, a: &T) -> bool {
        if !self.agents.is_empty() && !self.agents.iter().any(|id| id == a.agent_id()) {
            return false;
        }
        if let Some(h) = &self.hostname {
            match glob::Pattern::new(h) {
                Ok(p) if p.matches(a.hostname()) => {}
                _ => return false,
            }
        }
        if !self.labels.is_empty() {
            let labels = a.labels();
            let ok = self.labels.iter().all(|(k, want)| {
                labels
                    .get(k)
                    .is_some_and(|have| wildcard_match(want, have, false))
            });
            if !ok {
                return false;
            }
        }
        if !self.facts.is_empty() {
            let facts = a.facts();
            let ok = self.facts.iter().all(|(k, want)| {
                let have = facts.get(k).map(fact_text);
                // `os:debian` names the distribution, `os:"Debian GNU/Linux 12"` the release.
                let os_id = (k == "os").then(|| facts.get("os_id").map(fact_text));
                have.into_iter()
                    .chain(os_id.flatten())
                    .any(|have| wildcard_match(want, &have, true))
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

fn fact_text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// Does the whole of `have` match `pattern`? `*` stands for any run of
/// characters and `?` for one; every other character stands for itself
/// (ASCII case-insensitively when `fold`). Iterative, with one backtrack
/// point, so any input takes at most `pattern × have` steps.
pub fn wildcard_match(pattern: &str, have: &str, fold: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let h: Vec<char> = have.chars().collect();
    let same = |a: char, b: char| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut hi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], h[hi]))) {
            pi += 1;
            hi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, hi));
            pi += 1;
        } else if let Some((sp, sh)) = star {
            pi = sp + 1;
            hi = sh + 1;
            star = Some((sp, sh + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_refuse() {
        assert_eq!(Selector::parse(""), Err(SelectorError::Empty));
        assert!(Selector::parse("all").unwrap().all);
        assert!(matches!(
            Selector::parse("color:red"),
            Err(SelectorError::Term(_))
        ));
        assert!(matches!(
            Selector::parse("host:[x"),
            Err(SelectorError::Glob(_))
        ));
        for empty in [
            "fact:kernel=",
            "os:",
            "label:env=",
            "host:",
            "id:",
            "fact:=x",
        ] {
            assert!(
                matches!(
                    Selector::parse(empty),
                    Err(SelectorError::EmptyValue { .. })
                ),
                "{empty}"
            );
        }
    }

    #[test]
    fn text_form_round_trips() {
        for t in [
            "all",
            "label:env=prod,host:web-*",
            "id:A1,os:debian,fact:kernel=6.1.*",
        ] {
            let s = Selector::parse(t).unwrap();
            assert_eq!(Selector::parse(&s.to_text()).unwrap(), s, "{t}");
        }
        let json = serde_json::json!({"labels": {"env": "prod"}});
        assert_eq!(Selector::text_of(&json), "label:env=prod");
        assert_eq!(
            Selector::text_of(&serde_json::Value::String(json.to_string())),
            "label:env=prod"
        );
        assert_eq!(
            Selector::text_of(&serde_json::json!({"bogus": 1})),
            r#"{"bogus":1}"#
        );
    }

    #[test]
    fn size_limits() {
        let long_text = format!("host:{}", "a".repeat(MAX_SELECTOR_BYTES));
        assert!(matches!(
            Selector::parse(&long_text),
            Err(SelectorError::TooLong {
                limit: MAX_SELECTOR_BYTES,
                ..
            })
        ));
        let many: Vec<String> = (0..=MAX_SELECTOR_TERMS)
            .map(|i| format!("id:{i}"))
            .collect();
        assert!(matches!(
            Selector::parse(&many.join(",")),
            Err(SelectorError::TooLong {
                limit: MAX_SELECTOR_TERMS,
                ..
            })
        ));
        let enough = &many[..MAX_SELECTOR_TERMS];
        assert_eq!(
            Selector::parse(&enough.join(",")).unwrap().agents.len(),
            MAX_SELECTOR_TERMS
        );
        let value = "v".repeat(MAX_SELECTOR_VALUE_BYTES);
        assert!(Selector::parse(&format!("label:k={value}")).is_ok());
        assert!(matches!(
            Selector::parse(&format!("label:k={value}v")),
            Err(SelectorError::TooLong {
                limit: MAX_SELECTOR_VALUE_BYTES,
                ..
            })
        ));
        // The JSON form (API bodies, signed jobs) has the same limits.
        let json: Selector =
            serde_json::from_value(serde_json::json!({"hostname": format!("{value}x")})).unwrap();
        assert!(matches!(json.check(), Err(SelectorError::TooLong { .. })));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("*", "", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("abc", "abcd", false));
        assert!(wildcard_match("A*", "abc", true));
        assert!(!wildcard_match("A*", "abc", false));
        assert!(
            wildcard_match("[x]", "[x]", false),
            "only * and ? are special"
        );
    }
}
