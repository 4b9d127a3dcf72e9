//! The Schedules page (`/schedules`): scheduled jobs with their next run,
//! last job and last error, a form to add one, and enable / disable /
//! delete buttons (operators; CSRF through `app.js`'s API calls). Changes
//! go through `/api/v1/schedules`; this file only renders. Live: it is
//! re-rendered when commands change (a scheduled run makes some).

use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, PreEscaped};

use crate::auth::{Principal, Role};
use crate::state::AppState;

use super::frame::{by_html, page, pill, short, time, unavailable};

/// Adding a schedule (fixed markup).
const SCHEDULE_FORM: &str = "<section class=\"card\"><h2>New schedule</h2>\
<form data-api=\"/api/v1/schedules\" data-reload=\"1\" class=\"stack-form\" id=\"schedule-form\">\
<label>Name<input name=\"name\" required placeholder=\"nightly-scan\" pattern=\"[A-Za-z0-9._-]{1,64}\"></label>\
<label>Action<select name=\"action\"><option>pkg.scan</option></select></label>\
<label>Targets<input name=\"selector\" required placeholder=\"all, label:env=prod, host:web-*\"></label>\
<label>Cron (5 fields, or 6 with seconds first)<input name=\"cron\" required placeholder=\"0 3 * * *\"></label>\
<label>Time zone (IANA)<input name=\"timezone\" required value=\"UTC\" placeholder=\"Europe/Berlin\"></label>\
<label><input type=\"checkbox\" name=\"enabled\" checked> Enabled</label>\
<button class=\"primary\">Add schedule</button><span class=\"form-error\"></span></form></section>";

pub(super) async fn schedules_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let all = match crate::schedules::list(&state).await {
        Ok(a) => a,
        Err(e) => return unavailable(e),
    };
    let lease = crate::duties::status(&state);
    let operator = who.can(Role::Operator);
    let body = html! {
        section.card {
            h2 { "Schedules" }
            p class="mut" {
                "Jobs the control plane starts by itself, shown as "
                (by_html("schedule:<name>", "system"))
                " on the jobs and host pages. One replica runs them: the holder of the duties lease"
                @if lease["lease"]["held"] == true { " (this one)" }
                "."
            }
            div data-live="schedules" #schedules-wrap {
                @if all.is_empty() {
                    div.empty.small { "No schedules yet." }
                } @else {
                    table.grid #schedules {
                        thead { tr {
                            th { "Name" } th { "Action" } th { "Targets" } th { "Cron" } th { "Zone" }
                            th { "State" } th { "Next run" } th { "Last run" } th { "Last job" } th { "Last error" }
                            @if operator { th {} }
                        } }
                        tbody {
                            @for s in &all {
                                tr data-schedule=(s.id) {
                                    td { (s.name) }
                                    td { code { (s.action) } }
                                    td { code { (crate::selector::Selector::text_of(&serde_json::Value::String(s.selector.clone()))) } }
                                    td { code { (s.cron) } }
                                    td { (s.timezone) }
                                    td { (pill(if s.enabled { "enabled" } else { "disabled" })) }
                                    td { @match s.next_run_at { Some(t) => (time(t)), None => span.mut { "—" } } }
                                    td { (time(s.last_run_at.unwrap_or(0))) }
                                    td {
                                        @if let Some(j) = &s.last_job_id {
                                            a.last-job href=(format!("/jobs/{j}")) { (short(j)) }
                                        } @else { span.mut { "—" } }
                                    }
                                    td.sum { (s.last_error.as_deref().unwrap_or("")) }
                                    @if operator {
                                        td {
                                            @if s.enabled {
                                                button.small data-api=(format!("/api/v1/schedules/{}/disable", s.id)) { "Disable" }
                                            } @else {
                                                button.small data-api=(format!("/api/v1/schedules/{}/enable", s.id)) { "Enable" }
                                            }
                                            " "
                                            button.danger.small data-api=(format!("/api/v1/schedules/{}", s.id)) data-method="DELETE"
                                                data-confirm=(format!("Delete schedule {}? Its past jobs stay.", s.name)) { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if operator {
            (PreEscaped(SCHEDULE_FORM))
        }
    };
    page(&who, "schedules", "Schedules", body).into_response()
}
