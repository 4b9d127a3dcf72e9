//! The document covers every API route registered in the sources, and its
//! operations are well-formed (unique ids, every path parameter declared).

use super::*;

/// (method, full path) of every `.route(...)` under `src/api/` (nested
/// under `/api/v1`), the same scan as `auth::tests` makes for roles.
fn api_routes_in_sources() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = vec![];
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let verbs = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let mut out = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for c in route.captures_iter(&text) {
            let start = c.get(0).unwrap().end();
            let mut depth = 1;
            let mut end = start;
            for (i, ch) in text[start..].char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = start + i;
                    break;
                }
            }
            let full = format!("/api/v1{}", &c[1]);
            for v in verbs.captures_iter(&text[start..end]) {
                out.push((v[1].to_uppercase(), full.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_api_route_is_in_the_document() {
    let found = api_routes_in_sources();
    assert!(found.len() > 80, "found only {} routes", found.len());
    let doc = document();
    let mut missing = vec![];
    for (method, path) in &found {
        if doc["paths"][path][method.to_lowercase()].is_null() {
            missing.push(format!(
                "route {method} {path} is not in the OpenAPI document: add a row to \
                 control-plane/src/api/openapi/table.rs, e.g. \
                 `op(\"{method}\", \"{path}\", \"<tag>\", \"<summary>\")` (wrap in `created(..)` \
                 for 201, `with_body(..)` or `typed(.., schema::<BodyType>)` for a JSON body, \
                 `query(.., &[(name, type, description)])` for query parameters)"
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // And no row documents a route that does not exist.
    for o in operations() {
        assert!(
            found.iter().any(|(m, p)| m == o.method && p == o.path),
            "{} {} is in openapi/table.rs but no such route is registered: remove the row",
            o.method,
            o.path
        );
    }
}

#[test]
fn operations_are_well_formed() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_string();
            assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                declared,
                path_params(path).collect::<Vec<_>>(),
                "{method} {path}"
            );
            assert!(op["responses"]["400"].is_object(), "{method} {path}");
        }
    }
    // A typed body's schema is referenced and defined.
    let body = &doc["paths"]["/api/v1/agents/{id}/commands"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    let name = body["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a reference: {body}"));
    let def = &doc["components"]["schemas"][name];
    assert!(def["properties"]["action"].is_object(), "{def}");
    assert!(def["required"]
        .as_array()
        .unwrap()
        .contains(&json!("action")));
}
