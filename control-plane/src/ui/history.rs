//! The update history page (`/updates/history`): every install attempt per
//! host and package with versions before and after, status, who approved
//! it and in which window; filtered by host, package and age, paged, with
//! a CSV export link (the API's). Reads `crate::windows::history`; writes
//! nothing.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::html;

use crate::auth::{self, Principal};
use crate::state::AppState;
use crate::windows::history::{self, Filter};

use super::frame::{none, page, pill, short, time, unavailable};

pub(super) async fn history_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(f): Query<Filter>,
) -> Response {
    let per_page = history::PER_PAGE;
    let listed = match history::list(&state.db, &f, bus_schema::now_ms(), per_page).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let mut qs = vec![];
    for (k, v) in [
        ("agent", &f.agent),
        ("package", &f.package),
        ("since", &f.since),
    ] {
        if let Some(v) = v.as_ref().filter(|s| !s.is_empty()) {
            qs.push(format!("{k}={}", auth::urlencode(v)));
        }
    }
    let qs = qs.join("&");
    let amp = if qs.is_empty() { "" } else { "&" };
    let page_no = f.page.unwrap_or(1).max(1);
    let field = |name: &str, label: &str, v: &Option<String>, ph: &str| {
        html! { label { (label) input name=(name) value=(v.as_deref().unwrap_or("")) placeholder=(ph); } }
    };
    let body = html! {
        form.toolbar method="get" action="/updates/history" {
            (field("agent", "Host (agent id)", &f.agent, "UB3X… (as on the host page)"))
            (field("package", "Package", &f.package, "openssl"))
            (field("since", "Since", &f.since, "7d, 2026-11-24"))
            button { "Filter" }
            a.btn href=(format!("/api/v1/updates/history?format=csv{amp}{qs}")) #export-csv { "Export CSV" }
        }
        div data-live="history" #history-wrap {
            @match &listed {
                Err(e) => { div.note.bad { (e) } }
                Ok((rows, _)) if rows.is_empty() => { div.empty.small { "No installs match." } }
                Ok((rows, total)) => {
                    table.grid #history {
                        thead { tr {
                            th { "When" } th { "Host" } th { "Package" } th { "Before" } th { "After" }
                            th { "Status" } th { "Exit" } th { "Approved by" } th { "Run" }
                        } }
                        tbody {
                            @for r in rows {
                                tr title=(r.output) {
                                    td { (time(r.at)) }
                                    td { a href=(format!("/agents/{}", r.agent_id)) { (r.hostname) } }
                                    td { code { (r.package) } }
                                    td { (r.version_before) }
                                    td {
                                        @match &r.version_after {
                                            Some(v) => { (v) }
                                            None => { (none()) }
                                        }
                                        @if r.version_after.as_deref() != Some(r.candidate.as_str()) {
                                            " " span.mut { "(asked " (r.candidate) ")" }
                                        }
                                    }
                                    td { (pill(&r.status)) }
                                    td.num {
                                        @match r.exit_code {
                                            Some(c) => { (c) }
                                            None => { (none()) }
                                        }
                                    }
                                    td { (r.approved_by) }
                                    td.id {
                                        @match &r.run_id {
                                            Some(id) => { (short(id)) }
                                            None => { (none()) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p.mut.small {
                        (total) " installs"
                        @if page_no > 1 {
                            " · " a href=(format!("/updates/history?page={}{amp}{qs}", page_no - 1)) { "newer" }
                        }
                        @if page_no * per_page < *total {
                            " · " a href=(format!("/updates/history?page={}{amp}{qs}", page_no + 1)) { "older" }
                        }
                    }
                }
            }
        }
    };
    page(&who, "history", "Update history", body).into_response()
}
