//! The Updates page (`/updates`): pending updates by package (security
//! first, severity, hosts affected, approval state) or by host (pending,
//! security, reboot needed, last scan), approve / decline forms, the
//! approvals with revoke, and the auto-approval rules; and the host page's
//! Updates section ([`host_section`]). Forms post JSON to
//! `/api/v1/updates/...` through `app.js` (CSRF header); pages check no
//! roles and write no rows, they only hide forms a viewer cannot use.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::state::AppState;
use crate::updates::{store, views};

use super::frame::{none, page, pill, short, time, unavailable};

#[derive(Deserialize, Default)]
pub(super) struct UpdatesQuery {
    view: Option<String>,
    security: Option<String>,
}

pub(super) async fn updates_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<UpdatesQuery>,
) -> Response {
    match body(&state, &who, &q).await {
        Ok(b) => page(&who, "updates", "Updates", b).into_response(),
        Err(e) => unavailable(e),
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The selector and expiry fields of a package's approve / decline form.
fn decision_fields(who: &Principal) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(who.csrf());
        input name="selector" value="all" size="10" aria-label="Hosts" title="Hosts: a selector such as all, label:env=prod, host:web-*";
        input name="expires_at" type="number" min="1" max="730" data-type="days" placeholder="expires in days" aria-label="Expires in days" title="Expires after this many days (empty: never)";
    }
}

/// The approve / decline form for one package (the button says which).
/// The approve / decline form of one package. The decision is always for
/// a version: the one candidate, or (when hosts report several) the one
/// the operator picks — never "any version" by default, so a host that
/// reports an odd candidate cannot widen the approval.
fn package_forms(who: &Principal, name: &str, candidates: &[String]) -> Markup {
    html! {
        form.inline-form.auto.decide data-api="/api/v1/updates/approvals" data-done="Saved." {
            input type="hidden" name="scope" value="package";
            input type="hidden" name="package" value=(name);
            @if candidates.len() == 1 {
                input type="hidden" name="version" value=(candidates[0]);
            } @else {
                select name="version" required aria-label="Version" {
                    option value="" { "version…" }
                    @for c in candidates { option value=(c) { (c) } }
                }
            }
            (decision_fields(who))
            button.primary.small name="decision" value="approve" { "Approve" }
            button.small name="decision" value="decline" { "Decline" }
            span.form-error {}
        }
    }
}

fn severity(v: &Value) -> Markup {
    match v.as_str() {
        Some(s) => html! { span class=(format!("pill sev-{}", s.to_ascii_lowercase())) { (s) } },
        None => none(),
    }
}

fn by_package(who: &Principal, rows: &[Value]) -> Markup {
    let operator = who.can(Role::Operator);
    html! {
        @if rows.is_empty() {
            div.empty { "No pending updates. Hosts report theirs when a " code { "pkg.scan" } " runs." }
        } @else {
            table.grid #updates-by-package {
                thead { tr {
                    th { "Package" } th { "Candidate" } th { "Hosts" } th { "Security" } th { "Severity" }
                    th { "Advisories" } th { "Approval" }
                    @if operator { th { "Decide" } }
                } }
                tbody {
                    @for r in rows {
                        @let name = r["package"].as_str().unwrap_or("");
                        @let candidates = strs(&r["candidates"]);
                        @let a = &r["approval"];
                        tr data-package=(name) {
                            td { b.pkg { (name) } }
                            td { (candidates.join(", ")) }
                            td.num { (r["hosts"]) }
                            td { @if r["security"] == true { span.pill.s-failed { "security" } } @else { (none()) } }
                            td { (severity(&r["severity"])) }
                            td { @for x in strs(&r["advisories"]).iter().take(4) { span.chip { (x) } } }
                            td {
                                (pill(a["state"].as_str().unwrap_or("pending")))
                                div class="mut small" {
                                    (a["approved"]) " approved · " (a["declined"]) " declined · " (a["pending"]) " pending"
                                    @if a["held"].as_u64().unwrap_or(0) > 0 { " · " (a["held"]) " held" }
                                }
                            }
                            @if operator { td { (package_forms(who, name, &candidates)) } }
                        }
                    }
                }
            }
        }
    }
}

