//! The maintenance windows page (`/windows`): every window with its
//! selector, schedule, open now / next opening, batch and failure settings;
//! a form to add one and a button to delete one (both through the API, with
//! the CSRF header `app.js` adds); the recent runs with each host's status,
//! refreshed live while the page is open. Reads `crate::windows`; writes
//! nothing itself.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::state::AppState;
use crate::updates::entities::run;
use crate::windows::{self, runs};

use super::frame::{none, page, pill, short, time, unavailable};

/// Runs shown, newest first.
const RECENT_RUNS: u64 = 10;

/// Adding a window (fixed markup; `app.js` sends it as JSON).
const WINDOW_FORM: &str = "<h2>Add a window</h2><form data-api=\"/api/v1/windows\" data-reload=\"1\" class=\"stack-form\" id=\"window-form\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"nightly-staging\"></label>\
<label>Hosts (selector)<input name=\"selector\" required value=\"all\" placeholder=\"all, label:env=staging, host:web-*\"></label>\
<label>Days (comma-separated)<input name=\"days\" data-type=\"list\" required value=\"mon,tue,wed,thu,fri\"></label>\
<label>Start (HH:MM)<input name=\"start\" required pattern=\"[0-2][0-9]:[0-5][0-9]\" value=\"02:00\"></label>\
<label>Duration (minutes)<input name=\"duration_minutes\" data-type=\"int\" type=\"number\" min=\"1\" max=\"1440\" required value=\"120\"></label>\
<label>Time zone (IANA)<input name=\"timezone\" required value=\"UTC\"></label>\
<label>At most this many hosts at once<input name=\"max_hosts\" data-type=\"int\" type=\"number\" min=\"1\"></label>\
<label>…or this percentage of them<input name=\"max_percent\" data-type=\"int\" type=\"number\" min=\"1\" max=\"100\"></label>\
<label>Halt after more failed hosts than<input name=\"max_failures\" data-type=\"int\" type=\"number\" min=\"0\"></label>\
<label>Reboot<select name=\"reboot\"><option value=\"never\">never</option><option value=\"if_required\">when a host needs it</option></select></label>\
<label>Minutes a rebooted host has to return<input name=\"reboot_deadline_minutes\" data-type=\"int\" type=\"number\" min=\"1\" max=\"1440\" value=\"15\"></label>\
<button class=\"primary\">Add window</button><span class=\"form-error\"></span></form>";

fn occurrence(v: &Value) -> Markup {
    match v["start"].as_i64() {
        Some(ms) => time(ms),
        None => none(),
    }
}

fn batch(w: &Value) -> String {
    match (w["max_hosts"].as_i64(), w["max_percent"].as_i64()) {
        (Some(h), _) => format!("{h} at once"),
        (None, Some(p)) => format!("{p}% at once"),
        _ => "all at once".into(),
    }
}

