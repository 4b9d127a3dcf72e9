//! Agent self-update on the host, end to end with real processes: a real
//! nats-server, `drover serve` (its `update_proofs` duty sends the
//! self-test), and a real rootd that installs releases and runs the agent.
//! systemd as PID 1 cannot exist here: rootd's own supervision of the agent
//! (`agent_restart = "supervise"`) replaces it, which is the same switch,
//! restart and rollback path minus `systemctl restart`.
//!
//! A new version is the test's own agent binary published under another
//! version string (the agent reports the version in the `release.json`
//! rootd writes beside it); a broken release is a shell script that exits 3.

mod common;

use std::time::Duration;

use bus_schema::rootd_proto::{RootFrame, UpdateState};
use common::*;
use control_plane::db::entities::command;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

const FINAL: [&str; 5] = ["succeeded", "failed", "rejected", "expired", "cancelled"];

fn report(cmd: &Value) -> &Value {
    &cmd["result"]
}

/// (a) An update to a new release: healthy, the new version heartbeats, and
/// pings sent while the agent switches all succeed exactly once.
/// (e) Then a release older than the highest installed is refused without
/// `allow_downgrade`, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_proves_itself_no_ping_is_lost_and_a_downgrade_is_refused() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let host = stack
        .start_supervised_host("h", &rel.public_key(), "update_health_secs = 120\n")
        .await;
    let old = built_agent_version();
    assert_eq!(
        host.current().as_deref(),
        Some(old.as_str()),
        "rootd adopted the packaged agent"
    );

    let r = rel.publish(&agent_bytes(), "0.2.0").await;
    let upd = stack
        .submit(&host.id, "agent.update", r.update_params(false))
        .await;
    // Pings while it switches: each sent once the previous one ended or the
    // agent changed version, bounded in count.
    let mut pings = Vec::new();
    let mut after_switch = 0;
    for _ in 0..60 {
        let p = stack.submit(&host.id, "sys.ping", json!({})).await;
        pings.push(p.clone());
        let switched = wait_for(
            "the ping to end or the version to change",
            Duration::from_secs(60),
            || async {
                let (_, a) = stack.get(&format!("/agents/{}", host.id)).await;
                if a["agent_version"] == "0.2.0" {
                    return Some(true);
                }
                let (_, c) = stack.get(&format!("/commands/{p}")).await;
                FINAL
                    .contains(&c["status"].as_str().unwrap_or(""))
                    .then_some(false)
            },
        )
        .await;
        if switched {
            after_switch += 1;
            if after_switch >= 3 {
                break;
            }
        }
    }
    assert!(after_switch >= 3, "the agent never heartbeat 0.2.0");

    let u = stack.wait_final(&upd, Duration::from_secs(120)).await;
    assert_eq!(u["status"], "succeeded", "{u}");
    assert_eq!(report(&u)["outcome"], "healthy", "{u}");
    assert_eq!(report(&u)["from_version"], old.as_str(), "{u}");
    assert_eq!(report(&u)["to_version"], "0.2.0", "{u}");
    let a = stack.wait_agent_version(&host.id, "0.2.0").await;
    assert_eq!(a["agent_version"], "0.2.0");
    assert_eq!(host.current().as_deref(), Some("0.2.0"));
    let recs = host.update_records().await;
    assert_eq!(recs[0].command_id, upd);
    assert_eq!(recs[0].state, UpdateState::Healthy);

    for p in &pings {
        let c = stack.wait_final(p, Duration::from_secs(60)).await;
        assert_eq!(
            c["status"], "succeeded",
            "a ping sent during the switch: {c}"
        );
        assert_eq!(c["attempts"], 1, "a ping ran more than once: {c}");
    }
    // Exactly one self-test was sent for the update, by the duty.
    let selftests = command::Entity::find()
        .filter(command::Column::Action.eq("agent.selftest"))
        .all(&stack.db().await)
        .await
        .unwrap();
    assert_eq!(
        selftests.len(),
        1,
        "one self-test per update: {selftests:?}"
    );
    assert_eq!(selftests[0].requested_by, format!("update:{upd}"));
    assert_eq!(selftests[0].status, "succeeded");

    // (e) 0.1.5 < 0.2.0, the highest installed: refused, nothing changes.
    let down = rel.publish(&agent_bytes(), "0.1.5").await;
    let d = stack
        .submit(&host.id, "agent.update", down.update_params(false))
        .await;
    let d = stack.wait_final(&d, Duration::from_secs(60)).await;
    assert_eq!(d["status"], "rejected", "{d}");
    assert_eq!(report(&d)["outcome"], "failed", "{d}");
    assert!(
        d["summary"].as_str().unwrap().contains("allow_downgrade"),
        "the refusal says what to do: {d}"
    );
    assert_eq!(host.current().as_deref(), Some("0.2.0"));
    assert!(!host.releases.join("0.1.5").exists(), "nothing installed");
    let p = stack.ping(&host.id).await;
    assert_eq!(p["status"], "succeeded");
}

