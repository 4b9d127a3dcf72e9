//! The rollout pages: `/rollouts` (every rollout with its progress, and a
//! form to start one) and `/rollouts/{id}` (a progress bar per wave, each
//! host's state badge, pause/resume/abort buttons), both refreshed live
//! from the event stream (rollout and command events). Reads
//! `crate::rollouts`' JSON views; every change goes through the API.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::rollouts::{self, RolloutError};
use crate::state::AppState;

use super::frame::{none, page, short, time, unavailable};

/// Starting a rollout (fixed markup; `app.js` sends it as JSON).
const START_FORM: &str = "<h2>Start a rollout</h2><form data-api=\"/api/v1/rollouts\" data-reload=\"1\" class=\"stack-form\" id=\"rollout-form\">\
<label>Version (a published release)<input name=\"version\" required maxlength=\"64\" placeholder=\"1.4.0\"></label>\
<label>Hosts (selector)<input name=\"selector\" required value=\"all\" placeholder=\"all, label:env=prod, host:web-*\"></label>\
<label>Canary (hosts or %)<input name=\"canary\" placeholder=\"1 or 5%\"></label>\
<label>Waves (cumulative %)<input name=\"waves\" value=\"10%,50%,100%\"></label>\
<label>Pause after each wave<input name=\"pause\" value=\"10m\" placeholder=\"30s, 10m, 2h, 0\"></label>\
<label>Halt after more failures than (hosts or %)<input name=\"max_failures\" value=\"2%\"></label>\
<button class=\"primary\">Start rollout</button><span class=\"form-error\"></span></form>";

/// A host or rollout state as a badge (`rolled_back` reads "rolled back").
fn badge(state: &str) -> Markup {
    html! { span class=(format!("pill s-{state}")) { (state.replace('_', " ")) } }
}

/// A bar of `total` hosts: healthy green, failed and rolled back red,
/// moving blue; the rest (pending, offline) the track.
fn progress(counts: &Value, total: i64) -> Markup {
    let n = |k: &str| counts[k].as_i64().unwrap_or(0);
    let pct = |x: i64| {
        if total > 0 {
            x as f64 * 100.0 / total as f64
        } else {
            0.0
        }
    };
    let ok = n("healthy");
    let bad = n("failed") + n("rolled_back");
    let moving = n("downloading") + n("installed");
    html! {
        span.progress title=(format!("{ok} healthy, {bad} failed, {moving} updating of {total}")) {
            i.p-ok data-w=(format!("{:.1}", pct(ok))) {}
            i.p-bad data-w=(format!("{:.1}", pct(bad))) {}
            i.p-run data-w=(format!("{:.1}", pct(moving))) {}
        }
    }
}

