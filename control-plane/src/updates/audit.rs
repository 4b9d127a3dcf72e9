//! How the audit trail describes changes to approvals and auto-approval
//! rules (`/api/v1/updates/...`): the action name, the target and an
//! allow-list of request fields. The gate (`auth::guard`) records the row
//! after a successful write; this file decides nothing about access.

use serde_json::{json, Value};

/// `(action, target, detail)` for a successful write to an updates route
/// (`template`, with `id` its `{id}` value), from the request and response
/// bodies.
pub fn describe(
    method: &str,
    template: &str,
    id: String,
    req: &Value,
    resp: &Value,
) -> (String, String, Value) {
    let rule = |r: &Value| {
        json!({
            "name": r["name"], "scope": r["scope"], "selector": r["selector"],
            "delay_days": r["delay_days"], "enabled": r["enabled"],
        })
    };
    match (method, template) {
        ("POST", "/api/v1/updates/approvals") => (
            format!("update.{}", resp["decision"].as_str().unwrap_or("approve")),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({
                "scope": resp["scope"], "package": resp["package"], "version": resp["version"],
                "selector": resp["selector"], "expires_at": resp["expires_at"], "note": resp["note"],
            }),
        ),
        ("POST", "/api/v1/updates/approvals/{id}/revoke") => (
            "update.approval_revoke".into(),
            id,
            json!({"decision": resp["decision"], "scope": resp["scope"], "package": resp["package"]}),
        ),
        ("POST", "/api/v1/updates/rules") => (
            "update.rule_add".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            rule(resp),
        ),
        ("PUT", "/api/v1/updates/rules/{id}") => {
            let changed: Vec<&String> = req
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            let mut d = rule(resp);
            d["changed"] = json!(changed);
            ("update.rule_change".into(), id, d)
        }
        ("DELETE", "/api/v1/updates/rules/{id}") => {
            ("update.rule_remove".into(), id, rule(&resp["rule"]))
        }
        _ => (format!("{method} {template}"), id, json!({})),
    }
}
