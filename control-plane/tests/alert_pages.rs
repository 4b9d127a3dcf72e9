//! The Alerts page as a person sees it, with a real nats-server, `drover
//! serve` and `drover-agent simulate` hosts whose disk use the test sets:
//! a rule added from the page's form fires and appears without a reload
//! (SSE `alert` events), the nav counts it, the acknowledge button records
//! who; a silence is added from its form and a rule disabled with its
//! button. The screenshot goes to `docs/screenshots/alerts.png` (a
//! temporary directory under CI).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

fn shots_dir() -> std::path::PathBuf {
    if std::env::var_os("CI").is_some() {
        let d = std::env::temp_dir().join("drover-screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d
    } else {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_adds_a_rule_shows_it_firing_live_and_acknowledges_it() {
    const PW: &str = "a-long-test-password";
    let stack = Stack::start().await;
    let (_web, _, _) = sim_hosts_with_metrics(&stack, 3, "web").await;
    let (_db, db_ids, db_file) = sim_hosts_with_metrics(&stack, 1, "db").await;
    add_rule(
        &stack,
        json!({"name": "host-down", "kind": "host_offline", "severity": "critical", "for_secs": 60}),
    )
    .await;
    let load_high = add_rule(
        &stack,
        json!({"name": "load-high", "kind": "metric", "for_secs": 600,
               "params": {"metric": "load1", "op": ">", "threshold": 16}}),
    )
    .await;
    stack.add_user("ops", "operator", PW);
    let b = Chrome::start().await;
    b.login(&stack.base, "ops", PW).await;
    b.c().goto(&format!("{}/alerts", stack.base)).await.unwrap();
    b.wait_text("#alerts-open", "Nothing is firing").await;

    // A rule from the form (parameters as key=value text).
    b.c()
        .execute(
            "const f = document.querySelector('#rule-form');
             f.name.value = 'disk-full'; f.kind.value = 'metric';
             f.params.value = 'metric=disk_used_percent, op=>, threshold=90';
             f.severity.value = 'critical'; f.for_secs.value = '0'; f.labels.value = 'team=ops';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#rule-form button").await;
    let said = wait_for("the rule form to be answered", LONG, || async {
        let (_, v) = stack.get("/alerts/rules").await;
        if v["rules"].as_array()?.len() == 3 {
            return Some(String::new());
        }
        let e = b
            .c()
            .find(fantoccini::Locator::Css("#rule-form .form-error"))
            .await
            .ok()?;
        let t = e.text().await.ok()?;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(said, "", "the form was refused");
    b.wait_text("#rules", "disk-full").await;
    let (_, v) = stack.get("/alerts/rules").await;
    let rule = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "disk-full")
        .unwrap()
        .clone();
    assert_eq!(rule["params"]["threshold"], 90.0, "{rule}");
    assert_eq!(rule["created_by"], "ops");

    // The db host's disk fills: the alert appears live, and the nav counts it.
    set_disk_percent(&db_file, 96);
    b.wait_text("#alerts-open", "disk_used_percent at 96").await;
    b.wait_text("#alerts-open", "db-0").await;
    b.wait_text("nav a[href='/alerts'] .badge", "1").await;

    // Acknowledged from its button.
    b.click("#alerts-open button.ack").await;
    b.wait_text("#alerts-open", "acked by ops").await;
    let a = wait_alert(
        &stack,
        rule["id"].as_str().unwrap(),
        &db_ids[0],
        "firing",
        LONG,
    )
    .await;
    assert_eq!(a["acked_by"], "ops");

    // A silence from its form; a rule disabled with its button.
    b.c()
        .execute(
            "const f = document.querySelector('#silence-form');
             f.rule.value = 'host-down'; f.selector.value = 'host:web-*';
             f.comment.value = 'rebuilding the web tier';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#silence-form button").await;
    b.wait_text("#silences", "rebuilding the web tier").await;
    let (_, v) = stack.get("/silences").await;
    assert_eq!(v["silences"][0]["created_by"], "ops");
    assert_eq!(v["silences"][0]["active"], true);
    b.c()
        .execute(
            &format!(
                "document.querySelector('tr[data-rule=\"{}\"] button[data-api$=\"/disable\"]').click()",
                load_high["id"].as_str().unwrap()
            ),
            vec![],
        )
        .await
        .unwrap();
    b.wait_text("#rules", "disabled").await;
    let (_, v) = stack.get("/alerts/rules").await;
    let disabled = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["enabled"] == false)
        .map(|r| r["name"].clone())
        .collect::<Vec<_>>();
    assert_eq!(disabled, [json!("load-high")], "{v}");

    // The page as it stands.
    b.wait_text("#alerts-open", "1 firing").await;
    b.c()
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join("alerts.png"), png).unwrap();
}
