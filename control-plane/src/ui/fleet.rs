//! The fleet page (`/fleet`): every host with status, usage and labels,
//! filtered and paged. Pages check no roles and write no rows.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::{self, Principal};
use crate::fleet;
use crate::state::AppState;

use super::frame::{
    bar, labels_html, none, ops_html, page, parse_json, pill, short, time, unavailable,
};

#[derive(Deserialize, Default)]
pub(super) struct FleetQuery {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<u64>,
}

pub(super) async fn fleet(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<FleetQuery>,
) -> Response {
    match fleet_body(&state, &q).await {
        Ok(body) => page(&who, "fleet", "Fleet", body).into_response(),
        Err(e) => unavailable(e),
    }
}

/// The fleet page's own URL with `change` applied to the current query
/// (an empty value removes the key).
fn fleet_link(q: &FleetQuery, change: &[(&str, String)]) -> String {
    let mut p: BTreeMap<&str, String> = BTreeMap::new();
    if let Some(v) = q.q.as_ref().filter(|s| !s.is_empty()) {
        p.insert("q", v.clone());
    }
    if let Some(v) = q.status.as_ref().filter(|s| !s.is_empty()) {
        p.insert("status", v.clone());
    }
    if let Some(v) = &q.sort {
        p.insert("sort", v.clone());
    }
    if let Some(v) = &q.dir {
        p.insert("dir", v.clone());
    }
    for (k, v) in change {
        if v.is_empty() {
            p.remove(k);
        } else {
            p.insert(k, v.clone());
        }
    }
    let qs: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("{k}={}", auth::urlencode(v)))
        .collect();
    format!("/fleet?{}", qs.join("&"))
}

async fn fleet_body(state: &AppState, q: &FleetQuery) -> Result<Markup, sea_orm::DbErr> {
    let counts = fleet::status_counts(&state.db).await?;
    let total_all: i64 = counts.values().sum();
    let status = q.status.clone().unwrap_or_default();
    let text = q.q.clone().unwrap_or_default();
    let text = text.trim();
    let filter = fleet::Filter {
        text: text.to_string(),
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        sort: q
            .sort
            .as_deref()
            .and_then(fleet::Sort::parse)
            .unwrap_or_default(),
        desc: q.dir.as_deref() == Some("desc"),
    };
    let desc = filter.desc;
    let fleet::Listing {
        rows,
        total,
        page: page_no,
        pages,
    } = fleet::list(
        &state.db,
        &filter,
        Some((q.page.unwrap_or(1), fleet::PER_PAGE)),
    )
    .await?;
    let ids: Vec<String> = rows.iter().map(|a| a.id.clone()).collect();
    let clocks = crate::skew::load(&state.db, &ids).await?;
    let policy = crate::version_policy::Policy::of(&state.cfg);

    let th = |key: &str, label: &str| {
        let cur = q.sort.as_deref().unwrap_or("hostname") == key;
        let next_dir = if cur && !desc { "desc" } else { "asc" };
        let arrow = match (cur, desc) {
            (false, _) => "",
            (true, true) => " ↓",
            (true, false) => " ↑",
        };
        html! {
            th { a href=(fleet_link(q, &[("sort", key.into()), ("dir", next_dir.into())])) { (label) (arrow) } }
        }
    };
    let on = |yes: bool| if yes { " on" } else { "" };
    Ok(html! {
        div data-live="counts" #counts.counts {
            a class=(format!("count{}", on(status.is_empty())))
                href=(fleet_link(q, &[("status", String::new()), ("page", String::new())])) {
                b { (total_all) } span { "all agents" }
            }
            @for s in ["online", "offline", "pending", "revoked"] {
                a class=(format!("count c-{s}{}", on(status == s)))
                    href=(fleet_link(q, &[("status", s.to_string()), ("page", String::new())]))
                    id=(format!("count-{s}")) {
                    b { (counts.get(s).copied().unwrap_or(0)) } span { (s) }
                }
            }
            (super::updates::fleet_counts(state).await)
            (super::services::fleet_count(state).await)
            (super::operations::fleet_count(state).await)
        }
        form.toolbar method="get" action="/fleet" {
            input type="search" name="q" #q placeholder="Search hostname, id or label" value=(text);
            select name="status" #status-filter {
                option value="" { "any status" }
                @for s in fleet::STATUSES {
                    option selected[status == *s] { (s) }
                }
            }
            button { "Filter" }
        }
        div data-live="fleet" #fleet-table {
            @if rows.is_empty() {
                div.empty {
                    "No agents match. Enrol a host from the "
                    a href="/enrolment" { "Enrolment" }
                    " page, or run " code { "drover dev" } "."
                }
            } @else {
                table.grid #agents {
                    thead { tr {
                        (th("hostname", "Host")) (th("status", "Status")) (th("last_seen", "Last seen"))
                        th { "CPU" } th { "Memory" } th { "Disk" } th { "Labels" } th { "Running" }
                    } }
                    tbody {
                        @for a in &rows {
                            @let skew = clocks.get(&a.id);
                            @let m = parse_json(&a.metrics);
                            @let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
                            tr data-id=(a.id) class=(format!("st-{}", a.status)) {
                                td {
                                    @if let Some(name) = &a.display_name {
                                        a.host href=(format!("/agents/{}", a.id)) { (name) }
                                        " " span.mut.hostname { (a.hostname) }
                                    } @else {
                                        a.host href=(format!("/agents/{}", a.id)) { (a.hostname) }
                                    }
                                    div.id { (short(&a.id)) }
                                    div { (super::version::version(&policy, a)) }
                                }
                                td { (pill(&a.status)) }
                                td { (time(a.last_seen)) div { (super::clock::clock(skew)) } }
                                td { @if m.is_null() { (none()) } @else { (bar(f("cpu_percent"), 100.0)) } }
                                td { (bar(f("mem_used_bytes"), f("mem_total_bytes"))) }
                                td { (bar(f("disk_used_bytes"), f("disk_total_bytes"))) }
                                td { (labels_html(&parse_json(&a.labels))) }
                                td { (ops_html(&parse_json(&a.operations))) }
                            }
                        }
                    }
                }
            }
            div.pager {
                span class="mut" { (total) " agents · page " (page_no) " of " (pages) }
                @if page_no > 1 {
                    a.btn href=(fleet_link(q, &[("page", (page_no - 1).to_string())])) { "← Previous" }
                }
                @if page_no < pages {
                    a.btn href=(fleet_link(q, &[("page", (page_no + 1).to_string())])) { "Next →" }
                }
            }
        }
    })
}
