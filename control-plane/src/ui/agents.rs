//! One host's page (`/agents/{id}`): facts, metrics charts, modules and its
//! command history. Pages check no roles and write no rows.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::db::entities::{agent, command};
use crate::retention::history::Range;
use crate::state::AppState;

use super::frame::{
    bar, by_html, ops_html, outcome_note, page, parse_json, pill, short, time, unavailable,
};

/// `?range=1h|24h|7d|30d` on a host's page (default 24h).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ChartRange {
    range: Option<String>,
}

/// A chart's points over `range`: raw samples or rollups, whichever
/// retention keeps for it (`retention::history`).
async fn series(
    state: &AppState,
    agent_id: &str,
    range: Range,
    now: i64,
) -> Result<Vec<(i64, f64, f64, f64)>, sea_orm::DbErr> {
    let (_, pts) = crate::retention::history::series(state, agent_id, range, now).await?;
    Ok(pts.iter().map(|p| (p.at, p.cpu, p.mem, p.disk)).collect())
}

/// An inline SVG line chart of percentages.
fn chart(title: &str, pts: &[(i64, f64, f64, f64)], since: i64, until: i64) -> Markup {
    let (w, h) = (560.0, 140.0);
    let span = (until - since).max(1) as f64;
    // Each point's first element is its bucket's start, ms.
    let x_of = |p: &(i64, f64, f64, f64)| ((p.0 - since) as f64 / span * w).clamp(0.0, w);
    let y_of = |v: f64| h - (v.clamp(0.0, 100.0) / 100.0 * h);
    let line = |sel: fn(&(i64, f64, f64, f64)) -> f64| -> String {
        pts.iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p), y_of(sel(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        figure.chart {
            figcaption {
                (title)
                span.legend { i.k-cpu {} "CPU " i.k-mem {} "memory " i.k-disk {} "disk" }
            }
            svg viewBox=(format!("0 0 {w} {h}")) preserveAspectRatio="none" role="img" aria-label=(title) {
                @for g in [25.0, 50.0, 75.0] {
                    @let y = h - g / 100.0 * h;
                    line x1="0" x2=(w) y1=(y) y2=(y) class="gl" {}
                    text x="4" y=(y - 3.0) class="gt" { (g) "%" }
                }
                @if let Some(last) = pts.last() {
                    polyline class="l-cpu" points=(line(|p| p.1)) {}
                    polyline class="l-mem" points=(line(|p| p.2)) {}
                    polyline class="l-disk" points=(line(|p| p.3)) {}
                    // The latest value of each series as a dot (also shows a lone sample).
                    @for (cls, v) in [("d-cpu", last.1), ("d-mem", last.2), ("d-disk", last.3)] {
                        circle class=(cls) cx=(format!("{:.1}", x_of(last))) cy=(format!("{:.1}", y_of(v))) r="2.5" {}
                    }
                } @else {
                    text x=(w / 2.0) y=(h / 2.0) class="gt" text-anchor="middle" { "no samples yet" }
                }
            }
        }
    }
}

/// An agent's facts as a key/value table.
fn facts_table(v: &Value) -> Markup {
    let facts: Vec<(&String, String)> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    html! {
        table.kv {
            @for (k, v) in &facts {
                tr { th { (k) } td { (v) } }
            }
            @if facts.is_empty() {
                tr { td class="mut" { "No facts reported." } }
            }
        }
    }
}

/// Commands, newest first; with `show_agent` a column links each host.
pub(super) fn commands_table(cmds: &[command::Model], show_agent: bool) -> Markup {
    html! {
        @if cmds.is_empty() {
            div.empty.small { "No commands yet." }
        } @else {
            table.grid #history {
                thead { tr {
                    th { "When" }
                    @if show_agent { th { "Host" } }
                    th { "Action" } th { "By" } th { "Status" } th { "Exit" } th { "Summary" }
                } }
                tbody {
                    @for c in cmds {
                        tr data-command=(c.id) id=(format!("cmd-{}", c.id)) {
                            td { (time(c.created_at)) }
                            @if show_agent {
                                td { a href=(format!("/agents/{}", c.agent_id)) { (short(&c.agent_id)) } }
                            }
                            td { code { (c.action) } }
                            td { (by_html(&c.requested_by, &c.source)) }
                            td { (pill(&c.status)) }
                            td { @if let Some(e) = c.exit_code { (e) } }
                            td.sum { (c.summary) (outcome_note(c)) }
                        }
                    }
                }
            }
        }
    }
}

