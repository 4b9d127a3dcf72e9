//! The operator's web UI: server-rendered pages (plain `format!` with
//! [`esc`] on every value that came from an operator, an agent or the
//! database), live over the SSE stream (`/api/v1/events`): `app.js` re-fetches
//! the page and swaps the `data-live` regions when something changes.
//! CSS and JS are embedded in the binary; there is no front-end build.
//!
//! Access is not checked here: [`crate::auth::guard`] does it for every
//! route. Pages only hide the buttons a role cannot use.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Router,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::Value;

use crate::audit;
use crate::auth::{self, Principal, Role};
use crate::db::entities::{agent, api_token, command, job, metric_sample, user};
use crate::state::AppState;

mod identity;

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/healthz", get(crate::api::healthz))
        .route("/ui/{file}", get(asset))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/fleet", get(fleet))
        .route("/agents/{id}", get(agent_page))
        .route("/jobs", get(jobs_page))
        .route("/jobs/{id}", get(job_page))
        .route("/apps", get(apps_page))
        .route("/enrolment", get(enrolment))
        .route("/security", get(security))
        .route("/audit", get(audit_page))
        .route("/account", get(account))
        .route("/users", get(users))
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

async fn asset(Path(file): Path<String>) -> Response {
    let (ct, body) = match file.as_str() {
        "app.css" => ("text/css; charset=utf-8", CSS),
        "app.js" => ("text/javascript; charset=utf-8", JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

const NAV: &[(&str, &str, &str)] = &[
    ("fleet", "/fleet", "Fleet"),
    ("jobs", "/jobs", "Jobs"),
    ("apps", "/apps", "Apps"),
    ("enrolment", "/enrolment", "Enrolment"),
    ("security", "/security", "Security"),
    ("audit", "/audit", "Audit"),
];

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · Drover</title><link rel=\"stylesheet\" href=\"/ui/app.css\"></head>",
        esc(title)
    )
}

/// The frame of every logged-in page.
fn page(who: &Principal, active: &str, title: &str, body: &str) -> Html<String> {
    let mut nav = String::new();
    for (key, href, label) in NAV {
        nav.push_str(&format!(
            "<a href=\"{href}\" class=\"{}\">{label}</a>",
            if *key == active { "on" } else { "" }
        ));
    }
    if who.can(Role::Admin) {
        nav.push_str(&format!(
            "<a href=\"/users\" class=\"{}\">Users &amp; tokens</a>",
            if active == "users" { "on" } else { "" }
        ));
    }
    Html(format!(
        "{head}<body data-page=\"{active}\" data-role=\"{role}\">\
<meta name=\"csrf-token\" content=\"{csrf}\">\
<aside class=\"side\"><div class=\"brand\"><span class=\"logo\">◆</span> Drover</div><nav>{nav}</nav>\
<div class=\"me\"><a href=\"/account\" class=\"{acc}\" id=\"me\">{name}</a><span class=\"role-tag\">{role}</span>\
<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button class=\"link\" id=\"logout\">Log out</button></form></div></aside>\
<div class=\"wrap\"><div id=\"banner\" class=\"banner\" hidden>Reconnecting to the control plane…</div>\
<header class=\"top\"><h1>{title}</h1><span id=\"live\" class=\"live\">connecting…</span></header>\
<main>{body}</main></div><script src=\"/ui/app.js\"></script></body></html>",
        head = head(title),
        role = esc(&who.role),
        csrf = esc(who.csrf()),
        name = esc(&who.name),
        acc = if active == "account" { "on" } else { "" },
        title = esc(title),
    ))
}

/// A page for errors and refusals, outside the frame.
pub fn message_page(title: &str, msg: &str) -> Html<String> {
    Html(format!(
        "{}<body class=\"center\"><div class=\"card narrow\"><h2>{}</h2><p>{}</p><p><a href=\"/fleet\">Back to the fleet</a></p></div></body></html>",
        head(title),
        esc(title),
        esc(msg)
    ))
}

/// When a page cannot be built: a calm page that retries by itself.
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "page not rendered");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(format!(
            "{}<body class=\"center\"><div class=\"card narrow\"><h2>Temporarily unavailable</h2>\
<p>The control plane could not load this page just now. It will try again in a few seconds.</p></div>\
<script>setTimeout(function(){{location.reload()}},4000)</script></body></html>",
            head("Unavailable")
        )),
    )
        .into_response()
}

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "<span class=\"mut\">never</span>".into();
    }
    format!("<time data-ms=\"{ms}\">{ms}</time>")
}

fn pill(status: &str) -> String {
    format!("<span class=\"pill s-{0}\">{0}</span>", esc(status))
}

fn bar(used: f64, total: f64) -> String {
    if total <= 0.0 {
        return "<span class=\"mut\">—</span>".into();
    }
    let pct = (used / total * 100.0).clamp(0.0, 100.0);
    let cls = if pct > 90.0 {
        "hot"
    } else if pct > 75.0 {
        "warm"
    } else {
        ""
    };
    format!(
        "<span class=\"meter {cls}\" title=\"{:.1} / {:.1} GiB\"><i style=\"width:{pct:.0}%\"></i></span><span class=\"num\">{pct:.0}%</span>",
        used / 1073741824.0,
        total / 1073741824.0
    )
}

fn labels_html(v: &Value) -> String {
    let mut o = String::new();
    if let Some(m) = v.as_object() {
        for (k, v) in m {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            o.push_str(&format!(
                "<span class=\"chip\">{}={}</span>",
                esc(k),
                esc(&v)
            ));
        }
    }
    o
}

fn ops_html(v: &Value) -> String {
    let mut o = String::new();
    for op in v.as_array().into_iter().flatten() {
        let src = op["source"].as_str().unwrap_or("user");
        o.push_str(&format!(
            "<span class=\"op op-{0}\" title=\"{1}\"><b>{0}</b> {2}</span>",
            esc(src),
            esc(op["command_id"].as_str().unwrap_or("")),
            esc(op["action"].as_str().unwrap_or(""))
        ));
    }
    o
}

fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

fn short(id: &str) -> String {
    let s: String = id.chars().take(12).collect();
    if id.chars().count() > 12 {
        format!("{s}…")
    } else {
        s
    }
}

// --------------------------------------------------------------------- login

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

fn safe_next(n: Option<&str>) -> String {
    match n {
        // Only local paths: never redirect elsewhere after login.
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p.into()
        }
        _ => "/fleet".into(),
    }
}

fn login_html(next: &str, error: Option<&str>, name: &str, need_code: bool) -> Html<String> {
    let err = error
        .map(|e| format!("<div class=\"err\" id=\"login-error\">{}</div>", esc(e)))
        .unwrap_or_default();
    Html(format!(
        "{}<body class=\"center login-bg\"><form class=\"card narrow login\" method=\"post\" action=\"/login\">\
<div class=\"brand big\"><span class=\"logo\">◆</span> Drover</div><p class=\"mut\">Sign in to the fleet console.</p>{err}\
<input type=\"hidden\" name=\"next\" value=\"{}\">\
<label>User<input name=\"name\" id=\"name\" autocomplete=\"username\" value=\"{}\" required autofocus></label>\
<label>Password<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<label class=\"{}\">Authentication code<input name=\"code\" id=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" placeholder=\"6 digits, if enabled\"></label>\
<button class=\"primary\" id=\"login\">Sign in</button></form></body></html>",
        head("Sign in"),
        esc(next),
        esc(name),
        if need_code { "" } else { "opt" },
    ))
}

