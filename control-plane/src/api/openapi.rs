//! The API's OpenAPI 3.1 contract: [`document`] builds it from the
//! operation table ([`table`]) and the request types' JSON Schemas
//! (schemars, draft 2020-12, the dialect OpenAPI 3.1 uses), and
//! `GET /api/v1/openapi.json` serves it. The router (`api::routes`) is not
//! touched: a unit test checks that every route registered in the sources is
//! in the table, so a new route without a row fails with what to add.
//!
//! Owns the document only; the browsable page is `ui::api_docs`, the
//! handlers' behaviour is theirs.

use axum::Json;
use serde_json::{json, Map, Value};

pub mod table;

pub use table::{operations, Answer, Body, Op};

/// The error body every route answers with (`http::error::ApiError`).
fn api_error_schema() -> Value {
    json!({
        "type": "object",
        "description": "What went wrong and what to do next. Some answers add fields (e.g. `fields`: one error per invalid input).",
        "required": ["error"],
        "properties": { "error": { "type": "string" } },
    })
}

/// The statuses any operation may refuse with, each with the error body.
const ERRORS: &[(u16, &str)] = &[
    (
        400,
        "Malformed request: a parameter or body field is invalid (the message names it).",
    ),
    (
        401,
        "Not logged in: send `Authorization: Bearer <API token>` or a session cookie.",
    ),
    (
        403,
        "Your role may not do this, or the CSRF header is missing (browser sessions).",
    ),
    (404, "No such object."),
    (409, "The object's state does not allow this now."),
    (413, "The request body is too large."),
    (415, "The body must be `Content-Type: application/json`."),
    (
        422,
        "The request is well-formed but its values are refused.",
    ),
    (
        429,
        "Too many requests: retry after the `Retry-After` seconds.",
    ),
    (503, "The message bus or database is unavailable: retry."),
];

/// The OpenAPI 3.1 document of the whole API, as JSON.
pub fn document() -> Value {
    let mut gen = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for o in operations() {
        let item = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        item[o.method.to_lowercase()] = operation(&o, &mut gen);
    }
    let mut schemas: Map<String, Value> = gen.take_definitions(true).into_iter().collect();
    schemas.insert("ApiError".into(), api_error_schema());
    schemas.insert(
        "Object".into(),
        json!({ "type": "object", "description": "A JSON object; its fields are described in the operation's summary and docs/architecture.md." }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Drover API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Fleet management over NATS JetStream. Every route answers JSON; errors are `{\"error\": \"...\"}` with the status documented per operation. Authenticate with an API token (`drover tokens` / the Users page) as `Authorization: Bearer <token>`; browsers use the session cookie and send the CSRF token in `X-CSRF-Token` on writes.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearerToken": [] }, { "session": [], "csrf": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerToken": { "type": "http", "scheme": "bearer", "description": "An API token (its role decides what it may do)." },
                "session": { "type": "apiKey", "in": "cookie", "name": "drover_session", "description": "The web UI's session cookie." },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token", "description": "The page's CSRF token; required with the session cookie on writes." },
            },
        },
    })
}

/// One operation object.
fn operation(o: &Op, gen: &mut schemars::SchemaGenerator) -> Value {
    let mut params: Vec<Value> = path_params(o.path)
        .map(|p| {
            json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } })
        })
        .collect();
    params.extend(o.query.iter().map(|(name, ty, desc)| {
        let schema = match *ty {
            "integer" => json!({ "type": "integer", "minimum": 0 }),
            t => json!({ "type": t }),
        };
        json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
    }));
    let mut responses = Map::new();
    for code in o.ok {
        responses.insert(code.to_string(), success(o.answer));
    }
    for (code, why) in ERRORS {
        responses.insert(
            code.to_string(),
            json!({ "description": why, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } } }),
        );
    }
    let mut v = json!({
        "tags": [o.tag],
        "summary": o.summary,
        "operationId": operation_id(o),
        "parameters": params,
        "responses": responses,
    });
    let body = match o.body {
        Body::None => None,
        Body::AnyJson => Some((
            "application/json",
            json!({ "$ref": "#/components/schemas/Object" }),
        )),
        Body::Json(f) => Some(("application/json", f(gen).to_value())),
        Body::Binary => Some((
            "application/octet-stream",
            json!({ "type": "string", "contentMediaType": "application/octet-stream" }),
        )),
    };
    if let Some((ct, schema)) = body {
        v["requestBody"] = json!({ "required": true, "content": { ct: { "schema": schema } } });
    }
    if o.path == "/api/v1/enroll/bootstrap" {
        v["security"] = json!([]);
    }
    v
}

fn success(a: Answer) -> Value {
    let obj = json!({ "$ref": "#/components/schemas/Object" });
    match a {
        Answer::Json => {
            json!({ "description": "Success.", "content": { "application/json": { "schema": obj } } })
        }
        Answer::JsonOrCsv => {
            json!({ "description": "Success: JSON, or CSV with `format=csv`.", "content": {
            "application/json": { "schema": obj },
            "text/csv": { "schema": { "type": "string" } },
        } })
        }
        Answer::Events => {
            json!({ "description": "A stream of server-sent events, each `event: <kind>` with a JSON `data:` line.", "content": {
            "text/event-stream": { "schema": { "type": "string" } },
        } })
        }
    }
}

/// The `{name}` segments of a path template.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// `get_agents_id_commands` for `GET /api/v1/agents/{id}/commands`.
fn operation_id(o: &Op) -> String {
    let mut id = o.method.to_lowercase();
    for seg in o.path.trim_start_matches("/api/v1/").split('/') {
        id.push('_');
        id.extend(
            seg.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .map(|c| if c == '-' { '_' } else { c }),
        );
    }
    id
}

/// `GET /api/v1/openapi.json`: the document (any logged-in role).
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests;