fn counts_text(c: &Value) -> String {
    rollouts::HOST_STATES
        .iter()
        .filter_map(|s| {
            let n = c[*s].as_i64().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", s.replace('_', " ")))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn list_table(rs: &[Value]) -> Markup {
    html! {
        @if rs.is_empty() {
            div.empty.small { "No rollouts yet. Publish a release (drover releases publish), then start one here or with drover rollout start." }
        } @else {
            table.grid #rollouts {
                thead { tr {
                    th { "Rollout" } th { "Version" } th { "Hosts" } th { "State" } th { "Progress" }
                    th { "Plan" } th { "Started" } th { "By" }
                } }
                tbody {
                    @for r in rs {
                        @let id = r["id"].as_str().unwrap_or("");
                        tr data-rollout=(id) {
                            td.id { a href=(format!("/rollouts/{id}")) { (short(id)) } }
                            td { b { (r["version"].as_str().unwrap_or("")) } }
                            td { code { (r["selector_text"].as_str().unwrap_or("")) } }
                            td { (badge(r["state"].as_str().unwrap_or(""))) }
                            td {
                                (progress(&r["counts"], r["host_count"].as_i64().unwrap_or(0)))
                                " " span.mut.small { (counts_text(&r["counts"])) }
                            }
                            td.small { (plan_text(r)) }
                            td { (time(r["created_at"].as_i64().unwrap_or(0))) }
                            td { (r["created_by"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn plan_text(r: &Value) -> String {
    let canary = r["canary"].as_str().unwrap_or("");
    format!(
        "{}waves {}, pause {}, max failures {}",
        if canary.is_empty() {
            String::new()
        } else {
            format!("canary {canary}, ")
        },
        r["waves"].as_str().unwrap_or(""),
        rollouts::plan::pause_text(r["pause_secs"].as_i64().unwrap_or(0)),
        r["max_failures"].as_str().unwrap_or("")
    )
}

pub(super) async fn rollouts_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let v = match rollouts::list(&state).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let rs = v["rollouts"].as_array().cloned().unwrap_or_default();
    let body = html! {
        section.card {
            h2 { "Agent rollouts" }
            p.mut {
                "A release goes to the canary hosts first, then wave by wave; a wave starts when the one "
                "before is through and its pause has run. A failed canary, too many failures or a yank halt it."
            }
            div data-live="rollouts" #rollouts-wrap { (list_table(&rs)) }
        }
        @if who.can(Role::Operator) {
            section.card { (PreEscaped(START_FORM)) }
        }
    };
    page(&who, "rollouts", "Rollouts", body).into_response()
}

fn detail_body(who: &Principal, r: &Value) -> Markup {
    let id = r["id"].as_str().unwrap_or("");
    let st = r["state"].as_str().unwrap_or("");
    html! {
        p #rollout-head {
            "Version " b { (r["version"].as_str().unwrap_or("")) } " to "
            code { (r["selector_text"].as_str().unwrap_or("")) } " · " (badge(st))
            " · " (plan_text(r)) " · started " (time(r["created_at"].as_i64().unwrap_or(0)))
            " by " (r["created_by"].as_str().unwrap_or(""))
            @if let Some(why) = r["halted_reason"].as_str() { " · " span.mut #halted-reason { (why) } }
        }
        @if who.can(Role::Operator) {
            p.actions {
                @if st == "running" {
                    button.small #rollout-pause data-api=(format!("/api/v1/rollouts/{id}/pause")) { "Pause" } " "
                }
                @if st == "paused" {
                    button.small.primary #rollout-resume data-api=(format!("/api/v1/rollouts/{id}/resume")) { "Resume" } " "
                }
                @if st == "running" || st == "paused" {
                    button.small.danger #rollout-abort data-api=(format!("/api/v1/rollouts/{id}/abort"))
                        data-confirm="Abort this rollout? Hosts not sent yet keep their version; updates already sent are not undone." { "Abort" }
                }
            }
        }
        table.grid #waves {
            thead { tr { th { "Wave" } th { "Share" } th { "Hosts" } th { "Progress" } th { "States" } } }
            tbody {
                @for w in r["waves_detail"].as_array().into_iter().flatten() {
                    @let current = w["wave"] == r["current_wave"] && (st == "running" || st == "paused");
                    tr data-wave=(w["wave"]) class=(if current { "current" } else { "" }) {
                        td { b { (w["name"].as_str().unwrap_or("")) } @if current { " " span.mut { "(now)" } } }
                        td { (w["share"].as_str().unwrap_or("")) }
                        td.num { (w["total"]) }
                        td { (progress(&w["counts"], w["total"].as_i64().unwrap_or(0))) }
                        td.small { (counts_text(&w["counts"])) }
                    }
                }
            }
        }
        h2 { "Hosts" }
        table.grid #rollout-hosts {
            thead { tr {
                th { "Wave" } th { "Host" } th { "State" } th { "From" } th { "Running" } th { "Update" } th { "Reason" }
            } }
            tbody {
                @for h in r["hosts"].as_array().into_iter().flatten() {
                    @let aid = h["agent_id"].as_str().unwrap_or("");
                    tr data-host=(aid) {
                        td.num { @if h["wave"] == 0 { "canary" } @else if h["wave"].as_i64() == Some(-1) { (none()) } @else { (h["wave"]) } }
                        td { a href=(format!("/agents/{aid}")) { (h["hostname"].as_str().filter(|s| !s.is_empty()).unwrap_or(aid)) } }
                        td { (badge(h["state"].as_str().unwrap_or(""))) }
                        td { (h["from_version"].as_str().unwrap_or("")) }
                        td { (h["running_version"].as_str().unwrap_or("")) }
                        td.id {
                            @match h["command_id"].as_str() {
                                Some(c) => { (short(c)) }
                                None => { (none()) }
                            }
                        }
                        td.mut { (h["reason"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub(super) async fn rollout_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let r = match rollouts::detail(&state, &id).await {
        Ok(r) => r,
        Err(RolloutError::NotFound(_)) => {
            return (
                axum::http::StatusCode::NOT_FOUND,
                super::message_page(
                    "No such rollout",
                    "No rollout has this id; the rollouts page lists them.",
                ),
            )
                .into_response()
        }
        Err(e) => return unavailable(e),
    };
    let body = html! {
        section.card {
            h2 { "Rollout " span.id { (short(&id)) } }
            div data-live="rollout" #rollout-wrap { (detail_body(&who, &r)) }
        }
    };
    page(&who, "rollouts", "Rollout", body).into_response()
}
