//! Clock skew end to end: a host whose clock is off is measured from its
//! heartbeats and shown, runs commands within the tolerance, is refused
//! beyond it with "clock skew" (failed, not a security refusal), and its
//! metric samples are stored on the control plane's clock; rootd checks the
//! clock on its own too.
//!
//! The host's clock is faked with the TEST-ONLY setting
//! `DROVER_TEST_CLOCK_OFFSET_MS` (`bus_schema::clock::TEST_CLOCK_OFFSET_ENV`)
//! given to the agent and rootd processes only: it offsets their notion of
//! now; the machine's real clock is never changed.

mod common;

use std::process::Command;
use std::time::Duration;

use bus_schema::clock::{CLOCK_SKEW_ADVICE, TEST_CLOCK_OFFSET_ENV};
use bus_schema::rootd_proto::RootFrame;
use common::{ask_rootd, bin, signed_command, wait_for, Host, Proc, Stack};
use control_plane::db::entities::metric_sample;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

/// Restarts the host's agent with its clock `offset_ms` off.
fn restart_agent_with_offset(host: &mut Host, offset_ms: i64) {
    host.agent.stop();
    let mut ac = Command::new(bin("drover-agent"));
    ac.arg("--config")
        .arg(&host.agent_toml)
        .arg("run")
        .env(TEST_CLOCK_OFFSET_ENV, offset_ms.to_string());
    host.agent = Proc::spawn("drover-agent", ac, host.dir.join("agent.log"));
}

/// Restarts the host's rootd with its clock `offset_ms` off.
async fn restart_rootd_with_offset(host: &mut Host, offset_ms: i64) {
    host.rootd.stop();
    let _ = std::fs::remove_file(&host.socket);
    let mut rc = Command::new(bin("drover-rootd"));
    rc.arg("--config")
        .arg(host.dir.join("rootd.toml"))
        .env(TEST_CLOCK_OFFSET_ENV, offset_ms.to_string());
    host.rootd = Proc::spawn("drover-rootd", rc, host.dir.join("rootd.log"));
    let sock = host.socket.clone();
    wait_for("rootd's socket", Duration::from_secs(20), || {
        let s = sock.clone();
        async move { s.exists().then_some(()) }
    })
    .await;
}

/// Waits until the API shows the agent's skew within `lo..=hi` ms.
async fn wait_skew(stack: &Stack, id: &str, lo: i64, hi: i64) -> Value {
    wait_for(
        &format!("agent {id} to show a clock skew within {lo}..={hi} ms"),
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get(&format!("/agents/{id}")).await;
            let skew = v["clock_skew_ms"].as_i64()?;
            (code == 200 && (lo..=hi).contains(&skew)).then_some(v)
        },
    )
    .await
}

