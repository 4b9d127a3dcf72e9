//! Rollouts to real hosts, end to end as an operator runs them: the release
//! key made and the release published with the `drover` CLI, the rollout
//! started and followed with `drover rollout start` / `status --follow`,
//! and real agents updated by real rootd processes (a real nats-server and
//! `drover serve` throughout).
//!
//! systemd as PID 1 cannot exist here: rootd's own supervision of the
//! agent (`agent_restart = "supervise"`) stands in for it. A new version is
//! the test's own agent binary published under another version string (the
//! agent reports the version of the `release.json` rootd writes beside
//! it); a broken release is a shell script that exits at start.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const FINAL: [&str; 5] = ["succeeded", "failed", "rejected", "expired", "cancelled"];

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes the stack's release key where `drover releases publish --key`
/// reads it (the seed file `drover releases keygen` writes).
fn key_file(rel: &Releases, dir: &Path) -> String {
    let p = dir.join("release.key");
    std::fs::write(&p, rel.signer.seed_base64()).unwrap();
    p.to_str().unwrap().to_string()
}

/// `drover releases publish` of `bytes` as `version`, signed with the key.
fn publish(stack: &Stack, dir: &Path, key: &str, bytes: &[u8], version: &str) {
    let bin = dir.join(format!("drover-agent-{version}"));
    std::fs::write(&bin, bytes).unwrap();
    let out = stack.drover(&[
        "releases",
        "publish",
        bin.to_str().unwrap(),
        "--version",
        version,
        "--key",
        key,
        "--notes",
        "test release",
    ]);
    assert!(out.status.success(), "publish {version}: {}", text(&out));
}

/// `drover rollout start … --json`; returns the rollout's id.
fn start_rollout(stack: &Stack, version: &str, extra: &[&str]) -> String {
    let mut args = vec!["rollout", "start", version, "--selector", "all", "--json"];
    args.extend_from_slice(extra);
    let out = stack.drover(&args);
    assert!(out.status.success(), "rollout start: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// `drover rollout status <id> --follow` until the rollout ends (bounded);
/// returns its exit code and output.
async fn follow(stack: &Stack, id: &str) -> (i32, String) {
    let mut cmd = std::process::Command::new(bin("drover"));
    cmd.args(["rollout", "status", id, "--follow"])
        .env("DROVER_DATA_DIR", &stack.data_dir)
        .env("DROVER_API", &stack.base)
        .stdin(std::process::Stdio::null());
    if let Some(url) = test_database_url(&stack.data_dir) {
        cmd.env("DROVER_DATABASE_URL", url);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || cmd.output().unwrap()),
    )
    .await
    .expect("drover rollout status --follow ends when the rollout ends")
    .unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

/// The rollout's view. The API's per-token rate limit answers 429 when
/// this poll and `drover rollout status --follow` (same token) meet in one
/// second: waited out as its Retry-After says (1 s), at most 10 times.
async fn rollout(stack: &Stack, id: &str) -> Value {
    for _ in 0..10 {
        let (code, v) = stack.get(&format!("/rollouts/{id}")).await;
        if code == 429 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        assert_eq!(code, 200, "{v}");
        return v;
    }
    panic!("GET /rollouts/{id} rate-limited 10 times in a row");
}

fn host_row<'a>(v: &'a Value, agent: &str) -> &'a Value {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["agent_id"] == agent)
        .unwrap_or_else(|| panic!("{agent} is in the rollout: {v}"))
}

