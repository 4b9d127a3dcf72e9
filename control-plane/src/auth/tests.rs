//! Tests of the gate: every registered route has a decided role (a new
//! route that is not listed fails, so its access is chosen on purpose),
//! role order, and the CSRF form parser.

use super::*;

/// Every route registered anywhere in the sources (`.route(PATH,
/// get(..).post(..))`), with the role each method needs. A new route that
/// is not listed here fails the test, so its access is decided on purpose.
#[test]
fn every_route_has_a_decided_role() {
    use Role::*;
    let expected: &[(&str, &str, Access)] = &[
        ("GET", "/healthz", Access::Public),
        ("GET", "/readyz", Access::Public),
        // Prometheus scrapes with a (viewer) bearer token.
        ("GET", "/metrics", Access::Least(Viewer)),
        ("GET", "/api/v1/agents/{id}/metrics", Access::Least(Viewer)),
        ("GET", "/login", Access::Public),
        ("POST", "/login", Access::Public),
        ("GET", "/ui/{file}", Access::Public),
        ("GET", "/install.sh", Access::Public),
        ("GET", "/releases/index", Access::Public),
        ("GET", "/releases/{name}", Access::Public),
        ("POST", "/api/v1/enroll/bootstrap", Access::Public),
        ("GET", "/api/v1/releases", Access::Least(Viewer)),
        ("POST", "/api/v1/releases", Access::Least(Admin)),
        ("GET", "/api/v1/releases/{version}", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/releases/{version}/yank",
            Access::Least(Admin),
        ),
        ("GET", "/releases", Access::Least(Viewer)),
        ("GET", "/api/v1/rollouts", Access::Least(Viewer)),
        ("POST", "/api/v1/rollouts", Access::Least(Operator)),
        ("GET", "/api/v1/rollouts/{id}", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/rollouts/{id}/pause",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/rollouts/{id}/resume",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/rollouts/{id}/abort",
            Access::Least(Operator),
        ),
        ("GET", "/rollouts", Access::Least(Viewer)),
        ("GET", "/rollouts/{id}", Access::Least(Viewer)),
        ("POST", "/logout", Access::Least(Viewer)),
        ("GET", "/", Access::Least(Viewer)),
        ("GET", "/fleet", Access::Least(Viewer)),
        ("GET", "/agents/{id}", Access::Least(Viewer)),
        ("GET", "/jobs", Access::Least(Viewer)),
        ("GET", "/jobs/{id}", Access::Least(Viewer)),
        ("GET", "/operations", Access::Least(Viewer)),
        ("GET", "/apps", Access::Least(Viewer)),
        ("GET", "/enrolment", Access::Least(Viewer)),
        ("GET", "/security", Access::Least(Viewer)),
        ("GET", "/audit", Access::Least(Viewer)),
        ("GET", "/account", Access::Least(Viewer)),
        ("GET", "/users", Access::Least(Admin)),
        ("GET", "/api/v1/agents", Access::Least(Viewer)),
        ("GET", "/api/v1/agents/{id}", Access::Least(Viewer)),
        ("GET", "/api/v1/agents/{id}/commands", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/agents/{id}/commands",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/commands/{id}", Access::Least(Viewer)),
        ("GET", "/api/v1/commands/{id}/output", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/commands/{id}/cancel",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/actions", Access::Least(Viewer)),
        // The API's contract and its page: any logged-in role.
        ("GET", "/api/v1/openapi.json", Access::Least(Viewer)),
        ("GET", "/api/docs", Access::Least(Viewer)),
        ("GET", "/api/v1/tokens", Access::Least(Viewer)),
        ("POST", "/api/v1/tokens", Access::Least(Admin)),
        ("DELETE", "/api/v1/tokens/{id}", Access::Least(Admin)),
        ("POST", "/api/v1/agents/{id}/approve", Access::Least(Admin)),
        ("POST", "/api/v1/agents/{id}/reject", Access::Least(Admin)),
        ("POST", "/api/v1/agents/{id}/revoke", Access::Least(Admin)),
        ("PATCH", "/api/v1/agents/{id}", Access::Least(Operator)),
        ("POST", "/api/v1/agents/{id}", Access::Least(Operator)),
        (
            "POST",
            "/api/v1/agents/{id}/decommission",
            Access::Least(Admin),
        ),
        (
            "POST",
            "/api/v1/agents/{id}/conflict/resolve",
            Access::Least(Admin),
        ),
        ("GET", "/api/v1/agents/{id}/box-key", Access::Least(Viewer)),
        ("GET", "/api/v1/agents/{id}/actions", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/agents/{id}/box-key/accept",
            Access::Least(Admin),
        ),
        ("GET", "/schedules", Access::Least(Viewer)),
        ("GET", "/api/v1/schedules", Access::Least(Viewer)),
        ("POST", "/api/v1/schedules", Access::Least(Operator)),
        ("GET", "/api/v1/schedules/{id}", Access::Least(Viewer)),
        ("PUT", "/api/v1/schedules/{id}", Access::Least(Operator)),
        ("DELETE", "/api/v1/schedules/{id}", Access::Least(Operator)),
        (
            "POST",
            "/api/v1/schedules/{id}/enable",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/schedules/{id}/disable",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/duties", Access::Least(Viewer)),
        // Alerting: rules, alerts, acknowledgements, silences.
        ("GET", "/alerts", Access::Least(Viewer)),
        ("GET", "/api/v1/alerts", Access::Least(Viewer)),
        ("GET", "/api/v1/alerts/{id}", Access::Least(Viewer)),
        ("POST", "/api/v1/alerts/{id}/ack", Access::Least(Operator)),
        ("GET", "/api/v1/alerts/rules", Access::Least(Viewer)),
        ("POST", "/api/v1/alerts/rules", Access::Least(Operator)),
        ("PUT", "/api/v1/alerts/rules/{id}", Access::Least(Operator)),
        (
            "DELETE",
            "/api/v1/alerts/rules/{id}",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/alerts/rules/{id}/enable",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/alerts/rules/{id}/disable",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/silences", Access::Least(Viewer)),
        ("POST", "/api/v1/silences", Access::Least(Operator)),
        ("DELETE", "/api/v1/silences/{id}", Access::Least(Operator)),
        ("GET", "/windows", Access::Least(Viewer)),
        ("GET", "/updates/history", Access::Least(Viewer)),
        ("GET", "/api/v1/windows", Access::Least(Viewer)),
        ("POST", "/api/v1/windows", Access::Least(Operator)),
        ("GET", "/api/v1/windows/{id}", Access::Least(Viewer)),
        ("PUT", "/api/v1/windows/{id}", Access::Least(Operator)),
        ("DELETE", "/api/v1/windows/{id}", Access::Least(Operator)),
        ("GET", "/api/v1/windows/{id}/runs", Access::Least(Viewer)),
        (
            "GET",
            "/api/v1/windows/runs/{run_id}",
            Access::Least(Viewer),
        ),
        (
            "POST",
            "/api/v1/windows/runs/{run_id}/abort",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/updates/history", Access::Least(Viewer)),
        ("GET", "/api/v1/security", Access::Least(Viewer)),
        ("GET", "/api/v1/keys", Access::Least(Viewer)),
        ("POST", "/api/v1/keys/rotate", Access::Least(Admin)),
        ("GET", "/api/v1/automation-keys", Access::Least(Admin)),
        ("POST", "/api/v1/automation-keys", Access::Least(Admin)),
        (
            "DELETE",
            "/api/v1/automation-keys/{id}",
            Access::Least(Admin),
        ),
        ("GET", "/api/v1/jobs", Access::Least(Viewer)),
        ("POST", "/api/v1/jobs", Access::Least(Operator)),
        ("POST", "/api/v1/jobs/preview", Access::Least(Viewer)),
        ("GET", "/api/v1/jobs/{id}", Access::Least(Viewer)),
        ("GET", "/api/v1/jobs/{id}/hosts", Access::Least(Viewer)),
        ("GET", "/api/v1/operations", Access::Least(Viewer)),
        ("GET", "/api/v1/events", Access::Least(Viewer)),
        ("GET", "/api/v1/apps", Access::Least(Viewer)),
        ("GET", "/api/v1/apps/{id}", Access::Least(Viewer)),
        ("POST", "/api/v1/apps/{id}/install", Access::Least(Operator)),
        ("GET", "/api/v1/audit", Access::Least(Viewer)),
        ("GET", "/api/v1/users", Access::Least(Admin)),
        ("POST", "/api/v1/users", Access::Least(Admin)),
        ("DELETE", "/api/v1/users/{id}", Access::Least(Admin)),
        ("POST", "/api/v1/users/{id}/role", Access::Least(Admin)),
        ("GET", "/api/v1/api-tokens", Access::Least(Admin)),
        ("POST", "/api/v1/api-tokens", Access::Least(Admin)),
        ("DELETE", "/api/v1/api-tokens/{id}", Access::Least(Admin)),
        ("POST", "/api/v1/account/password", Access::Least(Viewer)),
        ("POST", "/api/v1/account/totp", Access::Least(Viewer)),
        ("DELETE", "/api/v1/account/totp", Access::Least(Viewer)),
        (
            "POST",
            "/api/v1/account/totp/confirm",
            Access::Least(Viewer),
        ),
        // Patch management: reading for everyone, deciding for operators.
        ("GET", "/updates", Access::Least(Viewer)),
        ("GET", "/api/v1/updates", Access::Least(Viewer)),
        ("GET", "/api/v1/updates/hosts", Access::Least(Viewer)),
        ("GET", "/api/v1/agents/{id}/updates", Access::Least(Viewer)),
        ("GET", "/api/v1/updates/approvals", Access::Least(Viewer)),
        ("POST", "/api/v1/updates/approvals", Access::Least(Operator)),
        (
            "POST",
            "/api/v1/updates/approvals/{id}/revoke",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/services", Access::Least(Viewer)),
        ("GET", "/services", Access::Least(Viewer)),
        ("GET", "/api/v1/services/watches", Access::Least(Viewer)),
        ("POST", "/api/v1/services/watches", Access::Least(Operator)),
        (
            "PUT",
            "/api/v1/services/watches/{id}",
            Access::Least(Operator),
        ),
        (
            "DELETE",
            "/api/v1/services/watches/{id}",
            Access::Least(Operator),
        ),
        ("GET", "/api/v1/updates/rules", Access::Least(Viewer)),
        ("POST", "/api/v1/updates/rules", Access::Least(Operator)),
        ("PUT", "/api/v1/updates/rules/{id}", Access::Least(Operator)),
        (
            "DELETE",
            "/api/v1/updates/rules/{id}",
            Access::Least(Operator),
        ),
        // Notifications: channels and their deliveries.
        ("GET", "/notifications", Access::Least(Viewer)),
        ("GET", "/api/v1/notify/channels", Access::Least(Viewer)),
        ("POST", "/api/v1/notify/channels", Access::Least(Operator)),
        (
            "PUT",
            "/api/v1/notify/channels/{id}",
            Access::Least(Operator),
        ),
        (
            "DELETE",
            "/api/v1/notify/channels/{id}",
            Access::Least(Operator),
        ),
        (
            "POST",
            "/api/v1/notify/channels/{id}/test",
            Access::Least(Operator),
        ),
        (
            "GET",
            "/api/v1/notify/channels/{id}/deliveries",
            Access::Least(Viewer),
        ),
    ];
    let found = routes_in_sources();
    assert!(found.len() > 40, "found only {} routes", found.len());
    for (method, path) in &found {
        let want = expected
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap_or_else(|| {
                panic!("route {method} {path} has no decided role: add it to this test's table")
            });
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(required(&m, path), want.2, "{method} {path}");
    }
    // And the table's entries hold, present or not (routes landing later).
    for (method, path, want) in expected {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        assert_eq!(required(&m, path), *want, "{method} {path}");
    }
}

/// (method, full path) of every `.route(...)` in `src/`, following
/// `.nest("/api/v1", ...)` by file: files under `src/api/` are nested.
fn routes_in_sources() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let mut dirs = vec![root.clone()];
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
        let nested = f.starts_with(root.join("api"));
        for c in route.captures_iter(&text) {
            let path = c[1].to_string();
            // The handler expression: up to the `)` closing `.route(`.
            let start = c.get(0).unwrap().start() + ".route(".len();
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
            let full = if nested && !path.starts_with("/api/") {
                format!("/api/v1{path}")
            } else {
                path
            };
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
fn roles_order_and_csrf_compare() {
    assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    assert_eq!(
        form_urlencoded_pairs(b"a=1&csrf=x%2By&b=hello+world"),
        vec![
            ("a".into(), "1".into()),
            ("csrf".into(), "x+y".into()),
            ("b".into(), "hello world".into())
        ]
    );
}

#[test]
fn a_nul_in_a_form_decodes_as_a_replacement_character() {
    assert_eq!(
        form_urlencoded_pairs(b"name=a%00b&password=c\0d"),
        vec![
            ("name".into(), "a\u{FFFD}b".into()),
            ("password".into(), "c\u{FFFD}d".into())
        ]
    );
}
