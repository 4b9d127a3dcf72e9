//! The Releases page as a person sees it, with real data: a control plane
//! with a release key, two agent releases published through the API, an
//! admin in headless Chromium who yanks one with the page's form, and the
//! page screenshotted into `docs/screenshots/releases.png` (a temporary
//! directory under CI). A viewer sees the page without the yank form, and
//! a session's yank without the CSRF token is refused.
//!
//! The rules of publishing and yanking are `agent_releases.rs`'s tests.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};
use bus_schema::signing::release::{self, ReleaseSigner};
use common::{wait_for, Chrome, Stack};
use fantoccini::Locator;
use serde_json::json;

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

async fn publish(stack: &Stack, signer: &ReleaseSigner, version: &str, channel: &str, notes: &str) {
    let bytes: Vec<u8> = format!("drover-agent build {version}")
        .repeat(4000)
        .into_bytes();
    let m = release::manifest_for(&bytes, version, &release::platform(), channel, "", notes, 1);
    let (text, sig) = signer.sign(&m).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/releases", stack.base))
        .bearer_auth(&stack.token)
        .header("x-drover-release-manifest", STANDARD.encode(&text))
        .header("x-drover-release-signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_releases_page_shows_the_key_the_releases_and_yanks() {
    let mut stack = Stack::start().await;
    let signer = ReleaseSigner::generate();
    let key = signer.public();
    stack
        .restart_cp_with(&[("DROVER_RELEASE_KEY", &key.to_base64())])
        .await;
    publish(
        &stack,
        &signer,
        "0.9.0",
        "stable",
        "the first self-updating agent",
    )
    .await;
    publish(&stack, &signer, "1.0.0-rc.1", "beta", "release candidate").await;
    stack.add_user("ada", "admin", PW);
    stack.add_user("vic", "viewer", PW);

    // A viewer: the page, no yank form; a session write without CSRF: 403.
    let viewer = stack.login("vic", PW).await;
    let (code, html) = viewer.get_html("/releases").await;
    assert_eq!(code, 200);
    assert!(html.contains(&key.fingerprint()) && html.contains("1.0.0-rc.1"));
    assert!(!html.contains("yank-form"), "viewers get no yank form");
    let admin = stack.login("ada", PW).await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/releases/0.9.0/yank", stack.base))
        .header("cookie", &admin.cookie)
        .json(&json!({"reason": "no csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // The admin yanks 1.0.0-rc.1 with the page's form.
    let b = Chrome::start().await;
    b.login(&stack.base, "ada", PW).await;
    b.c()
        .goto(&format!("{}/releases", stack.base))
        .await
        .unwrap();
    b.wait_text("#release-key", &key.fingerprint()).await;
    b.wait_text("#agent-releases", "the first self-updating agent")
        .await;
    let row = format!("tr[data-release=\"1.0.0-rc.1-{}\"]", release::platform());
    // The live region may be swapped under the first attempt (the page
    // refreshes once its event stream opens): find the input afresh until
    // the reason is typed in, bounded in time.
    let input = format!("{row} input[name=reason]");
    let c = b.c();
    wait_for("the yank reason typed in", Duration::from_secs(30), || {
        let input = input.clone();
        async move {
            c.execute(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
                vec![json!(input)],
            )
            .await
            .ok()?;
            let e = c.find(Locator::Css(&input)).await.ok()?;
            e.clear().await.ok()?;
            e.send_keys("breaks metrics on arm hosts").await.ok()?;
            let v = e.prop("value").await.ok()??;
            (v == "breaks metrics on arm hosts").then_some(())
        }
    })
    .await;
    b.click(&format!("{row} button")).await;
    b.wait_text(
        &format!("{row} .yank-reason"),
        "breaks metrics on arm hosts",
    )
    .await;
    let (_, shown) = stack.get("/releases/1.0.0-rc.1").await;
    assert_eq!(shown["yanked"], true, "{shown}");
    let (_, other) = stack.get("/releases/0.9.0").await;
    assert_eq!(other["yanked"], false, "{other}");
    b.wait_text("#packages-wrap", "No packages").await;
    b.c()
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join("releases.png"), png).unwrap();
}
