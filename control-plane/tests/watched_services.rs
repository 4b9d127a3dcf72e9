//! Watched services end to end through the real stack: a watched-service
//! list reaches a host as a signed `agent.watch` (API → duty → NATS →
//! agent, stored in its state directory), the agent asks the real rootd for
//! the units' states every heartbeat, and heartbeat ingest keeps
//! `service_states`, which `GET /api/v1/services` shows. A unit stopped on
//! the host shows as failed / inactive within a deadline and back as
//! active; a narrower list's full report removes the unit no longer
//! watched; bad unit names and selectors are refused and change nothing.
//!
//! The Services page as a person sees it: an operator in headless Chromium
//! adds a list with the page's form, sees a stopped unit appear live, finds
//! the host where it is down, and the page is screenshotted into
//! `docs/screenshots/services.png` (a temporary directory under CI); the
//! fleet page counts it and the host page lists it.
//!
//! `systemctl` is a test double (`common/services.rs`): systemd cannot run
//! as PID 1 here. Its `show` answers from state files this test edits.

mod common;

use std::time::Duration;

use std::path::PathBuf;

use futures::StreamExt;

use common::{
    api_send, host_with_unit_states, service_rows, set_unit_state, wait_for, Chrome, Stack,
};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

fn row<'a>(rows: &'a [Value], unit: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["unit"] == unit)
}