async fn login_page(Query(q): Query<NextQuery>) -> Html<String> {
    login_html(&safe_next(q.next.as_deref()), None, "", false)
}

async fn login(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let ip = auth::client_ip(&req);
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response(),
    };
    let f: BTreeMap<String, String> = auth::form_urlencoded_pairs(&body).into_iter().collect();
    let name = f
        .get("name")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let code = f.get("code").cloned().unwrap_or_default();
    let next = safe_next(f.get("next").map(String::as_str));
    let fail = |status: StatusCode, msg: &str, need_code: bool| {
        (status, login_html(&next, Some(msg), &name, need_code)).into_response()
    };
    let u = match auth::find_user(&state.db, &name).await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    // Only known names go into the trail: people type passwords into the
    // user field by mistake.
    let actor: String = if u.is_some() {
        name.clone()
    } else {
        "(unknown user)".into()
    };
    if auth::login_limited(&name, &ip) {
        let _ = audit::record(
            &state.db,
            audit::Entry::new(&actor, "login.limited", "", &ip, serde_json::json!({})),
        )
        .await;
        return fail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Wait 15 minutes and try again.",
            false,
        );
    }
    // Verify against a dummy hash for unknown names: same time either way.
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| auth::hash_password(&auth::random_hex(16)));
    let pw_ok = auth::verify_password(
        u.as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or(DUMMY.as_str()),
        &password,
    ) && u.is_some();
    let record_fail = |reason: &'static str| {
        let db = state.db.clone();
        let (actor, ip, name) = (actor.clone(), ip.clone(), name.clone());
        async move {
            auth::login_failed(&name, &ip);
            let _ = audit::record(
                &db,
                audit::Entry::new(
                    &actor,
                    "login.failed",
                    "",
                    &ip,
                    serde_json::json!({ "reason": reason }),
                ),
            )
            .await;
        }
    };
    let Some(u) = u.filter(|_| pw_ok) else {
        record_fail("bad name or password").await;
        return fail(
            StatusCode::UNAUTHORIZED,
            "That user name and password do not match.",
            false,
        );
    };
    if let Some(secret) = &u.totp_secret {
        if code.trim().is_empty() {
            record_fail("code missing").await;
            return fail(
                StatusCode::UNAUTHORIZED,
                "Enter the 6-digit code from your authenticator app.",
                true,
            );
        }
        if !auth::totp_ok(secret, &u.name, &code) {
            record_fail("bad code").await;
            return fail(
                StatusCode::UNAUTHORIZED,
                "That authentication code is not right.",
                true,
            );
        }
    }
    auth::login_succeeded(&name, &ip);
    let cookie = match auth::create_session(&state.db, &u.id, &ip).await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let _ = audit::record(
        &state.db,
        audit::Entry::new(&u.name, "login", "", &ip, serde_json::json!({})),
    )
    .await;
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response()
}

async fn logout(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    if let auth::Via::Session { session_id, .. } = &who.via {
        let _ = crate::db::entities::session::Entity::delete_by_id(session_id.clone())
            .exec(&state.db)
            .await;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::clear_cookie()),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

// --------------------------------------------------------------------- fleet

#[derive(Deserialize, Default)]
struct FleetQuery {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<u64>,
}

const PER_PAGE: u64 = 50;
const STATUSES: &[&str] = &["online", "offline", "pending", "revoked", "rejected"];

async fn status_counts(state: &AppState) -> Result<BTreeMap<String, i64>, sea_orm::DbErr> {
    let rows: Vec<(String, i64)> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Status)
        .column_as(agent::Column::Id.count(), "n")
        .group_by(agent::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    Ok(rows.into_iter().collect())
}

async fn fleet(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<FleetQuery>,
) -> Response {
    match fleet_body(&state, &q).await {
        Ok(body) => page(&who, "fleet", "Fleet", &body).into_response(),
        Err(e) => unavailable(e),
    }
}

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
    esc(&format!("/fleet?{}", qs.join("&")))
}