fn windows_table(who: &Principal, ws: &[Value]) -> Markup {
    html! {
        @if ws.is_empty() {
            div.empty.small { "No maintenance windows yet: approved updates are installed only inside one." }
        } @else {
            table.grid #windows {
                thead { tr {
                    th { "Name" } th { "Hosts" } th { "Schedule" } th { "Now" } th { "Next opening" }
                    th { "Batches" } th { "Halts after" } th { "Reboot" } th {}
                } }
                tbody {
                    @for w in ws {
                        @let days: Vec<&str> = w["days"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        tr data-window=(w["id"].as_str().unwrap_or("")) {
                            td { b { (w["name"].as_str().unwrap_or("")) } }
                            td { code { (crate::selector::Selector::text_of(&w["selector"])) } }
                            td {
                                (days.join(", ")) " " (w["start"].as_str().unwrap_or(""))
                                " for " (w["duration_minutes"]) " min "
                                span.mut { (w["timezone"].as_str().unwrap_or("")) }
                            }
                            td {
                                @if w["enabled"] == false { (pill("disabled")) }
                                @else if w["open_now"] == true { (pill("open")) }
                                @else { (pill("closed")) }
                            }
                            td { (occurrence(&w["next_occurrence"])) }
                            td { (batch(w)) }
                            td {
                                @match w["max_failures"].as_i64() {
                                    Some(n) => { (n) " failed" }
                                    None => { (none()) }
                                }
                            }
                            td {
                                @if w["reboot"] == "if_required" {
                                    "if required (" (w["reboot_deadline_minutes"]) " min to return)"
                                } @else { "never" }
                            }
                            td {
                                @if who.can(Role::Operator) {
                                    button.danger.small data-api=(format!("/api/v1/windows/{}", w["id"].as_str().unwrap_or("")))
                                        data-method="DELETE" data-confirm=(format!("Delete window {}? Its runs and history stay.", w["name"].as_str().unwrap_or(""))) { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn run_card(
    who: &Principal,
    r: &run::Model,
    name: &str,
    hosts: &[(crate::updates::entities::run_host::Model, Option<String>)],
) -> Markup {
    html! {
        div.run data-run=(r.id) {
            p {
                b { (name) } " " (pill(&r.status)) " opened " (time(r.occurrence_start)) " · "
                (r.hosts_total) " hosts: " (r.hosts_succeeded) " ok, " (r.hosts_failed) " failed, "
                (r.hosts_deferred) " deferred"
                @if let Some(why) = &r.halted_reason { " · " span.mut { (why) } }
                " "
                @if r.status == "running" && who.can(Role::Operator) {
                    button.danger.small data-api=(format!("/api/v1/windows/runs/{}/abort", r.id))
                        data-confirm="Abort this run? Hosts not started yet wait for the next opening." { "Abort" }
                }
            }
            @if !hosts.is_empty() {
                table.grid.small {
                    thead { tr { th { "Batch" } th { "Host" } th { "Status" } th { "Install" } th { "Note" } } }
                    tbody {
                        @for (h, hostname) in hosts {
                            tr data-host=(h.agent_id) {
                                td.num { (h.batch + 1) }
                                td { a href=(format!("/agents/{}", h.agent_id)) { (hostname.as_deref().unwrap_or(&h.agent_id)) } }
                                td { (pill(&h.status)) }
                                td.id {
                                    @match &h.install_command_id {
                                        Some(c) => { (short(c)) }
                                        None => { (none()) }
                                    }
                                }
                                td.mut { (h.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn windows_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let now = bus_schema::now_ms();
    let ws = match windows::list(&state.db).await {
        Ok(w) => w,
        Err(e) => return unavailable(e),
    };
    let names: std::collections::HashMap<String, String> =
        ws.iter().map(|w| (w.id.clone(), w.name.clone())).collect();
    let views: Vec<Value> = ws.iter().map(|w| windows::view(w, now)).collect();
    let recent = match run::Entity::find()
        .order_by_desc(run::Column::StartedAt)
        .limit(RECENT_RUNS)
        .all(&state.db)
        .await
    {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let mut cards = Vec::with_capacity(recent.len());
    for r in &recent {
        match runs::hosts(&state.db, &r.id).await {
            Ok(h) => cards.push((r, h)),
            Err(e) => return unavailable(e),
        }
    }
    let body = html! {
        section.card {
            h2 { "Maintenance windows" }
            p.mut {
                "Approved updates are installed only while a window is open, batch by batch; "
                "hosts offline at their turn wait for the next opening."
            }
            div data-live="windows" #windows-wrap { (windows_table(&who, &views)) }
        }
        section.card {
            h2 { "Recent runs" }
            div data-live="runs" #runs-wrap {
                @if cards.is_empty() {
                    div.empty.small { "No runs yet." }
                }
                @for (r, hosts) in &cards {
                    (run_card(&who, r, names.get(&r.window_id).map(String::as_str).unwrap_or("(deleted window)"), hosts))
                }
            }
        }
        @if who.can(Role::Operator) {
            section.card { (PreEscaped(WINDOW_FORM)) }
        }
    };
    page(&who, "windows", "Maintenance windows", body).into_response()
}
