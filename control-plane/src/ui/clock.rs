//! A host's clock as the fleet row and the host page show it: the measured
//! skew, and the warning (class `clock-warn`) past the threshold. Renders
//! only; measuring and the threshold live in `skew.rs`.

use bus_schema::clock::describe_skew;
use maud::{html, Markup};

use crate::skew::agent_clock;

/// The clock of one host; "not measured yet" before its first heartbeat.
pub fn clock(row: Option<&agent_clock::Model>) -> Markup {
    let Some(r) = row else {
        return html! { span class="clock mut" { "clock not measured yet" } };
    };
    match crate::skew::warning(r.skew_ms) {
        Some(w) => html! { span class="clock clock-warn form-error" title=(w) { "⚠ " (w) } },
        None => html! {
            span class="clock mut" { "clock " (describe_skew(r.skew_ms)) " the control plane's" }
        },
    }
}
