//! The enrolment page (`/enrolment`: tokens, pending and decided hosts) and
//! the security overview (`/security`, with the signing keys' card from
//! `keys`). Decisions go through the API.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::db::entities::agent;
use crate::state::AppState;

use super::frame::{labels_html, page, parse_json, pill, short, time, unavailable};

/// The form that creates a registration token (fixed markup; `app.js`
/// posts it and shows the secret once, with the install line for it and a
/// copy button).
const TOKEN_FORM: &str = "<form data-api=\"/api/v1/tokens\" data-secret=\"token\" class=\"inline-form\" id=\"token-form\">\
<label>Uses<input name=\"uses\" type=\"number\" min=\"1\" value=\"1\" data-type=\"int\"></label>\
<label>Expires<input name=\"expires\" value=\"24h\" size=\"6\"></label>\
<label>Labels<input name=\"labels\" placeholder=\"env=prod,role=web\" data-type=\"kv\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"auto_approve\"> auto-approve</label>\
<button class=\"primary\">Create token</button><span class=\"form-error\"></span>\
<div class=\"secret\" hidden><b>Registration token — shown once.</b> Put it in the agent's <code>enroll_token</code>.<code class=\"value\"></code>\
<div class=\"install\"><b>Install line</b> — run it on the new host (as root):<code class=\"value\" data-field=\"install_line\"></code>\
<button type=\"button\" class=\"small\" data-copy=\"install_line\">Copy</button></div></div></form>";

