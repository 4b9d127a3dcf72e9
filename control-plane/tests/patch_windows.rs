//! Maintenance windows end to end, through the real stack: the windows API
//! (checks, audit), and the runner inside `drover serve` driving real
//! agents and rootd — installs only inside an open window, batches, the
//! failure threshold, offline hosts deferred, history and its export.
//!
//! Needs root (rootd runs apt-get for real). Where a test seeds the
//! inventory and an approval in the database instead of scanning and
//! approving through the API, it says so: it tests the runner, not the
//! scan's ingest.

mod common;

use std::time::Duration;

use common::{
    assert_history, assert_no_install, assert_window_fields_checked, assert_windows_cli,
    assert_windows_page_and_form, create_window, fake_boot, get_text, inventory_of, not_today,
    open_now, req, run_host, seed_approval, seed_reboot_required, seed_update, wait_for,
    wait_offline, wait_run, wait_shutdown_calls, wait_window_ticks, AptRepo, Chrome, Stack,
};
use reqwest::Method;
use serde_json::{json, Value};

const RUN_WAIT: Duration = Duration::from_secs(120);
const PW: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_api_checks_every_field_and_audits_changes() {
    let stack = Stack::start().await;
    let good = open_now("nightly", json!({"max_hosts": 2, "max_failures": 1}));
    let w = create_window(&stack, &good).await;
    let id = w["id"].as_str().unwrap().to_string();
    assert_eq!(w["open_now"], true, "{w}");
    assert!(w["current_occurrence"]["start"].as_i64().unwrap() <= bus_schema::now_ms());
    assert!(w["next_occurrence"]["start"].as_i64().unwrap() > bus_schema::now_ms());
    assert_eq!(w["reboot_deadline_minutes"], 15);
    assert_eq!(w["enabled"], true);

    // Each bad field: 422 naming it, and nothing stored.
    assert_window_fields_checked(&stack).await;
    let (code, e) = stack.post("/windows", &good).await;
    assert_eq!(code, 409, "a second window of the same name: {e}");
    let (_, all) = stack.get("/windows").await;
    assert_eq!(all["windows"].as_array().unwrap().len(), 1, "{all}");

    // The text form of a selector is taken too.
    let mut changed = open_now(
        "nightly",
        json!({"selector": "label:env=staging", "max_percent": 50}),
    );
    changed["days"] = json!([not_today()]);
    let (code, w2) = req(
        &stack,
        Method::PUT,
        &format!("/windows/{id}"),
        Some(&changed),
    )
    .await;
    assert_eq!(code, 200, "{w2}");
    assert_eq!(w2["selector"]["labels"], json!({"env": "staging"}), "{w2}");
    assert_eq!(w2["open_now"], false);
    assert!(w2["current_occurrence"].is_null());
    assert_eq!(w2["max_percent"], 50);

    let (code, _) = stack.get("/windows/nope").await;
    assert_eq!(code, 404);
    let (code, e) = stack.post("/windows/runs/nope/abort", &json!({})).await;
    assert_eq!(code, 404, "{e}");
    let (code, d) = req(&stack, Method::DELETE, &format!("/windows/{id}"), None).await;
    assert_eq!(code, 200, "{d}");
    let (code, _) = stack.get(&format!("/windows/{id}")).await;
    assert_eq!(code, 404);

    let (_, audit) = stack.get("/audit?action=window").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in ["window.create", "window.update", "window.delete"] {
        assert!(actions.contains(&a), "{a} audited: {audit}");
    }
    // The CLI: add, list, refuse a bad field with the API's words, remove.
    assert_windows_cli(&stack);

    // The page and its form, as the browser sends it: CSRF, operators only.
    assert_windows_page_and_form(&stack, PW).await;

    let (code, e) = stack.get("/updates/history?since=soon").await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("since"), "{e}");
}