async fn fleet_body(state: &AppState, q: &FleetQuery) -> Result<String, sea_orm::DbErr> {
    let counts = status_counts(state).await?;
    let total_all: i64 = counts.values().sum();
    let mut cond = Condition::all();
    let status = q.status.clone().unwrap_or_default();
    if STATUSES.contains(&status.as_str()) {
        cond = cond.add(agent::Column::Status.eq(status.clone()));
    }
    let text = q.q.clone().unwrap_or_default();
    let text = text.trim();
    if !text.is_empty() {
        cond = cond.add(
            Condition::any()
                .add(agent::Column::Hostname.contains(text))
                .add(agent::Column::Id.starts_with(text))
                .add(agent::Column::Labels.contains(text)),
        );
    }
    let sort = match q.sort.as_deref() {
        Some("status") => agent::Column::Status,
        Some("last_seen") => agent::Column::LastSeen,
        Some("os") => agent::Column::Os,
        _ => agent::Column::Hostname,
    };
    let desc = q.dir.as_deref() == Some("desc");
    let base = agent::Entity::find().filter(cond);
    let total = base.clone().count(&state.db).await?;
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let mut sel = base;
    sel = if desc {
        sel.order_by_desc(sort)
    } else {
        sel.order_by_asc(sort)
    };
    let rows = sel
        .order_by_asc(agent::Column::Id)
        .offset((page_no - 1) * PER_PAGE)
        .limit(PER_PAGE)
        .all(&state.db)
        .await?;

    let mut o = String::new();
    o.push_str("<div data-live=\"counts\" id=\"counts\" class=\"counts\">");
    o.push_str(&format!(
        "<a class=\"count {}\" href=\"{}\"><b>{total_all}</b><span>all agents</span></a>",
        if status.is_empty() { "on" } else { "" },
        fleet_link(q, &[("status", String::new()), ("page", String::new())])
    ));
    for s in ["online", "offline", "pending", "revoked"] {
        o.push_str(&format!(
            "<a class=\"count c-{s} {}\" href=\"{}\" id=\"count-{s}\"><b>{}</b><span>{s}</span></a>",
            if status == s { "on" } else { "" },
            fleet_link(q, &[("status", s.to_string()), ("page", String::new())]),
            counts.get(s).copied().unwrap_or(0)
        ));
    }
    o.push_str("</div>");
    o.push_str(&format!(
        "<form class=\"toolbar\" method=\"get\" action=\"/fleet\">\
<input type=\"search\" name=\"q\" id=\"q\" placeholder=\"Search hostname, id or label\" value=\"{}\">\
<select name=\"status\" id=\"status-filter\"><option value=\"\">any status</option>{}</select>\
<button>Filter</button></form>",
        esc(text),
        STATUSES
            .iter()
            .map(|s| format!(
                "<option {}>{s}</option>",
                if status == *s { "selected" } else { "" }
            ))
            .collect::<String>()
    ));
    let th = |key: &str, label: &str| {
        let cur = q.sort.as_deref().unwrap_or("hostname") == key;
        let next_dir = if cur && !desc { "desc" } else { "asc" };
        let arrow = if cur {
            if desc {
                " ↓"
            } else {
                " ↑"
            }
        } else {
            ""
        };
        format!(
            "<th><a href=\"{}\">{label}{arrow}</a></th>",
            fleet_link(q, &[("sort", key.into()), ("dir", next_dir.into())])
        )
    };
    o.push_str("<div data-live=\"fleet\" id=\"fleet-table\">");
    if rows.is_empty() {
        o.push_str("<div class=\"empty\">No agents match. Enrol a host from the <a href=\"/enrolment\">Enrolment</a> page, or run <code>drover dev</code>.</div>");
    } else {
        o.push_str(&format!(
            "<table class=\"grid\" id=\"agents\"><thead><tr>{}{}{}<th>CPU</th><th>Memory</th><th>Disk</th><th>Labels</th><th>Running</th></tr></thead><tbody>",
            th("hostname", "Host"),
            th("status", "Status"),
            th("last_seen", "Last seen"),
        ));
        let ids: Vec<String> = rows.iter().map(|a| a.id.clone()).collect();
        let clocks = crate::skew::load(&state.db, &ids).await?;
        for a in &rows {
            let m = parse_json(&a.metrics);
            let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
            o.push_str(&format!(
                "<tr data-id=\"{id}\" class=\"st-{st}\"><td><a class=\"host\" href=\"/agents/{id}\">{host}</a><div class=\"id\">{sid}</div></td>\
<td>{pill}</td><td>{seen}<div>{clock}</div></td><td>{cpu}</td><td>{mem}</td><td>{disk}</td><td>{labels}</td><td>{ops}</td></tr>",
                id = esc(&a.id),
                st = esc(&a.status),
                host = esc(&a.hostname),
                sid = esc(&short(&a.id)),
                pill = pill(&a.status),
                seen = time(a.last_seen),
                clock = crate::skew::html(clocks.get(&a.id)),
                cpu = if m.is_null() { "<span class=\"mut\">—</span>".into() } else { bar(f("cpu_percent"), 100.0) },
                mem = bar(f("mem_used_bytes"), f("mem_total_bytes")),
                disk = bar(f("disk_used_bytes"), f("disk_total_bytes")),
                labels = labels_html(&parse_json(&a.labels)),
                ops = ops_html(&parse_json(&a.operations)),
            ));
        }
        o.push_str("</tbody></table>");
    }
    o.push_str(&format!(
        "<div class=\"pager\"><span class=\"mut\">{total} agents · page {page_no} of {pages}</span>{}{}</div></div>",
        if page_no > 1 {
            format!("<a class=\"btn\" href=\"{}\">← Previous</a>", fleet_link(q, &[("page", (page_no - 1).to_string())]))
        } else {
            String::new()
        },
        if page_no < pages {
            format!("<a class=\"btn\" href=\"{}\">Next →</a>", fleet_link(q, &[("page", (page_no + 1).to_string())]))
        } else {
            String::new()
        },
    ));
    Ok(o)
}

// --------------------------------------------------------------------- agent

/// Averages per bucket since `since`, in SQL (cheap however often agents
/// report).
async fn series(
    state: &AppState,
    agent_id: &str,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<(i64, f64, f64, f64)>, sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    let b = Expr::cust(format!("(at / {bucket_ms})"));
    let rows: Vec<(i64, f64, f64, f64)> = metric_sample::Entity::find()
        .select_only()
        .column_as(b.clone(), "b")
        .column_as(Expr::cust("AVG(cpu_percent)"), "cpu")
        .column_as(
            Expr::cust("AVG(CASE WHEN mem_total > 0 THEN 100.0 * mem_used / mem_total ELSE 0 END)"),
            "mem",
        )
        .column_as(
            Expr::cust(
                "AVG(CASE WHEN disk_total > 0 THEN 100.0 * disk_used / disk_total ELSE 0 END)",
            ),
            "disk",
        )
        .filter(metric_sample::Column::AgentId.eq(agent_id))
        .filter(metric_sample::Column::At.gte(since))
        .group_by(b)
        .order_by_asc(Expr::cust("b"))
        .into_tuple()
        .all(&state.db)
        .await?;
    Ok(rows)
}

/// An inline SVG line chart of percentages.
fn chart(title: &str, pts: &[(i64, f64, f64, f64)], since: i64, until: i64) -> String {
    let (w, h) = (560.0, 140.0);
    let span = (until - since).max(1) as f64;
    let line = |sel: fn(&(i64, f64, f64, f64)) -> f64, bucket_ms: f64| -> String {
        pts.iter()
            .map(|p| {
                let x = ((p.0 as f64 * bucket_ms - since as f64) / span * w).clamp(0.0, w);
                let y = h - (sel(p).clamp(0.0, 100.0) / 100.0 * h);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Bucket size is the same for all points of a chart; recover it.
    let bucket_ms = if title.contains("hour") {
        60_000.0
    } else {
        900_000.0
    };
    let grid: String = [25.0, 50.0, 75.0]
        .iter()
        .map(|g| {
            let y = h - g / 100.0 * h;
            format!("<line x1=\"0\" x2=\"{w}\" y1=\"{y}\" y2=\"{y}\" class=\"gl\"/><text x=\"4\" y=\"{}\" class=\"gt\">{g}%</text>", y - 3.0)
        })
        .collect();
    let body = if pts.is_empty() {
        format!(
            "<text x=\"{}\" y=\"{}\" class=\"gt\" text-anchor=\"middle\">no samples yet</text>",
            w / 2.0,
            h / 2.0
        )
    } else {
        // The latest value of each series as a dot (also shows a lone sample).
        let last = pts.last().expect("not empty");
        let x = ((last.0 as f64 * bucket_ms - since as f64) / span * w).clamp(0.0, w);
        let dot = |cls: &str, v: f64| {
            format!(
                "<circle class=\"{cls}\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                h - (v.clamp(0.0, 100.0) / 100.0 * h)
            )
        };
        format!(
            "<polyline class=\"l-cpu\" points=\"{}\"/><polyline class=\"l-mem\" points=\"{}\"/><polyline class=\"l-disk\" points=\"{}\"/>{}{}{}",
            line(|p| p.1, bucket_ms),
            line(|p| p.2, bucket_ms),
            line(|p| p.3, bucket_ms),
            dot("d-cpu", last.1),
            dot("d-mem", last.2),
            dot("d-disk", last.3),
        )
    };
    format!(
        "<figure class=\"chart\"><figcaption>{}<span class=\"legend\"><i class=\"k-cpu\"></i>CPU <i class=\"k-mem\"></i>memory <i class=\"k-disk\"></i>disk</span></figcaption>\
<svg viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">{grid}{body}</svg></figure>",
        esc(title),
        esc(title)
    )
}

fn facts_table(v: &Value) -> String {
    let mut o = String::from("<table class=\"kv\">");
    let mut n = 0;
    if let Some(m) = v.as_object() {
        for (k, v) in m {
            let s = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            o.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&s)));
            n += 1;
        }
    }
    if n == 0 {
        o.push_str("<tr><td class=\"mut\">No facts reported.</td></tr>");
    }
    o.push_str("</table>");
    o
}

