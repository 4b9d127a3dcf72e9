//! Cloned hosts (issue 10, item 8): an enrolled agent's state directory
//! copied to a second machine. Two real agent processes share one identity;
//! the control plane must record the conflict, show it, refuse new commands
//! and the clone's heartbeats until an operator keeps one machine, and then
//! serve only the kept one. Owns nothing else (enrolment-time binding
//! conflicts are tested in `enroll_attacks.rs`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Copies the files of a state directory (it is flat).
fn copy_state(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The agent's view, once its `last_seen` has moved past `after`.
async fn next_view(stack: &Stack, id: &str, after: i64) -> Value {
    wait_for(
        "a newer heartbeat to be applied",
        Duration::from_secs(20),
        || async {
            let (_, v) = stack.get(&format!("/agents/{id}")).await;
            (v["last_seen"].as_i64().unwrap_or(0) > after).then_some(v)
        },
    )
    .await
}

/// Ids of the commands a process's log says it finished.
fn finished_in(log: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| {
            log.lines()
                .any(|l| l.contains("command finished") && l.contains(id.as_str()))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_state_directory_is_held_until_an_operator_keeps_one_machine() {
    let stack = Stack::start().await;
    let orig = stack.start_host("orig").await;
    let id = orig.id.clone();
    let orig_machine = std::fs::read_to_string(orig.dir.join("machine-id"))
        .unwrap()
        .trim()
        .to_string();
    stack.wait_online(&id).await;
    assert_eq!(stack.ping(&id).await["status"], "succeeded");
    let (_, v) = stack.get(&format!("/agents/{id}")).await;
    assert!(v["identity_conflict"].is_null(), "{v}");
    let orig_host = v["hostname"].as_str().unwrap().to_string();

    // The clone: the same state directory on a machine with another
    // machine-id and host name.
    let clone_dir = stack.tmp.path().join("clone");
    let clone_state = clone_dir.join("agent");
    copy_state(&orig.state_dir, &clone_state);
    let clone_machine = random_machine_id();
    std::fs::write(clone_dir.join("machine-id"), format!("{clone_machine}\n")).unwrap();
    let toml = std::fs::read_to_string(&orig.agent_toml)
        .unwrap()
        .replace(
            orig.state_dir.to_str().unwrap(),
            clone_state.to_str().unwrap(),
        )
        .replace(
            orig.dir.join("machine-id").to_str().unwrap(),
            clone_dir.join("machine-id").to_str().unwrap(),
        );
    assert!(toml.contains(clone_state.to_str().unwrap()));
    let clone_toml = clone_dir.join("agent.toml");
    std::fs::write(&clone_toml, format!("{toml}hostname = \"clone-host\"\n")).unwrap();
    let clone = Stack::spawn_agent(&clone_toml, &clone_dir);

    // Recorded and shown: the security overview and the agent view.
    let conflict = wait_for(
        "the identity conflict in the security overview",
        Duration::from_secs(30),
        || async {
            let (_, v) = stack.get("/security").await;
            v["identity_conflicts"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["agent_id"] == id.as_str()).cloned())
        },
    )
    .await;
    assert_eq!(conflict["open"], true, "{conflict}");
    assert_eq!(conflict["bound"]["machine_id"], orig_machine.as_str());
    assert_eq!(conflict["other"]["machine_id"], clone_machine.as_str());
    assert_eq!(conflict["other"]["hostname"], "clone-host");
    let (_, v) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(v["identity_conflict"]["open"], true, "{v}");
    assert!(
        v["identity_conflict"]["what_to_do"]
            .as_str()
            .unwrap()
            .contains("conflict/resolve"),
        "{v}"
    );

    // The host page and the Security page say so, and what to do.
    stack.add_user("vera", "viewer", "a long enough password 1");
    let web = stack.login("vera", "a long enough password 1").await;
    for path in [format!("/agents/{id}"), "/security".to_string()] {
        let (code, html) = web.get_html(&path).await;
        assert_eq!(code, 200, "{path}");
        assert!(html.contains("Identity conflict"), "{path}: {html}");
        assert!(
            html.contains(&clone_machine) && html.contains("conflict/resolve"),
            "{path}"
        );
    }

    // The clone's heartbeats are not applied: the host page keeps the
    // original's name over several of its heartbeats.
    let mut seen = v["last_seen"].as_i64().unwrap();
    for _ in 0..4 {
        let v = next_view(&stack, &id, seen).await;
        assert_eq!(v["hostname"], orig_host.as_str(), "{v}");
        seen = v["last_seen"].as_i64().unwrap();
    }

    // New commands are refused with what to do, and nothing is written.
    let (_, before) = stack.get(&format!("/agents/{id}/commands")).await;
    let (code, r) = stack
        .post(
            &format!("/agents/{id}/commands"),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 409, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.starts_with("identity conflict: two machines use agent"),
        "{msg}"
    );
    assert!(
        msg.contains(&clone_machine) && msg.contains("registration token"),
        "{msg}"
    );
    let (_, after) = stack.get(&format!("/agents/{id}/commands")).await;
    assert_eq!(before["commands"], after["commands"]);

    // A decision that names neither machine changes nothing.
    let resolve = format!("/agents/{id}/conflict/resolve");
    let (code, r) = stack.post(&resolve, &json!({"keep": "nobody"})).await;
    assert_eq!(code, 422, "{r}");
    let (code, _) = stack
        .post(
            &format!("/agents/{id}/commands"),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 409);

    // The operator keeps the clone (say the original was retired).
    let (code, r) = stack
        .post(&resolve, &json!({"keep": clone_machine.clone()}))
        .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["kept"], "other", "{r}");
    assert_eq!(r["open"], false);
    let (code, r) = stack
        .post(&resolve, &json!({"keep": clone_machine.clone()}))
        .await;
    assert_eq!(code, 409, "{r}");
    let (_, audit) = stack.get("/audit?action=agent.conflict_resolve").await;
    assert!(audit.to_string().contains(&clone_machine), "{audit}");

    // The kept machine is served: its heartbeats now show, the original's
    // no longer do.
    let v = wait_for(
        "the kept machine's heartbeats",
        Duration::from_secs(20),
        || async {
            let (_, v) = stack.get(&format!("/agents/{id}")).await;
            (v["hostname"] == "clone-host").then_some(v)
        },
    )
    .await;
    let mut seen = v["last_seen"].as_i64().unwrap();
    for _ in 0..3 {
        let v = next_view(&stack, &id, seen).await;
        assert_eq!(v["hostname"], "clone-host", "{v}");
        seen = v["last_seen"].as_i64().unwrap();
    }

    // Commands go to the kept machine only.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let c = stack.ping(&id).await;
        assert_eq!(c["status"], "succeeded", "{c}");
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    wait_for(
        "the clone to log every command",
        Duration::from_secs(10),
        || async { (finished_in(&clone.log_text(), &ids).len() == ids.len()).then_some(()) },
    )
    .await;
    assert!(
        finished_in(&orig.agent.log_text(), &ids).is_empty(),
        "the refused machine ran a command"
    );
}
