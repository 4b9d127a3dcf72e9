//! The Services page (`/services`): per watched unit, how many hosts report
//! it active, failed, inactive or otherwise; a filter by unit and state
//! ("where is php-fpm down right now?") listing each host with a link to
//! its page; the watched-service lists with a form to add one and a button
//! to remove one (both through the API, with the CSRF header `app.js`
//! adds). Live on `service` events. Reads `crate::services`; writes
//! nothing itself. Also the host page's Services section.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::services::{lists, view};
use crate::state::AppState;

use super::frame::{none, page, time};

/// Adding a list (fixed markup; `app.js` sends it as JSON).
const WATCH_FORM: &str = "<h2>Watch units</h2><form data-api=\"/api/v1/services/watches\" data-reload=\"1\" class=\"stack-form\" id=\"watch-form\">\
<label>Name<input name=\"name\" required maxlength=\"64\" placeholder=\"web\"></label>\
<label>Hosts (selector)<input name=\"selector\" required value=\"all\" placeholder=\"all, label:role=web, host:web-*\"></label>\
<label>Units (comma-separated)<input name=\"units\" data-type=\"list\" required placeholder=\"nginx, php8.2-fpm\"></label>\
<button class=\"primary\">Add list</button><span class=\"form-error\"></span></form>";

fn state_pill(active_state: &str) -> Markup {
    let cls = match active_state {
        "active" => "online",
        "failed" => "failed",
        "inactive" => "offline",
        _ => "running",
    };
    html! { span class=(format!("pill s-{cls}")) data-state=(active_state) { (active_state) } }
}

/// Rows of units on hosts (the filtered list; also the host page's section).
pub(super) fn rows_table(rows: &[view::Row], with_host: bool) -> Markup {
    html! {
        table.grid #service-rows {
            thead { tr {
                th { "Unit" } @if with_host { th { "Host" } } th { "State" } th { "Sub-state" }
                th { "Load" } th { "Since" } th { "Last report" }
            } }
            tbody {
                @for r in rows {
                    tr data-unit=(r.state.unit) data-agent=(r.state.agent_id) {
                        td { code { (r.state.unit) } }
                        @if with_host {
                            td { a href=(format!("/agents/{}", r.state.agent_id)) { (r.hostname) } }
                        }
                        td { (state_pill(&r.state.active_state)) }
                        td { (r.state.sub_state) }
                        td.mut { (r.state.load_state) }
                        td { (time(r.state.since)) }
                        td { (time(r.state.seen_at)) }
                    }
                }
            }
        }
    }
}

fn units_table(units: &[Value]) -> Markup {
    html! {
        table.grid #service-units {
            thead { tr {
                th { "Unit" } th { "Hosts" } th { "Active" } th { "Failed" } th { "Inactive" } th { "Other" } th {}
            } }
            tbody {
                @for u in units {
                    @let name = u["unit"].as_str().unwrap_or("");
                    tr data-unit=(name) {
                        td { code { (name) } }
                        td.num { (u["hosts"]) }
                        td.num { (u["active"]) }
                        td.num { @if u["failed"].as_u64().unwrap_or(0) > 0 { b.bad { (u["failed"]) } } @else { (u["failed"]) } }
                        td.num { (u["inactive"]) }
                        td.num { (u["other"]) }
                        td { @if u["down"].as_u64().unwrap_or(0) > 0 {
                            a href=(format!("/services?unit={}&state=down", name)) { "where is it down?" }
                        } }
                    }
                }
            }
        }
    }
}