/// (b) A release whose binary exits at start is rolled back: the update
/// ends failed with outcome rolled_back and a reason, and the previous
/// agent answers pings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_exits_at_start_is_rolled_back() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let host = stack
        .start_supervised_host("h", &rel.public_key(), "update_health_secs = 120\n")
        .await;
    let old = built_agent_version();
    let r = rel.publish(&broken_agent_bytes(), "0.3.0").await;
    let upd = stack
        .submit(&host.id, "agent.update", r.update_params(false))
        .await;
    let u = stack.wait_final(&upd, Duration::from_secs(120)).await;
    assert_eq!(u["status"], "failed", "{u}");
    assert_eq!(report(&u)["outcome"], "rolled_back", "{u}");
    assert_eq!(report(&u)["running_version"], old.as_str(), "{u}");
    assert!(
        report(&u)["reason"].as_str().unwrap().contains("exited"),
        "the reason says what happened: {u}"
    );
    assert_eq!(host.current().as_deref(), Some(old.as_str()));
    let recs = host.update_records().await;
    assert_eq!(recs[0].state, UpdateState::RolledBack);
    stack.wait_agent_version(&host.id, &old).await;
    let p = stack.ping(&host.id).await;
    assert_eq!(p["status"], "succeeded", "{p}");
}