/// After a command's summary: "inferred" when the control plane decided its
/// outcome without the host's report, or what the host's report replaced.
fn outcome_note(c: &command::Model) -> String {
    match (c.outcome_source.as_deref(), c.inferred_status.as_deref()) {
        (Some("inferred"), _) => {
            " <span class=\"src src-inferred\" title=\"decided by the control plane without a report from the host; the host's own result replaces it if it arrives\">inferred</span>".into()
        }
        (Some("reported"), Some(was)) => format!(
            "<div class=\"replaced mut small\">the host's report replaced the inferred outcome {} ({})</div>",
            pill(was),
            esc(c.inferred_summary.as_deref().unwrap_or("")),
        ),
        _ => String::new(),
    }
}

fn commands_table(cmds: &[command::Model], show_agent: bool) -> String {
    if cmds.is_empty() {
        return "<div class=\"empty small\">No commands yet.</div>".into();
    }
    let mut o = format!(
        "<table class=\"grid\" id=\"history\"><thead><tr><th>When</th>{}<th>Action</th><th>By</th><th>Status</th><th>Exit</th><th>Summary</th></tr></thead><tbody>",
        if show_agent { "<th>Host</th>" } else { "" }
    );
    for c in cmds {
        o.push_str(&format!(
            "<tr data-command=\"{id}\"><td>{when}</td>{agent}<td><code>{action}</code></td><td>{by} <span class=\"src src-{src}\">{src}</span></td><td>{pill}</td><td>{exit}</td><td class=\"sum\">{sum}</td></tr>",
            id = esc(&c.id),
            when = time(c.created_at),
            agent = if show_agent { format!("<td><a href=\"/agents/{0}\">{1}</a></td>", esc(&c.agent_id), esc(&short(&c.agent_id))) } else { String::new() },
            action = esc(&c.action),
            by = esc(&c.requested_by),
            src = esc(&c.source),
            pill = pill(&c.status),
            exit = c.exit_code.map(|e| e.to_string()).unwrap_or_default(),
            sum = esc(&c.summary) + &outcome_note(c),
        ));
    }
    o.push_str("</tbody></table>");
    o
}

async fn agent_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let a = match agent::Entity::find_by_id(id.clone()).one(&state.db).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    &who,
                    "fleet",
                    "Agent not found",
                    &format!(
                        "<div class=\"empty\">No agent <code>{}</code>. <a href=\"/fleet\">Back to the fleet</a></div>",
                        esc(&id)
                    ),
                ),
            )
                .into_response()
        }
        Err(e) => return unavailable(e),
    };
    let now = bus_schema::now_ms();
    let hour = series(&state, &a.id, now - 3_600_000, 60_000).await;
    let day = series(&state, &a.id, now - 86_400_000, 900_000).await;
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
    let mods: String = modules
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            format!(
                "<span class=\"chip\">{}</span>",
                esc(x.as_str().unwrap_or(""))
            )
        })
        .chain(a.rootd_error.iter().map(|e| {
            format!(
                "<p class=\"form-error\">rootd is not answering this agent ({}): its modules are unknown until it does. Start <code>drover-rootd</code> on the host.</p>",
                esc(e)
            )
        }))
        .collect();
    // Services: the latest service listing this agent answered, if any.
    let services = cmds
        .iter()
        .find(|c| c.action.starts_with("service.") && c.status == "succeeded" && c.result.is_some())
        .map(|c| {
            format!(
                "<p class=\"mut\">From <code>{}</code> {}</p><pre class=\"out\">{}</pre>",
                esc(&c.action),
                time(c.finished_at.unwrap_or(c.updated_at)),
                esc(&serde_json::to_string_pretty(&parse_json(c.result.as_deref().unwrap_or("null"))).unwrap_or_default())
            )
        })
        .unwrap_or_else(|| "<p class=\"mut\">No service listing yet: run <code>service.status</code> or <code>service.list</code> below.</p>".into());
    let run = if who.can(Role::Operator) && a.status != "revoked" {
        format!(
            "<section class=\"card\" id=\"run-card\"><h2>Run an action</h2>\
<form id=\"run-form\" data-agent=\"{}\" class=\"runner\"><label>Action<select id=\"action\" name=\"action\"></select></label>\
<p class=\"mut\" id=\"action-desc\"></p><div id=\"params\" class=\"fields\"></div>\
<div class=\"row\"><button class=\"primary\" id=\"run\" type=\"submit\">Run</button><span class=\"form-error\"></span></div></form>\
<div id=\"run-result\" class=\"result\" hidden></div></section>",
            esc(&a.id)
        )
    } else {
        String::new()
    };
    let admin = if who.can(Role::Admin) && a.status != "revoked" {
        format!(
            "<button class=\"danger small\" data-api=\"/api/v1/agents/{}/revoke\" data-method=\"POST\" data-confirm=\"Revoke {}? The broker disconnects it at once.\">Revoke agent</button>",
            esc(&a.id),
            esc(&a.hostname)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<div data-live=\"agent-head\" id=\"agent-head\"><section class=\"card head\"><div><h2 class=\"host\">{host} {pill}</h2>\
<div class=\"id\">{id}</div><div class=\"mut\">{os} · kernel {kernel} · agent {ver} · last seen {seen} · heartbeat every {hb}s</div>\
<div id=\"clock\">{clock}</div><div>{labels}</div><div>{ops}</div></div><div>{admin}</div></section>\
<div class=\"stats\"><div class=\"stat\"><span>CPU</span>{cpu}</div><div class=\"stat\"><span>Memory</span>{mem}</div>\
<div class=\"stat\"><span>Disk</span>{disk}</div><div class=\"stat\"><span>Load</span><b>{load:.2}</b></div></div></div>\
<div class=\"cols\"><section class=\"card\">{c1}</section><section class=\"card\">{c2}</section></div>\
{run}\
<div class=\"cols\"><section class=\"card\"><h2>Facts</h2>{facts}</section>\
<section class=\"card\"><h2>Modules</h2><div class=\"chips\">{mods}</div><h2>Services</h2>{services}</section></div>\
<section class=\"card\"><h2>Command history</h2><div data-live=\"history\" id=\"history-wrap\">{hist}</div></section>",
        host = esc(&a.hostname),
        pill = pill(&a.status),
        id = esc(&a.id),
        os = esc(&a.os),
        kernel = esc(&a.kernel),
        ver = esc(&a.agent_version),
        seen = time(a.last_seen),
        hb = a.heartbeat_secs,
        clock = crate::skew::html(clock.get(&a.id)),
        labels = labels_html(&parse_json(&a.labels)),
        ops = ops_html(&parse_json(&a.operations)),
        cpu = bar(f("cpu_percent"), 100.0),
        mem = bar(f("mem_used_bytes"), f("mem_total_bytes")),
        disk = bar(f("disk_used_bytes"), f("disk_total_bytes")),
        load = f("load1"),
        c1 = chart("Last hour", &hour, now - 3_600_000, now),
        c2 = chart("Last day", &day, now - 86_400_000, now),
        facts = facts_table(&Value::Object(crate::selector::facts_of(&a))),
        hist = commands_table(&cmds, false),
    );
    // Two machines on this identity: say so above everything else.
    let conflict = crate::clones::view(&state.db, &a.id)
        .await
        .unwrap_or(Value::Null);
    let body = format!("{}{body}", identity::banner(&[conflict]));
    page(&who, "fleet", &a.hostname, &body).into_response()
}

