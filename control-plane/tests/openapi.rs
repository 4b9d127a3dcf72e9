//! The API's OpenAPI contract checked from outside: a real stack
//! (nats-server, `drover serve` on SQLite, simulated agents so lists are not
//! empty) and schemathesis 4.x (`scripts/test-deps/schemathesis.sh`) run
//! against `/api/v1/openapi.json` with an admin API token, checking for
//! server errors and for answers (status, content type, body) that disagree
//! with the document. Also: the document and its browsable page are served.

mod common;

use std::time::Duration;

use common::{wait_for, Stack};
use serde_json::json;

/// Operations schemathesis must not call, because they would break the run
/// itself rather than test anything:
/// - the event stream never ends (each call would hang until the timeout);
/// - revoking API tokens could revoke the token the run uses;
/// - changing the password or TOTP of the account the run acts as.
const EXCLUDED_PATHS: &str =
    r"^/api/v1/(events|api-tokens/\{id\}|account/password|account/totp.*)$";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_or_schema_disagreements() {
    let mut stack = Stack::start().await;
    // The rate limits are not under test here (they have their own); with
    // them the fuzzer would mostly see 429s.
    stack
        .restart_cp_with(&[
            ("DROVER_HTTP_RATE_PER_TOKEN", "0"),
            ("DROVER_HTTP_RATE_PER_ADDRESS", "0"),
        ])
        .await;

    // A few simulated agents, so the lists the fuzzer reads are not empty.
    let enrol = stack.token(10, "1h", true).await;
    let _sim = stack.spawn_simulate(3, &enrol, 30, &[], "simulate.log");
    wait_for("3 simulated agents", Duration::from_secs(60), || async {
        let (_, v) = stack.get("/agents").await;
        (v["total"].as_u64().unwrap_or(0) >= 3).then_some(())
    })
    .await;

    // An admin API token for the run.
    let (code, t) = stack
        .post(
            "/api-tokens",
            &json!({"name": "schemathesis", "role": "admin", "expires_in_secs": 3600}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_string();

    // The document is served and names itself 3.1.
    let (code, doc) = stack.get("/openapi.json").await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/agents"]["get"].is_object());

    // The browsable page lists the operations, escaped, with no script of
    // its own.
    let page = reqwest::Client::new()
        .get(format!("{}/api/docs", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/v1/agents/{id}/commands"), "{html}");
    assert!(html.contains("Run an action on one agent"));
    assert!(
        html.contains("&quot;action&quot;"),
        "the body schema is shown escaped"
    );
    assert!(!html.contains("<script>"), "no inline script");

    let work = stack.tmp.path().join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/api/v1/openapi.json", stack.base))
        .args(["--url", &stack.base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--exclude-path-regex", EXCLUDED_PATHS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "8", "--max-time", "150", "--workers", "2"])
        .args(["--request-timeout", "20", "--seed", "17", "--no-shrink"])
        .args(["--suppress-health-check", "all", "--output-truncate", "true"])
        .current_dir(&work)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("schemathesis ran over 240 s")
        .expect("python3 -m schemathesis.cli (run scripts/test-deps/schemathesis.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(&token), "schemathesis printed the API token");
    eprintln!("---- schemathesis ----\n{text}\n---- end ----");
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}); its report is above",
        out.status.code()
    );
    assert!(text.contains("passed"), "no summary from schemathesis");
}
