//! Key rotation with real processes: a command-signing key rotated while a
//! job runs (the job, signed by the old key, completes), hosts adopting the
//! new key (the API shows which), the old key refused after the overlap, a
//! forged rotation and a played-back older one refused by agent and rootd;
//! and a release-key rotation signed on the operator's side by the CLI,
//! after which a release signed by the new key verifies and one signed by
//! the old key, after the overlap, does not.

mod common;

use std::time::Duration;

use bus_schema::catalogue::agent::RotateKeyParams;
use bus_schema::rootd_proto::RootFrame;
use bus_schema::signing::release::ReleaseSigner;
use bus_schema::signing::rotation::{KeyKind, KeyRing, KeyRotation};
use bus_schema::{CommandSigner, CommandStatus, SignedCommand};
use common::*;
use control_plane::keys::entity::signing_key;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

fn command(signer: &CommandSigner, agent: &str, action: &str, params: Value) -> SignedCommand {
    let now = bus_schema::now_ms();
    signer.sign(&bus_schema::Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
        agent_id: agent.into(),
        action: action.into(),
        params,
        issued_at: now,
        expires_at: now + 60_000,
        timeout_secs: 60,
        requested_by: "test".into(),
        source: bus_schema::Source::System,
        job_id: None,
        clock_skew_ms: None,
    })
}

fn rotate_params(text: &str, signature: &str) -> Value {
    serde_json::to_value(RotateKeyParams {
        rotation: text.into(),
        signature: signature.into(),
    })
    .unwrap()
}