/// Sends a `sys.ping` with a 60 s lifetime and waits for its final state.
async fn ping_60s(stack: &Stack, id: &str) -> Value {
    let (code, c) = stack
        .post(
            &format!("/agents/{id}/commands"),
            &json!({"action": "sys.ping", "ttl_secs": 60}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
}

/// The refusals the Security overview counts, as (reason, count).
async fn security_refusals(stack: &Stack) -> Vec<(String, i64)> {
    let (code, v) = stack.get("/security").await;
    assert_eq!(code, 200, "{v}");
    v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap_or("").to_string(),
                r["count"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_agent_is_measured_tolerated_then_refused() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("skewed").await;

    // Two minutes ahead: measured and shown with a warning in the API.
    restart_agent_with_offset(&mut host, 120_000);
    let view = wait_skew(&stack, &host.id, 100_000, 120_000).await;
    let warning = view["clock_warning"].as_str().unwrap_or("");
    assert!(
        warning.contains("ahead") && warning.contains(CLOCK_SKEW_ADVICE),
        "{view}"
    );
    let (_, list) = stack.get("/agents").await;
    let row = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == host.id.as_str())
        .cloned()
        .unwrap();
    assert!(row["clock_skew_ms"].as_i64().unwrap() >= 100_000, "{row}");
    assert!(row["clock_warning"].is_string(), "{row}");

    // Within the tolerance: a one-minute command runs.
    let done = ping_60s(&stack, &host.id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let refused = security_refusals(&stack).await;
    assert!(
        !refused.iter().any(|(r, _)| r == "expired"),
        "nothing refused as expired while the clock is within the tolerance: {refused:?}"
    );

    // Metric samples are stored on the control plane's clock: wait for one
    // taken from a heartbeat of the skewed agent (one per minute), then no
    // sample lies in the control plane's future.
    let db = stack.db().await;
    let restarted = bus_schema::now_ms();
    let id = host.id.clone();
    wait_for(
        "a metric sample after the agent's clock moved",
        Duration::from_secs(90),
        || {
            let db = db.clone();
            let id = id.clone();
            async move {
                let rows = metric_sample::Entity::find()
                    .filter(metric_sample::Column::AgentId.eq(id))
                    .filter(metric_sample::Column::At.gte(restarted))
                    .all(&db)
                    .await
                    .ok()?;
                (!rows.is_empty()).then_some(())
            }
        },
    )
    .await;
    let now = bus_schema::now_ms();
    let samples = metric_sample::Entity::find()
        .filter(metric_sample::Column::AgentId.eq(host.id.clone()))
        .all(&db)
        .await
        .unwrap();
    assert!(
        samples.iter().all(|s| s.at <= now),
        "samples stored at the host's clock: {:?}",
        samples.iter().map(|s| s.at - now).collect::<Vec<_>>()
    );

    // Ten minutes ahead: beyond the tolerance, refused as clock skew.
    restart_agent_with_offset(&mut host, 600_000);
    let view = wait_skew(&stack, &host.id, 580_000, 600_000).await;
    assert!(
        view["clock_warning"]
            .as_str()
            .is_some_and(|w| w.contains("refused")),
        "{view}"
    );
    let done = ping_60s(&stack, &host.id).await;
    assert_eq!(done["status"], "failed", "{done}");
    let summary = done["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains("clock skew")
            && summary.contains("ahead")
            && summary.contains(CLOCK_SKEW_ADVICE),
        "{done}"
    );
    Stack::wait_log(&host.agent, "reason=\"clock_skew\"").await;
    // Not a security refusal, and not counted as an expired one either.
    let refused = security_refusals(&stack).await;
    assert!(
        !refused
            .iter()
            .any(|(r, _)| r == "expired" || r == "clock_skew"),
        "a wrong clock is not an attack: {refused:?}"
    );

    // The host and fleet pages show the skew and the warning.
    stack.add_user("ops", "admin", "a-long-test-password");
    let s = stack.login("ops", "a-long-test-password").await;
    let (code, page) = s.get_html(&format!("/agents/{}", host.id)).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("clock-warn") && page.contains("timedatectl"),
        "host page"
    );
    let (code, page) = s.get_html("/fleet").await;
    assert_eq!(code, 200);
    assert!(page.contains("clock-warn"), "fleet page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootd_checks_the_clock_itself() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("rootd-clock").await;
    let label = |f: &RootFrame| match f {
        RootFrame::Refused { label, reason } => format!("{label}: {reason}"),
        other => format!("not refused: {other:?}"),
    };

    // rootd ten minutes behind: the command is from its future.
    restart_rootd_with_offset(&mut host, -600_000).await;
    let f = ask_rootd(
        &host.socket,
        &signed_command(&stack, &host.id, "sys.ping", json!({})),
    )
    .await;
    let l = label(&f);
    assert!(
        l.starts_with("clock_skew:") && l.contains("behind") && l.contains(CLOCK_SKEW_ADVICE),
        "{l}"
    );

    // Two minutes ahead: within the tolerance, so the clock passes and the
    // next check (sys.ping is not rootd's) answers.
    restart_rootd_with_offset(&mut host, 120_000).await;
    let f = ask_rootd(
        &host.socket,
        &signed_command(&stack, &host.id, "sys.ping", json!({})),
    )
    .await;
    assert!(label(&f).starts_with("unknown_action:"), "{}", label(&f));

    // Ten minutes ahead, as the control plane measured it: clock skew, not
    // "expired".
    restart_rootd_with_offset(&mut host, 600_000).await;
    let now = bus_schema::now_ms();
    let signed = stack.signer().sign(&bus_schema::Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
        agent_id: host.id.clone(),
        action: "sys.ping".into(),
        params: json!({}),
        issued_at: now,
        expires_at: now + 60_000,
        timeout_secs: 60,
        requested_by: "test".into(),
        source: bus_schema::Source::User,
        job_id: None,
        clock_skew_ms: Some(600_000),
    });
    let f = ask_rootd(&host.socket, &signed).await;
    assert!(label(&f).starts_with("clock_skew:"), "{}", label(&f));
}
