//! Staged agent rollouts end to end: a real nats-server, `drover serve`
//! with SQLite, and `drover-agent simulate` fleets that fake the install
//! step (they heartbeat the new version and report the `UpdateReport`;
//! `--fail-update` makes them report rolled_back). Releases are rows put
//! into `agent_releases` by the test (publishing is tested on its own).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(90);

fn hosts(v: &Value) -> &Vec<Value> {
    v["hosts"].as_array().unwrap()
}

async fn start(stack: &Stack, body: Value) -> Value {
    let (code, v) = stack.post("/rollouts", &body).await;
    assert_eq!(code, 201, "{v}");
    v
}

async fn audit_actions(stack: &Stack, target: &str) -> Vec<String> {
    let (_, v) = stack.get("/audit?limit=1000").await;
    v["entries"]
        .as_array()
        .or_else(|| v["audit"].as_array())
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["target"] == target)
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_then_waves_then_done_with_every_host_on_the_new_version() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_fleet, ids) = sim_fleet(&stack, &token, 6, &stack.tmp.path().join("fleet"), &[]).await;
    insert_release(&stack, "2.0.0").await;

    let r = start(
        &stack,
        json!({"version": "2.0.0", "selector": "all", "canary": "1", "waves": "50%,100%",
               "pause": "1s", "max_failures": "1"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["state"], "running");
    assert_eq!(r["host_count"], 6);
    let waves: Vec<i64> = hosts(&r)
        .iter()
        .map(|h| h["wave"].as_i64().unwrap())
        .collect();
    // 1 canary; 50% of the other 5 rounds up to 3, then the last 2.
    assert_eq!(waves, vec![0, 1, 1, 1, 2, 2]);

    let done = wait_rollout(&stack, &id, "rollout done", LONG, |v| v["state"] == "done").await;
    for h in hosts(&done) {
        assert_eq!(h["state"], "healthy", "{h}");
        assert_eq!(h["from_version"], SIM_FROM_VERSION);
        assert_eq!(h["running_version"], "2.0.0");
        // Sent by the engine as a system job of this rollout.
        let (_, c) = stack
            .get(&format!("/commands/{}", h["command_id"].as_str().unwrap()))
            .await;
        assert_eq!(c["action"], "agent.update");
        assert_eq!(c["source"], "system");
        assert_eq!(c["requested_by"], format!("rollout:{id}"));
        assert_eq!(c["params"]["rollout_id"], id);
        assert_eq!(c["result"]["outcome"], "healthy");
    }
    for a in &ids {
        let (_, v) = stack.get(&format!("/agents/{a}")).await;
        assert_eq!(v["agent_version"], "2.0.0");
    }
    // Each wave was sent only after the one before was through.
    let mut ends: Vec<(i64, i64, i64)> = Vec::new();
    for h in hosts(&done) {
        let (_, c) = stack
            .get(&format!("/commands/{}", h["command_id"].as_str().unwrap()))
            .await;
        ends.push((
            h["wave"].as_i64().unwrap(),
            c["created_at"].as_i64().unwrap(),
            c["finished_at"].as_i64().unwrap(),
        ));
    }
    for (w, created, _) in &ends {
        let before = ends
            .iter()
            .filter(|(v, _, _)| v < w)
            .map(|(_, _, f)| *f)
            .max();
        if let Some(f) = before {
            assert!(
                *created >= f,
                "wave {w} sent before the previous wave ended"
            );
        }
    }
    let counts = &done["waves_detail"];
    assert_eq!(counts[0]["name"], "canary");
    assert_eq!(counts[1]["counts"]["healthy"], 3);
    assert_eq!(counts[2]["counts"]["healthy"], 2);
    let trail = audit_actions(&stack, &id).await;
    for step in ["rollout.start", "rollout.wave_start", "rollout.done"] {
        assert!(trail.iter().any(|a| a == step), "{step} not in {trail:?}");
    }
    // The CLI: status --follow exits 0 on a done rollout; --json views.
    let out = stack.drover(&["rollout", "status", &id, "--follow"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("done") && text.contains("6 healthy"),
        "{text}"
    );
    let out = stack.drover(&["rollout", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rollouts"][0]["id"], id);
    assert_eq!(v["rollouts"][0]["counts"]["healthy"], 6);
    let out = stack.drover(&["rollout", "status", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("canary") && text.contains("wave 2"), "{text}");
    // Everyone runs it now: a second rollout has nothing to do.
    let (code, v) = stack
        .post("/rollouts", &json!({"version": "2.0.0", "selector": "all"}))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already runs 2.0.0 or newer"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_halts_and_so_do_failures_past_the_threshold() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let dir = stack.tmp.path().join("bad");
    let (_fleet, _ids) = sim_fleet(&stack, &token, 4, &dir, &["--fail-update", "2.0.0"]).await;
    insert_release(&stack, "2.0.0").await;

    let r = start(
        &stack,
        json!({"version": "2.0.0", "selector": "all", "canary": "1", "waves": "100%", "max_failures": "3"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    let v = wait_rollout(&stack, &id, "halt on the canary", LONG, |v| {
        v["state"] == "halted"
    })
    .await;
    let reason = v["halted_reason"].as_str().unwrap();
    assert!(
        reason.contains("canary host") && reason.contains("rolled back"),
        "{reason}"
    );
    let canary = &hosts(&v)[0];
    assert_eq!(canary["state"], "rolled_back");
    assert!(canary["reason"]
        .as_str()
        .unwrap()
        .contains("did not prove itself"));
    // Halted at once: the wave after the canary is never sent.
    wait_rollout_ticks(&stack, 2).await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    assert_eq!(sent(&v), 1, "{v}");
    assert!(hosts(&v)[1..].iter().all(|h| h["state"] == "pending"));
    assert!(audit_actions(&stack, &id)
        .await
        .contains(&"rollout.halt".to_string()));
    let out = stack.drover(&["rollout", "status", &id, "--follow"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // No canary, two waves, one failure allowed: the first wave's two
    // failures halt it before the second wave.
    let r = start(
        &stack,
        json!({"version": "2.0.0", "selector": "all", "waves": "50%,100%", "max_failures": "1"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    let v = wait_rollout(&stack, &id, "halt past max failures", LONG, |v| {
        v["state"] == "halted"
    })
    .await;
    assert!(
        v["halted_reason"]
            .as_str()
            .unwrap()
            .contains("more than max_failures = 1"),
        "{v}"
    );
    wait_rollout_ticks(&stack, 2).await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    assert_eq!(sent(&v), 2, "{v}");
    assert_eq!(v["waves_detail"][0]["counts"]["rolled_back"], 2);
    assert_eq!(v["waves_detail"][1]["counts"]["pending"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_and_yank() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_fleet, _) = sim_fleet(&stack, &token, 4, &stack.tmp.path().join("fleet"), &[]).await;
    insert_release(&stack, "2.0.0").await;

    // Paused right after the start: at most the canary goes out.
    let r = start(
        &stack,
        json!({"version": "2.0.0", "selector": "all", "canary": "1", "waves": "100%"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    let (code, v) = stack
        .post(&format!("/rollouts/{id}/pause"), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "paused");
    wait_rollout_ticks(&stack, 2).await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    let before = sent(&v);
    assert!(before <= 1, "{v}");
    wait_rollout_ticks(&stack, 2).await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    assert_eq!(sent(&v), before, "sent while paused: {v}");
    let (code, v) = stack
        .post(&format!("/rollouts/{id}/pause"), &json!({}))
        .await;
    assert_eq!(code, 409, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("only a running rollout"));
    // One rollout at a time: a second one while this one is paused would
    // send its hosts a second update.
    insert_release(&stack, "2.5.0").await;
    let (code, v) = stack
        .post(
            "/rollouts",
            &json!({"version": "2.5.0", "selector": "all", "waves": "100%"}),
        )
        .await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("one rollout runs at a time"),
        "{v}"
    );
    let (code, _) = stack
        .post(&format!("/rollouts/{id}/resume"), &json!({}))
        .await;
    assert_eq!(code, 200);
    let v = wait_rollout(&stack, &id, "done after resume", LONG, |v| {
        v["state"] == "done"
    })
    .await;
    assert!(hosts(&v).iter().all(|h| h["state"] == "healthy"), "{v}");
    let trail = audit_actions(&stack, &id).await;
    assert!(trail.contains(&"rollout.pause".into()) && trail.contains(&"rollout.resume".into()));

    // Abort while the pause after the canary runs: the wave never goes.
    insert_release(&stack, "3.0.0").await;
    let r = start(
        &stack,
        json!({"version": "3.0.0", "selector": "all", "canary": "1", "waves": "100%", "pause": "1h"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    wait_rollout(&stack, &id, "canary through", LONG, |v| {
        !v["wave_done_at"].is_null()
    })
    .await;
    let (code, v) = stack
        .post(&format!("/rollouts/{id}/abort"), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["state"], "aborted");
    wait_rollout_ticks(&stack, 2).await;
    let (_, v) = stack.get(&format!("/rollouts/{id}")).await;
    assert_eq!(sent(&v), 1, "{v}");
    let (code, _) = stack
        .post(&format!("/rollouts/{id}/resume"), &json!({}))
        .await;
    assert_eq!(code, 409);
    let out = stack.drover(&["rollout", "status", &id, "--follow"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = stack.drover(&["rollout", "pause", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a running rollout"));

    // A yank halts a running rollout at its next round.
    let rel = insert_release(&stack, "4.0.0").await;
    let r = start(
        &stack,
        json!({"version": "4.0.0", "selector": "all", "canary": "1", "waves": "100%", "pause": "1h"}),
    )
    .await;
    let id = r["id"].as_str().unwrap().to_string();
    wait_rollout(&stack, &id, "canary through", LONG, |v| {
        !v["wave_done_at"].is_null()
    })
    .await;
    yank_release(&stack, &rel).await;
    let v = wait_rollout(&stack, &id, "halt on yank", LONG, |v| {
        v["state"] == "halted"
    })
    .await;
    assert!(
        v["halted_reason"].as_str().unwrap().contains("yanked"),
        "{v}"
    );
    assert_eq!(sent(&v), 1);
    // And it is never started again.
    let (code, v) = stack
        .post("/rollouts", &json!({"version": "4.0.0", "selector": "all"}))
        .await;
    assert_eq!(code, 422);
    assert!(v["error"].as_str().unwrap().contains("yanked"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_host_gets_the_update_when_it_comes_back() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_up, up_ids) = sim_fleet(&stack, &token, 2, &stack.tmp.path().join("up"), &[]).await;
    let away_dir = stack.tmp.path().join("away");
    let (mut away, away_ids) = sim_fleet(&stack, &token, 1, &away_dir, &[]).await;
    away.stop();
    let gone = &away_ids[0];
    wait_for("the host offline", LONG, || async {
        let (_, v) = stack.get(&format!("/agents/{gone}")).await;
        (v["status"] == "offline").then_some(())
    })
    .await;
    insert_release(&stack, "2.0.0").await;
    let r = start(&stack, json!({"version": "2.0.0", "selector": "all"})).await;
    let id = r["id"].as_str().unwrap().to_string();
    // Done for the hosts that are there; the absent one is remembered.
    let v = wait_rollout(&stack, &id, "done without the offline host", LONG, |v| {
        v["state"] == "done"
    })
    .await;
    for h in hosts(&v) {
        let want = if up_ids.contains(&h["agent_id"].as_str().unwrap().to_string()) {
            "healthy"
        } else {
            "offline"
        };
        assert_eq!(h["state"], want, "{h}");
    }
    let _back = sim_restart(&stack, &token, 1, &away_dir);
    let v = wait_rollout(&stack, &id, "the returned host healthy", LONG, |v| {
        hosts(v).iter().all(|h| h["state"] == "healthy")
    })
    .await;
    assert_eq!(v["state"], "done");
    let (_, a) = stack.get(&format!("/agents/{gone}")).await;
    assert_eq!(a["agent_version"], "2.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_start_inputs_are_refused_with_what_to_write() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_fleet, _) = sim_fleet(&stack, &token, 1, &stack.tmp.path().join("fleet"), &[]).await;
    insert_release(&stack, "2.0.0").await;
    // The CLI says the same, and fails.
    let out = stack.drover(&[
        "rollout",
        "start",
        "2.0.0",
        "--selector",
        "all",
        "--waves",
        "10%,50%",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last wave must be 100%"),
        "{out:?}"
    );
    let cases = [
        (
            json!({"version": "9.9.9", "selector": "all"}),
            "publish it first",
        ),
        (
            json!({"version": "", "selector": "all"}),
            "version is empty",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "canary": "abc"}),
            "write e.g. 2 or 5%",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "canary": "150%"}),
            "1% to 100%",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "waves": "50%,10%,100%"}),
            "must rise",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "waves": "10%,50%"}),
            "last wave must be 100%",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "pause": "10x"}),
            "30s, 10m or 2h",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "max_failures": "-1"}),
            "max-failures",
        ),
        (json!({"version": "2.0.0", "selector": "bogus"}), "selector"),
        (
            json!({"version": "2.0.0", "selector": "host:nowhere-*"}),
            "matches no approved agent",
        ),
        (
            json!({"version": "2.0.0", "selector": "all", "platform": "linux-sparc"}),
            "no release 2.0.0 for linux-sparc",
        ),
    ];
    for (body, says) in cases {
        let (code, v) = stack.post("/rollouts", &body).await;
        assert_eq!(code, 422, "{body}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{body}: {e:?} does not say {says:?}");
    }
    let (code, v) = stack
        .post(
            "/rollouts",
            &json!({"version": "2.0.0", "selector": "all", "speed": "fast"}),
        )
        .await;
    assert!(code == 400 || code == 422, "{v}");
    // Nothing was created.
    let (_, v) = stack.get("/rollouts").await;
    assert_eq!(v["rollouts"], json!([]));
    // A viewer may look, not start.
    let out = stack.drover(&["api-tokens", "create", "watcher", "--role", "viewer"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let viewer = text
        .lines()
        .find(|l| l.starts_with("drv_"))
        .unwrap()
        .to_string();
    let ask = |m: reqwest::Method, path: &'static str, body: Option<Value>| {
        let (base, viewer) = (stack.base.clone(), viewer.clone());
        async move {
            api_request(
                &reqwest::Client::new(),
                &base,
                &viewer,
                m,
                path,
                body.as_ref(),
            )
            .await
        }
    };
    let (code, v) = ask(
        reqwest::Method::POST,
        "/rollouts",
        Some(json!({"version": "2.0.0", "selector": "all"})),
    )
    .await;
    assert_eq!(code, 403, "{v}");
    let (code, _) = ask(reqwest::Method::GET, "/rollouts", None).await;
    assert_eq!(code, 200);
    // An older release is a downgrade: refused unless asked for.
    insert_release(&stack, "0.9.0").await;
    let (code, v) = stack
        .post("/rollouts", &json!({"version": "0.9.0", "selector": "all"}))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--allow-downgrade"),
        "{v}"
    );
    let (code, v) = stack
        .post(
            "/rollouts",
            &json!({"version": "0.9.0", "selector": "all", "allow_downgrade": true}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["hosts"][0]["state"], "pending");
    let (code, _) = stack.get("/rollouts/nope").await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_in_a_maintenance_window_is_updated_only_while_it_is_open() {
    let mut stack = Stack::start().await;
    pin_test_release_key(&mut stack).await;
    let token = stack.token(10, "1h", true).await;
    let (_a, a) = sim_fleet(&stack, &token, 1, &stack.tmp.path().join("win"), &[]).await;
    let (_b, b) = sim_fleet(&stack, &token, 1, &stack.tmp.path().join("free"), &[]).await;
    let covered = &a[0];
    let closed = open_now(
        "db-nights",
        json!({"days": [not_today()], "selector": {"agents": [covered]}}),
    );
    let w = create_window(&stack, &closed).await;
    insert_release(&stack, "2.0.0").await;
    let r = start(&stack, json!({"version": "2.0.0", "selector": "all"})).await;
    let id = r["id"].as_str().unwrap().to_string();
    // The host outside any window is updated; the covered one waits.
    let v = wait_rollout(&stack, &id, "the free host healthy", LONG, |v| {
        hosts(v)
            .iter()
            .any(|h| h["agent_id"] == b[0] && h["state"] == "healthy")
    })
    .await;
    let h = hosts(&v)
        .iter()
        .find(|h| &h["agent_id"] == covered)
        .unwrap();
    assert_eq!(h["state"], "pending", "{h}");
    assert!(h["command_id"].is_null());
    assert!(
        h["reason"]
            .as_str()
            .unwrap()
            .contains("waiting for maintenance window db-nights"),
        "{h}"
    );
    assert_eq!(v["state"], "running");
    // Opened: it goes out, and the rollout ends.
    let open = open_now("db-nights", json!({"selector": {"agents": [covered]}}));
    let wid = w["id"].as_str().unwrap();
    let (code, body) = api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        reqwest::Method::PUT,
        &format!("/windows/{wid}"),
        Some(&open),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v = wait_rollout(&stack, &id, "done once the window opened", LONG, |v| {
        v["state"] == "done"
    })
    .await;
    assert!(hosts(&v).iter().all(|h| h["state"] == "healthy"), "{v}");
}
