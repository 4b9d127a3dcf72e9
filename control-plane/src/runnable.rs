//! Which catalogue actions one host can run now, and why the others are
//! hidden (rootd not answering, a module the host did not report). The API
//! (`GET /api/v1/agents/{id}/actions`) and the host page's "Run an action"
//! form both use it. It refuses nothing: the command path's refusal of an
//! unavailable module is `commands::check_module`.

use bus_schema::catalogue::{self, ActionSpec, RunsIn};
use serde_json::{json, Value};

use crate::db::entities::agent;

/// Why `a` cannot run `spec` now, or `None` when it can. An agent that has
/// not reported its modules yet is offered everything (its agent or rootd
/// refuses what it cannot run), as the command path does.
pub fn hidden_reason(a: &agent::Model, spec: &ActionSpec) -> Option<String> {
    // The cancel button sends this one; the form never offers it.
    if spec.name == "sys.cancel" {
        return Some("sent by a command's cancel button, not from this form".into());
    }
    if spec.runs_in == RunsIn::Agent {
        return None;
    }
    if let Some(err) = &a.rootd_error {
        return Some(format!(
            "runs in drover-rootd, which is not answering this host's agent ({err}); \
             start it on the host (systemctl start drover-rootd)"
        ));
    }
    let reported: Vec<String> = serde_json::from_str(&a.modules).unwrap_or_default();
    if reported.is_empty() || reported.iter().any(|m| m == spec.module()) {
        return None;
    }
    Some(format!(
        "module {} is not available on this host (it reports: {})",
        spec.module(),
        reported.join(", ")
    ))
}

/// The split for one agent: `{"actions": [catalogue views], "hidden":
/// [{"name", "reason"}]}`.
pub fn split(a: &agent::Model) -> Value {
    let mut actions = Vec::new();
    let mut hidden = Vec::new();
    for spec in catalogue::all() {
        match hidden_reason(a, spec) {
            None => actions.push(spec.view()),
            Some(reason) => hidden.push(json!({ "name": spec.name, "reason": reason })),
        }
    }
    json!({ "agent_id": a.id, "actions": actions, "hidden": hidden })
}