fn scan_cell(h: &Value) -> Markup {
    html! {
        @match h["last_scan_at"].as_i64() {
            Some(at) => {
                (time(at)) " " (pill(h["last_scan_status"].as_str().unwrap_or("")))
                @if let Some(e) = h["last_scan_error"].as_str() { div class="mut small" { (e) } }
            }
            None => span class="mut" { "never scanned" },
        }
    }
}

fn reboot_cell(h: &Value) -> Markup {
    html! {
        @if h["reboot_required"] == true {
            span.pill.s-pending { "reboot needed" }
            @let p = strs(&h["reboot_packages"]);
            @if !p.is_empty() { div class="mut small" { "for " (p.join(", ")) } }
        } @else { (none()) }
    }
}

fn by_host(rows: &[Value]) -> Markup {
    html! {
        @if rows.is_empty() {
            div.empty { "No hosts match." }
        } @else {
            table.grid #updates-by-host {
                thead { tr {
                    th { "Host" } th { "Status" } th { "Pending" } th { "Security" } th { "Approved" }
                    th { "Reboot" } th { "Last scan" }
                } }
                tbody {
                    @for h in rows {
                        @let id = h["agent_id"].as_str().unwrap_or("");
                        tr data-id=(id) {
                            td {
                                a.host href=(format!("/agents/{id}")) { (h["display_name"].as_str().or(h["hostname"].as_str()).unwrap_or("")) }
                                div.id { (short(id)) }
                            }
                            td { (pill(h["status"].as_str().unwrap_or(""))) }
                            td.num { (h["pending"]) }
                            td.num { (h["security"]) }
                            td.num { (h["approved"]) }
                            td { (reboot_cell(h)) }
                            td { (scan_cell(h)) }
                        }
                    }
                }
            }
        }
    }
}

