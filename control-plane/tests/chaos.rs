//! Chaos with real processes, bounded in time: during a job of 1,000
//! commands (1,000 virtual agents with on-disk identities and journals),
//! `kill -9` the agents mid-job, restart nats-server, restart the control
//! plane, bring the agents back. Every command must end in exactly one final
//! state, none may be lost, none may run twice — counted from the effect
//! each execution leaves (one appended line per run).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{wait_for, Nats, Proc, Stack};
use serde_json::json;

const AGENTS: usize = 1000;

fn simulate(stack: &Stack, token: &str, state: &std::path::Path, log: &str) -> Proc {
    let extra = [std::ffi::OsStr::new("--state-dir"), state.as_os_str()];
    stack.spawn_simulate(AGENTS, token, 2, &extra, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_survive_agent_kill_broker_and_control_plane_restarts() {
    let mut stack = Stack::start().await;
    let token = stack.token(AGENTS as i32, "1h", true).await;
    let state = stack.tmp.path().join("fleet");
    let mut fleet = simulate(&stack, &token, &state, "simulate-1.log");
    wait_for("the virtual fleet", Duration::from_secs(600), || async {
        fleet.log_text().contains("ready ").then_some(())
    })
    .await;
    stack
        .wait_online_count(
            "every virtual agent online",
            AGENTS,
            Duration::from_secs(120),
        )
        .await;

    let (code, job) = stack
        .post("/jobs", &json!({"selector": {"all": true}, "action": "sys.ping", "ttl_secs": 1800, "idempotency_key": "chaos"}))
        .await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["target_count"], AGENTS);
    let id = job["id"].as_str().unwrap().to_string();

    // 1. kill -9 the agents as soon as the first results are in.
    let first = wait_for("the first results", Duration::from_secs(120), || async {
        let (_, v) = stack.get(&format!("/jobs/{id}")).await;
        (v["counts"]["finished"].as_u64().unwrap_or(0) > 0).then_some(v)
    })
    .await;
    fleet.kill9();
    eprintln!(
        "killed the fleet at {} of {AGENTS} finished",
        first["counts"]["finished"]
    );

    // 2. Restart the broker (same port, same storage).
    let port = stack.nats.port;
    let dir = stack.nats.dir.clone();
    let conf = stack.data_dir.join("nats-config").join("nats.conf");
    stack.nats.proc.stop();
    stack.nats = Nats::start_on(&dir, &conf, port).await;

    // 3. Restart the control plane.
    let cp_port: u16 = stack.base.rsplit(':').next().unwrap().parse().unwrap();
    stack.cp.stop();
    stack.cp = Stack::spawn_cp(&stack.data_dir, &stack.nats.url(), cp_port);
    stack.wait_healthy().await;

    // 4. The agents come back with their identities and journals.
    fleet = simulate(&stack, &token, &state, "simulate-2.log");
    let done = stack.wait_job_done(&id, Duration::from_secs(600)).await;
    drop(fleet);

    // Exactly one final state each, none lost.
    let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
    let hosts = hosts["hosts"].as_array().unwrap().clone();
    assert_eq!(hosts.len(), AGENTS, "one command per target");
    assert_eq!(done["counts"]["finished"], AGENTS, "{done}");
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for h in &hosts {
        *by_status
            .entry(h["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!("final states: {by_status:?}");
    for h in &hosts {
        let s = h["status"].as_str().unwrap();
        let ok = s == "succeeded"
            || (s == "failed" && h["summary"].as_str().unwrap().contains("interrupted"));
        assert!(ok, "only success or an honest 'interrupted': {h}");
    }

    // None ran twice: count the effect.
    let mut runs: HashMap<String, usize> = HashMap::new();
    for entry in std::fs::read_dir(&state).unwrap() {
        if let Ok(text) = std::fs::read_to_string(entry.unwrap().path().join("executions")) {
            for line in text.lines().filter(|l| !l.is_empty()) {
                *runs.entry(line.to_string()).or_default() += 1;
            }
        }
    }
    for h in &hosts {
        let cmd = h["command_id"].as_str().unwrap();
        let n = runs.get(cmd).copied().unwrap_or(0);
        assert!(n <= 1, "command {cmd} ran {n} times");
        if h["status"] == "succeeded" {
            assert_eq!(n, 1, "a success is one run: {h}");
        }
    }
}