/// The runner against real hosts, with the inventory and the approval
/// seeded in the database (the scan's ingest is not under test here): no
/// install while no window is open; inside one, an offline host is
/// deferred, an install that fails is recorded, and more failures than
/// `max_failures` halt the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_installs_halt_the_run_and_offline_hosts_wait() {
    const PKG: &str = "drover-test-no-such-package";
    let stack = Stack::start().await;
    let h1 = stack.start_host("h1").await;
    let mut h2 = stack.start_host("h2").await;
    let db = stack.db().await;
    for h in [&h1, &h2] {
        seed_update(&db, &h.id, PKG, "1.0", "9.9").await;
    }
    let approval = seed_approval(&db, PKG, "9.9", "alice").await;

    // A closed window over both hosts, then a probe window open now that
    // matches no host: once the probe's (empty) run exists, the runner has
    // looked at the closed window at least once.
    let mut closed = open_now("closed", json!({}));
    closed["days"] = json!([not_today()]);
    let closed = create_window(&stack, &closed).await;
    let probe = create_window(
        &stack,
        &open_now("probe", json!({"selector": "label:none=none"})),
    )
    .await;
    let p = wait_run(
        &stack,
        probe["id"].as_str().unwrap(),
        "the probe's run",
        RUN_WAIT,
        |r| r["status"] == "completed",
    )
    .await;
    assert_eq!(p["hosts_total"], 0, "{p}");
    let (_, runs) = stack
        .get(&format!("/windows/{}/runs", closed["id"].as_str().unwrap()))
        .await;
    assert_eq!(runs["runs"], json!([]), "no run outside the window");
    assert_no_install(&stack, &h1.id).await;

    // h2 goes offline before the window opens.
    h2.agent.stop();
    wait_offline(&stack, &h2.id).await;

    let w = create_window(&stack, &open_now("now", json!({"max_failures": 0}))).await;
    let wid = w["id"].as_str().unwrap();
    let run = wait_run(&stack, wid, "the run to halt", RUN_WAIT, |r| {
        r["status"] == "halted"
    })
    .await;
    assert_eq!(run["hosts_total"], 2, "{run}");
    assert!(
        run["halted_reason"]
            .as_str()
            .unwrap()
            .contains("max_failures"),
        "{run}"
    );
    let r1 = run_host(&run, &h1.id);
    assert_eq!(r1["status"], "failed", "{run}");
    let r2 = run_host(&run, &h2.id);
    assert_eq!(r2["status"], "deferred", "{run}");
    assert!(r2["message"].as_str().unwrap().contains("offline"), "{run}");
    assert_eq!(run["hosts_failed"], 1);
    assert_eq!(run["hosts_deferred"], 1);

    // The install was the window's, as a system command.
    let (_, c) = stack
        .get(&format!(
            "/commands/{}",
            r1["install_command_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(c["action"], "pkg.upgrade");
    assert_eq!(c["source"], "system");
    assert_eq!(c["requested_by"], "window:now");
    assert_eq!(c["params"]["packages"], json!([format!("{PKG}=9.9")]));

    // History: one failed row, with who approved it and where it ran.
    let (code, h) = stack
        .get(&format!(
            "/updates/history?agent={}&package={PKG}&since=1h",
            h1.id
        ))
        .await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["total"], 1, "{h}");
    let row = &h["history"][0];
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["version_before"], "1.0");
    assert_eq!(row["version_after"], Value::Null);
    assert_eq!(row["candidate"], "9.9");
    assert_eq!(row["approved_by"], "alice");
    assert_eq!(row["approval_id"], approval.as_str());
    assert_eq!(row["window_id"], wid);
    assert_eq!(row["run_id"], run["id"]);
    // rootd refuses to upgrade what is not installed before apt runs: no
    // exit code, and the output says why.
    assert!(
        row["exit_code"].as_i64().is_some_and(|c| c != 0)
            || row["output"]
                .as_str()
                .is_some_and(|o| o.contains("nothing was changed")),
        "{row}"
    );
    let (_, h_other) = stack.get("/updates/history?package=other").await;
    assert_eq!(h_other["total"], 0);

    let (code, ct, csv) = get_text(
        &stack,
        &format!("/updates/history?agent={}&format=csv", h1.id),
    )
    .await;
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("at,hostname,agent_id,package,version_before"),
        "{csv}"
    );
    assert!(csv.contains(&format!(",{PKG},1.0,,9.9,failed,")), "{csv}");

    let out = stack.drover(&["updates", "history", "--host", &h1.id, "--csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), csv);
    let out = stack.drover(&["windows", "runs", "--run", run["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("halted") && text.contains("deferred"),
        "{text}"
    );

    // The page shows the run with each host's status.
    stack.add_user("vic", "viewer", PW);
    let (_, html) = stack.login("vic", PW).await.get_html("/windows").await;
    assert!(
        html.contains("s-halted") && html.contains("s-deferred") && html.contains("s-failed"),
        "{html}"
    );

    // A halted run cannot be aborted; the probe's completed one neither.
    let (code, e) = stack
        .post(
            &format!("/windows/runs/{}/abort", run["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(code, 409, "{e}");
}

const ALPHA: &str = "drover-test-alpha";
const BETA: &str = "drover-test-beta";
const BOOT_1: &str = "0d1e2f30-0000-4000-8000-000000000001";
const BOOT_2: &str = "0d1e2f30-0000-4000-8000-000000000002";

/// The whole workflow on three real hosts and the local APT repository
/// (`common::apt_repo`): scan → inventory → approval through the API → no
/// install while no window is open → a window the test opens now installs
/// one host at a time → history with versions before and after, the
/// inventory follows → the reboot the fixture's reboot-required file asks
/// for goes through `sys.reboot` to the fixture's `shutdown` double (a real
/// reboot cannot happen here) → one host "returns": the test writes a new
/// boot id into the file its agent reads (`boot_id_file`, a test-only
/// setting; the kernel's boot id changes only with a real reboot) and
/// restarts the agent → `rebooted`; another never does → `reboot_failed`
/// after the window's 1-minute deadline; a host offline when the window
/// opens is deferred.
///
/// The three hosts share this machine's dpkg database: the first install
/// moves alpha to 1.1 for all of them, so the later hosts' installs find it
/// there (apt succeeds, the version after is 1.1 all the same). Batches
/// are checked through the run's rows: never two hosts moving at once, and
/// hosts start in batch order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_workflow_installs_in_batches_inside_the_window_and_verifies_reboots() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt-repo"));
    let extra = repo.rootd_extra();
    let mut h1 = stack.start_host_configured("h1", &extra).await;
    let h2 = stack.start_host_configured("h2", &extra).await;
    let mut h3 = stack.start_host_configured("h3", &extra).await;
    let boot_file = stack.tmp.path().join("h1-boot_id");
    fake_boot(&stack, &mut h1, &boot_file, BOOT_1).await;
    stack.wait_online(&h1.id).await;
    let db = stack.db().await;

    // Scan every host (as a scheduled scan does: a job over a selector).
    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"all": true}, "action": "pkg.scan"}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    stack
        .wait_job_done(job["id"].as_str().unwrap(), Duration::from_secs(300))
        .await;
    for h in [&h1, &h2, &h3] {
        let inv = wait_for(
            "the inventory of every host",
            Duration::from_secs(60),
            || async {
                let inv = inventory_of(&db, &h.id).await;
                (inv.len() == 2).then_some(inv)
            },
        )
        .await;
        assert_eq!(
            inv,
            vec![
                (ALPHA.into(), "1.0".into(), "1.1".into(), false),
                (BETA.into(), "1.0".into(), "2.0".into(), true),
            ]
        );
    }

    // Approve alpha 1.1 for every host.
    let (code, approval) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "approve", "scope": "package", "package": ALPHA,
                    "version": "1.1", "selector": {"all": true}}),
        )
        .await;
    assert_eq!(code, 201, "{approval}");

    // No install while no window is open, over several rounds of the runner.
    let mut closed = open_now("closed", json!({"reboot": "if_required"}));
    closed["days"] = json!([not_today()]);
    let closed = create_window(&stack, &closed).await;
    wait_window_ticks(&stack, 3).await;
    let (_, runs) = stack
        .get(&format!("/windows/{}/runs", closed["id"].as_str().unwrap()))
        .await;
    assert_eq!(runs["runs"], json!([]));
    for h in [&h1, &h2, &h3] {
        assert_no_install(&stack, &h.id).await;
    }
    assert_eq!(repo.installed_version(ALPHA).as_deref(), Some("1.0"));

    // Installing alpha asks for a reboot (the fixture's file, which every
    // host's rootd reads); h3 goes offline before the window opens.
    repo.set_reboot_required(&[ALPHA]);
    h3.agent.stop();
    wait_offline(&stack, &h3.id).await;
    let w = create_window(
        &stack,
        &open_now(
            "patch",
            json!({"max_hosts": 1, "reboot": "if_required", "reboot_deadline_minutes": 1}),
        ),
    )
    .await;
    let wid = w["id"].as_str().unwrap().to_string();

    // Follow the run: never two hosts moving at once; h1 comes back from
    // its reboot, h2 never does.
    let deadline = std::time::Instant::now() + Duration::from_secs(420);
    let mut started: Vec<String> = Vec::new();
    let mut returned = false;
    let mut polls = 0;
    let run = loop {
        polls += 1;
        assert!(
            std::time::Instant::now() < deadline && polls < 10_000,
            "the run did not end in time"
        );
        let (_, runs) = stack.get(&format!("/windows/{wid}/runs")).await;
        let Some(id) = runs["runs"][0]["id"].as_str() else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let (_, r) = stack.get(&format!("/windows/runs/{id}")).await;
        let hosts = r["hosts"].as_array().unwrap().clone();
        let moving: Vec<&Value> = hosts
            .iter()
            .filter(|h| h["status"] == "installing" || h["status"] == "rebooting")
            .collect();
        assert!(moving.len() <= 1, "two hosts at once: {r}");
        for h in &hosts {
            let a = h["agent_id"].as_str().unwrap().to_string();
            if h["status"] != "pending" && h["status"] != "deferred" && !started.contains(&a) {
                started.push(a);
            }
        }
        let h1_row = run_host(&r, &h1.id);
        if h1_row["status"] == "rebooting" && !returned {
            // The shutdown double ran once per reboot asked for so far
            // (h1's and maybe h2's), with the window's message.
            let asked = hosts
                .iter()
                .filter(|h| h["reboot_command_id"].is_string())
                .count();
            let calls = wait_shutdown_calls(&repo, asked).await;
            let want = ["-r", "+0", "Drover: reboot for updates (window patch)"];
            assert!(calls.iter().all(|c| *c == want), "{calls:?}");
            fake_boot(&stack, &mut h1, &boot_file, BOOT_2).await;
            returned = true;
        }
        if r["status"] != "running" {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["hosts_total"], 3, "{run}");
    let r1 = run_host(&run, &h1.id);
    let r2 = run_host(&run, &h2.id);
    let r3 = run_host(&run, &h3.id);
    assert_eq!(r1["status"], "rebooted", "{run}");
    assert_eq!(r1["boot_id_before"], BOOT_1);
    assert!(r1["returned_at"].as_i64().is_some(), "{run}");
    assert_eq!(r2["status"], "reboot_failed", "{run}");
    assert!(
        r2["message"].as_str().unwrap().contains("within 1 minute"),
        "{run}"
    );
    assert_eq!(r3["status"], "deferred", "{run}");
    assert!(r3["message"].as_str().unwrap().contains("offline"), "{run}");
    // One host per batch, started in batch order.
    let mut batches: Vec<i64> = [r1, r2, r3]
        .iter()
        .map(|h| h["batch"].as_i64().unwrap())
        .collect();
    batches.sort();
    assert_eq!(batches, vec![0, 1, 2], "{run}");
    let batch_of = |a: &str| run_host(&run, a)["batch"].as_i64().unwrap();
    let order: Vec<i64> = started.iter().map(|a| batch_of(a)).collect();
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "started out of batch order: {order:?} {run}"
    );
    assert_eq!(run["hosts_succeeded"], 1);
    assert_eq!(run["hosts_failed"], 1);
    assert_eq!(run["hosts_deferred"], 1);

    // History: versions before and after, who approved, which window.
    for h in [&h1, &h2] {
        let want = json!({"status": "installed", "version_before": "1.0", "version_after": "1.1",
            "approved_by": approval["created_by"], "approval_id": approval["id"],
            "window_id": wid, "run_id": run["id"], "exit_code": 0});
        assert_history(&stack, &h.id, ALPHA, &want, "window:patch").await;
    }
    let (_, hist3) = stack
        .get(&format!("/updates/history?agent={}", h3.id))
        .await;
    assert_eq!(
        hist3["total"], 0,
        "the offline host installed nothing: {hist3}"
    );

    // The inventory followed the installs (fresh scans); beta was not
    // approved and stays; the offline host was not scanned again.
    for h in [&h1, &h2] {
        let inv = inventory_of(&db, &h.id).await;
        assert_eq!(
            inv,
            vec![(BETA.into(), "1.0".into(), "2.0".into(), true)],
            "{}",
            h.id
        );
    }
    assert_eq!(inventory_of(&db, &h3.id).await.len(), 2);
    assert_eq!(repo.installed_version(ALPHA).as_deref(), Some("1.1"));
    assert_eq!(repo.installed_version(BETA).as_deref(), Some("1.0"));
    repo.clear_reboot_required();
}