// ---------------------------------------------------------------------- jobs

fn progress(counts: &Value, target: i64) -> String {
    let t = target.max(1) as f64;
    let g = |k: &str| counts[k].as_i64().unwrap_or(0);
    let seg = |k: &str, cls: &str| {
        let n = g(k);
        if n == 0 {
            String::new()
        } else {
            format!(
                "<i class=\"{cls}\" style=\"width:{:.2}%\" title=\"{n} {k}\"></i>",
                n as f64 / t * 100.0
            )
        }
    };
    format!(
        "<span class=\"progress\">{}{}{}{}</span>",
        seg("succeeded", "p-ok"),
        seg("failed", "p-bad"),
        seg("expired", "p-bad"),
        seg("running", "p-run")
    )
}

async fn jobs_page(
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
    let mut list = String::new();
    if js.is_empty() {
        list.push_str("<div class=\"empty small\">No jobs yet.</div>");
    } else {
        list.push_str("<table class=\"grid\" id=\"jobs\"><thead><tr><th>Created</th><th>Job</th><th>Action</th><th>By</th><th>Targets</th><th>Progress</th><th>State</th></tr></thead><tbody>");
        for j in &js {
            let v = match crate::jobs::view(&state, j).await {
                Ok(v) => v,
                Err(e) => return unavailable(e),
            };
            let c = &v["counts"];
            list.push_str(&format!(
                "<tr><td>{}</td><td><a href=\"/jobs/{id}\" class=\"id\">{sid}</a></td><td><code>{}</code></td><td>{} <span class=\"src src-{src}\">{src}</span></td><td>{}</td><td>{} <span class=\"num\">{}/{} ok</span></td><td>{}</td></tr>",
                time(j.created_at),
                esc(&j.action),
                esc(&j.requested_by),
                j.target_count,
                progress(c, j.target_count as i64),
                c["succeeded"].as_i64().unwrap_or(0),
                j.target_count,
                if v["done"] == true { pill("done") } else { pill("running") },
                id = esc(&j.id),
                sid = esc(&short(&j.id)),
                src = esc(&j.source),
            ));
        }
        list.push_str("</tbody></table>");
    }
    let create = if who.can(Role::Operator) {
        "<section class=\"card\"><h2>New job</h2><form id=\"job-form\" class=\"runner\">\
<div class=\"selector\" id=\"selector\"><label>Targets<select id=\"sel-mode\"><option value=\"all\">all approved agents</option><option value=\"hostname\">hostname pattern</option><option value=\"labels\">labels</option><option value=\"agents\">agent ids</option></select></label>\
<label id=\"sel-value-wrap\" hidden>Value<input id=\"sel-value\" placeholder=\"web-*\"></label>\
<span class=\"preview\" id=\"preview\">…</span></div>\
<label>Action<select id=\"action\" name=\"action\"></select></label><p class=\"mut\" id=\"action-desc\"></p>\
<div id=\"params\" class=\"fields\"></div>\
<div class=\"row\"><button class=\"primary\" id=\"submit-job\" type=\"submit\">Start job</button><span class=\"form-error\"></span></div></form></section>"
            .to_string()
    } else {
        String::new()
    };
    page(
        &who,
        "jobs",
        "Jobs",
        &format!("{create}<section class=\"card\"><h2>Recent jobs</h2><div data-live=\"jobs\" id=\"jobs-wrap\">{list}</div></section>"),
    )
    .into_response()
}

async fn job_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let j = match job::Entity::find_by_id(id.clone()).one(&state.db).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    &who,
                    "jobs",
                    "Job not found",
                    "<div class=\"empty\">No such job. <a href=\"/jobs\">All jobs</a></div>",
                ),
            )
                .into_response()
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
    let done = v["done"] == true;
    let open: Vec<&command::Model> = hosts
        .iter()
        .filter(|c| {
            !bus_schema::CommandStatus::parse(&c.status)
                .map(|s| s.is_final())
                .unwrap_or(false)
        })
        .collect();
    let cancel = if who.can(Role::Operator) && !done && !open.is_empty() {
        format!(
            "<button class=\"danger\" id=\"cancel-job\" data-commands=\"{}\">Cancel {} open commands</button>",
            esc(&open.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(",")),
            open.len()
        )
    } else {
        String::new()
    };
    let mut rows = String::new();
    for h in &hosts {
        let tail = h
            .result
            .as_deref()
            .map(|r| {
                let r = parse_json(r);
                let s = match (&r["stdout"], &r["output"]) {
                    (Value::String(s), _) | (_, Value::String(s)) => s.clone(),
                    _ => serde_json::to_string(&r).unwrap_or_default(),
                };
                let tail: String = s
                    .chars()
                    .rev()
                    .take(400)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                tail
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr data-command=\"{cid}\"><td><a href=\"/agents/{aid}\">{host}</a></td><td>{pill}</td><td>{exit}</td><td class=\"sum\">{sum}</td><td><pre class=\"tail\">{tail}</pre></td></tr>",
            aid = esc(&h.agent_id),
            cid = esc(&h.id),
            host = esc(names.get(&h.agent_id).map(String::as_str).unwrap_or(&h.agent_id)),
            pill = pill(&h.status),
            exit = h.exit_code.map(|e| e.to_string()).unwrap_or_default(),
            sum = esc(&h.summary) + &outcome_note(h),
            tail = esc(&tail),
        ));
    }
    let body = format!(
        "<div data-live=\"job\" id=\"job-live\" data-done=\"{done}\"><section class=\"card head\"><div><h2><code>{action}</code> on {target} hosts {state}</h2>\
<div class=\"id\">{id}</div><div class=\"mut\">by {by} ({src}) · {when} · selector <code>{sel}</code></div></div><div>{cancel}</div></section>\
<div class=\"stats\"><div class=\"stat\"><span>Succeeded</span><b id=\"n-ok\">{ok}</b></div><div class=\"stat\"><span>Failed</span><b>{bad}</b></div>\
<div class=\"stat\"><span>Running</span><b>{run}</b></div><div class=\"stat\"><span>Pending</span><b>{pend}</b></div><div class=\"stat\"><span>Offline</span><b>{off}</b></div></div>\
<section class=\"card\">{prog}<table class=\"grid\" id=\"job-hosts\"><thead><tr><th>Host</th><th>Status</th><th>Exit</th><th>Summary</th><th>Output (tail)</th></tr></thead><tbody>{rows}</tbody></table></section></div>",
        action = esc(&j.action),
        target = j.target_count,
        state = if done { pill("done") } else { pill("running") },
        id = esc(&j.id),
        by = esc(&j.requested_by),
        src = esc(&j.source),
        when = time(j.created_at),
        sel = esc(&j.selector),
        ok = c["succeeded"].as_i64().unwrap_or(0),
        bad = c["failed"].as_i64().unwrap_or(0) + c["expired"].as_i64().unwrap_or(0),
        run = c["running"].as_i64().unwrap_or(0),
        pend = c["pending"].as_i64().unwrap_or(0),
        off = c["offline"].as_i64().unwrap_or(0),
        prog = progress(c, j.target_count as i64),
    );
    page(&who, "jobs", "Job", &body).into_response()
}

