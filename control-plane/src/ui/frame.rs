//! The frame every logged-in page shares (navigation, the CSRF meta tag,
//! the "unavailable" page) and the small widgets pages reuse: times, status
//! pills, usage bars, labels. No routes, no database queries, no role checks
//! beyond hiding the admin link.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use maud::{html, Markup};
use serde_json::Value;

use crate::auth::{Principal, Role};
use crate::db::entities::command;

use super::html::document;

const NAV: &[(&str, &str, &str)] = &[
    ("fleet", "/fleet", "Fleet"),
    ("services", "/services", "Services"),
    ("alerts", "/alerts", "Alerts"),
    ("jobs", "/jobs", "Jobs"),
    ("operations", "/operations", "Live operations"),
    ("schedules", "/schedules", "Schedules"),
    ("apps", "/apps", "Apps"),
    ("updates", "/updates", "Updates"),
    ("windows", "/windows", "Windows"),
    ("history", "/updates/history", "Update history"),
    ("releases", "/releases", "Releases"),
    ("rollouts", "/rollouts", "Rollouts"),
    ("notifications", "/notifications", "Notifications"),
    ("enrolment", "/enrolment", "Enrolment"),
    ("security", "/security", "Security"),
    ("audit", "/audit", "Audit"),
];

/// `"on"` for the current navigation entry, `""` otherwise.
fn on(yes: bool) -> &'static str {
    if yes {
        "on"
    } else {
        ""
    }
}

/// The frame of every logged-in page around `body`.
pub(super) fn page(who: &Principal, active: &str, title: &str, body: Markup) -> Html<String> {
    let body = html! {
        body data-page=(active) data-role=(who.role) {
            meta name="csrf-token" content=(who.csrf());
            aside.side {
                div.brand { span.logo { "◆" } " Drover" }
                nav {
                    @for (key, href, label) in NAV {
                        a href=(href) class=(on(*key == active)) { (label) }
                    }
                    @if who.can(Role::Admin) {
                        a href="/users" class=(on(active == "users")) { "Users & tokens" }
                    }
                    a href="/api/docs" class=(on(active == "api-docs")) { "API reference" }
                }
                div.me {
                    a href="/account" class=(on(active == "account")) #me { (who.name) }
                    span.role-tag { (who.role) }
                    form method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(who.csrf());
                        button.link #logout { "Log out" }
                    }
                }
            }
            div.wrap {
                div #banner .banner hidden { "Reconnecting to the control plane…" }
                header.top {
                    h1 { (title) }
                    span #live .live { "connecting…" }
                }
                main { (body) }
            }
            @for (name, _) in super::SCRIPTS {
                script src=(format!("/ui/{name}")) {}
            }
        }
    };
    Html(document(title, body).into_string())
}

/// When a page cannot be built: a calm page that retries by itself.
pub(super) fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "page not rendered");
    let body = html! {
        body.center {
            div.card.narrow {
                // Reloads by itself (no inline script: the CSP forbids it).
                meta http-equiv="refresh" content="4";
                h2 { "Temporarily unavailable" }
                p { "The control plane could not load this page just now. It will try again in a few seconds." }
            }
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("refresh", "4")],
        Html(document("Unavailable", body).into_string()),
    )
        .into_response()
}

/// A time for `app.js` to show in the viewer's zone; "never" for 0.
pub(super) fn time(ms: i64) -> Markup {
    html! {
        @if ms <= 0 {
            span class="mut" { "never" }
        } @else {
            // The UTC time until app.js shows it in the viewer's terms
            // (and for readers without JavaScript).
            time data-ms=(ms) {
                (chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| ms.to_string()))
            }
        }
    }
}

/// A status as a coloured pill.
pub(super) fn pill(status: &str) -> Markup {
    html! { span class=(format!("pill s-{status}")) { (status) } }
}

/// A dash for "no value".
pub(super) fn none() -> Markup {
    html! { span class="mut" { "—" } }
}

/// A usage meter: `used` of `total` (bytes; the tooltip shows GiB).
pub(super) fn bar(used: f64, total: f64) -> Markup {
    if total <= 0.0 {
        return none();
    }
    let pct = (used / total * 100.0).clamp(0.0, 100.0);
    let cls = if pct > 90.0 {
        "meter hot"
    } else if pct > 75.0 {
        "meter warm"
    } else {
        "meter"
    };
    html! {
        span class=(cls) title=(format!("{:.1} / {:.1} GiB", used / 1073741824.0, total / 1073741824.0)) {
            i data-w=(format!("{pct:.0}")) {}
        }
        span.num { (format!("{pct:.0}%")) }
    }
}

/// An agent's labels (a JSON object) as `key=value` chips.
pub(super) fn labels_html(v: &Value) -> Markup {
    html! {
        @if let Some(m) = v.as_object() {
            @for (k, v) in m {
                span.chip { (k) "=" (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) }
            }
        }
    }
}

/// Who asked for a job or command: a person (`alice user`) or, distinctly,
/// the system and what in it (`system (schedule:nightly)`).
pub(super) fn by_html(requested_by: &str, source: &str) -> Markup {
    html! {
        @if source == "system" {
            span.src.src-system title="started by the control plane, not a person" { "system" }
            " (" (requested_by) ")"
        } @else {
            (requested_by) " " span class=(format!("src src-{source}")) { (source) }
        }
    }
}

/// The operations an agent reports as running (a JSON array).
pub(super) fn ops_html(v: &Value) -> Markup {
    html! {
        @for op in v.as_array().into_iter().flatten() {
            @let src = op["source"].as_str().unwrap_or("user");
            span class=(format!("op op-{src}")) title=(op["command_id"].as_str().unwrap_or("")) {
                b { (src) } " " (op["action"].as_str().unwrap_or(""))
            }
        }
    }
}

/// A JSON column's value, `null` when it does not parse.
pub(super) fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// The first 12 characters of an id, with "…" when cut.
pub(super) fn short(id: &str) -> String {
    let s: String = id.chars().take(12).collect();
    if id.chars().count() > 12 {
        format!("{s}…")
    } else {
        s
    }
}

/// After a command's summary: "inferred" when the control plane decided its
/// outcome without the host's report, or what the host's report replaced.
pub(super) fn outcome_note(c: &command::Model) -> Markup {
    html! {
        @match (c.outcome_source.as_deref(), c.inferred_status.as_deref()) {
            (Some("inferred"), _) => {
                " "
                span.src.src-inferred title="decided by the control plane without a report from the host; the host's own result replaces it if it arrives" { "inferred" }
            }
            (Some("reported"), Some(was)) => {
                div class="replaced mut small" {
                    "the host's report replaced the inferred outcome " (pill(was)) " (" (c.inferred_summary.as_deref().unwrap_or("")) ")"
                }
            }
            _ => {}
        }
    }
}
