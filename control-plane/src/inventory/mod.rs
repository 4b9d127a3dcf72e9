//! The inventory operators edit (issue 17 item 1): a host's display name,
//! operator labels merged with the agent's own, notes, and decommissioning.
//! This file owns the rules (what an edit may contain, how labels merge and
//! where each came from) as pure functions; `store` reads and writes the
//! `agent_inventory` table and the agent's effective values. It knows no
//! HTTP (`api/inventory.rs`) and no pages (`ui/agents.rs`).
//!
//! The effective values stay where every reader already looks: the agent's
//! row (`agents.display_name`, `agents.labels`), so selectors, jobs, alert
//! rules and watched services see a change as soon as it is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use crate::db::entities::agent_inventory;

pub mod store;

/// Most characters in a host's notes.
pub const MAX_NOTES: usize = 4000;
/// Most labels an operator may set (or remove) on one host.
pub const MAX_OPERATOR_LABELS: usize = crate::enroll::MAX_CLAIM_LABELS;

/// Why an inventory change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The request is malformed; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("no agent {0}; list them with `drover agents list`")]
    UnknownAgent(String),
    #[error("agent {0} is decommissioned; its record is kept for history and cannot be edited")]
    Decommissioned(String),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One operator edit of a host (the body of `PATCH /api/v1/agents/{id}`);
/// absent fields are left as they are.
#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// A new display name; `null` or `""` clears the operator's name (the
    /// enrolment name, or else the host name, is shown again).
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Option<String>>,
    /// Labels to set (`key -> value`); they win over the agent's own.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Label keys to remove (an agent's own label is hidden; an operator's
    /// is dropped).
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// New notes (free text, at most [`MAX_NOTES`] characters; `""`
    /// clears).
    #[serde(default)]
    pub notes: Option<String>,
}

impl Edit {
    /// Checks every field; the error names the first bad one.
    pub fn check(&self) -> Result<(), InventoryError> {
        let bad = |m: String| Err(InventoryError::Invalid(m));
        if self.display_name.is_none()
            && self.labels.is_empty()
            && self.remove_labels.is_empty()
            && self.notes.is_none()
        {
            return bad(
                "nothing to change: send display_name, labels, remove_labels or notes".into(),
            );
        }
        if let Some(Some(n)) = &self.display_name {
            if !n.is_empty() {
                crate::enroll::check_display_name(n).map_err(InventoryError::Invalid)?;
            }
        }
        if self.labels.len() > MAX_OPERATOR_LABELS || self.remove_labels.len() > MAX_OPERATOR_LABELS
        {
            return bad(format!("at most {MAX_OPERATOR_LABELS} labels per change"));
        }
        for (k, v) in &self.labels {
            if !crate::enroll::valid_label_part(k) || !crate::enroll::valid_label_part(v) {
                return bad(format!(
                    "label {k:?}={v:?}: keys and values are 1..=64 of [A-Za-z0-9-_./], e.g. env=prod"
                ));
            }
        }
        for k in &self.remove_labels {
            if !crate::enroll::valid_label_part(k) {
                return bad(format!("label key {k:?}: 1..=64 of [A-Za-z0-9-_./]"));
            }
            if self.labels.contains_key(k) {
                return bad(format!("label {k} is both set and removed"));
            }
        }
        if let Some(n) = &self.notes {
            if n.chars().count() > MAX_NOTES {
                return bad(format!("notes: at most {MAX_NOTES} characters"));
            }
            if n.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
            {
                return bad("notes: no control characters but newlines and tabs".into());
            }
        }
        Ok(())
    }
}

/// Operator labels as stored: a value sets the label, `None` (JSON null)
/// hides the agent's own label of that key.
pub type OperatorLabels = BTreeMap<String, Option<String>>;

pub(crate) fn parse_labels(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(crate) fn parse_operator(s: &str) -> OperatorLabels {
    serde_json::from_str(s).unwrap_or_default()
}

/// The effective labels: the agent's own overlaid by the operator's (the
/// operator wins on a shared key; a `None` hides the agent's label).
pub fn effective(
    agent: &BTreeMap<String, String>,
    op: &OperatorLabels,
) -> BTreeMap<String, String> {
    let mut out = agent.clone();
    for (k, v) in op {
        match v {
            Some(v) => {
                out.insert(k.clone(), v.clone());
            }
            None => {
                out.remove(k);
            }
        }
    }
    out
}

/// Applies the label part of `e` to the operator's labels, given the
/// agent's own; the error is for removing a label the host does not have.
pub fn apply_labels(
    agent: &BTreeMap<String, String>,
    mut op: OperatorLabels,
    e: &Edit,
) -> Result<OperatorLabels, InventoryError> {
    for k in &e.remove_labels {
        let shown = effective(agent, &op).contains_key(k);
        if !shown {
            return Err(InventoryError::Invalid(format!(
                "no label {k} on this host; see its labels with `drover agents show <id>`"
            )));
        }
        if agent.contains_key(k) {
            op.insert(k.clone(), None);
        } else {
            op.remove(k);
        }
    }
    for (k, v) in &e.labels {
        op.insert(k.clone(), Some(v.clone()));
    }
    if op.len() > 2 * MAX_OPERATOR_LABELS {
        return Err(InventoryError::Invalid(format!(
            "at most {} operator labels per host",
            2 * MAX_OPERATOR_LABELS
        )));
    }
    Ok(op)
}

/// Where each effective label came from: `"agent"` or `"operator"`.
pub fn sources(
    agent: &BTreeMap<String, String>,
    op: &OperatorLabels,
) -> BTreeMap<String, &'static str> {
    effective(agent, op)
        .into_keys()
        .map(|k| {
            let s = if matches!(op.get(&k), Some(Some(_))) {
                "operator"
            } else {
                "agent"
            };
            (k, s)
        })
        .collect()
}

