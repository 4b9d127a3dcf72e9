//! A fleet with operations held open for the live operations tests: host
//! `h` runs the `gated` app until the test opens its gate (one user command
//! `running`), host `q` has its agent stopped so its commands wait
//! `queued` (two user `sys.ping`s, and one system `pkg.scan` sent by a
//! schedule). It owns setting that up; what the view must show stays in
//! the tests.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// The fleet and the ids of what it holds open.
pub struct OpsFleet {
    pub _tmp: tempfile::TempDir,
    pub gate: PathBuf,
    pub stack: Stack,
    pub h: Host,
    pub q: Host,
    /// The `app.install` running on `h`.
    pub install: String,
    /// The two `sys.ping`s queued for `q`.
    pub pings: Vec<String>,
    /// The schedule's id (disabled once its command is queued).
    pub schedule: String,
}

/// `GET /api/v1/operations{query}`, asserting a 200.
pub async fn ops_view(stack: &Stack, query: &str) -> Value {
    let (code, v) = stack.get(&format!("/operations{query}")).await;
    assert_eq!(code, 200, "{query}: {v}");
    v
}

/// Waits until the operations view (unfiltered) holds `n` operations.
pub async fn wait_ops_total(stack: &Stack, n: u64) -> Value {
    wait_for(
        &format!("the live operations view to hold {n}"),
        Duration::from_secs(60),
        || async move {
            let v = ops_view(stack, "").await;
            (v["counts"]["total"].as_u64() == Some(n)).then_some(v)
        },
    )
    .await
}

/// Sets up [`OpsFleet`] and waits until all four operations are open.
pub async fn ops_fleet() -> OpsFleet {
    let (tmp, gate, stack, h) = gated_stack(&[]).await;
    let mut q = stack.start_host("q").await;
    // Its agent stops: what is sent to it waits in its queue.
    q.agent.stop();

    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let install = c["id"].as_str().unwrap().to_string();
    let mut pings = Vec::new();
    for _ in 0..2 {
        let (code, c) = stack
            .command(
                &q.id,
                &json!({"action": "sys.ping", "params": {}, "ttl_secs": 600}),
            )
            .await;
        assert_eq!(code, 201, "{c}");
        pings.push(c["id"].as_str().unwrap().to_string());
    }
    let (code, s) = stack
        .post(
            "/schedules",
            &json!({"name": "nightly-scan", "action": "pkg.scan",
                    "selector": {"agents": [q.id]}, "params": {"refresh": false},
                    "cron": "*/2 * * * * *", "timezone": "UTC", "enabled": true}),
        )
        .await;
    assert_eq!(code, 201, "{s}");
    let schedule = s["id"].as_str().unwrap().to_string();
    wait_for(
        "the schedule's pkg.scan to be queued",
        Duration::from_secs(60),
        || async {
            let v = ops_view(&stack, "?source=system").await;
            (v["counts"]["total"].as_u64() == Some(1)).then_some(())
        },
    )
    .await;
    let (code, v) = stack
        .post(&format!("/schedules/{schedule}/disable"), &json!({}))
        .await;
    assert!(code < 300, "{v}");
    wait_for(
        "the gated install to run",
        Duration::from_secs(60),
        || async {
            let v = ops_view(&stack, "?status=running").await;
            (v["counts"]["total"].as_u64() == Some(1)).then_some(())
        },
    )
    .await;
    OpsFleet {
        _tmp: tmp,
        gate,
        stack,
        h,
        q,
        install,
        pings,
        schedule,
    }
}
