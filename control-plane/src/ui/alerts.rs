//! The Alerts page (`/alerts`): firing and pending alerts with severity,
//! host, since and an acknowledge button; recently resolved ones; the rules
//! with forms to add, enable/disable and remove them; silences with add and
//! remove. Re-read live on `alert` events. Reads `crate::alerts`; writes
//! nothing itself (the buttons and forms call the API through `app.js`).

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::alerts::{rules, silences, store};
use crate::auth::{Principal, Role};
use crate::state::AppState;

use super::frame::{page, pill, time, unavailable};

/// Resolved alerts shown, newest first.
const RESOLVED_SHOWN: u64 = 30;

/// Adding a rule (fixed markup; `app.js` sends it as JSON; `params` is
/// `key=value,...`, numbers are read as numbers by the API).
const RULE_FORM: &str = "<h2>Add a rule</h2><form data-api=\"/api/v1/alerts/rules\" class=\"stack-form\" id=\"rule-form\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"disk-full\"></label>\
<label>Kind<select name=\"kind\">\
<option value=\"metric\">metric threshold</option><option value=\"host_offline\">host offline</option>\
<option value=\"service_not_active\">watched service not active</option><option value=\"job_failed\">job failed on N hosts</option>\
<option value=\"updates_pending\">updates pending for N days</option><option value=\"security_refusal\">security refusal</option>\
<option value=\"identity_conflict\">identity conflict</option><option value=\"agent_outdated\">agent below minimum version</option></select></label>\
<label>Parameters (key=value, comma-separated)<input name=\"params\" data-type=\"kv\" placeholder=\"metric=disk_used_percent, op=>, threshold=90\"></label>\
<label>Hosts (selector)<input name=\"selector\" value=\"all\" placeholder=\"all, label:env=prod, host:web-*\"></label>\
<label>Severity<select name=\"severity\"><option value=\"warning\">warning</option><option value=\"critical\">critical</option><option value=\"info\">info</option></select></label>\
<label>For (seconds the condition must hold)<input name=\"for_secs\" data-type=\"int\" type=\"number\" min=\"0\" value=\"300\"></label>\
<label>Labels (key=value, comma-separated)<input name=\"labels\" data-type=\"kv\" placeholder=\"team=ops\"></label>\
<button class=\"primary\">Add rule</button><span class=\"form-error\"></span></form>";

/// Adding a silence.
const SILENCE_FORM: &str = "<h2>Add a silence</h2><form data-api=\"/api/v1/silences\" class=\"stack-form\" id=\"silence-form\">\
<label>Rule (name; empty: every rule)<input name=\"rule\" placeholder=\"disk-full\"></label>\
<label>Hosts (selector; empty: any host)<input name=\"selector\" placeholder=\"host:web-*\"></label>\
<label>For<select name=\"duration_secs\" data-type=\"int\"><option value=\"3600\">1 hour</option><option value=\"14400\">4 hours</option>\
<option value=\"86400\">1 day</option><option value=\"604800\">1 week</option></select></label>\
<label>Why<input name=\"comment\" required maxlength=\"500\" placeholder=\"resizing volumes\"></label>\
<button class=\"primary\">Add silence</button><span class=\"form-error\"></span></form>";

