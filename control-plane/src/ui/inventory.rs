//! The inventory parts of a host's page (`/agents/{id}`): its labels with
//! the source of each (agent or operator), the operator's edit forms (name,
//! labels, notes), the decommission button and, for a decommissioned host,
//! the banner saying so. Everything user-written is escaped by maud. Writes
//! nothing: the forms call `PATCH /api/v1/agents/{id}` and
//! `POST /api/v1/agents/{id}/decommission` (`api/inventory.rs`); the rules
//! are `inventory`'s.

use maud::{html, Markup};
use serde_json::{json, Value};

use crate::auth::{Principal, Role};
use crate::db::entities::{agent, agent_inventory};

use super::frame::time;

/// The agent's JSON inventory view (`inventory::decorate`).
fn view(a: &agent::Model, inv: Option<&agent_inventory::Model>) -> Value {
    let mut v = json!({});
    crate::inventory::decorate(&mut v, &a.labels, inv);
    v
}

/// The effective labels as chips, operator ones marked (`chip op`, titled
/// "set by an operator").
pub(super) fn labels(a: &agent::Model, inv: Option<&agent_inventory::Model>) -> Markup {
    let v = view(a, inv);
    let l = crate::inventory::parse_labels(&a.labels);
    html! {
        div #labels {
            @for (k, val) in &l {
                @let src = v["label_sources"][k].as_str().unwrap_or("agent");
                @if src == "operator" {
                    span.chip.op data-source="operator" title="set by an operator" { (k) "=" (val) " · operator" }
                } @else {
                    span.chip data-source="agent" title="from the agent's enrolment" { (k) "=" (val) " · agent" }
                }
            }
        }
    }
}

/// "Decommissioned … by …; kept for history" (nothing when it is not).
pub(super) fn banner(inv: Option<&agent_inventory::Model>) -> Markup {
    html! {
        @if let Some(i) = inv.filter(|i| i.decommissioned_at.is_some()) {
            div.banner.bad #decommissioned {
                "Decommissioned " (time(i.decommissioned_at.unwrap_or_default()))
                " by " (i.decommissioned_by.as_deref().unwrap_or("?"))
                ": revoked and out of the fleet; its history is kept here."
            }
        }
    }
}

/// True when the host is decommissioned.
pub(super) fn gone(inv: Option<&agent_inventory::Model>) -> bool {
    inv.is_some_and(|i| i.decommissioned_at.is_some())
}

/// The notes (escaped, line breaks kept by CSS) and, for operators, the
/// forms editing name, labels and notes; for admins the decommission
/// button.
pub(super) fn section(
    who: &Principal,
    a: &agent::Model,
    inv: Option<&agent_inventory::Model>,
) -> Markup {
    let notes = inv.map(|i| i.notes.as_str()).unwrap_or("");
    let op_name = inv.and_then(|i| i.operator_name.as_deref()).unwrap_or("");
    let url = format!("/api/v1/agents/{}", a.id);
    let edit = who.can(Role::Operator) && !gone(inv);
    html! {
        section.card #inventory {
            h2 { "Inventory" }
            @if notes.is_empty() {
                p.mut #notes-text { "No notes." }
            } @else {
                pre.notes #notes-text { (notes) }
            }
            @if edit {
                form.inline #rename-form data-api=(url) data-method="PATCH" data-reload="1" {
                    label { "Display name"
                        input name="display_name" value=(op_name) maxlength="64"
                            placeholder=(a.display_name.as_deref().unwrap_or(&a.hostname));
                    }
                    button.small type="submit" { "Save name" }
                    span.mut { " Empty: back to the enrolment name or the host name." }
                    span.form-error {}
                }
                form.inline #label-form data-api=(url) data-method="PATCH" data-reload="1" {
                    label { "Set labels"
                        input name="labels" data-type="kv" placeholder="env=prod,role=web";
                    }
                    label { "Remove labels"
                        input name="remove_labels" data-type="list" placeholder="tmp,old";
                    }
                    button.small type="submit" { "Save labels" }
                    span.form-error {}
                }
                form #notes-form data-api=(url) data-method="PATCH" data-reload="1" {
                    label { "Notes"
                        textarea name="notes" rows="3" maxlength="4000" { (notes) }
                    }
                    button.small type="submit" { "Save notes" }
                    span.form-error {}
                }
            }
            @if who.can(Role::Admin) && !gone(inv) {
                p {
                    button.danger.small #decommission type="button" data-url=(format!("{url}/decommission"))
                        data-confirm=(format!("Decommission {}? It is revoked and leaves the fleet; its history stays.", a.display_name.as_deref().unwrap_or(&a.hostname))) { "Decommission host" }
                }
            }
        }
    }
}