/// (c) A tampered object and a release signed by another key are refused
/// by the agent (nothing installed); rootd refuses them on its own too,
/// asked directly with genuinely signed commands and a tampered staged
/// file. (3) The agent's broker credentials read the releases bucket only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_foreign_releases_are_refused_by_agent_and_rootd() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let host = stack
        .start_supervised_host("h", &rel.public_key(), "update_health_secs = 120\n")
        .await;
    let old = built_agent_version();
    let bytes = agent_bytes();

    // Signed for the real bytes, but the bucket serves others.
    let signed = Releases::sign_with(&rel.signer, &bytes, "0.4.0");
    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0xff;
    rel.put_object("0.4.0", &tampered).await;
    let c = stack
        .submit(&host.id, "agent.update", signed.update_params(false))
        .await;
    let c = stack.wait_final(&c, Duration::from_secs(60)).await;
    assert!(
        ["failed", "rejected"].contains(&c["status"].as_str().unwrap()),
        "{c}"
    );
    assert_eq!(report(&c)["outcome"], "failed", "{c}");
    assert!(c["summary"].as_str().unwrap().contains("altered"), "{c}");

    // Another key signed it: the control plane refuses it at submission
    // (it checks with its own pinned key)...
    let other = bus_schema::signing::release::ReleaseSigner::generate();
    let foreign = Releases::sign_with(&other, &bytes, "0.5.0");
    rel.put_object("0.5.0", &bytes).await;
    let (code, body) = stack
        .post(
            &format!("/agents/{}/commands", host.id),
            &json!({"action": "agent.update", "params": foreign.update_params(false)}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(body.to_string().contains("signature"), "{body}");
    // ...and a host that pins another key than the control plane refuses,
    // on its own, a release the control plane accepts: nothing downloaded.
    let elsewhere_host = stack
        .start_supervised_host(
            "h2",
            &other.public().to_base64(),
            "update_health_secs = 120\n",
        )
        .await;
    let ours = Releases::sign_with(&rel.signer, &bytes, "0.5.0");
    let c = stack
        .submit(
            &elsewhere_host.id,
            "agent.update",
            ours.update_params(false),
        )
        .await;
    let c = stack.wait_final(&c, Duration::from_secs(60)).await;
    assert_eq!(c["status"], "rejected", "{c}");
    assert!(c["summary"].as_str().unwrap().contains("signature"), "{c}");
    assert_eq!(elsewhere_host.current().as_deref(), Some(old.as_str()));
    assert!(!elsewhere_host.releases.join("0.5.0").exists());
    assert!(!elsewhere_host
        .state_dir
        .join("updates")
        .join(&ours.sha256)
        .exists());
    assert_eq!(host.current().as_deref(), Some(old.as_str()));
    assert!(!host.releases.join("0.4.0").exists());
    assert!(!host.releases.join("0.5.0").exists());

    // rootd on its own: a staged file whose bytes differ from the signed
    // digest, then a manifest signed by another key.
    let staging = host.state_dir.join("updates");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join(&signed.sha256), &tampered).unwrap();
    let cmd = signed_command(
        &stack,
        &host.id,
        "agent.update",
        signed.update_params(false),
    );
    match ask_rootd(&host.socket, &cmd).await {
        RootFrame::Done {
            status,
            summary,
            data,
            ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected, "{summary}");
            assert!(summary.contains("altered"), "{summary}");
            assert_eq!(data["outcome"], "failed");
        }
        other => panic!("rootd answered {other:?}"),
    }
    std::fs::write(staging.join(&foreign.sha256), &bytes).unwrap();
    let cmd = signed_command(
        &stack,
        &host.id,
        "agent.update",
        foreign.update_params(false),
    );
    match ask_rootd(&host.socket, &cmd).await {
        RootFrame::Done {
            status, summary, ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected, "{summary}");
            assert!(summary.contains("signature"), "{summary}");
        }
        other => panic!("rootd answered {other:?}"),
    }
    std::fs::remove_dir_all(&staging).ok();
    // The staging directory is the agent's: rootd never reads through a
    // symlink there, even to the right bytes.
    let elsewhere = host.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join(&signed.sha256), &bytes).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &staging).unwrap();
    let cmd = signed_command(
        &stack,
        &host.id,
        "agent.update",
        signed.update_params(false),
    );
    match ask_rootd(&host.socket, &cmd).await {
        RootFrame::Done {
            status, summary, ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected, "{summary}");
            assert!(summary.contains("symlink"), "{summary}");
        }
        other => panic!("rootd answered {other:?}"),
    }
    std::fs::remove_file(&staging).ok();
    // A FIFO where the release should be: refused at once, rootd never
    // waits for a writer (which would hold its update records).
    std::fs::create_dir_all(&staging).unwrap();
    nix::unistd::mkfifo(
        &staging.join(&signed.sha256),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let cmd = signed_command(
        &stack,
        &host.id,
        "agent.update",
        signed.update_params(false),
    );
    let answer = tokio::time::timeout(Duration::from_secs(30), ask_rootd(&host.socket, &cmd))
        .await
        .expect("rootd answers at once about a FIFO");
    match answer {
        RootFrame::Done {
            status, summary, ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected, "{summary}");
            assert!(summary.contains("not a regular file"), "{summary}");
        }
        other => panic!("rootd answered {other:?}"),
    }
    std::fs::remove_dir_all(&staging).ok();
    assert_eq!(host.current().as_deref(), Some(old.as_str()));
    assert!(
        host.update_records().await.is_empty(),
        "nothing was recorded"
    );

    // The broker: the agent's own credentials may read the releases bucket
    // but not write it, and may not read another bucket.
    let agent_nats = host.agent_client(&stack).await;
    let js = async_nats::jetstream::new(agent_nats);
    let store = js
        .get_object_store(bus_schema::subjects::RELEASES_BUCKET)
        .await
        .expect("the agent reads the releases bucket");
    let mut obj = store
        .get(format!(
            "drover-agent-0.5.0-{}",
            bus_schema::signing::release::platform()
        ))
        .await
        .expect("the agent reads an object");
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut obj, &mut got)
        .await
        .unwrap();
    assert_eq!(got, bytes);
    let mut evil: &[u8] = b"evil";
    let put = tokio::time::timeout(
        Duration::from_secs(20),
        store.put("drover-agent-9.9.9-linux-x86_64", &mut evil),
    )
    .await;
    assert!(
        !matches!(put, Ok(Ok(_))),
        "an agent must not write the releases bucket"
    );
    // Another bucket (made by the control plane's own credentials).
    let cp_js = async_nats::jetstream::new(stack.client().await);
    cp_js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "other-bucket".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let other_bucket =
        tokio::time::timeout(Duration::from_secs(20), js.get_object_store("other-bucket")).await;
    assert!(
        !matches!(other_bucket, Ok(Ok(_))),
        "an agent must not read another bucket"
    );
}

