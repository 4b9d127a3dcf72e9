//! The rollout pages as a person sees them: a rollout started from the
//! form on `/rollouts`, followed live on `/rollouts/{id}` (a bar per wave,
//! host state badges) and paused with its button, with a real
//! nats-server, `drover serve` and `drover-agent simulate` fleets that
//! fake the install. Screenshots go to `docs/screenshots/` (a temporary
//! directory under CI). The engine's rules are `rollouts.rs`'s tests.

mod common;

use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(90);

fn shots_dir() -> std::path::PathBuf {
    if std::env::var_os("CI").is_some() {
        let d = std::env::temp_dir().join("drover-screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d
    } else {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    }
}

async fn shot(b: &Chrome, name: &str) {
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_pages_start_follow_and_pause_a_rollout() {
    const PW: &str = "a-long-test-password";
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_ok, _) = sim_fleet(&stack, &token, 4, &stack.tmp.path().join("web"), &[]).await;
    let (_bad, _) = sim_fleet(
        &stack,
        &token,
        1,
        &stack.tmp.path().join("db"),
        &["--fail-update", "2.0.0"],
    )
    .await;
    insert_release(&stack, "2.0.0").await;
    stack.add_user("ops", "operator", PW);
    let b = Chrome::start().await;
    b.login(&stack.base, "ops", PW).await;

    // Started from the page's form.
    b.c()
        .goto(&format!("{}/rollouts", stack.base))
        .await
        .unwrap();
    b.wait_text("main", "No rollouts yet").await;
    b.c()
        .execute(
            "const f = document.querySelector('#rollout-form');
             f.version.value = '2.0.0'; f.canary.value = ''; f.waves.value = '60%,100%';
             f.pause.value = '1h'; f.max_failures.value = '1';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#rollout-form button").await;
    b.wait_text("#rollouts", "2.0.0").await;
    let (_, v) = stack.get("/rollouts").await;
    let id = v["rollouts"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["rollouts"][0]["created_by"], "ops");

    // The detail page follows the first wave live until it is through.
    b.c()
        .goto(&format!("{}/rollouts/{id}", stack.base))
        .await
        .unwrap();
    b.wait_text("#waves", "wave 1").await;
    let v = wait_rollout(&stack, &id, "the first wave through", LONG, |v| {
        !v["wave_done_at"].is_null() || v["state"] == "halted"
    })
    .await;
    let healthy = v["waves_detail"][0]["counts"]["healthy"].as_i64().unwrap();
    if healthy > 0 {
        b.wait_text("#rollout-hosts", "healthy").await;
    }
    if v["state"] == "running" {
        b.click("#rollout-pause").await;
        b.wait_text("#rollout-head", "paused").await;
        b.wait_text("#rollout-wrap", "Resume").await;
    } else {
        // The failing host was in the first wave: one failure is allowed,
        // so a halt here means more than one failed, which cannot be.
        panic!("halted with one failing host and max_failures 1: {v}");
    }
    shot(&b, "rollout").await;
    b.c()
        .goto(&format!("{}/rollouts", stack.base))
        .await
        .unwrap();
    b.wait_text("#rollouts", "paused").await;
    shot(&b, "rollouts").await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    assert_eq!(v["state"], "paused");
}
