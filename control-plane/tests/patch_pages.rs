//! The patch-management pages as a person sees them, with real data: one
//! real host (agent and rootd) pointed at the local APT repository fixture,
//! a schedule, a scan, an approval, an auto-approval rule and a window that
//! installs the approved update. Each page (Updates, Schedules, Windows,
//! Update history, the host's Updates section) is loaded in headless
//! Chromium, checked for what the data says it must show, and screenshotted
//! into `docs/screenshots/` (into a temporary directory under CI), as
//! `browser.rs` does for the other pages.
//!
//! The workflow's rules are `patch_windows.rs`'s and `patch_approvals.rs`'s
//! tests; this one is about what the pages show.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{create_window, open_now, wait_for, wait_run, AptRepo, Chrome, Stack};
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

/// Loads `path`, waits until `css` holds `needle`, scrolls `css` into
/// view, and saves the page as `<name>.png`.
async fn page(b: &Chrome, base: &str, path: &str, css: &str, needle: &str, name: &str) {
    b.c().goto(&format!("{base}{path}")).await.unwrap();
    b.wait_text(css, needle).await;
    b.c()
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView()",
            vec![json!(css)],
        )
        .await
        .unwrap();
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patch_pages_show_the_workflow() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt"));
    let host = stack
        .start_host_configured("web-1", &repo.rootd_extra())
        .await;
    stack.wait_online(&host.id).await;
    repo.set_reboot_required(&["drover-test-beta"]);
    let t = Duration::from_secs(120);

    let (code, s) = stack
        .post(
            "/schedules",
            &json!({"name": "nightly-scan", "selector": "all", "cron": "0 3 * * *",
                    "timezone": "Europe/Berlin"}),
        )
        .await;
    assert_eq!(code, 201, "{s}");
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan["status"], "succeeded", "{scan}");
    let (code, a) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "approve", "scope": "package", "package": "drover-test-alpha",
                    "version": "1.1", "selector": {"all": true}, "note": "tested on staging"}),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    let (code, r) = stack
        .post(
            "/updates/rules",
            &json!({"name": "prod-security", "scope": "security",
                    "selector": {"labels": {"env": "prod"}}, "delay_days": 3}),
        )
        .await;
    assert_eq!(code, 201, "{r}");

    stack.add_user("ops", "operator", PW);
    let b = Chrome::start().await;
    b.login(&stack.base, "ops", PW).await;
    page(
        &b,
        &stack.base,
        "/updates",
        "main",
        "drover-test-beta",
        "updates",
    )
    .await;
    page(
        &b,
        &stack.base,
        "/schedules",
        "main",
        "nightly-scan",
        "schedules",
    )
    .await;

    // A window open now installs the approved alpha 1.1, one host at a time.
    let w = create_window(
        &stack,
        &open_now("tonight", json!({"max_hosts": 1, "max_failures": 0})),
    )
    .await;
    let id = w["id"].as_str().unwrap().to_string();
    wait_run(&stack, &id, "the window's run to finish", t, |r| {
        r["status"] == "completed"
    })
    .await;
    wait_for("the install in the history", t, || async {
        let (_, h) = stack.get("/updates/history").await;
        let rows = h["history"].as_array()?.clone();
        rows.iter()
            .any(|e| e["package"] == "drover-test-alpha" && e["version_after"] == "1.1")
            .then_some(())
    })
    .await;
    assert_eq!(
        repo.installed_version("drover-test-alpha").as_deref(),
        Some("1.1")
    );
    page(&b, &stack.base, "/windows", "main", "tonight", "windows").await;
    page(
        &b,
        &stack.base,
        "/updates/history",
        "main",
        "drover-test-alpha",
        "update-history",
    )
    .await;
    page(
        &b,
        &stack.base,
        &format!("/agents/{}", host.id),
        "#updates-card",
        "reboot",
        "agent-updates",
    )
    .await;
}