// ---------------------------------------------------------------------- apps

async fn apps_page(Extension(who): Extension<Principal>) -> Response {
    let body = format!(
        "<div id=\"apps\" class=\"apps\" data-can-install=\"{}\"><div class=\"empty small\">Loading the catalogue…</div></div>\
<section class=\"card\" id=\"install-card\" hidden><h2 id=\"install-title\"></h2><p class=\"mut\" id=\"install-desc\"></p>\
<form id=\"install-form\" class=\"runner\" autocomplete=\"off\"><div id=\"inputs\" class=\"fields\"></div>\
<div class=\"selector\"><label>Targets<select id=\"sel-mode\"><option value=\"all\">all approved agents</option><option value=\"hostname\">hostname pattern</option><option value=\"labels\">labels</option><option value=\"agents\">agent ids</option></select></label>\
<label id=\"sel-value-wrap\" hidden>Value<input id=\"sel-value\"></label><span class=\"preview\" id=\"preview\">…</span></div>\
<div class=\"row\"><button class=\"primary\" id=\"install\" type=\"submit\">Install</button><button type=\"button\" id=\"install-cancel\">Close</button><span class=\"form-error\"></span></div></form></section>",
        who.can(Role::Operator)
    );
    page(&who, "apps", "Apps", &body).into_response()
}

// ----------------------------------------------------------------- enrolment

async fn enrolment(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let tokens = match crate::tokens::list(&state.db).await {
        Ok(t) => t,
        Err(e) => return unavailable(e),
    };
    let pending = agent::Entity::find()
        .filter(agent::Column::Status.eq("pending"))
        .order_by_desc(agent::Column::FirstSeen)
        .limit(200)
        .all(&state.db)
        .await;
    let recent = agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .order_by_desc(agent::Column::FirstSeen)
        .limit(20)
        .all(&state.db)
        .await;
    let (Ok(pending), Ok(recent)) = (pending, recent) else {
        return unavailable("database");
    };
    let admin = who.can(Role::Admin);
    let mut t = String::new();
    if tokens.is_empty() {
        t.push_str("<div class=\"empty small\">No registration tokens.</div>");
    } else {
        t.push_str("<table class=\"grid\" id=\"tokens\"><thead><tr><th>Id</th><th>State</th><th>Uses</th><th>Expires</th><th>Labels</th><th>Auto-approve</th><th>By</th><th></th></tr></thead><tbody>");
        for k in &tokens {
            let v = crate::tokens::token_json(k);
            let st = v["state"].as_str().unwrap_or("");
            t.push_str(&format!(
                "<tr><td class=\"id\">{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&k.id),
                pill(st),
                k.uses,
                k.uses_allowed,
                time(k.expires_at),
                labels_html(&parse_json(&k.labels)),
                if k.auto_approve { "yes" } else { "no" },
                esc(&k.created_by),
                if admin && st == "active" {
                    format!("<button class=\"small\" data-api=\"/api/v1/tokens/{}\" data-method=\"DELETE\">Revoke</button>", esc(&k.id))
                } else {
                    String::new()
                }
            ));
        }
        t.push_str("</tbody></table>");
    }
    let create = if admin {
        "<form data-api=\"/api/v1/tokens\" data-secret=\"token\" class=\"inline-form\" id=\"token-form\">\
<label>Uses<input name=\"uses\" type=\"number\" min=\"1\" value=\"1\" data-type=\"int\"></label>\
<label>Expires<input name=\"expires\" value=\"24h\" size=\"6\"></label>\
<label>Labels<input name=\"labels\" placeholder=\"env=prod,role=web\" data-type=\"kv\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"auto_approve\"> auto-approve</label>\
<button class=\"primary\">Create token</button><span class=\"form-error\"></span>\
<div class=\"secret\" hidden><b>Registration token — shown once.</b> Put it in the agent's <code>enroll_token</code>.<code class=\"value\"></code></div></form>"
            .to_string()
    } else {
        String::new()
    };
    let mut p = String::new();
    if pending.is_empty() {
        p.push_str("<div class=\"empty small\">No agents are waiting for approval.</div>");
    } else {
        p.push_str("<table class=\"grid\" id=\"pending\"><thead><tr><th>Host</th><th>Machine id</th><th>Asked</th><th></th></tr></thead><tbody>");
        for a in &pending {
            p.push_str(&format!(
                "<tr><td>{}<div class=\"id\">{}</div></td><td class=\"id\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.hostname),
                esc(&a.id),
                esc(&a.machine_id),
                time(a.first_seen),
                if admin {
                    format!(
                        "<button class=\"primary small\" data-api=\"/api/v1/agents/{0}/approve\" data-method=\"POST\">Approve</button> <button class=\"small\" data-api=\"/api/v1/agents/{0}/reject\" data-method=\"POST\">Reject</button>",
                        esc(&a.id)
                    )
                } else {
                    String::new()
                }
            ));
        }
        p.push_str("</tbody></table>");
    }
    let mut r = String::from("<table class=\"grid\"><thead><tr><th>Host</th><th>Status</th><th>Enrolled</th><th>Approved by</th><th></th></tr></thead><tbody>");
    for a in &recent {
        r.push_str(&format!(
            "<tr><td><a href=\"/agents/{id}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.hostname),
            pill(&a.status),
            time(a.first_seen),
            esc(a.approved_by.as_deref().unwrap_or("")),
            if admin {
                format!("<button class=\"danger small\" data-api=\"/api/v1/agents/{id}/revoke\" data-method=\"POST\" data-confirm=\"Revoke {}? The broker disconnects it at once.\">Revoke</button>", esc(&a.hostname), id = esc(&a.id))
            } else {
                String::new()
            },
            id = esc(&a.id),
        ));
    }
    r.push_str("</tbody></table>");
    let body = format!(
        "<div data-live=\"enrolment\" id=\"enrolment-live\"><section class=\"card\"><h2>Pending agents</h2>{p}</section></div>\
<section class=\"card\"><h2>Registration tokens</h2>{create}<div data-live=\"tokens\" id=\"tokens-wrap\">{t}</div></section>\
<section class=\"card\"><h2>Recently enrolled</h2><div data-live=\"recent\" id=\"recent-wrap\">{r}</div></section>"
    );
    page(&who, "enrolment", "Enrolment", &body).into_response()
}