fn sev(s: &str) -> Markup {
    html! { span class=(format!("pill sev-{s}")) { (s) } }
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn alerts_table(who: &Principal, alerts: &[Value], open: bool) -> Markup {
    html! {
        @if alerts.is_empty() {
            div.empty.small { @if open { "Nothing is firing or pending." } @else { "No resolved alerts yet." } }
        } @else {
            table.grid {
                thead { tr {
                    th { "State" } th { "Severity" } th { "Rule" } th { "Host" } th { "Summary" }
                    th { @if open { "Since" } @else { "Resolved" } } th {}
                } }
                tbody {
                    @for a in alerts {
                        tr data-alert=(text(a, "id")) data-state=(text(a, "state")) {
                            td { (pill(text(a, "state"))) }
                            td { (sev(text(a, "severity"))) }
                            td { (text(a, "rule_name")) }
                            td {
                                @match a["agent_id"].as_str() {
                                    Some(id) => { a href=(format!("/agents/{id}")) { (a["host"].as_str().unwrap_or(id)) } }
                                    None => { code { (text(a, "target")) } }
                                }
                            }
                            td { (text(a, "summary")) }
                            td {
                                @if open {
                                    (time(a["fired_at"].as_i64().or(a["first_at"].as_i64()).unwrap_or(0)))
                                } @else {
                                    (time(a["resolved_at"].as_i64().unwrap_or(0)))
                                }
                            }
                            td {
                                @if let Some(by) = a["acked_by"].as_str() {
                                    span.mut { "acked by " (by) }
                                } @else if open && who.can(Role::Operator) {
                                    button.small.ack data-api=(format!("/api/v1/alerts/{}/ack", text(a, "id"))) { "Acknowledge" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rules_table(who: &Principal, rs: &[Value]) -> Markup {
    html! {
        @if rs.is_empty() {
            div.empty.small { "No rules yet: nothing is watched for." }
        } @else {
            table.grid #rules {
                thead { tr {
                    th { "Name" } th { "Kind" } th { "Hosts" } th { "Condition" } th { "Severity" }
                    th { "For" } th { "State" } th {}
                } }
                tbody {
                    @for r in rs {
                        @let id = text(r, "id");
                        tr data-rule=(id) {
                            td { b { (text(r, "name")) } }
                            td { (text(r, "kind")) }
                            td { code { (text(r, "selector_text")) } }
                            td { code { (r["params"].to_string()) } }
                            td { (sev(text(r, "severity"))) }
                            td { (r["for_secs"]) " s" }
                            td { @if r["enabled"] == true { (pill("enabled")) } @else { (pill("disabled")) } }
                            td {
                                @if who.can(Role::Operator) {
                                    @if r["enabled"] == true {
                                        button.small data-api=(format!("/api/v1/alerts/rules/{id}/disable")) { "Disable" }
                                    } @else {
                                        button.small data-api=(format!("/api/v1/alerts/rules/{id}/enable")) { "Enable" }
                                    }
                                    " "
                                    button.danger.small data-api=(format!("/api/v1/alerts/rules/{id}"))
                                        data-method="DELETE" data-confirm=(format!("Remove rule {}? Its open alerts resolve.", text(r, "name"))) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn silences_table(
    who: &Principal,
    ss: &[Value],
    rule_names: &std::collections::HashMap<String, String>,
) -> Markup {
    html! {
        @if ss.is_empty() {
            div.empty.small { "No silences." }
        } @else {
            table.grid #silences {
                thead { tr { th { "" } th { "Rule" } th { "Hosts" } th { "From" } th { "Until" } th { "Why" } th { "By" } th {} } }
                tbody {
                    @for s in ss {
                        tr data-silence=(text(s, "id")) {
                            td { @if s["active"] == true { (pill("active")) } @else { (pill("inactive")) } }
                            td { @match s["rule_id"].as_str() { Some(r) => { (rule_names.get(r).map(String::as_str).unwrap_or(r)) } None => { "every rule" } } }
                            td { @match s["selector_text"].as_str() { Some(t) => { code { (t) } } None => { "any host" } } }
                            td { (time(s["starts_at"].as_i64().unwrap_or(0))) }
                            td { (time(s["ends_at"].as_i64().unwrap_or(0))) }
                            td { (text(s, "comment")) }
                            td { (text(s, "created_by")) }
                            td {
                                @if who.can(Role::Operator) {
                                    button.danger.small data-api=(format!("/api/v1/silences/{}", text(s, "id")))
                                        data-method="DELETE" data-confirm="End this silence now?" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn alerts_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let now = bus_schema::now_ms();
    let db = &state.db;
    let load = async {
        let open = store::list(db, "open", 1000).await?;
        let resolved = store::list(db, "resolved", RESOLVED_SHOWN).await?;
        let open = store::views(db, &open).await?;
        let resolved = store::views(db, &resolved).await?;
        let rs = rules::list(db).await?;
        let ss = silences::list(db, now).await?;
        Ok::<_, sea_orm::DbErr>((open, resolved, rs, ss))
    };
    let (open, resolved, rs, ss) = match load.await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let rule_names = rs.iter().map(|r| (r.id.clone(), r.name.clone())).collect();
    let rule_views: Vec<Value> = rs.iter().map(rules::view).collect();
    let silence_views: Vec<Value> = ss.iter().map(|s| silences::view(s, now)).collect();
    let firing = open.iter().filter(|a| a["state"] == "firing").count();
    let pending = open.len() - firing;
    let body = html! {
        section.card {
            h2 { "Firing and pending" }
            div data-live="alerts-open" #alerts-open {
                p.mut #alert-counts { (firing) " firing · " (pending) " pending" }
                (alerts_table(&who, &open, true))
            }
        }
        section.card {
            h2 { "Recently resolved" }
            div data-live="alerts-resolved" { (alerts_table(&who, &resolved, false)) }
        }
        section.card {
            h2 { "Rules" }
            p.mut { "Every enabled rule is checked every few seconds; a condition that holds for the rule's duration fires." }
            div data-live="rules" { (rules_table(&who, &rule_views)) }
        }
        section.card {
            h2 { "Silences" }
            p.mut { "Alerts a silence covers still change state, but their transitions are not notified; the same holds for hosts in an open maintenance window." }
            div data-live="silences" { (silences_table(&who, &silence_views, &rule_names)) }
        }
        @if who.can(Role::Operator) {
            section.card { (PreEscaped(RULE_FORM)) }
            section.card { (PreEscaped(SILENCE_FORM)) }
        }
    };
    page(&who, "alerts", "Alerts", body).into_response()
}