/// Stops a supervised host entirely: rootd, then the agent it left running
/// (its pid file), as a powered-off machine would be.
fn power_off(host: &mut SupervisedHost) {
    host.rootd.stop();
    let pid_file = host.dir.join("rootd").join("agent.pid");
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Canary, then waves, then done, on real hosts; pings sent to every host
/// while they switch all succeed; a host that was powered off during the
/// rollout gets the update when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_updates_real_hosts_wave_by_wave_loses_no_command_and_catches_up_offline_hosts() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(&rel, dir.path());
    let extra = "update_health_secs = 120\n";
    let mut hosts = Vec::new();
    for name in ["h1", "h2", "h3", "h4"] {
        hosts.push(
            stack
                .start_supervised_host(name, &rel.public_key(), extra)
                .await,
        );
    }
    let old = built_agent_version();
    publish(&stack, dir.path(), &key, &agent_bytes(), "0.7.0");

    // One host is powered off before the rollout starts: the one whose id
    // sorts last, so the canary (the first id) is online.
    hosts.sort_by(|x, y| x.id.cmp(&y.id));
    let mut off = hosts.pop().unwrap();
    power_off(&mut off);
    wait_for(
        "the powered-off host to be offline",
        Duration::from_secs(60),
        || async {
            let (_, v) = stack.get(&format!("/agents/{}", off.id)).await;
            (v["status"] == "offline").then_some(())
        },
    )
    .await;

    let id = start_rollout(
        &stack,
        "0.7.0",
        &[
            "--canary",
            "1",
            "--waves",
            "50%,100%",
            "--max-failures",
            "0",
        ],
    );
    let follower = {
        let stack_ref = &stack;
        follow(stack_ref, &id)
    };
    // Pings to the online hosts while the rollout runs: each round waits
    // for the previous one to end; bounded in rounds.
    let pinging = async {
        let mut pings = Vec::new();
        for _ in 0..40 {
            let mut round = Vec::new();
            for h in &hosts {
                round.push(stack.submit(&h.id, "sys.ping", json!({})).await);
            }
            for p in &round {
                stack.wait_final(p, Duration::from_secs(120)).await;
            }
            pings.extend(round);
            let v = rollout(&stack, &id).await;
            if v["state"] != "running" {
                break;
            }
        }
        pings
    };
    let ((code, out), pings) = tokio::join!(follower, pinging);
    assert_eq!(code, 0, "the rollout ended done: {out}");

    let v = rollout(&stack, &id).await;
    assert_eq!(v["state"], "done", "{v}");
    for h in &hosts {
        let row = host_row(&v, &h.id);
        assert_eq!(row["state"], "healthy", "{row}");
        assert_eq!(row["from_version"], old.as_str(), "{row}");
        stack.wait_agent_version(&h.id, "0.7.0").await;
        assert_eq!(h.current().as_deref(), Some("0.7.0"));
    }
    assert_eq!(host_row(&v, &off.id)["state"], "offline", "{v}");

    // Wave by wave: every later host's update was sent only after the
    // canary's had ended healthy.
    let canary: Vec<&Value> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["wave"] == 0)
        .collect();
    assert_eq!(canary.len(), 1, "one canary host: {v}");
    let (_, canary_cmd) = stack
        .get(&format!(
            "/commands/{}",
            canary[0]["command_id"].as_str().unwrap()
        ))
        .await;
    let canary_end = canary_cmd["finished_at"].as_i64().unwrap();
    for h in v["hosts"].as_array().unwrap() {
        if h["wave"] == 0 || h["command_id"].is_null() {
            continue;
        }
        let (_, c) = stack
            .get(&format!("/commands/{}", h["command_id"].as_str().unwrap()))
            .await;
        assert!(
            c["created_at"].as_i64().unwrap() >= canary_end,
            "a wave host was sent before the canary ended: {c}"
        );
        assert_eq!(c["requested_by"], format!("rollout:{id}"), "{c}");
    }

    // No command lost or run twice while the agents switched: every ping
    // ended succeeded on its first run.
    assert!(!pings.is_empty());
    for p in &pings {
        let (_, c) = stack.get(&format!("/commands/{p}")).await;
        assert!(FINAL.contains(&c["status"].as_str().unwrap()), "{c}");
        assert_eq!(c["status"], "succeeded", "a ping during the switch: {c}");
    }

    // The powered-off host comes back: the rollout remembered it and
    // updates it.
    off.rootd = spawn_rootd(&off.rootd_toml, &off.dir);
    stack.wait_agent_version(&off.id, "0.7.0").await;
    let row = wait_for(
        "the returned host healthy in the rollout",
        Duration::from_secs(120),
        || async {
            let v = rollout(&stack, &id).await;
            let row = host_row(&v, &off.id).clone();
            (row["state"] == "healthy").then_some(row)
        },
    )
    .await;
    assert_eq!(row["from_version"], old.as_str(), "{row}");
}

