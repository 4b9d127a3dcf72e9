//! The browsable API reference (`/api/docs`): the OpenAPI document of
//! [`crate::api::openapi`] rendered server-side, operations grouped by tag,
//! each with method, path, summary, parameters, request body schema and
//! statuses. No viewer script (no CDN; the CSP forbids external and inline
//! script); maud escapes every text. Owns the rendering only, not the
//! document.

use axum::{response::IntoResponse, response::Response, Extension};
use maud::{html, Markup};
use serde_json::Value;

use crate::api::openapi;
use crate::auth::Principal;

use super::frame::page;

/// `GET /api/docs` (any role).
pub(super) async fn api_docs_page(Extension(who): Extension<Principal>) -> Response {
    let doc = openapi::document();
    let mut tags: Vec<&'static str> = vec![];
    let ops = openapi::operations();
    for o in &ops {
        if !tags.contains(&o.tag) {
            tags.push(o.tag);
        }
    }
    let body = html! {
        section.card #api-intro {
            p {
                "The machine-readable contract is "
                a href="/api/v1/openapi.json" { code { "/api/v1/openapi.json" } }
                " (OpenAPI 3.1). Authenticate with "
                code { "Authorization: Bearer <API token>" }
                " (make one on the Users page or with " code { "drover tokens" } "). Every error is "
                code { "{\"error\": \"...\"}" } " with the status listed below."
            }
            p {
                @for t in &tags { a href=(format!("#tag-{t}")) { (t) } " · " }
            }
        }
        @for t in &tags {
            section.card id=(format!("tag-{t}")) {
                h2 { (t) }
                @for o in ops.iter().filter(|o| o.tag == *t) {
                    (operation(&doc, o.method, o.path))
                }
            }
        }
    };
    page(&who, "api-docs", "API reference", body).into_response()
}

fn operation(doc: &Value, method: &str, path: &str) -> Markup {
    let op = &doc["paths"][path][method.to_lowercase()];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let body = op["requestBody"]["content"]
        .as_object()
        .and_then(|c| c.iter().next())
        .map(|(ct, v)| (ct.clone(), resolve(doc, &v["schema"])));
    let codes: Vec<String> = op["responses"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    html! {
        div.api-op id=(s(&op["operationId"])) {
            h3 { code { (method) } " " code { (path) } }
            p { (s(&op["summary"])) }
            @if !params.is_empty() {
                table.grid {
                    thead { tr { th { "Parameter" } th { "In" } th { "Type" } th { "Meaning" } } }
                    tbody {
                        @for p in &params {
                            tr {
                                td { code { (s(&p["name"])) } }
                                td { (s(&p["in"])) }
                                td { (s(&p["schema"]["type"])) }
                                td { (s(&p["description"])) }
                            }
                        }
                    }
                }
            }
            @if let Some((ct, schema)) = body {
                p.mut { "Request body (" (ct) "):" }
                pre { (serde_json::to_string_pretty(&schema).unwrap_or_default()) }
            }
            p.mut { "Answers: " (codes.join(", ")) }
        }
    }
}

/// A schema with a top-level `$ref` into `components/schemas` replaced by
/// its definition (one level, enough to read a body's fields).
fn resolve(doc: &Value, schema: &Value) -> Value {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .map(|name| doc["components"]["schemas"][name].clone())
        .unwrap_or_else(|| schema.clone())
}