/// Waits until the host reports `unit` in `active_state`; returns the row.
async fn wait_state(stack: &Stack, agent: &str, unit: &str, active: &str) -> Value {
    wait_for(&format!("{unit} on {agent} to be {active}"), T, || async {
        let rows = service_rows(stack, &format!("?agent={agent}")).await;
        row(&rows, unit)
            .filter(|r| r["active_state"] == active)
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_unit_that_stops_shows_down_and_back_up() {
    let stack = Stack::start().await;
    let (mut host, states) = host_with_unit_states(&stack, "web1").await;

    // Bad input: refused with what is wrong, nothing stored.
    for (body, says) in [
        (
            json!({"name": "web", "selector": "all", "units": ["nginx", "bad unit"]}),
            "not a valid systemd unit name",
        ),
        (
            json!({"name": "web", "selector": "all", "units": ["-x"]}),
            "starts with '-'",
        ),
        (
            json!({"name": "web", "selector": "all", "units": ["getty@.service"]}),
            "template",
        ),
        (
            json!({"name": "web", "selector": "nonsense:x", "units": ["nginx"]}),
            "selector",
        ),
        (
            json!({"name": "web", "selector": {}, "units": ["nginx"]}),
            "empty selector",
        ),
        (
            json!({"name": "web", "selector": "all", "units": []}),
            "at least one",
        ),
    ] {
        let (code, err) = stack.post("/services/watches", &body).await;
        assert_eq!(code, 422, "{body} must be refused: {err}");
        assert!(
            err.to_string().contains(says),
            "{body}: {err} should say {says}"
        );
    }
    let many: Vec<String> = (0..65).map(|i| format!("u{i}")).collect();
    let (code, err) = stack
        .post(
            "/services/watches",
            &json!({"name": "many", "selector": "all", "units": many}),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert!(err.to_string().contains("at most 64"), "{err}");
    let (_, listed) = stack.get("/services/watches").await;
    assert_eq!(listed["watches"], json!([]), "nothing stored");
    let (code, err) = stack.get("/services?state=broken").await;
    assert_eq!(code, 400, "{err}");

    // A list for this host reaches it.
    let (code, w) = stack
        .post(
            "/services/watches",
            &json!({"name": "web", "selector": {"agents": [host.id]}, "units": ["php-fpm", "nginx"]}),
        )
        .await;
    assert_eq!(code, 201, "{w}");
    assert_eq!(w["units"], json!(["nginx.service", "php-fpm.service"]));
    let (code, dup) = stack
        .post(
            "/services/watches",
            &json!({"name": "web", "selector": "all", "units": ["x"]}),
        )
        .await;
    assert_eq!(code, 409, "{dup}");

    let up = wait_state(&stack, &host.id, "php-fpm.service", "active").await;
    assert_eq!(up["sub_state"], "running");
    assert_eq!(up["down"], false);
    assert!(
        up["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{up}"
    );
    wait_state(&stack, &host.id, "nginx.service", "active").await;
    // Delivered as a signed system command, and kept on the host.
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    let sent = cmds["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "agent.watch")
        .cloned()
        .unwrap_or_else(|| panic!("an agent.watch command: {cmds}"));
    assert_eq!(sent["requested_by"], "service_watch");
    assert_eq!(sent["source"], "system");
    let stored = std::fs::read_to_string(host.state_dir.join("watch.json")).unwrap();
    assert!(stored.contains("php-fpm.service"), "{stored}");

    // php-fpm dies: failed, then stopped (inactive), then back. The
    // change is published on the bus for automation and the pages.
    let nats = stack.client().await;
    let mut events = nats
        .subscribe(bus_schema::subjects::service_event(&host.id))
        .await
        .unwrap();
    nats.flush().await.unwrap();
    set_unit_state(&states, "php-fpm.service", "failed", "failed");
    let down = wait_state(&stack, &host.id, "php-fpm.service", "failed").await;
    // Bounded in time and count: events for this host's units only.
    let deadline = tokio::time::Instant::now() + T;
    let mut seen = Vec::new();
    let ev = loop {
        assert!(seen.len() < 100, "no php-fpm failed event among {seen:?}");
        let m = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("a service event within the deadline")
            .expect("the subscription stays open");
        let ev: bus_schema::Event = bus_schema::decode(&m.payload, None).unwrap();
        if matches!(&ev, bus_schema::Event::Service { unit, active_state, .. }
            if unit == "php-fpm.service" && active_state == "failed")
        {
            break ev;
        }
        seen.push(ev);
    };
    assert!(matches!(ev, bus_schema::Event::Service { ref agent_id, .. } if *agent_id == host.id));
    assert_eq!(down["down"], true);
    let fleet = service_rows(&stack, "?unit=php-fpm&state=down").await;
    assert_eq!(fleet.len(), 1, "{fleet:?}");
    assert_eq!(fleet[0]["agent_id"], json!(host.id));
    let (_, all) = stack.get("/services").await;
    let php = all["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "php-fpm.service")
        .cloned()
        .unwrap();
    assert_eq!(
        (php["hosts"].as_u64(), php["failed"].as_u64()),
        (Some(1), Some(1))
    );
    // The CLI's fleet view answers the same question.
    let out = stack.drover(&["services", "--unit", "php-fpm", "--state", "down", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["services"][0]["active_state"], "failed", "{cli}");
    let out = stack.drover(&[
        "services",
        "watch",
        "add",
        "--name",
        "x",
        "--selector",
        "all",
        "a b",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid systemd unit name"), "{err}");
    set_unit_state(&states, "php-fpm.service", "inactive", "dead");
    wait_state(&stack, &host.id, "php-fpm.service", "inactive").await;
    set_unit_state(&states, "php-fpm.service", "active", "running");
    wait_state(&stack, &host.id, "php-fpm.service", "active").await;
    assert!(service_rows(&stack, "?state=down").await.is_empty());

    // The agent restarts: it keeps its list (no new agent.watch is needed)
    // and reports a unit that stopped meanwhile.
    host.agent.kill9();
    set_unit_state(&states, "nginx.service", "inactive", "dead");
    host.agent = Stack::spawn_agent(&host.agent_toml, &host.dir);
    wait_state(&stack, &host.id, "nginx.service", "inactive").await;
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    let watches = cmds["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "agent.watch")
        .count();
    assert_eq!(watches, 1, "the list survived the restart: {cmds}");
    set_unit_state(&states, "nginx.service", "active", "running");

    // The list narrows: the full report removes the unit no longer watched.
    let id = w["id"].as_str().unwrap();
    let (code, changed) = api_send(
        &stack,
        reqwest::Method::PUT,
        &format!("/services/watches/{id}"),
        Some(&json!({"name": "web", "selector": {"agents": [host.id]}, "units": ["nginx"]})),
    )
    .await;
    assert_eq!(code, 200, "{changed}");
    wait_for("php-fpm to leave the host's report", T, || async {
        let rows = service_rows(&stack, &format!("?agent={}", host.id)).await;
        (row(&rows, "php-fpm.service").is_none() && row(&rows, "nginx.service").is_some())
            .then_some(())
    })
    .await;

    // A bad change is refused and changes nothing.
    let (code, err) = api_send(
        &stack,
        reqwest::Method::PUT,
        &format!("/services/watches/{id}"),
        Some(&json!({"name": "web", "selector": "all", "units": ["a;b"]})),
    )
    .await;
    assert_eq!(code, 422, "{err}");
    let (_, listed) = stack.get("/services/watches").await;
    assert_eq!(listed["watches"][0]["units"], json!(["nginx.service"]));

    // Removing the list: the host watches nothing, its rows go.
    let (code, gone) = api_send(
        &stack,
        reqwest::Method::DELETE,
        &format!("/services/watches/{id}"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{gone}");
    wait_for("the host's rows to go", T, || async {
        service_rows(&stack, &format!("?agent={}", host.id))
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let (_, audit) = stack.get("/audit").await;
    assert!(
        audit.to_string().contains("/api/v1/services/watches"),
        "changes are audited: {audit}"
    );
}

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
async fn the_services_page_finds_where_a_unit_is_down() {
    let stack = Stack::start().await;
    let (host, states) = host_with_unit_states(&stack, "web2").await;
    stack.add_user("ada", "operator", PW);
    stack.add_user("vic", "viewer", PW);
    let viewer = stack.login("vic", PW).await;
    let (code, html) = viewer.get_html("/services").await;
    assert_eq!(code, 200);
    assert!(!html.contains("watch-form"), "viewers get no form");

    // The operator adds a list with the page's form.
    let b = Chrome::start().await;
    b.login(&stack.base, "ada", PW).await;
    b.c()
        .goto(&format!("{}/services", stack.base))
        .await
        .unwrap();
    b.type_into("#watch-form input[name=name]", "web").await;
    b.type_into("#watch-form input[name=units]", "nginx, php-fpm")
        .await;
    b.click("#watch-form button").await;
    b.wait_text("#watches-wrap", "php-fpm.service").await;
    wait_state(&stack, &host.id, "php-fpm.service", "active").await;

    // php-fpm dies on the host: the open page shows it without a reload.
    b.wait_text("#service-units-wrap", "php-fpm.service").await;
    set_unit_state(&states, "php-fpm.service", "failed", "failed");
    b.wait_text(
        "#service-rows-wrap tr[data-unit=\"php-fpm.service\"]",
        "failed",
    )
    .await;

    // Where is php-fpm down right now? This host, linked.
    b.c()
        .goto(&format!("{}/services?unit=php-fpm&state=down", stack.base))
        .await
        .unwrap();
    let link = format!("#service-rows a[href=\"/agents/{}\"]", host.id);
    wait_for("the host's link in the filtered list", T, || {
        let (c, link) = (b.c(), link.clone());
        async move {
            c.find(fantoccini::Locator::Css(&link))
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    let rows = b.text("#service-rows tbody").await;
    assert!(rows.contains("failed") && !rows.contains("nginx"), "{rows}");
    let png = b.c().screenshot().await.unwrap();
    std::fs::write(shots_dir().join("services.png"), png).unwrap();

    // The fleet page counts it; the host page lists it.
    b.c().goto(&format!("{}/fleet", stack.base)).await.unwrap();
    b.wait_text("#count-services-down", "1").await;
    b.c()
        .goto(&format!("{}/agents/{}", stack.base, host.id))
        .await
        .unwrap();
    b.wait_text("#host-services", "php-fpm.service").await;
    b.wait_text("#host-services", "failed").await;
}
