//! Alert evaluation's cost at fleet scale (ignored by `just test`; run with
//! `cargo test --release -p control-plane --test bench_alerts -- --ignored
//! --nocapture`). Starts a stack and `DROVER_BENCH_ALERT_AGENTS` (default
//! 10,000) simulated agents heartbeating every 30 s (the fleet benchmark's
//! rate), then measures the control plane's CPU (user + system from
//! `/proc`) over `DROVER_BENCH_ALERT_WINDOW_SECS` (default 60) with no
//! rule, and again with five enabled rules (two metric thresholds,
//! host_offline, service_not_active, agent_outdated), and prints CPU seconds
//! per minute both ways, the percentage alerting adds (target < 10 %) and
//! the evaluation round's duration from `GET /api/v1/duties`.

mod common;

use std::time::{Duration, Instant};

use common::{add_rule, cpu_secs, wait_alert_rounds, wait_for, Stack};
use serde_json::{json, Value};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The `alerts` duty as `GET /duties` shows it.
async fn alerts_duty(stack: &Stack) -> Value {
    let (_, v) = stack.get("/duties").await;
    v["duties"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "alerts").cloned())
        .unwrap_or(Value::Null)
}

/// The control plane's CPU seconds per minute over `window`, waited out
/// by watching the clock (this is the measurement itself, not a wait for
/// a condition).
async fn cpu_per_minute(pid: u32, window: Duration) -> f64 {
    let before = cpu_secs(pid);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    (cpu_secs(pid) - before) * 60.0 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with `just bench`"]
async fn alert_evaluation_benchmark() {
    let n = env_or("DROVER_BENCH_ALERT_AGENTS", 10_000) as usize;
    let window = Duration::from_secs(env_or("DROVER_BENCH_ALERT_WINDOW_SECS", 60));
    let stack = Stack::start().await;
    let token = stack.token(n as i32 + 10, "2h", true).await;
    let sim = stack.spawn_simulate(n, &token, 30, &[], "simulate.log");
    let budget = Duration::from_secs(120 + n as u64 / 20);
    wait_for("the virtual fleet to be ready", budget, || async {
        sim.log_text().contains("ready ").then_some(())
    })
    .await;
    wait_for("every virtual agent online", budget, || async {
        (stack.online_count().await >= n).then_some(())
    })
    .await;
    // One full heartbeat interval so every agent's metrics are in.
    wait_alert_rounds(&stack, 7, Duration::from_secs(120)).await;

    let cp = stack.cp.pid();
    let without = cpu_per_minute(cp, window).await;
    for body in [
        json!({"name": "disk", "kind": "metric", "for_secs": 300,
               "params": {"metric": "disk_used_percent", "op": ">", "threshold": 90}}),
        json!({"name": "memory", "kind": "metric", "for_secs": 300,
               "params": {"metric": "mem_used_percent", "op": ">", "threshold": 95}}),
        json!({"name": "down", "kind": "host_offline", "for_secs": 60}),
        json!({"name": "nginx", "kind": "service_not_active", "params": {"unit": "nginx.service"}}),
        json!({"name": "outdated", "kind": "agent_outdated"}),
    ] {
        add_rule(&stack, body).await;
    }
    wait_alert_rounds(&stack, 2, Duration::from_secs(120)).await;
    let with = cpu_per_minute(cp, window).await;
    let duty = alerts_duty(&stack).await;
    let added = (with - without) / without * 100.0;
    println!("alert evaluation over {n} agents heartbeating every 30 s:");
    println!("  control plane CPU without rules: {without:.2} s/min");
    println!("  control plane CPU with 5 rules:  {with:.2} s/min");
    println!(
        "  added by alerting: {added:.1} % (target < 10 %); one round took {} ms",
        duty["last_duration_ms"]
    );
    assert!(
        duty["last_error"].is_null(),
        "the alerts duty failed: {duty}"
    );
}