/// An operator's abort, with the patch state seeded in the database (the
/// scan's ingest is not under test here): two hosts need a reboot, one per
/// batch; the first is asked to reboot (through the fixture's `shutdown`
/// double: a real reboot cannot happen here) and does not come back, so
/// the run waits on it with the second host pending; the abort defers the
/// pending host, ends the run, and is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_aborts_a_running_run() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt-repo"));
    let a = stack.start_host_configured("a", &repo.rootd_extra()).await;
    let b = stack.start_host_configured("b", &repo.rootd_extra()).await;
    let db = stack.db().await;
    for h in [&a, &b] {
        seed_reboot_required(&db, &h.id).await;
    }
    let w = create_window(
        &stack,
        &open_now(
            "reboots",
            json!({"max_hosts": 1, "reboot": "if_required", "reboot_deadline_minutes": 60}),
        ),
    )
    .await;
    let wid = w["id"].as_str().unwrap();
    let run = wait_run(&stack, wid, "a host rebooting", RUN_WAIT, |r| {
        r["hosts"].as_array().is_some_and(|hs| {
            hs.iter().any(|h| h["status"] == "rebooting")
                && hs.iter().any(|h| h["status"] == "pending")
        })
    })
    .await;
    assert_eq!(run["status"], "running", "{run}");
    let calls = wait_shutdown_calls(&repo, 1).await;
    assert_eq!(
        calls,
        vec![vec![
            "-r".to_string(),
            "+0".into(),
            "Drover: reboot for updates (window reboots)".into()
        ]]
    );
    // Several rounds later the second batch still waits for the first.
    wait_window_ticks(&stack, 2).await;
    let (_, again) = stack
        .get(&format!("/windows/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        again["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == "pending")
            .count(),
        1,
        "{again}"
    );

    let rid = run["id"].as_str().unwrap();
    let (code, aborted) = stack
        .post(&format!("/windows/runs/{rid}/abort"), &json!({}))
        .await;
    assert_eq!(code, 200, "{aborted}");
    assert_eq!(aborted["status"], "aborted");
    assert!(aborted["finished_at"].as_i64().is_some());
    let pending: Vec<&Value> = aborted["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "deferred")
        .collect();
    assert_eq!(pending.len(), 1, "{aborted}");
    assert!(
        pending[0]["message"].as_str().unwrap().contains("aborted"),
        "{aborted}"
    );
    assert_eq!(aborted["hosts_deferred"], 1);
    let (code, e) = stack
        .post(&format!("/windows/runs/{rid}/abort"), &json!({}))
        .await;
    assert_eq!(code, 409, "{e}");
    let (_, audit) = stack.get("/audit?action=window_run").await;
    assert_eq!(audit["entries"][0]["action"], "window_run.abort", "{audit}");
    assert_eq!(audit["entries"][0]["target"], rid);
    // The aborted run is not opened again in the same occurrence.
    wait_window_ticks(&stack, 2).await;
    let (_, runs) = stack.get(&format!("/windows/{wid}/runs")).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(repo.shutdown_calls().len(), 1, "no second reboot");
}