pub(super) async fn enrolment(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let tokens = match crate::tokens::list(&state.db).await {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    let pending = agent::Entity::find()
        .filter(agent::Column::Status.eq("pending"))
        .order_by_desc(agent::Column::FirstSeen)
        .limit(200)
        .all(&state.db)
        .await;
    let recent = agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .order_by_desc(agent::Column::FirstSeen)
        .limit(20)
        .all(&state.db)
        .await;
    let (Ok(pending), Ok(recent)) = (pending, recent) else {
        return unavailable("database");
    };
    let admin = who.can(Role::Admin);
    let body = html! {
        div data-live="enrolment" #enrolment-live {
            section.card {
                h2 { "Pending agents" }
                @if pending.is_empty() {
                    div.empty.small { "No agents are waiting for approval." }
                } @else {
                    table.grid #pending {
                        thead { tr { th { "Host" } th { "Machine id" } th { "Asked" } th {} } }
                        tbody {
                            @for a in &pending {
                                tr {
                                    td { (a.hostname) div.id { (a.id) } }
                                    td.id { (a.machine_id) }
                                    td { (time(a.first_seen)) }
                                    td {
                                        @if admin {
                                            button.primary.small data-api=(format!("/api/v1/agents/{}/approve", a.id)) data-method="POST" { "Approve" }
                                            " "
                                            button.small data-api=(format!("/api/v1/agents/{}/reject", a.id)) data-method="POST" { "Reject" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Registration tokens" }
            @if admin { (PreEscaped(TOKEN_FORM)) }
            div data-live="tokens" #tokens-wrap {
                @if tokens.is_empty() {
                    div.empty.small { "No registration tokens." }
                } @else {
                    table.grid #tokens {
                        thead { tr {
                            th { "Id" } th { "State" } th { "Uses" } th { "Expires" }
                            th { "Labels" } th { "Auto-approve" } th { "By" } th {}
                        } }
                        tbody {
                            @for k in &tokens {
                                @let v = crate::tokens::token_json(k);
                                @let st = v["state"].as_str().unwrap_or("");
                                tr {
                                    td.id { (k.id) }
                                    td { (pill(st)) }
                                    td { (k.uses) "/" (k.uses_allowed) }
                                    td { (time(k.expires_at)) }
                                    td { (labels_html(&parse_json(&k.labels))) }
                                    td { (if k.auto_approve { "yes" } else { "no" }) }
                                    td { (k.created_by) }
                                    td {
                                        @if admin && st == "active" {
                                            button.small data-api=(format!("/api/v1/tokens/{}", k.id)) data-method="DELETE" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Recently enrolled" }
            div data-live="recent" #recent-wrap {
                table.grid {
                    thead { tr { th { "Host" } th { "Status" } th { "Enrolled" } th { "Approved by" } th {} } }
                    tbody {
                        @for a in &recent {
                            tr {
                                td { a href=(format!("/agents/{}", a.id)) { (a.hostname) } }
                                td { (pill(&a.status)) }
                                td { (time(a.first_seen)) }
                                td { (a.approved_by.as_deref().unwrap_or("")) }
                                td {
                                    @if admin {
                                        button.danger.small data-api=(format!("/api/v1/agents/{}/revoke", a.id)) data-method="POST"
                                            data-confirm=(format!("Revoke {}? The broker disconnects it at once.", a.hostname)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&who, "enrolment", "Enrolment", body).into_response()
}

/// A JSON value as text: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// A list of agents (`[{id, hostname}]`) linking to their pages.
fn agent_list(v: &Value) -> Markup {
    let items: Vec<&Value> = v.as_array().into_iter().flatten().collect();
    html! {
        @if items.is_empty() {
            p class="mut" { "None." }
        } @else {
            ul.plain {
                @for a in items {
                    @let id = a["id"].as_str().unwrap_or("");
                    li { a href=(format!("/agents/{id}")) { (a["hostname"].as_str().unwrap_or("")) } " " span.id { (short(id)) } }
                }
            }
        }
    }
}

pub(super) async fn security(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let v = match crate::trust::overview(&state).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    // Key generations and which hosts hold them (`keys`).
    let keys = match crate::keys::view::overview(&state).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    let s = |x: &Value| x.as_str().unwrap_or("").to_string();
    let refused: Vec<&Value> = v["refused"].as_array().into_iter().flatten().collect();
    let dropped: Vec<(&str, &Value)> = [
        ("malformed", "malformed_messages"),
        ("over rate", "refusals_dropped"),
    ]
    .into_iter()
    .flat_map(|(what, key)| {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |d| (what, d))
    })
    .collect();
    let conflicts: Vec<&Value> = v["binding_conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let body = html! {
        div data-live="security" #security-live {
            div.cols {
                section.card {
                    h2 { "Command signing key" }
                    table.kv {
                        tr { th { "Fingerprint" } td.id #fingerprint { (s(&v["signing_key"]["fingerprint"])) } }
                        tr { th { "Public key" } td.id { (s(&v["signing_key"]["public_key"])) } }
                    }
                    h2 { "Broker" }
                    table.kv {
                        @for (k, x) in v["broker"].as_object().into_iter().flatten() {
                            tr { th { (k) } td.id { (text(x)) } }
                        }
                    }
                }
                section.card {
                    h2 { "Refused commands and results" }
                    table.grid {
                        thead { tr { th { "Where" } th { "Reason" } th { "Count" } } }
                        tbody {
                            @for r in &refused {
                                tr { td { (s(&r["source"])) } td { code { (s(&r["reason"])) } } td.num { (r["count"].to_string()) } }
                            }
                            @if refused.is_empty() {
                                tr { td colspan="3" class="mut" { "Nothing refused." } }
                            }
                        }
                    }
                }
            }
            (super::keys::card(&keys))
            section.card {
                h2 { "Dropped input" }
                table.grid {
                    thead { tr { th { "Why" } th { "Subject" } th { "Sender" } th { "Count" } th { "Last reason" } } }
                    tbody {
                        @for (what, d) in &dropped {
                            tr {
                                td { (what) }
                                td { code { (s(&d["subject"])) } }
                                td.id { (short(d["agent_id"].as_str().unwrap_or(""))) }
                                td.num { (d["count"].to_string()) }
                                td { (s(&d["last_detail"])) }
                            }
                        }
                        @if dropped.is_empty() {
                            tr { td colspan="5" class="mut" { "Nothing dropped." } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Machine-binding conflicts" }
                table.grid {
                    thead { tr { th { "When" } th { "Kind" } th { "Host" } th { "Machine id" } th { "Existing agent" } } }
                    tbody {
                        @for c in &conflicts {
                            tr {
                                td { (time(c["at"].as_i64().unwrap_or(0))) }
                                td { (s(&c["kind"])) }
                                td { (s(&c["hostname"])) }
                                td.id { (s(&c["machine_id"])) }
                                td.id { (s(&c["existing_agent_id"])) }
                            }
                        }
                        @if conflicts.is_empty() {
                            tr { td colspan="5" class="mut" { "No conflicts." } }
                        }
                    }
                }
            }
            section.card #agent-versions {
                @let av = &v["agent_versions"];
                h2 { "Agent versions" }
                p class="mut" {
                    "Minimum agent version " code { (s(&av["min_agent_version"])) }
                    " (" (s(&av["min_agent_version_from"])) "), wire protocol " (av["protocol_version"].to_string())
                    ": " b { (av["outdated"].to_string()) } " outdated, "
                    b { (av["incompatible"].to_string()) } " incompatible. They get no command but "
                    code { "agent.update" } "."
                }
                table.grid {
                    thead { tr { th { "Agent" } th { "Host" } th { "Version" } th { "Why" } } }
                    tbody {
                        @for a in av["agents"].as_array().into_iter().flatten() {
                            tr {
                                td.id { (short(a["id"].as_str().unwrap_or(""))) }
                                td { (s(&a["hostname"])) }
                                td { code { (s(&a["agent_version"])) } }
                                td { (s(&a["reason"])) }
                            }
                        }
                        @if av["agents"].as_array().is_none_or(|l| l.is_empty()) {
                            tr { td colspan="4" class="mut" { "Every agent is within the compatible range." } }
                        }
                    }
                }
            }
            div.cols {
                section.card { h2 { "Revoked agents" } (agent_list(&v["revoked_agents"])) }
                section.card { h2 { "Pending agents" } (agent_list(&v["pending_agents"])) }
            }
        }
    };
    let banner = super::identity::banner(v["identity_conflicts"].as_array().into_iter().flatten());
    let body = html! { (banner) (body) };
    page(&who, "security", "Security", body).into_response()
}
