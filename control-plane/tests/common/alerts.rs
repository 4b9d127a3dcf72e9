//! Alerting helpers: a simulated host whose disk use a test sets by
//! rewriting its `--metrics-file`, the API calls the alert tests repeat
//! (PUT/DELETE, a rule, an alert's detail) and waiting on an alert's state.
//! Asserts nothing about alerts itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// Writes the simulator's metric overrides: disk `percent` % used of 100 GiB.
pub fn set_disk_percent(file: &Path, percent: u64) {
    let total: u64 = 100 << 30;
    let body = json!({ "disk_used_bytes": total / 100 * percent, "disk_total_bytes": total });
    // Write then rename, so the simulator never reads half a file.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, body.to_string()).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// `count` simulated hosts (state in `<tmp>/<name>`, heartbeats every
/// second) reading `<tmp>/<name>.metrics.json`, which starts at 20 % disk.
/// Returns the process, the ids and the metrics file.
pub async fn sim_hosts_with_metrics(
    stack: &Stack,
    count: usize,
    name: &str,
) -> (Proc, Vec<String>, PathBuf) {
    let file = stack.tmp.path().join(format!("{name}.metrics.json"));
    set_disk_percent(&file, 20);
    let token = stack.token(count as i32 * 2, "1h", true).await;
    let dir = stack.tmp.path().join(name);
    let f = file.to_string_lossy().to_string();
    let (p, ids) = sim_fleet(stack, &token, count, &dir, &["--metrics-file", &f]).await;
    (p, ids, file)
}

/// One admin request with any method (the stack has only GET and POST).
pub async fn alerts_api(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        m,
        path,
        body,
    )
    .await
}

/// Adds a rule; panics unless it is stored.
pub async fn add_rule(stack: &Stack, body: Value) -> Value {
    let (code, v) = stack.post("/alerts/rules", &body).await;
    assert_eq!(code, 201, "rule not stored: {v}");
    v
}

/// Every alert of `rule_id` (any state), newest first.
pub async fn alerts_of(stack: &Stack, rule_id: &str) -> Vec<Value> {
    let (code, v) = stack.get("/alerts?state=all&limit=5000").await;
    assert_eq!(code, 200, "{v}");
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule_id"] == rule_id)
        .cloned()
        .collect()
}

/// Waits until `rule_id` has an alert on `target` in `state`; returns its
/// detail (with `transitions`).
pub async fn wait_alert(
    stack: &Stack,
    rule_id: &str,
    target: &str,
    state: &str,
    max: Duration,
) -> Value {
    wait_for(
        &format!("a {state} alert of rule {rule_id} on {target}"),
        max,
        || async {
            let a = alerts_of(stack, rule_id)
                .await
                .into_iter()
                .find(|a| a["target"] == target && a["state"] == state)?;
            let (_, d) = stack
                .get(&format!("/alerts/{}", a["id"].as_str().unwrap()))
                .await;
            Some(d)
        },
    )
    .await
}

/// The states of an alert's transitions, oldest first, with why each was
/// suppressed (`None`: to be notified).
pub fn transitions(detail: &Value) -> Vec<(String, Option<String>)> {
    detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().to_string(),
                t["suppressed"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Waits until the alert `id` is in `state`; returns its detail.
pub async fn wait_alert_state(stack: &Stack, id: &str, state: &str, max: Duration) -> Value {
    wait_for(&format!("alert {id} to be {state}"), max, || async {
        let (_, d) = stack.get(&format!("/alerts/{id}")).await;
        (d["state"] == state).then_some(d)
    })
    .await
}

/// The `alerts` duty's finished rounds so far, from `GET /duties`.
pub async fn alert_rounds(stack: &Stack) -> u64 {
    let (_, v) = stack.get("/duties").await;
    v["duties"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "alerts"))
        .and_then(|d| d["runs"].as_u64())
        .unwrap_or(0)
}

/// Waits until the `alerts` duty has finished `n` more rounds.
pub async fn wait_alert_rounds(stack: &Stack, n: u64, max: Duration) {
    let start = alert_rounds(stack).await;
    wait_for(&format!("{n} alert evaluation rounds"), max, || async {
        (alert_rounds(stack).await >= start + n).then_some(())
    })
    .await;
}
