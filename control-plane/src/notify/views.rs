//! How notification channels are shown: the API's and pages' JSON view (the
//! secret only as `"set"` / `"not set"`, rule ids with their names) and
//! what the audit trail records of a channel change (never the secret, a
//! webhook URL cut to `scheme://host[:port]/…`).
//!
//! Owns these shapes; not the channels' checks or storage
//! (`notify::channels`).

use serde_json::{json, Value};

use super::model::channel;

fn hhmm(m: i32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The API's view of a channel: never the secret, only whether it is set.
pub fn view(c: &channel::Model) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let quiet = match (c.quiet_start, c.quiet_end) {
        (Some(s), Some(e)) => json!({
            "start": hhmm(s), "end": hhmm(e),
            "timezone": c.quiet_timezone.as_deref().unwrap_or("UTC"),
            "bypass_critical": c.quiet_bypass_critical,
        }),
        _ => Value::Null,
    };
    json!({
        "id": c.id, "name": c.name, "kind": c.kind, "config": parse(&c.config),
        "secret": if c.secret_sealed.is_some() { "set" } else { "not set" },
        "min_severity": c.min_severity, "rule_ids": parse(&c.rule_ids),
        "matchers": parse(&c.matchers), "quiet_hours": quiet,
        "group_secs": c.group_secs, "enabled": c.enabled,
        "created_at": c.created_at, "created_by": c.created_by,
    })
}

/// [`view`] with `rules`: the names of the channel's rules (an id whose
/// rule is gone stays as the id).
pub fn view_named(c: &channel::Model, names: &std::collections::HashMap<String, String>) -> Value {
    let mut v = view(c);
    let rules: Vec<String> = serde_json::from_str::<Vec<String>>(&c.rule_ids)
        .unwrap_or_default()
        .into_iter()
        .map(|id| names.get(&id).cloned().unwrap_or(id))
        .collect();
    v["rules"] = json!(rules);
    v
}

/// `config` with a webhook `url` cut to `scheme://host[:port]/…`: a
/// webhook URL's path or query is often the receiver's token.
pub fn redact_url(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(u) = config["url"].as_str() {
        c["url"] = json!(match reqwest::Url::parse(u.trim()) {
            Ok(p) => {
                let port = p.port().map(|x| format!(":{x}")).unwrap_or_default();
                format!("{}://{}{port}/…", p.scheme(), p.host_str().unwrap_or(""))
            }
            Err(_) => "…".to_string(),
        });
    }
    c
}

/// What the audit trail says of a channel change: its settings, never the
/// secret (only whether one was given).
pub fn describe(
    method: &str,
    template: &str,
    id: &str,
    req: &Value,
    resp: &Value,
) -> Option<(String, String, Value)> {
    let settings = || {
        json!({
            "name": req["name"], "kind": req["kind"], "config": redact_url(&req["config"]),
            "secret": if req["secret"].is_string() { "given" } else { "unchanged" },
            "min_severity": req["min_severity"], "rule_ids": req["rule_ids"],
            "matchers": req["matchers"], "quiet_hours": req["quiet_hours"],
            "group_secs": req["group_secs"], "enabled": req["enabled"],
        })
    };
    let id = id.to_string();
    Some(match (method, template) {
        ("POST", "/api/v1/notify/channels") => (
            "notify_channel.create".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            settings(),
        ),
        ("PUT", "/api/v1/notify/channels/{id}") => ("notify_channel.update".into(), id, settings()),
        ("DELETE", "/api/v1/notify/channels/{id}") => (
            "notify_channel.delete".into(),
            id,
            json!({"name": resp["name"]}),
        ),
        ("POST", "/api/v1/notify/channels/{id}/test") => (
            "notify_channel.test".into(),
            id,
            json!({"transition": resp["transition_id"]}),
        ),
        _ => return None,
    })
}