// ------------------------------------------------------------------ security

async fn security(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let v = match crate::trust::overview(&state).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let mut refused = String::new();
    for r in v["refused"].as_array().into_iter().flatten() {
        refused.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            esc(r["source"].as_str().unwrap_or("")),
            esc(r["reason"].as_str().unwrap_or("")),
            r["count"]
        ));
    }
    if refused.is_empty() {
        refused.push_str("<tr><td colspan=\"3\" class=\"mut\">Nothing refused.</td></tr>");
    }
    let mut dropped = String::new();
    for (what, key) in [
        ("malformed", "malformed_messages"),
        ("over rate", "refusals_dropped"),
    ] {
        for d in v[key].as_array().into_iter().flatten() {
            dropped.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"id\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                what,
                esc(d["subject"].as_str().unwrap_or("")),
                esc(&short(d["agent_id"].as_str().unwrap_or(""))),
                d["count"],
                esc(d["last_detail"].as_str().unwrap_or(""))
            ));
        }
    }
    if dropped.is_empty() {
        dropped.push_str("<tr><td colspan=\"5\" class=\"mut\">Nothing dropped.</td></tr>");
    }
    let mut conflicts = String::new();
    for c in v["binding_conflicts"].as_array().into_iter().flatten() {
        conflicts.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td><td class=\"id\">{}</td></tr>",
            time(c["at"].as_i64().unwrap_or(0)),
            esc(c["kind"].as_str().unwrap_or("")),
            esc(c["hostname"].as_str().unwrap_or("")),
            esc(c["machine_id"].as_str().unwrap_or("")),
            esc(c["existing_agent_id"].as_str().unwrap_or(""))
        ));
    }
    if conflicts.is_empty() {
        conflicts.push_str("<tr><td colspan=\"5\" class=\"mut\">No conflicts.</td></tr>");
    }
    let broker = &v["broker"];
    let broker_rows: String = broker
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            format!(
                "<tr><th>{}</th><td class=\"id\">{}</td></tr>",
                esc(k),
                esc(&v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()))
            )
        })
        .collect();
    let list = |key: &str| -> String {
        let items: String = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "<li><a href=\"/agents/{}\">{}</a> <span class=\"id\">{}</span></li>",
                    esc(a["id"].as_str().unwrap_or("")),
                    esc(a["hostname"].as_str().unwrap_or("")),
                    esc(&short(a["id"].as_str().unwrap_or("")))
                )
            })
            .collect();
        if items.is_empty() {
            "<p class=\"mut\">None.</p>".into()
        } else {
            format!("<ul class=\"plain\">{items}</ul>")
        }
    };
    let body = format!(
        "<div data-live=\"security\" id=\"security-live\"><div class=\"cols\"><section class=\"card\"><h2>Command signing key</h2>\
<table class=\"kv\"><tr><th>Fingerprint</th><td class=\"id\" id=\"fingerprint\">{fp}</td></tr><tr><th>Public key</th><td class=\"id\">{pk}</td></tr></table>\
<h2>Broker</h2><table class=\"kv\">{broker_rows}</table></section>\
<section class=\"card\"><h2>Refused commands and results</h2><table class=\"grid\"><thead><tr><th>Where</th><th>Reason</th><th>Count</th></tr></thead><tbody>{refused}</tbody></table></section></div>\
<section class=\"card\"><h2>Dropped input</h2><table class=\"grid\"><thead><tr><th>Why</th><th>Subject</th><th>Sender</th><th>Count</th><th>Last reason</th></tr></thead><tbody>{dropped}</tbody></table></section>\
<section class=\"card\"><h2>Machine-binding conflicts</h2><table class=\"grid\"><thead><tr><th>When</th><th>Kind</th><th>Host</th><th>Machine id</th><th>Existing agent</th></tr></thead><tbody>{conflicts}</tbody></table></section>\
<div class=\"cols\"><section class=\"card\"><h2>Revoked agents</h2>{rev}</section><section class=\"card\"><h2>Pending agents</h2>{pend}</section></div></div>",
        fp = esc(v["signing_key"]["fingerprint"].as_str().unwrap_or("")),
        pk = esc(v["signing_key"]["public_key"].as_str().unwrap_or("")),
        rev = list("revoked_agents"),
        pend = list("pending_agents"),
    );
    let banner = identity::banner(v["identity_conflicts"].as_array().map_or(&[], |a| a));
    let body = format!("{banner}{body}");
    page(&who, "security", "Security", &body).into_response()
}

// --------------------------------------------------------------------- audit

