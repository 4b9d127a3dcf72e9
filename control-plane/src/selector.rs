//! Which agents a job targets: the [`Selector`] (API/bus JSON and the CLI's
//! `label:k=v,os:debian` form), its checks, and how it matches an agent.
//!
//! Matching is exact: a value matches a fact, label or hostname only when
//! the whole value is equal (ASCII case-insensitive for facts), and `*` /
//! `?` are wildcards only where the operator wrote them. An empty value is
//! an error, never "anything". Facts that the heartbeat carries (`os`,
//! `kernel`, `agent_version`, `hostname`) are read from the agent's row,
//! which every heartbeat updates, so they never stay frozen at their
//! enrolment values ([`facts_of`]).
//!
//! This module does not read the database: `jobs::targets` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::entities::agent;

/// Which agents a job targets. Ids are alternatives; every other condition
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    #[error("selector term {0:?} is not understood; use all, id:<id>, label:<k>=<v>, host:<glob>, os:<name> or fact:<k>=<v>")]
    Term(String),
    #[error("hostname pattern {0:?} is not a valid glob")]
    Glob(String),
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
            if k == "os" {
                format!("os:{v}")
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

    /// Refuses a selector that means nothing: no term at all, an empty
    /// value or name anywhere, a hostname glob that does not parse.
    pub fn check(&self) -> Result<(), SelectorError> {
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

    pub fn matches(&self, a: &agent::Model) -> bool {
        if !self.agents.is_empty() && !self.agents.iter().any(|id| id == &a.id) {
            return false;
        }
        if let Some(h) = &self.hostname {
            match glob::Pattern::new(h) {
                Ok(p) if p.matches(&a.hostname) => {}
                _ => return false,
            }
        }
        if !self.labels.is_empty() {
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&a.labels).unwrap_or_default();
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
            let facts = facts_of(a);
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

/// An agent's facts as of its last heartbeat: the ones it reported at
/// enrolment, with `os`, `kernel`, `agent_version` and `hostname` taken from
/// the row the heartbeats keep current (an empty heartbeat value leaves the
/// enrolment one).
pub fn facts_of(a: &agent::Model) -> Map<String, Value> {
    let mut facts = match serde_json::from_str::<Value>(&a.facts) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in [
        ("os", &a.os),
        ("kernel", &a.kernel),
        ("agent_version", &a.agent_version),
        ("hostname", &a.hostname),
    ] {
        if !v.is_empty() {
            facts.insert(k.into(), Value::String(v.clone()));
        }
    }
    facts
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
pub(crate) mod tests {
    use super::*;

    /// An online agent row for unit tests (also used by other modules').
    pub(crate) fn agent(id: &str, host: &str, labels: &str, facts: &str) -> agent::Model {
        agent::Model {
            id: id.into(),
            hostname: host.into(),
            status: "online".into(),
            machine_id: "m".into(),
            facts: facts.into(),
            token_id: None,
            approved_by: None,
            revoked_at: None,
            first_seen: 0,
            last_seen: 0,
            last_seq: 0,
            heartbeat_secs: 30,
            os: "Debian GNU/Linux 12".into(),
            kernel: "6.18.0-1-amd64".into(),
            agent_version: String::new(),
            metrics: "{}".into(),
            modules: "[]".into(),
            operations: "[]".into(),
            labels: labels.into(),
            rootd_error: None,
            display_name: None,
            boot_id: None,
            booted_at: None,
            agent_channel: String::new(),
            protocol_version: 1,
        }
    }

    #[test]
    fn parse_and_match() {
        let web = agent("U1", "web-1", r#"{"env":"prod"}"#, r#"{"os_id":"debian"}"#);
        let db = agent("U2", "db-1", r#"{"env":"prod"}"#, r#"{"os_id":"debian"}"#);
        let s = Selector::parse("label:env=prod,host:web-*").unwrap();
        assert!(s.matches(&web) && !s.matches(&db));
        let s = Selector::parse("os:debian").unwrap();
        assert!(s.matches(&web) && s.matches(&db));
        let s = Selector::parse("id:U2").unwrap();
        assert!(!s.matches(&web) && s.matches(&db));
        assert!(Selector::parse("all").unwrap().matches(&web));
        assert_eq!(Selector::parse(""), Err(SelectorError::Empty));
        assert!(matches!(
            Selector::parse("color:red"),
            Err(SelectorError::Term(_))
        ));
        assert!(matches!(
            Selector::parse("host:[x"),
            Err(SelectorError::Glob(_))
        ));
    }

    #[test]
    fn facts_match_whole_values_and_follow_the_row() {
        // Enrolled on 6.1, upgraded since: the row (heartbeat) wins.
        let a = agent(
            "U1",
            "web-1",
            "{}",
            r#"{"kernel":"6.1.0-9-amd64","os":"Debian GNU/Linux 11"}"#,
        );
        let m = |t: &str| Selector::parse(t).unwrap().matches(&a);
        assert!(!m("fact:kernel=6.1"), "6.1 is not 6.18");
        assert!(
            !m("fact:kernel=6.1.0-9-amd64"),
            "the enrolment value is stale"
        );
        assert!(m("fact:kernel=6.18.0-1-amd64"));
        assert!(m("fact:kernel=6.18.*"));
        assert!(!m("fact:kernel=6.1.*"));
        assert!(m("os:debian gnu/linux 12"));
        assert!(!m("os:Debian GNU/Linux 11"));
        assert!(!m("os:deb"));
        assert!(m("fact:hostname=web-?"));
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