/// A release whose binary exits at start: the canary host rolls back by
/// itself, the rollout halts before any other host is sent, and every host
/// still runs the old version and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_exits_at_start_rolls_back_on_the_canary_and_halts_the_rollout() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(&rel, dir.path());
    let extra = "update_health_secs = 120\n";
    let a = stack
        .start_supervised_host("a", &rel.public_key(), extra)
        .await;
    let b = stack
        .start_supervised_host("b", &rel.public_key(), extra)
        .await;
    let old = built_agent_version();
    publish(&stack, dir.path(), &key, &broken_agent_bytes(), "0.8.0");

    let id = start_rollout(&stack, "0.8.0", &["--canary", "1", "--max-failures", "1"]);
    let (code, out) = follow(&stack, &id).await;
    assert_eq!(code, 2, "the rollout halted: {out}");

    let v = rollout(&stack, &id).await;
    assert_eq!(v["state"], "halted", "{v}");
    assert!(
        v["halted_reason"].as_str().unwrap().contains("canary"),
        "{v}"
    );
    let canary = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["wave"] == 0)
        .unwrap();
    assert_eq!(canary["state"], "rolled_back", "{canary}");
    assert!(
        !canary["reason"].as_str().unwrap_or("").is_empty(),
        "{canary}"
    );
    let other = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["wave"] != 0)
        .unwrap();
    assert!(other["command_id"].is_null(), "never sent: {other}");

    for h in [&a, &b] {
        stack.wait_agent_version(&h.id, &old).await;
        assert_eq!(h.current().as_deref(), Some(old.as_str()));
        let p = stack.submit(&h.id, "sys.ping", json!({})).await;
        let c = stack.wait_final(&p, Duration::from_secs(60)).await;
        assert_eq!(c["status"], "succeeded", "{c}");
    }
    // The release that rolled back is gone from the canary host and does
    // not raise its rollback floor: a good release below it installs.
    let canary_host = if canary["agent_id"] == a.id.as_str() {
        &a
    } else {
        &b
    };
    assert!(!canary_host.releases.join("0.8.0").exists());
    publish(&stack, dir.path(), &key, &agent_bytes(), "0.7.5");
    let id = start_rollout(&stack, "0.7.5", &["--canary", "1"]);
    let (code, out) = follow(&stack, &id).await;
    assert_eq!(code, 0, "the good release below the rolled-back one: {out}");
    for h in [&a, &b] {
        stack.wait_agent_version(&h.id, "0.7.5").await;
    }
}

/// A yank also stops updates submitted before it that still wait in a
/// host's queue (the host is off); and nobody but the control plane may
/// send the self-test that confirms an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yank_cancels_queued_updates_and_users_cannot_send_the_self_test() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(&rel, dir.path());
    let mut host = stack
        .start_supervised_host("q", &rel.public_key(), "update_health_secs = 120\n")
        .await;
    let old = built_agent_version();
    publish(&stack, dir.path(), &key, &agent_bytes(), "0.9.0");

    let (code, body) = stack
        .post(
            &format!("/agents/{}/commands", host.id),
            &json!({"action": "agent.selftest", "params": {"version": "0.9.0"}}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.to_string()
            .contains("sent by the control plane itself"),
        "{body}"
    );

    power_off(&mut host);
    wait_for(
        "the host to be offline",
        Duration::from_secs(60),
        || async {
            let (_, v) = stack.get(&format!("/agents/{}", host.id)).await;
            (v["status"] == "offline").then_some(())
        },
    )
    .await;
    let signed = Releases::sign_with(&rel.signer, &agent_bytes(), "0.9.0");
    let upd = stack
        .submit(&host.id, "agent.update", signed.update_params(false))
        .await;
    let out = stack.drover(&["releases", "yank", "0.9.0", "--reason", "breaks heartbeats"]);
    assert!(out.status.success(), "{}", text(&out));
    let c = stack.wait_final(&upd, Duration::from_secs(60)).await;
    assert_eq!(c["status"], "cancelled", "{c}");

    host.rootd = spawn_rootd(&host.rootd_toml, &host.dir);
    stack.wait_agent_version(&host.id, &old).await;
    let p = stack.submit(&host.id, "sys.ping", json!({})).await;
    let c = stack.wait_final(&p, Duration::from_secs(60)).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(
        host.current().as_deref(),
        Some(old.as_str()),
        "never installed"
    );
    let (_, c) = stack.get(&format!("/commands/{upd}")).await;
    assert_eq!(c["status"], "cancelled", "{c}");
}