async fn audit_page(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(f): Query<audit::Filter>,
) -> Response {
    let f = audit::Filter {
        limit: Some(f.limit.unwrap_or(200).min(1000)),
        ..f
    };
    let rows = match audit::list(&state.db, &f).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let verdict = match audit::verify(&state.db).await {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let chain = match verdict {
        audit::Verdict::Intact { rows, head } => format!(
            "<div class=\"note ok\" id=\"chain\">Chain intact: {rows} entries, head <code>{}</code></div>",
            esc(&head[..16.min(head.len())])
        ),
        audit::Verdict::Broken { id, reason } => format!(
            "<div class=\"note bad\" id=\"chain\">Chain broken at entry {id}: {}</div>",
            esc(&reason)
        ),
    };
    let mut qs = vec![];
    for (k, v) in [
        ("actor", &f.actor),
        ("action", &f.action),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if let Some(v) = v.as_ref().filter(|s| !s.is_empty()) {
            qs.push(format!("{k}={}", auth::urlencode(v)));
        }
    }
    let qs = qs.join("&");
    let field = |name: &str, label: &str, v: &Option<String>, ph: &str| {
        format!(
            "<label>{label}<input name=\"{name}\" value=\"{}\" placeholder=\"{ph}\"></label>",
            esc(v.as_deref().unwrap_or(""))
        )
    };
    let table = match rows {
        Err(e) => format!("<div class=\"note bad\">{}</div>", esc(&e)),
        Ok(rows) if rows.is_empty() => "<div class=\"empty small\">No entries match.</div>".into(),
        Ok(rows) => {
            let mut o = String::from("<table class=\"grid\" id=\"audit\"><thead><tr><th>#</th><th>When</th><th>Who</th><th>From</th><th>Action</th><th>Target</th><th>Detail</th></tr></thead><tbody>");
            for r in &rows {
                o.push_str(&format!(
                    "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td><td><code>{}</code></td><td class=\"id\">{}</td><td class=\"detail\">{}</td></tr>",
                    r.id,
                    time(r.at),
                    esc(&r.actor),
                    esc(&r.ip),
                    esc(&r.action),
                    esc(&r.target),
                    esc(&r.detail)
                ));
            }
            o.push_str("</tbody></table>");
            o
        }
    };
    let body = format!(
        "{chain}<form class=\"toolbar\" method=\"get\" action=\"/audit\">{}{}{}{}<button>Filter</button>\
<a class=\"btn\" href=\"/api/v1/audit?format=csv&amp;limit=100000{amp}{qs}\" id=\"export-csv\">Export CSV</a>\
<a class=\"btn\" href=\"/api/v1/audit?format=json&amp;limit=100000{amp}{qs}\">Export JSON</a></form>\
<div data-live=\"audit\" id=\"audit-wrap\">{table}</div>",
        field("actor", "Who", &f.actor, "alice"),
        field("action", "Action", &f.action, "command, login…"),
        field("since", "Since", &f.since, "2026-11-24"),
        field("until", "Until", &f.until, "2026-11-25T12:00Z"),
        amp = if qs.is_empty() { "" } else { "&amp;" },
        qs = esc(&qs),
    );
    page(&who, "audit", "Audit trail", &body).into_response()
}

// ------------------------------------------------------------------- account

async fn account(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let u = match &who.via {
        auth::Via::Session { user_id, .. } => user::Entity::find_by_id(user_id.clone())
            .one(&state.db)
            .await
            .ok()
            .flatten(),
        auth::Via::Token { .. } => None,
    };
    let Some(u) = u else {
        return page(&who, "account", "Account", "<div class=\"empty\">You are using an API token; accounts are for people logged in to the web UI.</div>").into_response();
    };
    let totp = if u.totp_secret.is_some() {
        "<p>Two-factor authentication is <b>on</b>: logins ask for a code from your authenticator app.</p>\
<form data-api=\"/api/v1/account/totp\" data-method=\"DELETE\" data-reload=\"1\" class=\"inline-form\"><label>Current code<input name=\"code\" inputmode=\"numeric\" required></label><button class=\"danger\">Turn off</button><span class=\"form-error\"></span></form>"
            .to_string()
    } else {
        "<p>Two-factor authentication is <b>off</b>. Turn it on to require a code from an authenticator app at every login.</p>\
<button class=\"primary\" id=\"totp-start\">Set up two-factor authentication</button>\
<div id=\"totp-setup\" hidden><p>Add this secret to your authenticator app (it is shown only now):</p><code class=\"value\" id=\"totp-secret\"></code>\
<p class=\"mut small\">or open: <code id=\"totp-url\"></code></p>\
<form data-api=\"/api/v1/account/totp/confirm\" data-reload=\"1\" class=\"inline-form\"><label>Code from the app<input name=\"code\" inputmode=\"numeric\" required></label><button class=\"primary\">Confirm</button><span class=\"form-error\"></span></form></div>"
            .to_string()
    };
    let body = format!(
        "<div class=\"cols\"><section class=\"card\"><h2>{}</h2><p>Role: {}</p>\
<h2>Change password</h2><form data-api=\"/api/v1/account/password\" class=\"stack-form\" data-done=\"Password changed.\">\
<label>Current password<input type=\"password\" name=\"current\" required autocomplete=\"current-password\"></label>\
<label>New password (12 characters or more)<input type=\"password\" name=\"new\" required minlength=\"12\" autocomplete=\"new-password\"></label>\
<button class=\"primary\">Change password</button><span class=\"form-error\"></span></form></section>\
<section class=\"card\"><h2>Two-factor authentication</h2>{totp}</section></div>",
        esc(&u.name),
        pill(&u.role),
    );
    page(&who, "account", "Account", &body).into_response()
}

// --------------------------------------------------------------------- users

async fn users(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Response {
    let (us, toks) = match (
        auth::list_users(&state.db).await,
        api_token::Entity::find()
            .order_by_asc(api_token::Column::CreatedAt)
            .all(&state.db)
            .await,
    ) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => return unavailable(e),
    };
    let role_select = |name: &str, cur: &str| {
        format!(
            "<form data-api=\"/api/v1/users/{}/role\" class=\"inline-form auto\"><select name=\"role\">{}</select><button class=\"small\">Set</button><span class=\"form-error\"></span></form>",
            esc(name),
            ["viewer", "operator", "admin"]
                .iter()
                .map(|r| format!("<option {}>{r}</option>", if *r == cur { "selected" } else { "" }))
                .collect::<String>()
        )
    };
    let mut ut = String::from("<table class=\"grid\" id=\"users\"><thead><tr><th>User</th><th>Role</th><th>2FA</th><th>Created</th><th></th></tr></thead><tbody>");
    for u in &us {
        ut.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.name),
            role_select(&u.name, &u.role),
            if u.totp_secret.is_some() { "on" } else { "off" },
            time(u.created_at),
            format_args!("<button class=\"danger small\" data-api=\"/api/v1/users/{0}\" data-method=\"DELETE\" data-confirm=\"Remove user {0}?\">Remove</button>", esc(&u.name)),
        ));
    }
    ut.push_str("</tbody></table>");
    let mut tt = String::from("<table class=\"grid\" id=\"api-tokens\"><thead><tr><th>Name</th><th>Role</th><th>Created</th><th></th></tr></thead><tbody>");
    for t in &toks {
        tt.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><button class=\"danger small\" data-api=\"/api/v1/api-tokens/{}\" data-method=\"DELETE\" data-confirm=\"Revoke API token {}?\">Revoke</button></td></tr>",
            esc(&t.name),
            pill(&t.role),
            time(t.created_at),
            esc(&t.id),
            esc(&t.name)
        ));
    }
    tt.push_str("</tbody></table>");
    let body = format!(
        "<section class=\"card\"><h2>Users</h2><div data-live=\"users\" id=\"users-wrap\">{ut}</div>\
<h2>Add a user</h2><form data-api=\"/api/v1/users\" class=\"inline-form\" id=\"user-form\">\
<label>Name<input name=\"name\" required></label><label>Role<select name=\"role\"><option>viewer</option><option>operator</option><option>admin</option></select></label>\
<label>Password<input type=\"password\" name=\"password\" minlength=\"12\" required autocomplete=\"new-password\"></label>\
<button class=\"primary\">Add user</button><span class=\"form-error\"></span></form></section>\
<section class=\"card\"><h2>API tokens</h2><p class=\"mut\">For automation, each bound to a role. The bootstrap token from <code>drover init</code> is meant for set-up only: create a token with the least role each tool needs, then revoke the bootstrap one.</p>\
<div data-live=\"api-tokens\" id=\"api-tokens-wrap\">{tt}</div>\
<form data-api=\"/api/v1/api-tokens\" data-secret=\"token\" class=\"inline-form\" id=\"api-token-form\"><label>Name<input name=\"name\" required placeholder=\"ci-deploy\"></label>\
<label>Role<select name=\"role\"><option>viewer</option><option selected>operator</option><option>admin</option></select></label><button class=\"primary\">Create token</button><span class=\"form-error\"></span>\
<div class=\"secret\" hidden><b>API token — shown once.</b> Send it as <code>Authorization: Bearer …</code>.<code class=\"value\"></code></div></form></section>"
    );
    page(&who, "users", "Users & API tokens", &body).into_response()
}

/// For tests of the escaping rule.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>\"&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert_eq!(safe_next(Some("//evil.example")), "/fleet");
        assert_eq!(safe_next(Some("https://evil.example")), "/fleet");
        assert_eq!(safe_next(Some("/agents/x")), "/agents/x");
    }
}
