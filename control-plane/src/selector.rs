//! Which agents a job targets: the [`Selector`] itself (its text and JSON
//! forms, checks, limits and matching) is the wire crate's
//! (`bus_schema::selector`); this module matches it against agent rows.
//! Facts that the heartbeat carries (`os`, `kernel`, `agent_version`,
//! `hostname`) are read from the agent's row, which every heartbeat
//! updates, so they never stay frozen at their enrolment values
//! ([`facts_of`]).
//!
//! This module does not read the database: `jobs::targets` does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::db::entities::agent;

pub use bus_schema::selector::{wildcard_match, Selector, SelectorError, SelectorTarget};

/// Agent rows are what the control plane matches selectors against.
impl SelectorTarget for agent::Model {
    fn agent_id(&self) -> &str {
        &self.id
    }

    fn hostname(&self) -> &str {
        &self.hostname
    }

    fn labels(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }

    fn facts(&self) -> Map<String, Value> {
        facts_of(self)
    }
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
}