/// The inventory fields added to an agent's JSON (`api::agent_json`):
/// `label_sources` (`key -> "agent" | "operator"`), `agent_labels`,
/// `operator_labels` (null values: agent labels an operator removed),
/// `operator_name`, `enrolled_name`, `notes`, `decommissioned_at` (ms or
/// null) and `decommissioned_by`. `labels` in the agent's JSON stays the
/// effective map.
pub fn decorate(v: &mut Value, labels_json: &str, inv: Option<&agent_inventory::Model>) {
    let effective_now = parse_labels(labels_json);
    let (agent, op) = match inv {
        Some(i) => (
            i.agent_labels
                .as_deref()
                .map(parse_labels)
                .unwrap_or_else(|| effective_now.clone()),
            parse_operator(&i.operator_labels),
        ),
        None => (effective_now, OperatorLabels::new()),
    };
    let src: Map<String, Value> = sources(&agent, &op)
        .into_iter()
        .map(|(k, s)| (k, Value::String(s.into())))
        .collect();
    v["label_sources"] = Value::Object(src);
    v["agent_labels"] = json!(agent);
    v["operator_labels"] = json!(op);
    v["operator_name"] = json!(inv.and_then(|i| i.operator_name.clone()));
    v["enrolled_name"] = json!(inv.and_then(|i| i.enrolled_name.clone()));
    v["notes"] = json!(inv.map(|i| i.notes.clone()).unwrap_or_default());
    v["decommissioned_at"] = json!(inv.and_then(|i| i.decommissioned_at));
    v["decommissioned_by"] = json!(inv.and_then(|i| i.decommissioned_by.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operator_wins_and_removal_hides_the_agents_label() {
        let agent = m(&[("env", "dev"), ("role", "web")]);
        let e = Edit {
            labels: m(&[("env", "prod"), ("team", "ops")]),
            remove_labels: vec!["role".into()],
            ..Default::default()
        };
        e.check().unwrap();
        let op = apply_labels(&agent, OperatorLabels::new(), &e).unwrap();
        assert_eq!(
            effective(&agent, &op),
            m(&[("env", "prod"), ("team", "ops")])
        );
        let s = sources(&agent, &op);
        assert_eq!(s["env"], "operator");
        // Removing the operator's env shows nothing for env: the operator
        // asked for it gone.
        let e2 = Edit {
            remove_labels: vec!["env".into()],
            ..Default::default()
        };
        let op = apply_labels(&agent, op, &e2).unwrap();
        assert!(!effective(&agent, &op).contains_key("env"));
        // A label the host does not have cannot be removed.
        assert!(apply_labels(&agent, op, &e2).is_err());
    }

    #[test]
    fn bad_edits_are_refused() {
        let bad = [
            r#"{}"#,
            r#"{"display_name":"a\u0007b"}"#,
            r#"{"display_name":"   "}"#,
            r#"{"labels":{"env":"pr od"}}"#,
            r#"{"labels":{"":"x"}}"#,
            r#"{"remove_labels":["a;b"]}"#,
            r#"{"labels":{"a":"b"},"remove_labels":["a"]}"#,
            r#"{"notes":"bell\u0007"}"#,
        ];
        for b in bad {
            let e: Edit = serde_json::from_str(b).unwrap();
            assert!(e.check().is_err(), "{b}");
        }
        assert!(serde_json::from_str::<Edit>(r#"{"colour":"red"}"#).is_err());
        let e: Edit = serde_json::from_str(r#"{"display_name":null}"#).unwrap();
        assert_eq!(e.display_name, Some(None));
        e.check().unwrap();
        let long = "x".repeat(MAX_NOTES + 1);
        let e = Edit {
            notes: Some(long),
            ..Default::default()
        };
        assert!(e.check().is_err());
    }
}
