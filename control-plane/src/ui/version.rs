//! A host's agent version as the fleet row and the host page show it: the
//! version and channel, and for an outdated or incompatible agent a badge
//! (class `version-badge`) with the reason and what to do. Renders only;
//! the judgement is `version_policy`'s.

use maud::{html, Markup};

use crate::db::entities::agent;
use crate::version_policy::{Policy, Standing};

/// The agent's version (and channel), with the badge when it is refused
/// new commands.
pub fn version(policy: &Policy, a: &agent::Model) -> Markup {
    let standing = policy.of_agent(a);
    let label = match &standing {
        Standing::Incompatible(_) => "incompatible",
        _ => "outdated",
    };
    html! {
        span class="version mut" {
            @if a.agent_version.is_empty() { "agent version not reported yet" }
            @else {
                "agent " (a.agent_version)
                @if !a.agent_channel.is_empty() { " (" (a.agent_channel) ")" }
            }
        }
        @if let Some(why) = standing.reason() {
            " "
            span class=(format!("version-badge version-{label} form-error")) title=(why) {
                "⚠ " (label) ": " (why)
            }
        }
    }
}
