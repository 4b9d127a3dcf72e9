//! The audit trail's description of a request: the action, the target and
//! the detail with every secret masked, from the route template, the path,
//! the request body and the response. It decides nothing about access.

use super::*;

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of `{param}` in `template` as it appears in `path`.
pub(super) fn path_param(template: &str, path: &str) -> String {
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| t.starts_with('{'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

pub(super) fn masked_params(action: &Value, params: &Value) -> Value {
    match action.as_str().and_then(bus_schema::catalogue::lookup) {
        Some(spec) => spec.mask(params),
        // Unknown actions were refused; keep nothing that could be secret.
        None => Value::String("***".into()),
    }
}

/// What an audit row says about a successful change: action, target and an
/// allow-list of request fields (secrets masked).
pub fn describe(
    method: &Method,
    template: &str,
    path: &str,
    req: &Value,
    resp: &Value,
) -> (String, String, Value) {
    let id = path_param(template, path);
    let m = method.as_str();
    match (m, template) {
        ("POST", "/api/v1/agents/{id}/commands") => (
            "command.create".into(),
            id,
            json!({
                "command_id": resp["id"],
                "action": req["action"],
                "params": masked_params(&req["action"], &req["params"]),
                "timeout_secs": req["timeout_secs"],
                "ttl_secs": req["ttl_secs"],
            }),
        ),
        ("POST", "/api/v1/commands/{id}/cancel") => ("command.cancel".into(), id, json!({})),
        // An idempotency key that named an earlier job created nothing.
        ("POST", "/api/v1/jobs") => (
            if resp["replayed"] == true {
                "job.replay"
            } else {
                "job.create"
            }
            .into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({
                "action": req["action"],
                "selector": req["selector"],
                "params": masked_params(&req["action"], &req["params"]),
                "target_count": resp["target_count"],
                "idempotency_key": req["idempotency_key"],
            }),
        ),
        ("POST", "/api/v1/apps/{id}/install") => {
            // Input values may be secrets the manifest marks sensitive; the
            // trail keeps which inputs were given, never their values.
            let names: Vec<&String> = req["inputs"]
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            (
                if resp["replayed"] == true {
                    "app.install.replay"
                } else {
                    "app.install"
                }
                .into(),
                id,
                json!({ "selector": req["selector"], "inputs_given": names, "job_id": resp["job_id"], "ignored_inputs": resp["ignored_inputs"] }),
            )
        }
        ("POST", "/api/v1/tokens") => (
            "enroll_token.create".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({"uses": req["uses"], "expires": req["expires"], "labels": req["labels"], "auto_approve": req["auto_approve"]}),
        ),
        ("DELETE", "/api/v1/tokens/{id}") => ("enroll_token.revoke".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/approve") => ("agent.approve".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/reject") => ("agent.reject".into(), id, json!({})),
        ("POST", "/api/v1/agents/{id}/revoke") => ("agent.revoke".into(), id, json!({})),
        // Inventory edits: what changed (notes by length only, to keep the
        // trail short).
        ("PATCH" | "POST", "/api/v1/agents/{id}") => (
            "agent.edit".into(),
            id,
            json!({
                "display_name": req["display_name"],
                "labels": req["labels"],
                "remove_labels": req["remove_labels"],
                "notes_chars": req["notes"].as_str().map(|n| n.chars().count()),
            }),
        ),
        ("POST", "/api/v1/agents/{id}/decommission") => {
            ("agent.decommission".into(), id, json!({}))
        }
        ("POST", "/api/v1/agents/{id}/box-key/accept") => (
            "agent.box_key_accept".into(),
            id,
            json!({"public_key": resp["public_key"]}),
        ),
        ("POST", "/api/v1/agents/{id}/conflict/resolve") => (
            "agent.conflict_resolve".into(),
            id,
            json!({"keep": req["keep"], "kept": resp["kept"]}),
        ),
        ("POST", "/api/v1/automation-keys") => (
            "automation_key.add".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"], "fingerprint": resp["fingerprint"]}),
        ),
        ("DELETE", "/api/v1/automation-keys/{id}") => {
            ("automation_key.revoke".into(), id, json!({}))
        }
        ("POST", "/api/v1/api-tokens") => (
            "api_token.create".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"], "id": resp["id"]}),
        ),
        ("DELETE", "/api/v1/api-tokens/{id}") => ("api_token.revoke".into(), id, json!({})),
        ("POST", "/api/v1/users") => (
            "user.add".into(),
            req["name"].as_str().unwrap_or_default().to_string(),
            json!({"role": req["role"]}),
        ),
        ("POST", "/api/v1/users/{id}/role") => {
            ("user.role".into(), id, json!({"role": req["role"]}))
        }
        ("DELETE", "/api/v1/users/{id}") => ("user.remove".into(), id, json!({})),
        ("POST", "/api/v1/account/password") => {
            ("account.password".into(), String::new(), json!({}))
        }
        ("POST", "/api/v1/account/totp") => ("account.totp_start".into(), String::new(), json!({})),
        ("POST", "/api/v1/account/totp/confirm") => {
            ("account.totp_enable".into(), String::new(), json!({}))
        }
        ("DELETE", "/api/v1/account/totp") => {
            ("account.totp_disable".into(), String::new(), json!({}))
        }
        ("POST", "/logout") => ("logout".into(), String::new(), json!({})),
        ("POST", "/api/v1/schedules") => (
            "schedule.create".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            json!({
                "name": req["name"], "action": req["action"], "selector": req["selector"],
                "cron": req["cron"], "timezone": req["timezone"], "enabled": req["enabled"],
                "params": req["params"],
            }),
        ),
        ("PUT", "/api/v1/schedules/{id}") => (
            "schedule.update".into(),
            id,
            json!({
                "name": req["name"], "action": req["action"], "selector": req["selector"],
                "cron": req["cron"], "timezone": req["timezone"], "enabled": req["enabled"],
                "params": req["params"],
            }),
        ),
        ("DELETE", "/api/v1/schedules/{id}") => {
            ("schedule.delete".into(), id, json!({"name": resp["name"]}))
        }
        ("POST", "/api/v1/schedules/{id}/enable") => {
            ("schedule.enable".into(), id, json!({"name": resp["name"]}))
        }
        ("POST", "/api/v1/schedules/{id}/disable") => {
            ("schedule.disable".into(), id, json!({"name": resp["name"]}))
        }
        (_, t) if t.starts_with("/api/v1/windows") => {
            crate::windows::describe(m, t, &id, req, resp)
                .unwrap_or_else(|| (format!("{m} {template}"), id, json!({})))
        }
        (_, t) if t.starts_with("/api/v1/notify") => {
            crate::notify::views::describe(m, t, &id, req, resp)
                .unwrap_or_else(|| (format!("{m} {template}"), id, json!({})))
        }
        (_, t) if t.starts_with("/api/v1/alerts") || t.starts_with("/api/v1/silences") => {
            crate::alerts::describe(m, t, &id, req, resp)
                .unwrap_or_else(|| (format!("{m} {template}"), id, json!({})))
        }
        (_, t) if t.starts_with("/api/v1/rollouts") => {
            crate::rollouts::describe(m, t, &id, req, resp)
                .unwrap_or_else(|| (format!("{m} {template}"), id, json!({})))
        }
        (_, t) if t.starts_with("/api/v1/updates") => {
            crate::updates::audit::describe(m, template, id, req, resp)
        }
        ("POST", "/api/v1/releases") => (
            "release.publish".into(),
            resp["release"]["version"].as_str().unwrap_or("").into(),
            json!({
                "platform": resp["release"]["platform"],
                "channel": resp["release"]["channel"],
                "sha256": resp["release"]["sha256"],
                "size": resp["release"]["size"],
                "created": resp["created"],
            }),
        ),
        ("POST", "/api/v1/releases/{version}/yank") => (
            "release.yank".into(),
            id,
            json!({"reason": req["reason"], "platform": req["platform"]}),
        ),
        // Anything else (new routes): the route itself, no body.
        _ => (format!("{m} {template}"), id, json!({})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_params_are_masked_in_the_trail() {
        let spec = bus_schema::catalogue::all()
            .iter()
            .find(|a| !a.sensitive.is_empty())
            .expect("an action with a sensitive field");
        let field = spec.sensitive[0];
        let req = json!({"action": spec.name, "params": {field: "hunter2-secret"}});
        let (_, _, d) = describe(
            &Method::POST,
            "/api/v1/agents/{id}/commands",
            "/api/v1/agents/a1/commands",
            &req,
            &json!({"id": "c1"}),
        );
        assert!(!d.to_string().contains("hunter2-secret"), "{d}");
        assert_eq!(d["command_id"], "c1");
        let (_, _, d) = describe(
            &Method::POST,
            "/api/v1/apps/{id}/install",
            "/api/v1/apps/wp/install",
            &json!({"inputs": {"db_password": "hunter2-secret"}, "selector": {"all": true}}),
            &json!({"job_id": "j1"}),
        );
        assert!(!d.to_string().contains("hunter2-secret"), "{d}");
        // app.install sent as a plain command or job: the manifest is not
        // at hand here, so every input value is masked.
        let req = json!({"action": "app.install", "selector": {"all": true},
            "params": {"app": "wp", "inputs": {"db_password": "hunter2-secret"}}});
        for (template, path) in [
            ("/api/v1/agents/{id}/commands", "/api/v1/agents/a1/commands"),
            ("/api/v1/jobs", "/api/v1/jobs"),
        ] {
            let (_, _, d) = describe(&Method::POST, template, path, &req, &json!({"id": "x"}));
            assert!(!d.to_string().contains("hunter2-secret"), "{template}: {d}");
            assert_eq!(d["params"]["app"], "wp");
        }
    }
}