/// (d) rootd killed (-9) after the switch, before the self-test: the rootd
/// started again cannot vouch for the new agent, rolls back at once, and the
/// host answers pings on the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rootd_killed_mid_update_rolls_back_when_it_starts_again() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let mut host = stack
        .start_supervised_host("h", &rel.public_key(), "update_health_secs = 120\n")
        .await;
    let old = built_agent_version();
    let r = rel.publish(&agent_bytes(), "0.6.0").await;
    let upd = stack
        .submit(&host.id, "agent.update", r.update_params(false))
        .await;
    let h = &host;
    wait_for(
        "rootd to switch to 0.6.0",
        Duration::from_secs(60),
        || async move { (h.current().as_deref() == Some("0.6.0")).then_some(()) },
    )
    .await;
    host.rootd.kill9();
    host.rootd = spawn_rootd(&host.rootd_toml, &host.dir);
    let u = stack.wait_final(&upd, Duration::from_secs(120)).await;
    assert_eq!(u["status"], "failed", "{u}");
    // Usually the new agent was running and rootd rolled it back; if rootd
    // died before the old agent had its answer, that agent reports the
    // broken connection instead. Either way nothing half-done stays.
    let outcome = report(&u)["outcome"].as_str().unwrap_or("").to_string();
    assert!(["rolled_back", "failed"].contains(&outcome.as_str()), "{u}");
    assert_eq!(host.current().as_deref(), Some(old.as_str()));
    let recs = host.update_records().await;
    assert_eq!(recs[0].command_id, upd);
    assert_eq!(recs[0].state, UpdateState::RolledBack);
    assert!(recs[0].reason.contains("cannot vouch"), "{:?}", recs[0]);
    stack.wait_agent_version(&host.id, &old).await;
    let p = stack.ping(&host.id).await;
    assert_eq!(p["status"], "succeeded", "{p}");
}

/// A release that starts but never proves itself (it hangs: no heartbeat,
/// no self-test) is rolled back when `update_health_secs` pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_never_proves_itself_is_rolled_back_at_the_deadline() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let host = stack
        .start_supervised_host("h", &rel.public_key(), "update_health_secs = 4\n")
        .await;
    let old = built_agent_version();
    let hang = b"#!/bin/sh\nexec sleep 600\n".to_vec();
    let r = rel.publish(&hang, "0.7.0").await;
    let upd = stack
        .submit(&host.id, "agent.update", r.update_params(false))
        .await;
    let u = stack.wait_final(&upd, Duration::from_secs(120)).await;
    assert_eq!(u["status"], "failed", "{u}");
    assert_eq!(report(&u)["outcome"], "rolled_back", "{u}");
    assert!(
        report(&u)["reason"]
            .as_str()
            .unwrap()
            .contains("did not pass its self-test within 4 s"),
        "{u}"
    );
    assert_eq!(host.current().as_deref(), Some(old.as_str()));
    stack.wait_agent_version(&host.id, &old).await;
    let p = stack.ping(&host.id).await;
    assert_eq!(p["status"], "succeeded", "{p}");
}

/// Whether a process runs (a zombie does not count).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

fn pid_in(file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Kills the agent named in rootd's pid file when the test ends, however it
/// ends: an agent started without the parent-death signal outlives rootd.
struct KillAgentOnDrop(std::path::PathBuf);
impl Drop for KillAgentOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = pid_in(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// An agent that outlives a crashed rootd (no parent-death signal, as on a
/// host) is stopped by the next rootd, from its pid file, before it starts
/// its own: one agent runs, and it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_rootd_stops_the_agent_a_crashed_one_left_running() {
    let mut stack = Stack::start().await;
    let rel = Releases::new(&mut stack).await;
    let mut host = stack
        .start_supervised_host("h", &rel.public_key(), "")
        .await;
    let pid_file = host.dir.join("rootd").join("agent.pid");
    let _cleanup = KillAgentOnDrop(pid_file.clone());
    // From here on the agent does not die with rootd.
    let toml = std::fs::read_to_string(&host.rootd_toml).unwrap();
    std::fs::write(
        &host.rootd_toml,
        toml.replace(
            "agent_stop_with_rootd = true",
            "agent_stop_with_rootd = false",
        ),
    )
    .unwrap();
    let first = pid_in(&pid_file).unwrap();
    host.rootd.stop();
    wait_for(
        "the first agent to stop with its rootd",
        Duration::from_secs(30),
        || async { (!alive(first)).then_some(()) },
    )
    .await;
    host.rootd = spawn_rootd(&host.rootd_toml, &host.dir);
    let orphan = wait_for(
        "rootd to start an agent",
        Duration::from_secs(30),
        || async { pid_in(&pid_file).filter(|p| *p != first && alive(*p)) },
    )
    .await;
    stack.wait_online(&host.id).await;
    host.rootd.kill9();
    assert!(alive(orphan), "the agent outlives a crashed rootd");
    host.rootd = spawn_rootd(&host.rootd_toml, &host.dir);
    let next = wait_for(
        "the next rootd to start its own agent",
        Duration::from_secs(60),
        || async { pid_in(&pid_file).filter(|p| *p != orphan && alive(*p)) },
    )
    .await;
    assert!(
        !alive(orphan),
        "the orphan was stopped before the new agent started"
    );
    assert!(alive(next));
    Stack::wait_log(
        &host.rootd,
        "stopping the agent a previous rootd left running",
    )
    .await;
    let p = stack.ping(&host.id).await;
    assert_eq!(p["status"], "succeeded", "{p}");
}