async fn publish(stack: &Stack, agent: &str, signed: &SignedCommand) {
    let js = async_nats::jetstream::new(stack.client().await);
    js.publish(
        bus_schema::subjects::command(agent),
        bus_schema::encode(signed).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

fn ring(path: &std::path::Path, which: KeyKind) -> KeyRing {
    KeyRing::from_json(&std::fs::read_to_string(path).unwrap(), which).unwrap()
}

fn done(f: &RootFrame) -> (CommandStatus, String) {
    match f {
        RootFrame::Done {
            status, summary, ..
        } => (*status, summary.clone()),
        RootFrame::Refused { label, reason } => {
            (CommandStatus::Rejected, format!("{label}: {reason}"))
        }
        other => panic!("unexpected frame {other:?}"),
    }
}

fn label(f: &RootFrame) -> &str {
    match f {
        RootFrame::Refused { label, .. } => label,
        _ => "",
    }
}

/// The agent's refusals of `reason` as the security overview counts them.
async fn agent_refusals(stack: &Stack, reason: &str) -> u64 {
    let (_, sec) = stack.get("/security").await;
    sec["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "agent" && r["reason"] == reason)
        .map(|r| r["count"].as_u64().unwrap_or(1))
        .sum()
}

async fn wait_holding(stack: &Stack, kind: &str, generation: u64) -> Value {
    wait_for(
        &format!("every host to hold {kind} key generation {generation}"),
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get("/keys").await;
            let k = &v[kind];
            (code == 200
                && k["generation"] == generation
                && k["hosts_total"].as_u64() > Some(0)
                && k["hosts_with_current"] == k["hosts_total"])
                .then_some(v)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_key_rotates_during_a_job_without_refusing_anything_in_flight() {
    let (_tmp, gate, stack, mut h) = gated_stack(&[]).await;
    let old = stack.signer();

    // A job signed by the old key is running in rootd.
    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let job = c["id"].as_str().unwrap().to_string();
    Stack::wait_log(&h.rootd, &format!("command={job}")).await;

    // Bad input changes nothing; a viewer-level request cannot rotate
    // (the route table decides that); the admin rotates.
    let (code, v) = stack
        .post(
            "/keys/rotate",
            &json!({"which": "command", "overlap": "0s"}),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    let (code, v) = stack.post("/keys/rotate", &json!({"which": "ssh"})).await;
    assert_eq!(code, 422, "{v}");
    let (code, v) = stack
        .post(
            "/keys/rotate",
            &json!({"which": "command", "overlap": "25s"}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["sent"], 1, "{v}");
    // A second rotation during the overlap is refused: no host may be left
    // two keys behind.
    let (code, again) = stack
        .post(
            "/keys/rotate",
            &json!({"which": "command", "overlap": "1h"}),
        )
        .await;
    assert_eq!(code, 409, "{again}");

    // The private half is a 0600 file in the data directory, not in the
    // database.
    let new_path = stack.data_dir.join("keys/command-1.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&new_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let new = CommandSigner::load(&new_path).unwrap();
    assert_eq!(v["fingerprint"], new.public().fingerprint().as_str());
    let seed = std::fs::read_to_string(&new_path).unwrap();
    assert!(
        !stack.database_holds(seed.trim().as_bytes()),
        "the seed is not in the database"
    );

    // The job started under the old key completes.
    std::fs::write(&gate, "").unwrap();
    let v = stack.wait_final(&job, Duration::from_secs(60)).await;
    assert_eq!(v["status"], "succeeded", "{v}");

    // Agent and rootd adopted the new key and the API shows it.
    let keys = wait_holding(&stack, "command", 1).await;
    assert_eq!(
        keys["command"]["fingerprint"],
        new.public().fingerprint().as_str()
    );
    assert_eq!(keys["command"]["overlap_active"], true, "{keys}");
    let agent_ring = ring(&h.state_dir.join("command-keys.json"), KeyKind::Command);
    let rootd_ring = ring(&h.dir.join("rootd/command-keys.json"), KeyKind::Command);
    for r in [&agent_ring, &rootd_ring] {
        assert_eq!(r.generation, 1);
        assert_eq!(r.current, new.public().to_base64());
    }
    // The Security page shows it too.
    stack.add_user("viewer1", "viewer", "a long enough password");
    let session = stack.login("viewer1", "a long enough password").await;
    let (code, page) = session.get_html("/security").await;
    assert_eq!(code, 200);
    assert!(page.contains("Signing keys"), "{page}");
    assert!(page.contains(new.public().fingerprint().as_str()), "{page}");
    assert!(page.contains("1 of 1"), "{page}");
    let out = stack.drover(&["keys", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["command"]["hosts_with_current"], 1, "{cli}");

    // New commands run (signed by the new key now the host holds it).
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
    // During the overlap, the old key still works, in the agent and in rootd.
    let during = command(&old, &h.id, "sys.ping", json!({}));
    let during_id = {
        let body: bus_schema::Command = bus_schema::codec::decode_msgpack(&during.body).unwrap();
        body.id
    };
    publish(&stack, &h.id, &during).await;
    wait_for(
        "the old-key command to run during the overlap",
        Duration::from_secs(30),
        || {
            let log = h.agent.log_text();
            let ran = log.lines().any(|l| {
                l.contains(&during_id) && l.contains("command finished") && l.contains("succeeded")
            });
            async move { ran.then_some(()) }
        },
    )
    .await;

    // A rotation signed by a stranger is refused by the agent (and reported
    // like any other refusal) and by rootd; nothing changes.
    let stranger = CommandSigner::generate();
    let now = bus_schema::now_ms();
    let forged = KeyRotation {
        which: KeyKind::Command,
        generation: 7,
        new_key: stranger.public().to_base64(),
        overlap_end_ms: now + 60_000,
        at_ms: now,
    };
    let (text, sig) = forged.sign_command(&stranger).unwrap();
    let before = agent_refusals(&stack, "bad_signature").await;
    publish(
        &stack,
        &h.id,
        &command(&new, &h.id, "agent.rotate_key", rotate_params(&text, &sig)),
    )
    .await;
    Stack::wait_log(&h.agent, "refused key rotation").await;
    wait_for(
        "the forged rotation counted",
        Duration::from_secs(30),
        || async { (agent_refusals(&stack, "bad_signature").await > before).then_some(()) },
    )
    .await;
    let direct = ask_rootd(
        &h.socket,
        &command(&new, &h.id, "agent.rotate_key", rotate_params(&text, &sig)),
    )
    .await;
    let (status, summary) = done(&direct);
    assert_eq!(status, CommandStatus::Rejected, "{summary}");
    assert!(
        summary.contains("not signed by the command key"),
        "{summary}"
    );
    assert_eq!(
        ring(&h.state_dir.join("command-keys.json"), KeyKind::Command),
        agent_ring
    );
    assert_eq!(
        ring(&h.dir.join("rootd/command-keys.json"), KeyKind::Command),
        rootd_ring
    );

    // After the overlap the old key is refused by both.
    wait_for("the overlap to end", Duration::from_secs(60), || async {
        let (_, v) = stack.get("/keys").await;
        (v["command"]["overlap_active"] == false
            && v["command"]["generations"][0]["hosts_holding"] == 0)
            .then_some(())
    })
    .await;
    let late = command(&old, &h.id, "sys.ping", json!({}));
    let before = agent_refusals(&stack, "bad_signature").await;
    publish(&stack, &h.id, &late).await;
    wait_for(
        "the old key refused by the agent",
        Duration::from_secs(30),
        || async { (agent_refusals(&stack, "bad_signature").await > before).then_some(()) },
    )
    .await;
    let late_rootd = command(
        &old,
        &h.id,
        "app.install",
        json!({"app": "gated", "inputs": {}}),
    );
    assert_eq!(
        label(&ask_rootd(&h.socket, &late_rootd).await),
        "bad_signature"
    );
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");

    // A second rotation; then the first one played back is refused: the
    // generation must grow, so no host rolls back to a retired key.
    let (code, v) = stack
        .post(
            "/keys/rotate",
            &json!({"which": "command", "overlap": "1h"}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["generation"], 2, "{v}");
    wait_holding(&stack, "command", 2).await;
    let newest = CommandSigner::load(&stack.data_dir.join("keys/command-2.key")).unwrap();
    let first = signing_key::Entity::find()
        .filter(signing_key::Column::Kind.eq("command"))
        .filter(signing_key::Column::Generation.eq(1))
        .one(&stack.db().await)
        .await
        .unwrap()
        .unwrap();
    let held = ring(&h.state_dir.join("command-keys.json"), KeyKind::Command);
    assert_eq!(held.generation, 2);
    let before = agent_refusals(&stack, "replayed").await;
    publish(
        &stack,
        &h.id,
        &command(
            &newest,
            &h.id,
            "agent.rotate_key",
            rotate_params(&first.rotation, &first.signature),
        ),
    )
    .await;
    wait_for(
        "the played-back rotation refused",
        Duration::from_secs(30),
        || async { (agent_refusals(&stack, "replayed").await > before).then_some(()) },
    )
    .await;
    let direct = ask_rootd(
        &h.socket,
        &command(
            &newest,
            &h.id,
            "agent.rotate_key",
            rotate_params(&first.rotation, &first.signature),
        ),
    )
    .await;
    let (status, summary) = done(&direct);
    assert_eq!(status, CommandStatus::Rejected, "{summary}");
    assert!(summary.contains("already holds generation 2"), "{summary}");
    assert_eq!(
        ring(&h.state_dir.join("command-keys.json"), KeyKind::Command),
        held
    );
    // The agent restarted keeps the rotated key (it is in its state dir)
    // and runs what the newest key signs.
    h.agent.stop();
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    Stack::wait_log(&h.agent, "key_generation=2").await;
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_key_rotates_with_a_rotation_signed_on_the_operators_side() {
    let mut stack = Stack::start().await;
    let releases = Releases::new(&mut stack).await;
    let token = stack.token(1, "1h", true).await;
    let mut spec = HostSpec::new(
        stack.tmp.path().join("r"),
        stack.nats.url(),
        stack.control_plane_key(),
        &token,
        stack.data_dir.join("enroll.creds"),
    );
    spec.release_key = Some(releases.public_key());
    let h = spec.launch().await;
    stack.wait_online(&h.id).await;

    // The operator's machine: the old seed signs, the new public key is
    // introduced. The CLI refuses a wrong old key before sending anything.
    let work = stack.tmp.path().join("release-keys");
    std::fs::create_dir_all(&work).unwrap();
    let old_path = work.join("old.key");
    std::fs::write(&old_path, releases.signer.seed_base64()).unwrap();
    let stranger_path = work.join("stranger.key");
    std::fs::write(&stranger_path, ReleaseSigner::generate().seed_base64()).unwrap();
    let new = ReleaseSigner::generate();
    let new_pub = new.public().to_base64();
    let args = |old: &std::path::Path| {
        vec![
            "keys".to_string(),
            "rotate".into(),
            "--which".into(),
            "release".into(),
            "--old-key".into(),
            old.display().to_string(),
            "--new-key".into(),
            new_pub.clone(),
            "--overlap".into(),
            "15s".into(),
            "--json".into(),
        ]
    };
    let a: Vec<String> = args(&stranger_path);
    let out = stack.drover(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sign with that one"),
        "{out:?}"
    );
    let (_, keys) = stack.get("/keys").await;
    assert_eq!(keys["release"]["generation"], 0, "{keys}");

    let a: Vec<String> = args(&old_path);
    let out = stack.drover(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["generation"], 1, "{v}");
    assert_eq!(v["sent"], 1, "{v}");
    wait_holding(&stack, "release", 1).await;
    for path in [
        h.state_dir.join("release-keys.json"),
        h.dir.join("rootd/release-keys.json"),
    ] {
        let r = ring(&path, KeyKind::Release);
        assert_eq!((r.generation, r.current.as_str()), (1, new_pub.as_str()));
    }

    // A release signed by the new key verifies, at the control plane and on
    // the host (the agent checks it before handing it to rootd).
    let bytes = agent_bytes();
    let by_new = Releases::sign_with(&new, &bytes, "9.9.1");
    releases.put_object("9.9.1", &bytes).await;
    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "agent.update", "params": by_new.update_params(false)}),
        )
        .await;
    // The signature holds; this host's rootd has no self-update set up,
    // which is the only reason it is not sent.
    assert_eq!(code, 409, "{c}");
    assert!(!c.to_string().contains("release is refused"), "{c}");
    let sent = command(
        &stack.signer(),
        &h.id,
        "agent.update",
        by_new.update_params(false),
    );
    publish(&stack, &h.id, &sent).await;
    Stack::wait_log(&h.agent, "release fetched and checked").await;

    // After the overlap, one signed by the old key does not.
    wait_for(
        "the release overlap to end",
        Duration::from_secs(60),
        || async {
            let (_, v) = stack.get("/keys").await;
            (v["release"]["overlap_active"] == false).then_some(())
        },
    )
    .await;
    // Once the overlap ended, a rotation signed by a stranger key is
    // refused by the control plane.
    let now = bus_schema::now_ms();
    let forged = KeyRotation {
        which: KeyKind::Release,
        generation: 2,
        new_key: ReleaseSigner::generate().public().to_base64(),
        overlap_end_ms: now + 60_000,
        at_ms: now,
    };
    let (text, sig) = forged.sign_release(&ReleaseSigner::generate()).unwrap();
    let (code, e) = stack
        .post(
            "/keys/rotate",
            &json!({"which": "release", "rotation": text, "signature": sig}),
        )
        .await;
    assert_eq!(code, 422, "{e}");

    let by_old = Releases::sign_with(&releases.signer, &bytes, "9.9.2");
    let (code, e) = stack
        .command(
            &h.id,
            &json!({"action": "agent.update", "params": by_old.update_params(false)}),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert!(e.to_string().contains("release is refused"), "{e}");
    // The host refuses it too, should it arrive signed by the control plane.
    let sent = command(
        &stack.signer(),
        &h.id,
        "agent.update",
        by_old.update_params(false),
    );
    publish(&stack, &h.id, &sent).await;
    Stack::wait_log(&h.agent, "the agent refused the release").await;
}
