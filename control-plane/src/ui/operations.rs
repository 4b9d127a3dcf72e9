//! The live operations page (`/operations`): what the fleet is running now
//! (commands not final yet) counted by source, origin, action and status,
//! and listed with links to each command's host and job; plus the fleet
//! page's "operations running" count. Filters are a GET form, so they stay
//! in the URL; the live regions refresh on command events (`init.js`).
//!
//! Owns the markup only: the query and its checks are `crate::operations`;
//! nothing is written.

use std::collections::{BTreeMap, HashMap};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup};

use crate::auth::{urlencode, Principal};
use crate::operations::{self, Filter, OpsError, View};
use crate::state::AppState;

use super::frame::{by_html, page, pill, short, time, unavailable};

/// `/operations?…` with `f`'s filters, `set` replacing some of them.
fn link(f: &Filter, set: &[(&str, &str)]) -> String {
    let mut kv: Vec<(&str, String)> = vec![
        ("action", f.action.clone().unwrap_or_default()),
        ("source", f.source.clone().unwrap_or_default()),
        ("status", f.status.clone().unwrap_or_default()),
        ("agent", f.agent.clone().unwrap_or_default()),
    ];
    for (k, v) in set {
        if let Some(e) = kv.iter_mut().find(|(key, _)| key == k) {
            e.1 = v.to_string();
        }
    }
    let qs: Vec<String> = kv
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if qs.is_empty() {
        "/operations".into()
    } else {
        format!("/operations?{}", qs.join("&"))
    }
}

/// One count table: each key a filter link, its share as a bar.
fn count_table(
    id: &str,
    title: &str,
    counts: &BTreeMap<String, u64>,
    total: u64,
    href: impl Fn(&str) -> Option<String>,
) -> Markup {
    let t = total.max(1) as f64;
    html! {
        div.ops-count {
            h3 { (title) }
            table.grid.small id=(id) {
                tbody {
                    @if counts.values().all(|n| *n == 0) {
                        tr { td.mut { "none" } }
                    }
                    @for (k, n) in counts.iter().filter(|(_, n)| **n > 0) {
                        tr data-key=(k) {
                            td {
                                @match href(k) {
                                    Some(h) => a href=(h) { code { (k) } },
                                    None => code { (k) },
                                }
                            }
                            td.num { (n) }
                            td { span.meter { i data-w=(format!("{:.1}", *n as f64 / t * 100.0)) {} } }
                        }
                    }
                }
            }
        }
    }
}

/// The counts and the list (the page's live region).
fn view_html(v: &View) -> Markup {
    let f = &v.filter;
    let c = &v.counts;
    html! {
        div.counts #ops-counts {
            a class="count" #ops-total href=(link(f, &[])) { b { (c.total) } span { "running now" } }
            @for s in ["user", "system"] {
                a class=(format!("count src-count-{s}")) id=(format!("ops-source-{s}"))
                    href=(link(f, &[("source", s)])) {
                    b { (c.by_source.get(s).copied().unwrap_or(0)) } span { "by " (s) }
                }
            }
        }
        div.ops-counts {
            (count_table("ops-by-action", "By action", &c.by_action, c.total, |k| Some(link(f, &[("action", k)]))))
            (count_table("ops-by-origin", "By origin", &c.by_origin, c.total, |_| None))
            (count_table("ops-by-status", "By status", &c.by_status, c.total, |k| Some(link(f, &[("status", k)]))))
        }
        @if v.operations.is_empty() {
            div.empty #ops-empty {
                "Nothing is running" @if f.action.is_some() || f.source.is_some() || f.status.is_some() || f.agent.is_some() {
                    " that matches these filters (" a href="/operations" { "clear them" } ")"
                } "."
            }
        } @else {
            table.grid #ops {
                thead { tr {
                    th { "Started" } th { "Host" } th { "Action" } th { "By" } th { "Origin" }
                    th { "Status" } th { "Job" } th { "Command" }
                } }
                tbody {
                    @for o in &v.operations {
                        tr data-command=(o.command_id) data-action=(o.action) data-source=(o.source) {
                            td { (time(o.created_at)) }
                            td {
                                a.host href=(format!("/agents/{}", o.agent_id)) {
                                    (o.display_name.as_deref().filter(|d| !d.is_empty()).unwrap_or(if o.hostname.is_empty() { &o.agent_id } else { &o.hostname }))
                                }
                            }
                            td { code { (o.action) } }
                            td { (by_html(&o.requested_by, &o.source)) }
                            td { (o.origin) }
                            td { (pill(&o.status)) }
                            td {
                                @match &o.job_id {
                                    Some(j) => a.id href=(format!("/jobs/{j}")) { (short(j)) },
                                    None => span.mut { "—" },
                                }
                            }
                            td { a.id href=(format!("/agents/{}#cmd-{}", o.agent_id, o.command_id)) { (short(&o.command_id)) } }
                        }
                    }
                }
            }
            @if v.truncated {
                p.mut.small { "Showing the newest " (v.operations.len()) " of " (c.total) "; narrow the filters to see the rest." }
            }
        }
    }
}