/// The page's form in headless Chromium: `app.js` sends the days as a list
/// and empty numbers as null, the selector in its text form; the window
/// shows once the page reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_page_in_a_browser() {
    let stack = Stack::start().await;
    stack.add_user("ops", "operator", PW);
    let b = Chrome::start().await;
    b.login(&stack.base, "ops", PW).await;
    b.c()
        .goto(&format!("{}/windows", stack.base))
        .await
        .unwrap();
    b.type_into("#window-form input[name=name]", "browser-made")
        .await;
    b.click("#window-form button").await;
    b.wait_text("#windows-wrap", "browser-made").await;
    let (_, all) = stack.get("/windows").await;
    let w = &all["windows"][0];
    assert_eq!(w["name"], "browser-made", "{all}");
    assert_eq!(w["days"], json!(["mon", "tue", "wed", "thu", "fri"]));
    assert_eq!(w["selector"]["all"], true);
    assert_eq!(
        (&w["start"], &w["duration_minutes"]),
        (&json!("02:00"), &json!(120))
    );
    assert_eq!(
        (&w["max_hosts"], &w["max_failures"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(w["reboot"], "never");
    let (_, audit) = stack.get("/audit?action=window").await;
    assert_eq!(audit["entries"][0]["actor"], "ops", "{audit}");
}
