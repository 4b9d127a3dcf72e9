//! The Notifications page as a person sees it, with real parts: `drover
//! serve`, a webhook receiver in this process, and an operator in headless
//! Chromium who adds a webhook channel with the page's form, sends a test
//! notification with its button and watches the delivery turn `sent` live;
//! the page is screenshotted into `docs/screenshots/notifications.png` (a
//! temporary directory under CI). A viewer sees the channels but no forms.
//!
//! The delivery guarantees are `notifications.rs`'s tests.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{wait_for, Chrome, Hook, Stack};
use serde_json::json;

const PW: &str = "a-long-test-password";
const SECRET: &str = "page-hmac-key-71c4";

fn shots_dir() -> PathBuf {
    if std::env::var_os("CI").is_some() {
        let d = std::env::temp_dir().join("drover-screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_adds_and_tests_a_webhook_channel_on_the_page() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    stack.add_user("olga", "operator", PW);
    stack.add_user("vic", "viewer", PW);
    // A second channel made through the API, so the page shows two kinds.
    let (st, v) = stack
        .post(
            "/notify/channels",
            &json!({"name": "automation", "kind": "bus", "min_severity": "warning",
                    "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");

    let b = Chrome::start().await;
    b.login(&stack.base, "olga", PW).await;
    b.c()
        .goto(&format!("{}/notifications", stack.base))
        .await
        .unwrap();
    b.wait_text("#channels-wrap", "automation").await;
    b.type_into("#webhook-form input[name=name]", "ops-hook")
        .await;
    b.type_into("#webhook-form input[name=\"config.url\"]", &hook.url())
        .await;
    b.type_into("#webhook-form input[name=secret]", SECRET)
        .await;
    b.type_into("#webhook-form input[name=group_secs]", "0")
        .await;
    b.click("#webhook-form button").await;
    b.wait_text("#channels-wrap", "ops-hook").await;
    let (_, list) = stack.get("/notify/channels").await;
    let ch = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ops-hook")
        .cloned()
        .unwrap();
    assert_eq!(ch["secret"], "set");
    assert_eq!(ch["config"]["url"], hook.url().as_str());
    assert!(ch["quiet_hours"].is_null(), "empty quiet hours are none");
    let id = ch["id"].as_str().unwrap().to_string();

    let card = format!("div[data-channel=\"{id}\"]");
    b.click(&format!("{card} button[data-api$=\"/test\"]"))
        .await;
    wait_for(
        "the test at the receiver",
        Duration::from_secs(30),
        || async { (!hook.accepted().is_empty()).then_some(()) },
    )
    .await;
    // Live: the delivery shows sent without reloading the page.
    b.wait_text(&format!("{card} tr[data-delivery]"), "sent")
        .await;
    b.c()
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join("notifications.png"), png).unwrap();

    // A viewer sees the channels, not the forms or buttons; no secret.
    let viewer = stack.login("vic", PW).await;
    let (code, html) = viewer.get_html("/notifications").await;
    assert_eq!(code, 200);
    assert!(html.contains("ops-hook") && html.contains("automation"));
    assert!(!html.contains("webhook-form"), "viewers get no forms");
    assert!(!html.contains("Send test"));
    assert!(!html.contains(SECRET));
}