fn approvals_table(
    who: &Principal,
    rows: &[crate::updates::entities::approval::Model],
    now: i64,
) -> Markup {
    let operator = who.can(Role::Operator);
    html! {
        @if rows.is_empty() {
            p class="mut" { "No approvals or declines yet." }
        } @else {
            table.grid #approvals {
                thead { tr {
                    th { "Decision" } th { "Updates" } th { "Hosts" } th { "Note" } th { "By" }
                    th { "Created" } th { "Expires" } th { "State" } @if operator { th {} }
                } }
                tbody {
                    @for a in rows {
                        @let st = store::approval_state(a, now);
                        tr data-id=(a.id) {
                            td { (pill(if a.decision == "approve" { "approved" } else { "declined" })) }
                            td {
                                @if a.scope == "security" { "all security updates" } @else {
                                    b.pkg { (a.package.as_deref().unwrap_or("")) }
                                    @if let Some(v) = &a.version { " = " (v) } @else { span.mut { " (any version)" } }
                                }
                            }
                            td { code { (views::selector_text(&a.selector)) } }
                            td { (a.note) }
                            td { (a.created_by) }
                            td { (time(a.created_at)) }
                            td { @match a.expires_at { Some(e) => (time(e)), None => span.mut { "never" } } }
                            td { (pill(st)) }
                            @if operator {
                                td { @if st == "active" {
                                    button.small data-api=(format!("/api/v1/updates/approvals/{}/revoke", a.id)) data-method="POST"
                                        data-confirm="Revoke this decision? It stops covering updates at once." { "Revoke" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rules_table(
    who: &Principal,
    rules: &[crate::updates::entities::approval_rule::Model],
) -> Markup {
    let operator = who.can(Role::Operator);
    html! {
        @if rules.is_empty() {
            p class="mut" { "No auto-approval rules." }
        } @else {
            table.grid #rules {
                thead { tr {
                    th { "Name" } th { "Updates" } th { "Hosts" } th { "After" } th { "State" } @if operator { th {} }
                } }
                tbody {
                    @for r in rules {
                        tr data-id=(r.id) {
                            td { b { (r.name) } }
                            td { @if r.scope == "security" { "security updates" } @else { "all updates" } }
                            td { code { (views::selector_text(&r.selector)) } }
                            td { (r.delay_days) " days" }
                            td { (pill(if r.enabled { "active" } else { "disabled" })) }
                            @if operator {
                                td {
                                    form.inline-form.auto data-api=(format!("/api/v1/updates/rules/{}", r.id)) data-method="PUT" {
                                        input type="hidden" name="csrf" value=(who.csrf());
                                        input type="hidden" name="enabled" data-type="bool" value=(if r.enabled { "false" } else { "true" });
                                        button.small { @if r.enabled { "Disable" } @else { "Enable" } }
                                        span.form-error {}
                                    }
                                    button.small.danger data-api=(format!("/api/v1/updates/rules/{}", r.id)) data-method="DELETE"
                                        data-confirm=(format!("Remove rule {}?", r.name)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn body(
    state: &AppState,
    who: &Principal,
    q: &UpdatesQuery,
) -> Result<Markup, sea_orm::DbErr> {
    let now = bus_schema::now_ms();
    let hosts_view = q.view.as_deref() == Some("hosts");
    let security = q.security.as_deref() == Some("true");
    let f = views::Filter {
        security,
        selector: None,
    };
    let rows = if hosts_view {
        views::by_host(&state.db, &f, now).await?
    } else {
        views::by_package(&state.db, &f, now).await?
    };
    let approvals = store::list_approvals(&state.db, 200).await?;
    let rules = store::list_rules(&state.db).await?;
    let link = |view: &str, sec: bool| {
        format!(
            "/updates?view={view}{}",
            if sec { "&security=true" } else { "" }
        )
    };
    let on = |yes: bool| if yes { "btn on" } else { "btn" };
    let operator = who.can(Role::Operator);
    Ok(html! {
        div.toolbar #updates-switch {
            a class=(on(!hosts_view)) href=(link("packages", security)) #view-packages { "By package" }
            a class=(on(hosts_view)) href=(link("hosts", security)) #view-hosts { "By host" }
            a class=(on(security)) href=(link(if hosts_view { "hosts" } else { "packages" }, !security)) #only-security {
                @if security { "All updates" } @else { "Security only" }
            }
        }
        @if operator && !hosts_view {
            form.inline-form #approve-security data-api="/api/v1/updates/approvals" data-done="Saved." {
                input type="hidden" name="decision" value="approve";
                input type="hidden" name="scope" value="security";
                input type="hidden" name="csrf" value=(who.csrf());
                label { "Hosts" input name="selector" value="all" size="14" title="a selector: all, label:env=prod, host:web-*"; }
                label { "Expires in days" input name="expires_at" type="number" min="1" max="730" data-type="days" placeholder="never"; }
                label { "Note" input name="note" size="24"; }
                button.primary { "Approve all security updates" }
                span.form-error {}
            }
        }
        section.card {
            div data-live="updates" #updates-wrap {
                @if hosts_view { (by_host(&rows)) } @else { (by_package(who, &rows)) }
            }
        }
        section.card {
            h2 { "Approvals and declines" }
            div data-live="approvals" #approvals-wrap { (approvals_table(who, &approvals, now)) }
        }
        section.card {
            h2 { "Auto-approval rules" }
            p class="mut" { "A rule approves the updates of its scope on its hosts once they have been pending for its delay; a decline always wins." }
            div data-live="rules" #rules-wrap { (rules_table(who, &rules)) }
            @if operator {
                form.inline-form #rule-form data-api="/api/v1/updates/rules" data-done="Rule added." {
                    input type="hidden" name="csrf" value=(who.csrf());
                    label { "Name" input name="name" required placeholder="prod-security" size="14"; }
                    label { "Updates" select name="scope" { option value="security" { "security" } option value="all" { "all" } } }
                    label { "Hosts" input name="selector" value="all" size="14"; }
                    label { "After days" input name="delay_days" type="number" min="0" max="365" value="0" data-type="int" size="4"; }
                    label.check { input type="checkbox" name="enabled" checked; " enabled" }
                    button.primary { "Add rule" }
                    span.form-error {}
                }
            }
        }
    })
}

/// The host page's Updates section: last scan, reboot required and why,
/// the pending updates with the decision on each.
pub(super) async fn host_section(state: &AppState, id: &str) -> Result<Markup, sea_orm::DbErr> {
    let Some(v) = views::for_host(&state.db, id, bus_schema::now_ms()).await? else {
        return Ok(html! {});
    };
    let s = &v["state"];
    let ups = v["updates"].as_array().cloned().unwrap_or_default();
    Ok(html! {
        section.card #updates-card {
            h2 { "Updates " a.small href="/updates" { "all hosts →" } }
            div data-live="agent-updates" #agent-updates {
                p {
                    "Last scan: " (scan_cell(s))
                    " · " (ups.len()) " pending"
                }
                @if s["reboot_required"] == true {
                    p #reboot-required {
                        span.pill.s-pending { "reboot needed" }
                        @let p = strs(&s["reboot_packages"]);
                        @if p.is_empty() { " (the host did not say which package asked)" } @else { " asked for by " (p.join(", ")) }
                        @if let Some(t) = s["reboot_since"].as_i64() { " · since " (time(t)) }
                    }
                }
                @if !ups.is_empty() {
                    table.grid #host-updates {
                        thead { tr { th { "Package" } th { "Installed" } th { "Candidate" } th { "Security" } th { "Origin" } th { "Decision" } } }
                        tbody {
                            @for u in &ups {
                                tr {
                                    td { b.pkg { (u["package"].as_str().unwrap_or("")) } }
                                    td { (u["current"].as_str().unwrap_or("")) }
                                    td { (u["candidate"].as_str().unwrap_or("")) }
                                    td { @if u["security"] == true { span.pill.s-failed { "security" } " " } (severity(&u["severity"])) }
                                    td class="mut small" { (u["origin"].as_str().unwrap_or("")) }
                                    td {
                                        (pill(u["decision"].as_str().unwrap_or("")))
                                        @if let Some(b) = u["approved_by"].as_str() { " " span.mut.small { "by " (b) } }
                                        @if let Some(t) = u["auto_approve_at"].as_i64() { " " span.mut.small { "auto " (time(t)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The fleet page's live counts: hosts with security updates pending,
/// hosts needing a reboot.
pub(super) async fn fleet_counts(state: &AppState) -> Markup {
    let (security, reboot) = views::fleet_counts(&state.db).await.unwrap_or_default();
    html! {
        a class="count c-security" href="/updates?view=hosts&security=true" id="count-security-updates" {
            b { (security) } span { "security updates pending" }
        }
        a class="count c-reboot" href="/updates?view=hosts" id="count-reboot" {
            b { (reboot) } span { "need a reboot" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Via;

    #[test]
    fn a_decision_is_always_for_a_version() {
        let who = Principal {
            name: "ops".into(),
            role: "operator".into(),
            via: Via::Token {
                token_id: "t".into(),
            },
            ip: "127.0.0.1".into(),
        };
        let one = package_forms(&who, "openssl", &["3.0.15".into()]).into_string();
        assert!(one.contains(r#"name="version" value="3.0.15""#), "{one}");
        // Hosts report two candidates: the operator must pick one.
        let two = package_forms(&who, "openssl", &["3.0.15".into(), "9.9".into()]).into_string();
        assert!(two.contains(r#"<select name="version" required"#), "{two}");
        assert!(!two.contains(r#"type="hidden" name="version""#), "{two}");
    }
}
