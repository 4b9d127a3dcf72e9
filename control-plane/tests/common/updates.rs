//! Asking the updates API what patch tests ask: any method as the admin
//! token, one host's updates and the decision on each, `approved_for` as
//! (package, approved_by) pairs, a `drover ... --json` answer, and the
//! refusals of bad approvals and rules (4xx, nothing stored). Starts
//! nothing; the flows and what they expect stay in the tests.

use std::collections::BTreeMap;

use control_plane::db::entities::agent;
use control_plane::updates::approvals::approved_for;
use serde_json::{json, Value};

use super::*;

/// Any method on `/api/v1{path}` as the admin token.
pub async fn call(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    api_request(&http, &stack.base, &stack.token, method, path, body).await
}

pub async fn host_updates(stack: &Stack, id: &str) -> Value {
    let (code, v) = stack.get(&format!("/agents/{id}/updates")).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// The decision on each of the host's rows, by package.
pub async fn decisions(stack: &Stack, id: &str) -> BTreeMap<String, (String, Value)> {
    let v = host_updates(stack, id).await;
    v["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["package"].as_str().unwrap().to_string(),
                (
                    u["decision"].as_str().unwrap().to_string(),
                    u["approved_by"].clone(),
                ),
            )
        })
        .collect()
}

pub async fn approved(
    db: &sea_orm::DatabaseConnection,
    host: &agent::Model,
    now: i64,
) -> Vec<(String, String)> {
    approved_for(db, host, now)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.package, a.approved_by))
        .collect()
}