/// The agent's broker credentials: when its JWT expires, how it was last
/// issued, and how often it was renewed or re-authenticated.
fn credentials_line(c: &Value) -> Markup {
    if c.is_null() {
        return html! { span.mut { "Broker credentials: issued before expiring credentials (no expiry recorded)" } };
    }
    html! {
        span.mut {
            "Broker credentials "
            @match c["jwt_expires_at"].as_i64() {
                Some(e) => { "expire " (time(e)) }
                None => "never expire",
            }
            " · last issued by " (c["issued_via"].as_str().unwrap_or("")) " " (time(c["issued_at"].as_i64().unwrap_or(0)))
            " · renewed " span #jwt-renewals { (c["renewals"].as_i64().unwrap_or(0)) } "×"
            " · re-authenticated " (c["reauths"].as_i64().unwrap_or(0)) "×"
        }
    }
}

pub(super) async fn agent_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<ChartRange>,
) -> Response {
    let range = q
        .range
        .as_deref()
        .and_then(Range::parse)
        .unwrap_or(Range::Day);
    let a = match agent::Entity::find_by_id(id.clone()).one(&state.db).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            let body = html! {
                div.empty { "No agent " code { (id) } ". " a href="/fleet" { "Back to the fleet" } }
            };
            return (
                StatusCode::NOT_FOUND,
                page(&who, "fleet", "Agent not found", body),
            )
                .into_response();
        }
        Err(e) => return unavailable(e),
    };
    let now = bus_schema::now_ms();
    let hour = series(&state, &a.id, Range::Hour, now).await;
    let day = series(&state, &a.id, range, now).await;
    let cmds = command::Entity::find()
        .filter(command::Column::AgentId.eq(a.id.clone()))
        .order_by_desc(command::Column::CreatedAt)
        .limit(30)
        .all(&state.db)
        .await;
    let clock = crate::skew::load(&state.db, std::slice::from_ref(&a.id)).await;
    let (Ok(hour), Ok(day), Ok(cmds), Ok(clock)) = (hour, day, cmds, clock) else {
        return unavailable("database");
    };
    let m = parse_json(&a.metrics);
    let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
    let modules = parse_json(&a.modules);
    let service_list = bus_schema::catalogue::lookup("service.list").expect("in the catalogue");
    // Services: the latest service listing this agent answered, if any.
    let services = cmds.iter().find(|c| {
        c.action.starts_with("service.") && c.status == "succeeded" && c.result.is_some()
    });
    let Ok(updates) = super::updates::host_section(&state, &a.id).await else {
        return unavailable("database");
    };
    let watched = super::services::host_section(&state, &a.id).await;
    let creds = crate::credentials::view(&state.db, &a.id)
        .await
        .unwrap_or(Value::Null);
    let Ok(inv) = crate::inventory::store::get(&state.db, &a.id).await else {
        return unavailable("database");
    };
    let inv = inv.as_ref();
    let body = html! {
        div data-live="agent-head" #agent-head {
            section.card.head {
                div {
                    h2.host {
                        @if let Some(name) = &a.display_name { (name) " " span.mut.hostname { (a.hostname) } } @else { (a.hostname) }
                        " " (pill(&a.status))
                    }
                    div.id { (a.id) }
                    div class="mut" {
                        (a.os) " · kernel " (a.kernel)
                        " · last seen " (time(a.last_seen)) " · heartbeat every " (a.heartbeat_secs) "s"
                    }
                    div #agent-version { (super::version::version(&crate::version_policy::Policy::of(&state.cfg), &a)) }
                    div #clock { (super::clock::clock(clock.get(&a.id))) }
                    div #credentials { (credentials_line(&creds)) }
                    div { (super::inventory::labels(&a, inv)) }
                    div { (ops_html(&parse_json(&a.operations))) }
                }
                div {
                    @if who.can(Role::Admin) && a.status != "revoked" && !super::inventory::gone(inv) {
                        button.danger.small data-api=(format!("/api/v1/agents/{}/revoke", a.id)) data-method="POST"
                            data-confirm=(format!("Revoke {}? The broker disconnects it at once.", a.hostname)) { "Revoke agent" }
                    }
                }
            }
            div.stats {
                div.stat { span { "CPU" } (bar(f("cpu_percent"), 100.0)) }
                div.stat { span { "Memory" } (bar(f("mem_used_bytes"), f("mem_total_bytes"))) }
                div.stat { span { "Disk" } (bar(f("disk_used_bytes"), f("disk_total_bytes"))) }
                div.stat { span { "Load" } b { (format!("{:.2}", f("load1"))) } }
            }
        }
        div.cols {
            section.card { (chart("Last hour", &hour, now - 3_600_000, now)) }
            section.card #history-range {
                (chart(range.label(), &day, now - range.span_ms(), now))
                nav.chips aria-label="Chart range" {
                    @for r in Range::ALL {
                        @if r == range { span.chip.on { (r.as_str()) } }
                        @else { a.chip href=(format!("/agents/{}?range={}", a.id, r.as_str())) { (r.as_str()) } }
                    }
                }
            }
        }
        (super::inventory::section(&who, &a, inv))
        div data-live="host-services" #host-services-wrap { (watched) }
        @if who.can(Role::Operator) && a.status != "revoked" {
            section.card #run-card {
                h2 { "Run an action" }
                form #run-form data-agent=(a.id) .runner {
                    label { "Action" select #action name="action" {} }
                    p class="mut" #action-desc {}
                    div #params .fields {}
                    div.row { button.primary #run type="submit" { "Run" } span.form-error {} }
                    (hidden_actions(&a))
                }
                div #run-result .result hidden {}
            }
        }
        div.cols {
            section.card { h2 { "Facts" } (facts_table(&Value::Object(crate::selector::facts_of(&a)))) }
            section.card {
                h2 { "Modules" }
                div.chips {
                    @for x in modules.as_array().into_iter().flatten() {
                        span.chip { (x.as_str().unwrap_or("")) }
                    }
                    @if let Some(e) = &a.rootd_error {
                        p.form-error {
                            "rootd is not answering this agent (" (e) "): its modules are unknown until it does. Start "
                            code { "drover-rootd" } " on the host."
                        }
                    }
                }
                h2 { "Services" }
                @if let Some(c) = services {
                    p class="mut" { "From " code { (c.action) } " " (time(c.finished_at.unwrap_or(c.updated_at))) }
                    pre.out { (serde_json::to_string_pretty(&parse_json(c.result.as_deref().unwrap_or("null"))).unwrap_or_default()) }
                } @else {
                    @if crate::runnable::hidden_reason(&a, service_list).is_none() {
                        p class="mut" { "No service listing yet: run " code { "service.list" } " (every unit, and which rootd may act on) or " code { "service.status" } " (one unit) below." }
                    } @else {
                        p class="mut" { "No service listing: this host cannot run " code { "service.*" } " actions now (see Modules)." }
                    }
                }
            }
        }
        (updates)
        section.card {
            h2 { "Command history" }
            div data-live="history" #history-wrap { (commands_table(&cmds, false)) }
        }
    };
    // Two machines on this identity: say so above everything else.
    let conflict = crate::clones::view(&state.db, &a.id)
        .await
        .unwrap_or(Value::Null);
    let body =
        html! { (super::inventory::banner(inv)) (super::identity::banner([&conflict])) (body) };
    page(
        &who,
        "fleet",
        a.display_name.as_deref().unwrap_or(&a.hostname),
        body,
    )
    .into_response()
}

/// Under the run form: the actions this host cannot run now, grouped by
/// why (the form leaves them out; see `crate::runnable`).
fn hidden_actions(a: &agent::Model) -> Markup {
    let mut by_reason: Vec<(String, Vec<&'static str>)> = Vec::new();
    for spec in bus_schema::catalogue::all() {
        if spec.name == "sys.cancel" {
            continue;
        }
        if let Some(why) = crate::runnable::hidden_reason(a, spec) {
            match by_reason.iter_mut().find(|(w, _)| *w == why) {
                Some((_, names)) => names.push(spec.name),
                None => by_reason.push((why, vec![spec.name])),
            }
        }
    }
    html! {
        @if !by_reason.is_empty() {
            div #actions-hidden .mut.small {
                @for (why, names) in &by_reason {
                    p { "Not offered: " (names.join(", ")) " — " (why) "." }
                }
            }
        }
    }
}
