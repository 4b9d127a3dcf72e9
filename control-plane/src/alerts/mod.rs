//! Alerting: rules stored in the database, alerts with a lifecycle
//! (pending → firing → resolved; acknowledged; silenced), and their
//! evaluation as a duty on the lease holder.
//!
//! Owns rules, alerts, silences and the `alert_transitions` outbox rows it
//! writes; not delivering notifications (`notify` reads the outbox).

pub mod conditions;
pub mod entities;
pub mod evaluate;
pub mod kinds;
pub mod rules;
pub mod silences;
pub mod store;
pub mod transition;

use serde_json::{json, Value};

/// What the audit trail says about a change to rules, alerts or silences:
/// `(action, target, detail)`, or `None` for a route this does not know.
pub fn describe(
    method: &str,
    template: &str,
    id: &str,
    req: &Value,
    resp: &Value,
) -> Option<(String, String, Value)> {
    let rule = || {
        json!({
            "name": req["name"], "kind": req["kind"], "selector": req["selector"],
            "params": req["params"], "severity": req["severity"],
            "for_secs": req["for_secs"], "labels": req["labels"], "enabled": req["enabled"],
        })
    };
    let id = id.to_string();
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Some(match (method, template) {
        ("POST", "/api/v1/alerts/rules") => {
            ("alert_rule.create".into(), str_of(&resp["id"]), rule())
        }
        ("PUT", "/api/v1/alerts/rules/{id}") => ("alert_rule.update".into(), id, rule()),
        ("POST", "/api/v1/alerts/rules/{id}/enable") => (
            "alert_rule.enable".into(),
            id,
            json!({ "name": resp["name"] }),
        ),
        ("POST", "/api/v1/alerts/rules/{id}/disable") => (
            "alert_rule.disable".into(),
            id,
            json!({ "name": resp["name"] }),
        ),
        ("DELETE", "/api/v1/alerts/rules/{id}") => (
            "alert_rule.delete".into(),
            id,
            json!({ "name": resp["name"] }),
        ),
        ("POST", "/api/v1/alerts/{id}/ack") => (
            "alert.ack".into(),
            id,
            json!({ "rule": resp["rule_name"], "target": resp["target"] }),
        ),
        ("POST", "/api/v1/silences") => (
            "silence.create".into(),
            str_of(&resp["id"]),
            json!({
                "rule": req["rule"], "selector": req["selector"], "starts_at": resp["starts_at"],
                "ends_at": resp["ends_at"], "comment": req["comment"],
            }),
        ),
        ("DELETE", "/api/v1/silences/{id}") => ("silence.delete".into(), id, json!({})),
        _ => return None,
    })
}
