//! The audit trail page (`/audit`), filtered and paged. It reads
//! [`crate::audit`]'s rows and writes none.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
    Extension,
};
use maud::html;

use crate::audit;
use crate::auth::{self, Principal};
use crate::state::AppState;

use super::frame::{page, time, unavailable};

pub(super) async fn audit_page(
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
    let amp = if qs.is_empty() { "" } else { "&" };
    let field = |name: &str, label: &str, v: &Option<String>, ph: &str| {
        html! { label { (label) input name=(name) value=(v.as_deref().unwrap_or("")) placeholder=(ph); } }
    };
    let body = html! {
        @match verdict {
            audit::Verdict::Intact { rows, head } => {
                div.note.ok #chain { "Chain intact: " (rows) " entries, head " code { (head[..16.min(head.len())]) } }
            }
            audit::Verdict::Broken { id, reason } => {
                div.note.bad #chain { "Chain broken at entry " (id) ": " (reason) }
            }
        }
        form.toolbar method="get" action="/audit" {
            (field("actor", "Who", &f.actor, "alice"))
            (field("action", "Action", &f.action, "command, login…"))
            (field("since", "Since", &f.since, "2026-11-24"))
            (field("until", "Until", &f.until, "2026-11-25T12:00Z"))
            button { "Filter" }
            a.btn href=(format!("/api/v1/audit?format=csv&limit=100000{amp}{qs}")) #export-csv { "Export CSV" }
            a.btn href=(format!("/api/v1/audit?format=json&limit=100000{amp}{qs}")) { "Export JSON" }
        }
        div data-live="audit" #audit-wrap {
            @match &rows {
                Err(e) => { div.note.bad { (e) } }
                Ok(rows) if rows.is_empty() => { div.empty.small { "No entries match." } }
                Ok(rows) => {
                    table.grid #audit {
                        thead { tr {
                            th { "#" } th { "When" } th { "Who" } th { "From" }
                            th { "Action" } th { "Target" } th { "Detail" }
                        } }
                        tbody {
                            @for r in rows {
                                tr {
                                    td.num { (r.id) }
                                    td { (time(r.at)) }
                                    td { (r.actor) }
                                    td.id { (r.ip) }
                                    td { code { (r.action) } }
                                    td.id { (r.target) }
                                    td.detail { (r.detail) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&who, "audit", "Audit trail", body).into_response()
}
