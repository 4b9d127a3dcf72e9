//! The jobs list (`/jobs`) and one job's page (`/jobs/{id}`) with per-host
//! progress. Job state comes from [`crate::jobs::view`]; nothing is written.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::db::entities::{agent, command, job};
use crate::state::AppState;

use super::frame::{by_html, outcome_note, page, parse_json, pill, short, time, unavailable};

/// The form that starts a job (fixed markup; `app.js` fills it in).
const JOB_FORM: &str = "<section class=\"card\"><h2>New job</h2><form id=\"job-form\" class=\"runner\">\
<div class=\"selector\" id=\"selector\"><label>Targets<select id=\"sel-mode\"><option value=\"all\">all approved agents</option><option value=\"hostname\">hostname pattern</option><option value=\"labels\">labels</option><option value=\"agents\">agent ids</option></select></label>\
<label id=\"sel-value-wrap\" hidden>Value<input id=\"sel-value\" placeholder=\"web-*\"></label>\
<span class=\"preview\" id=\"preview\">…</span></div>\
<label>Action<select id=\"action\" name=\"action\"></select></label><p class=\"mut\" id=\"action-desc\"></p>\
<div id=\"params\" class=\"fields\"></div>\
<div class=\"row\"><button class=\"primary\" id=\"submit-job\" type=\"submit\">Start job</button><span class=\"form-error\"></span></div></form></section>";

/// A job's progress bar from its per-status `counts` out of `target` hosts.
fn progress(counts: &Value, target: i64) -> Markup {
    let t = target.max(1) as f64;
    html! {
        span.progress {
            @for (k, cls) in [("succeeded", "p-ok"), ("failed", "p-bad"), ("expired", "p-bad"), ("running", "p-run")] {
                @let n = counts[k].as_i64().unwrap_or(0);
                @if n != 0 {
                    i class=(cls) data-w=(format!("{:.2}", n as f64 / t * 100.0)) title=(format!("{n} {k}")) {}
                }
            }
        }
    }
}

fn done_pill(v: &Value) -> Markup {
    if v["done"] == true {
        pill("done")
    } else {
        pill("running")
    }
}

pub(super) async fn jobs_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let js = match job::Entity::find()
        .order_by_desc(job::Column::CreatedAt)
        .limit(50)
        .all(&state.db)
        .await
    {
        Ok(j) => j,
        Err(e) => return unavailable(e),
    };
    let mut views = Vec::with_capacity(js.len());
    for j in &js {
        match crate::jobs::view(&state, j).await {
            Ok(v) => views.push((j, v)),
            Err(e) => return unavailable(e),
        }
    }
    let body = html! {
        @if who.can(Role::Operator) {
            (PreEscaped(JOB_FORM))
        }
        section.card {
            h2 { "Recent jobs" }
            div data-live="jobs" #jobs-wrap {
                @if views.is_empty() {
                    div.empty.small { "No jobs yet." }
                } @else {
                    table.grid #jobs {
                        thead { tr {
                            th { "Created" } th { "Job" } th { "Action" } th { "By" }
                            th { "Targets" } th { "Progress" } th { "State" }
                        } }
                        tbody {
                            @for (j, v) in &views {
                                @let c = &v["counts"];
                                tr {
                                    td { (time(j.created_at)) }
                                    td { a href=(format!("/jobs/{}", j.id)) .id { (short(&j.id)) } }
                                    td { code { (j.action) } }
                                    td { (by_html(&j.requested_by, &j.source)) }
                                    td { (j.target_count) }
                                    td {
                                        (progress(c, j.target_count as i64)) " "
                                        span.num { (c["succeeded"].as_i64().unwrap_or(0)) "/" (j.target_count) " ok" }
                                    }
                                    td { (done_pill(v)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&who, "jobs", "Jobs", body).into_response()
}

pub(super) async fn job_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let j = match job::Entity::find_by_id(id.clone()).one(&state.db).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            let body = html! { div.empty { "No such job. " a href="/jobs" { "All jobs" } } };
            return (
                StatusCode::NOT_FOUND,
                page(&who, "jobs", "Job not found", body),
            )
                .into_response();
        }
        Err(e) => return unavailable(e),
    };
    let (v, hosts) = match (
        crate::jobs::view(&state, &j).await,
        command::Entity::find()
            .filter(command::Column::JobId.eq(j.id.clone()))
            .order_by_asc(command::Column::CreatedAt)
            .limit(500)
            .all(&state.db)
            .await,
    ) {
        (Ok(v), Ok(h)) => (v, h),
        (Err(e), _) | (_, Err(e)) => return unavailable(e),
    };
    let names: BTreeMap<String, String> = match agent::Entity::find()
        .filter(agent::Column::Id.is_in(hosts.iter().map(|c| c.agent_id.clone())))
        .all(&state.db)
        .await
    {
        Ok(a) => a.into_iter().map(|a| (a.id, a.hostname)).collect(),
        Err(e) => return unavailable(e),
    };
    let c = &v["counts"];
    let n = |k: &str| c[k].as_i64().unwrap_or(0);
    let done = v["done"] == true;
    let open: Vec<&command::Model> = hosts
        .iter()
        .filter(|c| {
            !bus_schema::CommandStatus::parse(&c.status)
                .map(|s| s.is_final())
                .unwrap_or(false)
        })
        .collect();
    let body = html! {
        div data-live="job" #job-live data-done=(done) {
            section.card.head {
                div {
                    h2 { code { (j.action) } " on " (j.target_count) " hosts " (done_pill(&v)) }
                    div.id { (j.id) }
                    div class="mut" {
                        "by " (by_html(&j.requested_by, &j.source)) " · " (time(j.created_at))
                        " · selector " code { (j.selector) }
                    }
                }
                div {
                    @if who.can(Role::Operator) && !done && !open.is_empty() {
                        button.danger #cancel-job data-commands=(open.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(",")) {
                            "Cancel " (open.len()) " open commands"
                        }
                    }
                }
            }
            div.stats {
                div.stat { span { "Succeeded" } b #n-ok { (n("succeeded")) } }
                div.stat { span { "Failed" } b { (n("failed") + n("expired")) } }
                div.stat { span { "Running" } b { (n("running")) } }
                div.stat { span { "Pending" } b { (n("pending")) } }
                div.stat { span { "Offline" } b { (n("offline")) } }
            }
            section.card {
                (progress(c, j.target_count as i64))
                table.grid #job-hosts {
                    thead { tr { th { "Host" } th { "Status" } th { "Exit" } th { "Summary" } th { "Output (tail)" } } }
                    tbody {
                        @for h in &hosts {
                            tr data-command=(h.id) {
                                td { a href=(format!("/agents/{}", h.agent_id)) { (names.get(&h.agent_id).unwrap_or(&h.agent_id)) } }
                                td { (pill(&h.status)) }
                                td { @if let Some(e) = h.exit_code { (e) } }
                                td.sum { (h.summary) (outcome_note(h)) }
                                td { pre.tail { (output_tail(h)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&who, "jobs", "Job", body).into_response()
}

/// The last 400 characters of a host's output (stdout, or the whole result).
fn output_tail(h: &command::Model) -> String {
    let Some(r) = h.result.as_deref() else {
        return String::new();
    };
    let r = parse_json(r);
    let s = match (&r["stdout"], &r["output"]) {
        (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
        _ => serde_json::to_string(&r).unwrap_or_default(),
    };
    let n = s.chars().count();
    s.chars().skip(n.saturating_sub(400)).collect()
}
