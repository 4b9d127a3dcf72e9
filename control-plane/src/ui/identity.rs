//! The identity-conflict banner shown on a host's page and on the Security
//! page: two machines use one agent id, what the control plane does about
//! it, and what the operator should do. Renders only; the decisions live in
//! `clones.rs`.

use maud::{html, Markup};
use serde_json::Value;

/// A banner per open conflict in `conflicts` (views from the clones
/// module's `Conflict::json`); empty markup when none is open.
pub fn banner<'a>(conflicts: impl IntoIterator<Item = &'a Value>) -> Markup {
    let side = |s: &Value| {
        html! {
            b { (s["hostname"].as_str().unwrap_or("?")) }
            " (machine-id " code { (s["machine_id"].as_str().unwrap_or("?")) } ")"
        }
    };
    html! {
        @for c in conflicts.into_iter().filter(|c| c["open"] == true) {
            @let id = c["agent_id"].as_str().unwrap_or("");
            section class="card banner identity-conflict" {
                h2 { "Identity conflict" }
                p {
                    "Two machines use agent "
                    a.id href=(format!("/agents/{id}")) { (id) }
                    ": " (side(&c["bound"])) " (served) and " (side(&c["other"]))
                    " (ignored). New commands to this agent are refused until an operator decides."
                }
                p { (c["what_to_do"].as_str().unwrap_or("")) }
            }
        }
    }
}
