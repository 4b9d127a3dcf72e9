//! The live operations page (`/operations`) in headless Chromium against a
//! real stack: it shows what runs now with counts, changes live (without a
//! reload) when a command finishes, filters through its form (the filter
//! stays in the URL), and the fleet page counts the operations. The
//! screenshot goes to `docs/screenshots/live-operations.png` (a temporary
//! directory when `CI` is set).

mod common;

use std::time::Duration;

use common::*;
use fantoccini::Locator;

const PW: &str = "a-long-test-password";

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
async fn the_operations_page_shows_running_commands_live_and_filters() {
    let f = ops_fleet().await;
    let stack = &f.stack;
    stack.add_user("watcher", "viewer", PW);
    let b = Chrome::start().await;
    let c = b.c();
    b.login(&stack.base, "watcher", PW).await;

    // The fleet page counts them and links here.
    b.wait_text("#count-operations", "4").await;
    b.click("#count-operations").await;
    b.wait_text("header.top h1", "Live operations").await;
    b.wait_text("#ops-total b", "4").await;
    b.wait_text("#ops-source-user b", "3").await;
    b.wait_text("#ops-source-system b", "1").await;
    b.wait_text("#ops-by-action", "sys.ping").await;
    b.wait_text("#ops-by-origin", "schedule").await;
    b.wait_text("#ops", "schedule:nightly-scan").await;
    let row = format!("#ops tr[data-command='{}']", f.install);
    b.wait_text(&row, "running").await;
    // Each row links to its host's page at the command.
    let link = b.attr(&format!("{row} td:last-child a"), "href").await;
    assert_eq!(link, format!("/agents/{}#cmd-{}", f.h.id, f.install));
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join("live-operations.png"), png).unwrap();

    // A command finishes: the page changes without a reload (the marker
    // set on this document survives).
    c.execute("window.__opsMarker = 'kept'", vec![])
        .await
        .unwrap();
    std::fs::write(&f.gate, "").unwrap();
    let gone = row.clone();
    wait_for(
        "the finished install to leave the page",
        Duration::from_secs(60),
        || {
            let gone = gone.clone();
            async move { c.find(Locator::Css(&gone)).await.is_err().then_some(()) }
        },
    )
    .await;
    b.wait_text("#ops-total b", "3").await;
    let marker = c
        .execute("return window.__opsMarker || null", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "kept", "the page was not reloaded");

    // A filter, sent by the form, stays in the URL.
    wait_for(
        "the source filter to be chosen",
        Duration::from_secs(30),
        || async move {
            let e = c.find(Locator::Css("#ops-source")).await.ok()?;
            e.select_by_value("system").await.ok()
        },
    )
    .await;
    b.click("#ops-apply").await;
    wait_for(
        "the filtered page",
        Duration::from_secs(30),
        || async move {
            let u = c.current_url().await.ok()?;
            u.query()?.contains("source=system").then_some(())
        },
    )
    .await;
    b.wait_text("#ops-total b", "1").await;
    let rows = b.texts("#ops tbody tr").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains("pkg.scan"), "{rows:?}");
    // A bad filter in the URL: a clear error, nothing listed.
    c.goto(&format!("{}/operations?status=done", stack.base))
        .await
        .unwrap();
    b.wait_text("#ops-error", "queued").await;
}