pub fn drover_json(stack: &Stack, args: &[&str]) -> Value {
    let out = stack.drover(args);
    assert!(
        out.status.success(),
        "drover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "drover {args:?} --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Bad approvals and rules are refused (422 naming the field, 400 for an
/// unknown field, 409 for a rule name in use: the stack must hold a rule
/// named `all-later`) and nothing is stored.
pub async fn assert_updates_input_refused(stack: &Stack) {
    let (_, before) = stack.get("/updates/approvals").await;
    let n_before = before["approvals"].as_array().unwrap().len();
    let (_, rules) = stack.get("/updates/rules").await;
    let rules_before = rules["rules"].as_array().unwrap().len();
    let base = json!({"decision": "approve", "scope": "package", "package": "curl", "selector": {"all": true}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, says) in [
        (with("scope", json!("everything")), "scope"),
        (with("decision", json!("maybe")), "decision"),
        (with("package", json!("curl;reboot")), "package"),
        (with("package", json!("$(id)")), "package"),
        (with("version", json!("1.0 && reboot")), "version"),
        (with("selector", json!({})), "selector"),
        (with("selector", json!("")), "selector"),
        (with("expires_at", json!(1000)), "past"),
        (
            json!({"decision": "approve", "scope": "security", "package": "curl", "selector": {"all": true}}),
            "security",
        ),
        (
            json!({"decision": "approve", "scope": "package", "selector": {"all": true}}),
            "package",
        ),
    ] {
        let (code, v) = stack.post("/updates/approvals", &body).await;
        assert_eq!(code, 422, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let (code, v) = stack
        .post("/updates/approvals", &with("extra", json!(1)))
        .await;
    assert_eq!(code, 400, "unknown field: {v}");
    for (body, code_want) in [
        (
            json!({"name": "x", "scope": "security", "selector": {"all": true}, "delay_days": 400}),
            422,
        ),
        (
            json!({"name": "bad name;", "scope": "all", "selector": "all"}),
            422,
        ),
        (
            json!({"name": "x", "scope": "nope", "selector": "all"}),
            422,
        ),
        (
            json!({"name": "all-later", "scope": "all", "selector": "all"}),
            409,
        ),
    ] {
        let (code, v) = stack.post("/updates/rules", &body).await;
        assert_eq!(code, code_want, "{body}: {v}");
    }
    let (_, after) = stack.get("/updates/approvals").await;
    assert_eq!(
        after["approvals"].as_array().unwrap().len(),
        n_before,
        "nothing stored"
    );
    let (_, rules) = stack.get("/updates/rules").await;
    assert_eq!(
        rules["rules"].as_array().unwrap().len(),
        rules_before,
        "{rules}"
    );
}

/// A directory of package-tool test doubles for rootd's
/// `pkg_programs_dir`: `apt-get` prints `n` `Inst` lines of about 600 bytes
/// each (so the scan's result size is the test's choice), `dpkg-query`
/// knows no held package. Returns the rootd.toml line.
pub fn apt_listing_doubles(dir: &std::path::Path, n: usize) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let listing = dir.join("listing.txt");
    let text: String = (0..n)
        .map(|i| {
            let name = format!("lib{i:05}-{}", "n".repeat(200));
            let origin = format!("Debian:12/{}", "o".repeat(300));
            format!("Inst {name} [1.0-{i}] (1.1-{i} {origin} [amd64])\n")
        })
        .collect();
    std::fs::write(&listing, text).unwrap();
    for (name, body) in [
        ("apt-get", format!("#!/bin/sh\ncat {listing:?}\n")),
        ("dpkg-query", "#!/bin/sh\nexit 0\n".to_string()),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!("pkg_programs_dir = {dir:?}\n")
}

/// Publishes a final `pkg.scan` result for `command` as the host's agent
/// would (its credentials, signed with its key), listing `packages` as
/// (name, candidate) pairs; waits until the control plane has consumed
/// every result. What a redelivery, a replay or a late result looks like.
pub async fn publish_scan_result(
    stack: &Stack,
    host: &Host,
    command: &str,
    packages: &[(&str, &str)],
) {
    use bus_schema::{subjects, CommandResult, CommandStatus};
    let upgradable: Vec<Value> = packages
        .iter()
        .map(|(n, c)| json!({"name": n, "current": "1.0", "candidate": c, "origin": "o", "security": false}))
        .collect();
    let r = CommandResult {
        command_id: command.into(),
        agent_id: host.id.clone(),
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: format!("{} upgradable", packages.len()),
        data: json!({"manager": "apt", "upgradable": upgradable, "held": []}),
        attempt: 1,
        at: bus_schema::now_ms(),
    };
    let signed = bus_schema::signing::agent::agent_sign(&agent_key(host), &r);
    let js = async_nats::jetstream::new(agent_client(stack, host).await);
    js.publish(
        subjects::result(&host.id, command),
        bus_schema::encode(&signed).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    wait_consumer_settled(stack, subjects::RES_STREAM, subjects::CP_RES_CONSUMER).await;
}

/// `drover updates ...` with `--json` against the stack: every answer
/// parses and says what the API says (`hostile`: a package name the
/// inventory holds; the stack must hold `drover-test-alpha` 1.1 for
/// `host_id`), and a bad package is refused before anything is sent.
pub fn assert_updates_cli(stack: &Stack, host_id: &str, hostile: &str) {
    let v = drover_json(stack, &["updates", "list", "--json"]);
    assert!(
        v["updates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["package"] == hostile),
        "{v}"
    );
    let v = drover_json(
        stack,
        &["updates", "list", "--by-host", "--security", "--json"],
    );
    assert_eq!(v["hosts"][0]["agent_id"], host_id, "{v}");
    let v = drover_json(
        stack,
        &[
            "updates",
            "approve",
            "drover-test-alpha=1.1",
            "--selector",
            "all",
            "--expires",
            "7d",
            "--note",
            "cli",
            "--json",
        ],
    );
    assert_eq!(
        (v["state"].as_str(), v["note"].as_str()),
        (Some("active"), Some("cli")),
        "{v}"
    );
    let cli_id = v["id"].as_str().unwrap().to_string();
    let v = drover_json(
        stack,
        &[
            "updates",
            "decline",
            "--security",
            "--selector",
            "host:none-*",
            "--json",
        ],
    );
    assert_eq!(v["decision"], "decline", "{v}");
    let v = drover_json(stack, &["updates", "revoke", &cli_id, "--json"]);
    assert_eq!(v["state"], "revoked", "{v}");
    let v = drover_json(stack, &["updates", "approvals", "--json"]);
    assert!(v["approvals"].as_array().unwrap().len() >= 4, "{v}");
    let v = drover_json(
        stack,
        &[
            "updates",
            "rules",
            "add",
            "cli-rule",
            "--scope",
            "all",
            "--selector",
            "all",
            "--delay-days",
            "2",
            "--json",
        ],
    );
    let rid = v["id"].as_str().unwrap().to_string();
    let v = drover_json(stack, &["updates", "rules", "list", "--json"]);
    assert!(
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "cli-rule"),
        "{v}"
    );
    let v = drover_json(stack, &["updates", "rules", "remove", &rid, "--json"]);
    assert_eq!(v["deleted"], rid.as_str(), "{v}");
    let out = stack.drover(&["updates", "approve", "curl;reboot", "--selector", "all"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("package"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
