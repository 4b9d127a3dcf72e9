//! Secrets sealed to rootd, end to end with a real broker, control plane,
//! agent and rootd: an app install's password input reaches the installer's
//! environment while its bytes (and their base64) appear nowhere in the
//! broker's store, the agent's state and log, the control plane's database
//! and log; rootd refuses clear, mis-sealed and moved sealed values; hosts
//! without a usable pinned key are refused at submit.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use bus_schema::sealed::{BoxPublicKey, BoxSecretKey};
use common::{
    any_file_holds, ask_rootd, files_with_secret, rootd_box_key, sealed_command, signed_command,
    wait_for, Stack,
};
use control_plane::db::entities::rootd_box_key as pin;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{json, Value};

/// An app with one password input whose installer records it in `record`
/// and echoes it (rootd scrubs its output).
fn vault_manifests(root: &Path, record: &Path) -> PathBuf {
    let dir = root.join("manifests");
    std::fs::create_dir_all(dir.join("vault")).unwrap();
    std::fs::write(
        dir.join("vault/manifest.yml"),
        r#"
id: vault
name: Vault probe
version: "0.1"
description: Records its secret input.
category: test
inputs:
  - name: greeting
    type: string
    label: Greeting
    required: true
    max_length: 200
  - name: token
    type: password
    label: Token
    required: true
scripts: { install: install.sh, uninstall: uninstall.sh }
timeout_secs: 60
idempotent: true
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("vault/install.sh"),
        format!(
            "#!/usr/bin/env bash\nset -euo pipefail\nprintf '%s' \"$TOKEN\" > {record:?}\necho \"installing with $TOKEN for $GREETING\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("vault/uninstall.sh"),
        "#!/usr/bin/env bash\necho removed\n",
    )
    .unwrap();
    dir
}

async fn install(stack: &Stack, agent: &str, token: &str) -> (u16, Value) {
    stack
        .post(
            "/apps/vault/install",
            &json!({"selector": {"agents": [agent]}, "inputs": {"greeting": "hi", "token": token}}),
        )
        .await
}

async fn pin_of(stack: &Stack, agent: &str) -> Option<pin::Model> {
    pin::Entity::find_by_id(agent.to_string())
        .one(&stack.db().await)
        .await
        .unwrap()
}

/// The pin, once the control plane holds one: from the enrolment claim, or
/// (when rootd answered the agent too late for it) from a heartbeat.
async fn wait_pinned(stack: &Stack, agent: &str) -> pin::Model {
    wait_for(
        "the rootd box key to be pinned",
        Duration::from_secs(30),
        || pin_of(stack, agent),
    )
    .await
}

fn refused_reason(f: RootFrame) -> String {
    match f {
        RootFrame::Refused { label, reason } => {
            assert_eq!(label, "invalid_params", "{reason}");
            reason
        }
        other => panic!("rootd did not refuse: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_travel_sealed_and_reach_only_the_target() {
    // The target (the installer's record) and the manifests live outside the
    // stack's directory, which holds everything searched.
    let outside = tempfile::tempdir().unwrap();
    let record = outside.path().join("received-token");
    let manifests = vault_manifests(outside.path(), &record);
    let stack = Stack::start_with_manifests(&manifests).await;
    let mut host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;

    // Pinned at enrolment: the key rootd holds.
    let key = rootd_box_key(&host.socket).await;
    let p = wait_pinned(&stack, &host.id).await;
    assert_eq!(p.public_key, key.to_base64());
    assert!(["enrolment", "heartbeat"].contains(&p.pinned_by.as_str()));
    assert_eq!(p.offered_key, None);

    // With the agent stopped, the command waits in the broker's store:
    // found there by its id, without the secret.
    let secret = format!("Sealed-{}-token", uuid::Uuid::new_v4().simple());
    host.agent.stop();
    let (s, job) = install(&stack, &host.id, &secret).await;
    assert_eq!(s, 201, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_string();
    let (_, hosts) = stack.get(&format!("/jobs/{job_id}/hosts")).await;
    let cid = hosts["hosts"][0]["command_id"]
        .as_str()
        .unwrap()
        .to_string();
    let store = stack.nats.dir.join("js");
    wait_for(
        "the queued command to reach the broker's store on disk",
        Duration::from_secs(30),
        || async { any_file_holds(&store, &cid).then_some(()) },
    )
    .await;
    let leaks = files_with_secret(&[&store], &[], &secret);
    assert!(leaks.is_empty(), "secret in the broker's store: {leaks:?}");

    // The agent comes back, relays the sealed command, rootd opens it and
    // the installer gets the secret in its environment.
    host.agent = Stack::spawn_agent(&host.agent_toml, &host.dir);
    stack.wait_job_done(&job_id, Duration::from_secs(90)).await;
    let (_, cmd) = stack.get(&format!("/commands/{cid}")).await;
    assert_eq!(cmd["status"], "succeeded", "{cmd}");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), secret);
    assert!(!cmd.to_string().contains(&secret), "{cmd}");

    // Nowhere in the broker's store, the agent's state, journal and log,
    // rootd's state and log, the control plane's database and log.
    let everything = stack.tmp.path().to_path_buf();
    assert!(
        any_file_holds(&everything, &cid),
        "the search sees the command"
    );
    let leaks = files_with_secret(&[&everything], &[], &secret);
    assert!(leaks.is_empty(), "secret found in {leaks:?}");
    assert!(host.dir.starts_with(&everything) && stack.data_dir.starts_with(&everything));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootd_refuses_clear_mis_sealed_and_moved_secrets() {
    let outside = tempfile::tempdir().unwrap();
    let record = outside.path().join("received-token");
    let manifests = vault_manifests(outside.path(), &record);
    let stack = Stack::start_with_manifests(&manifests).await;
    let host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;
    let key = rootd_box_key(&host.socket).await;
    let params = json!({"app": "vault", "inputs": {"greeting": "hi", "token": "tok-123456789"}});
    let token = ["inputs/token"];

    // Signed, but the secret in clear.
    let clear = signed_command(&stack, &host.id, "app.install", params.clone());
    let why = refused_reason(ask_rootd(&host.socket, &clear).await);
    assert!(why.contains("must arrive sealed"), "{why}");

    // Sealed to another host's key.
    let other = BoxSecretKey::generate().public_key();
    let c = sealed_command(
        &stack,
        &host.id,
        "app.install",
        params.clone(),
        &other,
        &token,
    );
    let why = refused_reason(ask_rootd(&host.socket, &c).await);
    assert!(why.contains("does not open"), "{why}");

    // Not a sealed box at all.
    let forged = json!({"app": "vault", "inputs": {"greeting": "hi", "token": {"sealed": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}});
    let c = signed_command(&stack, &host.id, "app.install", forged);
    let why = refused_reason(ask_rootd(&host.socket, &c).await);
    assert!(why.contains("does not open"), "{why}");

    // A sealed value moved into a field that is not secret.
    let seal_for = |id: &str| {
        bus_schema::sealed::seal_params(&key, id, &params, |p| p == "inputs/token")
            .unwrap()
            .0
    };
    let moved = seal_for("some-command")["inputs"]["token"].clone();
    let c = signed_command(
        &stack,
        &host.id,
        "app.install",
        json!({"app": "vault", "inputs": {"greeting": moved, "token": moved}}),
    );
    let why = refused_reason(ask_rootd(&host.socket, &c).await);
    assert!(why.contains("not sensitive"), "{why}");

    // A value sealed for one command, signed into another.
    let c = signed_command(&stack, &host.id, "app.install", seal_for("another-id"));
    let why = refused_reason(ask_rootd(&host.socket, &c).await);
    assert!(why.contains("another command"), "{why}");
    assert!(!record.exists(), "no refused command ran");

    // Properly sealed: it runs.
    let c = sealed_command(&stack, &host.id, "app.install", params, &key, &token);
    match ask_rootd(&host.socket, &c).await {
        RootFrame::Done { status, .. } => assert_eq!(status, bus_schema::CommandStatus::Succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "tok-123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_without_a_usable_key_are_refused_at_submit() {
    let outside = tempfile::tempdir().unwrap();
    let record = outside.path().join("received-token");
    let manifests = vault_manifests(outside.path(), &record);
    let stack = Stack::start_with_manifests(&manifests).await;
    let mut host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;
    let real = rootd_box_key(&host.socket).await.to_base64();
    assert_eq!(wait_pinned(&stack, &host.id).await.public_key, real);
    let db = stack.db().await;

    // A different key than the pinned one: refused and recorded, never
    // taken silently; secrets for the host are refused until accepted.
    let stale = BoxSecretKey::generate().public_key().to_base64();
    pin::Entity::update(pin::ActiveModel {
        agent_id: Set(host.id.clone()),
        public_key: Set(stale.clone()),
        ..Default::default()
    })
    .exec(&db)
    .await
    .unwrap();
    let p = wait_for(
        "the changed key to be recorded from a heartbeat",
        Duration::from_secs(30),
        || async {
            pin_of(&stack, &host.id)
                .await
                .filter(|p| p.offered_key.is_some())
        },
    )
    .await;
    assert_eq!(p.public_key, stale, "the pin is not replaced");
    assert_eq!(p.offered_key.as_deref(), Some(real.as_str()));
    let (s, v) = install(&stack, &host.id, "tok-123456789").await;
    assert_eq!(s, 400, "{v}");
    let msg = v.to_string();
    assert!(
        msg.contains("different box key") && msg.contains("accept-box-key"),
        "{msg}"
    );
    // The API and CLI show both keys; an admin accepts the new one and
    // secrets flow again, sealed to it.
    let (s, v) = stack.get(&format!("/agents/{}/box-key", host.id)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["offered_key"], json!(real), "{v}");
    let out = stack.drover(&["agents", "--json", "box-key", &host.id]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["public_key"], json!(stale));
    let out = stack.drover(&["agents", "accept-box-key", &host.id]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&real));
    let p = pin_of(&stack, &host.id).await.unwrap();
    assert_eq!(
        (p.public_key.as_str(), p.offered_key),
        (real.as_str(), None)
    );
    let (s, v) = stack
        .post(&format!("/agents/{}/box-key/accept", host.id), &json!({}))
        .await;
    assert_eq!(s, 409, "nothing offered any more: {v}");
    let (s, job) = install(&stack, &host.id, "tok-123456789").await;
    assert_eq!(s, 201, "{job}");
    stack
        .wait_job_done(job["job_id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "tok-123456789");

    // Nothing secret: still accepted.
    let (s, v) = stack
        .command(
            &host.id,
            &json!({"action": "app.uninstall", "params": {"app": "vault"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // No pinned key at all (rootd never reported one): refused, with what
    // to do. The agent is stopped so no heartbeat pins it again; a
    // heartbeat already on its way may still pin it once, so retry.
    host.agent.stop();
    let mut refused = None;
    for _ in 0..5 {
        pin::Entity::delete_by_id(host.id.clone())
            .exec(&db)
            .await
            .unwrap();
        let (s, v) = install(&stack, &host.id, "tok-123456789").await;
        if s == 400 {
            refused = Some(v);
            break;
        }
    }
    let v = refused.expect("refused at submit");
    let msg = v.to_string();
    assert!(
        msg.contains("no pinned rootd box key") && msg.contains("never sent in clear"),
        "{msg}"
    );
    assert!(BoxPublicKey::parse(&real).is_ok());
}
