//! The host page's inventory controls in a real browser (headless Chromium
//! through chromedriver, `common::Chrome`) against a real stack and host:
//! an operator renames the host and sets a label with the page's forms and
//! sees both shown, the label marked as the operator's; the API agrees. The
//! page is screenshotted into `docs/screenshots/host-inventory.png` (a
//! temporary directory under CI).

mod common;

use std::path::PathBuf;

use common::*;

const PW: &str = "a-long-test-password";

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
async fn an_operator_renames_and_labels_a_host_on_its_page() {
    let stack = Stack::start().await;
    let host = stack.start_host("inv-page").await;
    let id = host.id.clone();
    stack.add_user("olga", "operator", PW);

    let b = Chrome::start().await;
    b.login(&stack.base, "olga", PW).await;
    b.c()
        .goto(&format!("{}/agents/{id}", stack.base))
        .await
        .unwrap();
    b.type_into("#rename-form input[name=display_name]", "payments db")
        .await;
    b.click("#rename-form button").await;
    // The form reloads the page: the new name is the heading.
    b.wait_text("h2.host", "payments db").await;

    b.type_into("#label-form input[name=labels]", "env=prod,tier=gold")
        .await;
    b.click("#label-form button").await;
    b.wait_text("#labels", "tier=gold · operator").await;
    b.wait_text("#labels", "env=prod · operator").await;

    b.type_into(
        "#notes-form textarea[name=notes]",
        "Owned by the payments team; <ask before rebooting>",
    )
    .await;
    b.click("#notes-form button").await;
    b.wait_text("#notes-text", "<ask before rebooting>").await;

    let (_, v) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(v["display_name"], "payments db", "{v}");
    assert_eq!(v["labels"]["tier"], "gold", "{v}");
    assert_eq!(v["label_sources"]["tier"], "operator", "{v}");
    let (_, audit) = stack.get("/audit").await;
    let by_olga = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == id && e["action"] == "agent.edit" && e["actor"] == "olga")
        .count();
    assert_eq!(by_olga, 3, "{audit}");

    // An operator sees no decommission button (admins do).
    assert!(b
        .c()
        .find(fantoccini::Locator::Css("#decommission"))
        .await
        .is_err());
    b.c()
        .execute("window.scrollTo(0, 180)", vec![])
        .await
        .unwrap();
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join("host-inventory.png"), png).unwrap();
}