fn watches_table(who: &Principal, ws: &[Value]) -> Markup {
    html! {
        @if ws.is_empty() {
            div.empty.small { "No watched-service lists yet: hosts report no unit states until one names their units." }
        } @else {
            table.grid #watches {
                thead { tr { th { "Name" } th { "Hosts" } th { "Units" } th { "By" } th {} } }
                tbody {
                    @for w in ws {
                        tr data-watch=(w["name"].as_str().unwrap_or("")) {
                            td { b { (w["name"].as_str().unwrap_or("")) } }
                            td { code { (w["selector_text"].as_str().unwrap_or("")) } }
                            td { @for u in w["units"].as_array().into_iter().flatten() { span.chip { (u.as_str().unwrap_or("")) } " " } }
                            td.mut { (w["created_by"].as_str().unwrap_or("")) }
                            td {
                                @if who.can(Role::Operator) {
                                    button.danger.small data-api=(format!("/api/v1/services/watches/{}", w["id"].as_str().unwrap_or("")))
                                        data-method="DELETE" data-confirm=(format!("Stop watching the units of {}?", w["name"].as_str().unwrap_or(""))) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn services_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(f): Query<view::Filter>,
) -> Response {
    let (f, filter_error) = match f.clone().checked() {
        Ok(f) => (f, None),
        Err(e) => (view::Filter::default(), Some(e.to_string())),
    };
    let units = match view::fleet_units(&state.db).await {
        Ok(u) => u,
        Err(e) => return super::frame::unavailable(e),
    };
    let filtered = match view::rows(&state.db, &f).await {
        Ok(r) => r,
        Err(e) => return super::frame::unavailable(e),
    };
    let watches = match lists::list(&state.db).await {
        Ok(w) => w.iter().map(lists::view).collect::<Vec<_>>(),
        Err(e) => return super::frame::unavailable(e),
    };
    let unit_text = f.unit.clone().unwrap_or_default();
    let state_text = f.state.clone().unwrap_or_default();
    let body = html! {
        section.card {
            h2 { "Watched units across the fleet" }
            div data-live="service-units" #service-units-wrap {
                @if units.is_empty() { div.empty.small { "No host reports a watched unit yet." } }
                @else { (units_table(&units)) }
            }
        }
        section.card {
            h2 { "Where is it down?" }
            form.filters method="get" action="/services" #service-filter {
                label { "Unit " input name="unit" value=(unit_text) placeholder="php-fpm"; }
                label { "State "
                    select name="state" {
                        @for s in ["", "down", "active", "inactive", "failed", "activating", "deactivating", "reloading"] {
                            option value=(s) selected[s == state_text] { @if s.is_empty() { "any" } @else { (s) } }
                        }
                    }
                }
                button { "Show" }
            }
            @if let Some(e) = filter_error { p.form-error.on { (e) } }
            div data-live="service-rows" #service-rows-wrap {
                @if filtered.0.is_empty() { div.empty.small #no-service-rows { "No unit matches." } }
                @else { (rows_table(&filtered.0, true)) }
                @if filtered.1 { p.mut { "More matched; narrow the filter." } }
            }
        }
        section.card {
            h2 { "Watched-service lists" }
            div data-live="watches" #watches-wrap { (watches_table(&who, &watches)) }
        }
        @if who.can(Role::Operator) {
            section.card { (PreEscaped(WATCH_FORM)) }
        }
    };
    page(&who, "services", "Services", body).into_response()
}

/// The host page's Services section (its watched units).
pub(super) async fn host_section(state: &AppState, agent_id: &str) -> Markup {
    let f = view::Filter {
        agent: Some(agent_id.to_string()),
        ..Default::default()
    };
    match view::rows(&state.db, &f).await {
        Ok((rows, _)) => html! {
            section.card #host-services {
                h2 { "Services" }
                @if rows.is_empty() { p.mut { "No watched units on this host. " a href="/services" { "Watch some" } "." } }
                @else { (rows_table(&rows, false)) }
            }
        },
        Err(_) => html! { section.card #host-services { h2 { "Services" } (none()) } },
    }
}

/// The fleet page's count of watched units down (a link to them).
pub(super) async fn fleet_count(state: &AppState) -> Markup {
    match view::down_count(&state.db).await {
        Ok(n) => html! {
            a class="count c-services-down" #count-services-down href="/services?state=down" {
                b { (n) } span { "services down" }
            }
        },
        Err(_) => html! {},
    }
}
