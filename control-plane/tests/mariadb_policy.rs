//! `mariadb.user_create` against a real, private MariaDB server that
//! enforces a password policy (`simple_password_check`,
//! `strict_password_validation=ON`) and keeps a general query log, a slow
//! log of every statement and a binary log: a strong password is accepted and works, a weak one is
//! refused with the policy's own message and creates nothing, and neither
//! password appears in any log, output, result or file of the stack.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{files_under, MariaDb, Stack};
use serde_json::{json, Value};

/// The server's extra options: a binary log, a slow log that takes every
/// statement (administrative ones too), and the password policy.
fn policy_options(dir: &Path) -> Vec<String> {
    vec![
        format!("--log-bin={}", dir.join("binlog").display()),
        format!("--slow-query-log-file={}", dir.join("slow.log").display()),
        "--slow-query-log=ON".into(),
        "--long-query-time=0".into(),
        "--log-slow-admin-statements=ON".into(),
        "--plugin-load-add=simple_password_check".into(),
        "--strict-password-validation=ON".into(),
    ]
}

async fn run(stack: &Stack, agent: &str, action: &str, params: Value) -> Value {
    stack
        .run_final(agent, action, params, Duration::from_secs(60))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_honours_the_servers_password_policy_without_leaking_passwords() {
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("mariadb");
    let db = MariaDb::start_with(&dir, &policy_options(&dir)).await;
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {:?}", db.socket))
        .await;
    stack.wait_module_listed(&host.id, "mariadb").await;
    let c = run(
        &stack,
        &host.id,
        "mariadb.db_create",
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");

    // Unique parts, so any copy of a password is found wherever it lands.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let letters: String = tag
        .chars()
        .map(|c| (b'g' + (c as u8 % 16)) as char)
        .collect();
    let strong_part = format!("Zq{}", &letters[..10]);
    let strong = format!("{strong_part}-9'\\x");
    let weak = format!("weakpass{}", &letters[10..22]);

    // Strong: the policy accepts it and the account works with it.
    let c = run(
        &stack,
        &host.id,
        "mariadb.user_create",
        json!({"user": "shop_app", "password": strong, "database": "shop", "template": "app"}),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(
        db.client(
            &["--user=shop_app", &format!("--password={strong}")],
            "SELECT CURRENT_USER()"
        )
        .unwrap(),
        "shop_app@localhost"
    );

    // Weak: refused with the policy's own words, and nothing was created.
    let c = run(
        &stack,
        &host.id,
        "mariadb.user_create",
        json!({"user": "shop_weak", "password": weak, "database": "shop", "template": "readonly"}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("does not satisfy the current policy requirements")
            && summary.contains("password policy"),
        "{summary}"
    );
    assert_eq!(
        db.root("SELECT COUNT(*) FROM mysql.user WHERE User = 'shop_weak'")
            .unwrap(),
        "0"
    );

    // Neither password anywhere: logs of every process, the server's general
    // and binary logs, the database, the broker's storage, command output.
    let mut outputs = String::new();
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    for cmd in cmds["commands"].as_array().cloned().unwrap_or_default() {
        let id = cmd["id"].as_str().unwrap();
        let (_, out) = stack.get(&format!("/commands/{id}/output")).await;
        let (_, full) = stack.get(&format!("/commands/{id}")).await;
        outputs.push_str(&out.to_string());
        outputs.push_str(&full.to_string());
    }
    let masked = format!("IDENTIFIED BY '{}'", bus_schema::catalogue::MASK);
    assert!(outputs.contains(&masked), "{outputs}");
    for needle in [&strong_part, &weak] {
        assert!(!outputs.contains(needle.as_str()), "{outputs}");
        for (path, bytes) in files_under(stack.tmp.path()) {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "a password is in {}", path.display());
        }
    }
}
