//! The identity-conflict banner shown on a host's page and on the Security
//! page: two machines use one agent id, what the control plane does about
//! it, and what the operator should do. Renders only; the decisions live in
//! `crate::clones`.

use serde_json::Value;

use super::esc;

/// A banner per open conflict in `conflicts` (views from
/// `crate::clones::Conflict::json`); empty when none is open.
pub fn banner(conflicts: &[Value]) -> String {
    conflicts
        .iter()
        .filter(|c| c["open"] == true)
        .map(|c| {
            let side = |s: &Value| {
                format!(
                    "<b>{}</b> (machine-id <code>{}</code>)",
                    esc(s["hostname"].as_str().unwrap_or("?")),
                    esc(s["machine_id"].as_str().unwrap_or("?")),
                )
            };
            format!(
                "<section class=\"card banner identity-conflict\"><h2>Identity conflict</h2>\
<p>Two machines use agent <a href=\"/agents/{id}\" class=\"id\">{id}</a>: {bound} (served) and {other} \
(ignored). New commands to this agent are refused until an operator decides.</p><p>{todo}</p></section>",
                id = esc(c["agent_id"].as_str().unwrap_or("")),
                bound = side(&c["bound"]),
                other = side(&c["other"]),
                todo = esc(c["what_to_do"].as_str().unwrap_or("")),
            )
        })
        .collect()
}