/// The filter form (a GET form: the filters stay in the URL).
fn filter_form(f: &Filter) -> Markup {
    let sel = |cur: &Option<String>, v: &str| cur.as_deref() == Some(v);
    html! {
        form.toolbar #ops-filter method="get" action="/operations" {
            label { "Action"
                select name="action" #ops-action {
                    option value="" { "any action" }
                    @for a in bus_schema::catalogue::all() {
                        option value=(a.name) selected[sel(&f.action, a.name)] { (a.name) }
                    }
                }
            }
            label { "Source"
                select name="source" #ops-source {
                    option value="" { "user and system" }
                    option value="user" selected[sel(&f.source, "user")] { "user" }
                    option value="system" selected[sel(&f.source, "system")] { "system" }
                }
            }
            label { "Status"
                select name="status" #ops-status {
                    option value="" { "any open status" }
                    @for s in operations::open_statuses() {
                        option value=(s) selected[sel(&f.status, s)] { (s) }
                    }
                }
            }
            label { "Host"
                input type="search" name="agent" #ops-agent placeholder="hostname, web-* or id"
                    value=(f.agent.clone().unwrap_or_default());
            }
            button #ops-apply { "Filter" }
            a href="/operations" { "Clear" }
        }
    }
}

/// `GET /operations`: the live operations page. A bad filter shows what is
/// wrong (400) and the form to fix it.
pub(super) async fn operations_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let f = match Filter::from_query(&q) {
        Ok(f) => f,
        Err(OpsError::Bad(m)) => {
            let body = html! {
                (filter_form(&Filter::default()))
                div.form-error #ops-error { (m) }
            };
            return (
                StatusCode::BAD_REQUEST,
                page(&who, "operations", "Live operations", body),
            )
                .into_response();
        }
        Err(OpsError::Db(e)) => return unavailable(e),
    };
    let v = match operations::view(&state.db, &f).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let body = html! {
        p.mut.small {
            "Commands not finished yet across the fleet, live. Finished ones are on each host's page and in "
            a href="/jobs" { "Jobs" } "."
        }
        (filter_form(&f))
        section.card {
            div data-live="operations" #ops-wrap { (view_html(&v)) }
        }
    };
    page(&who, "operations", "Live operations", body).into_response()
}

/// The fleet page's count of operations running now, linking here.
pub(super) async fn fleet_count(state: &AppState) -> Markup {
    let f = Filter {
        limit: 1,
        ..Filter::default()
    };
    match operations::view(&state.db, &f).await {
        Ok(v) => html! {
            a class="count c-operations" #count-operations href="/operations" {
                b { (v.counts.total) } span { "operations running" }
            }
        },
        Err(_) => html! {},
    }
}
