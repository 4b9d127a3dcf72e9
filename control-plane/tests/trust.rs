//! The trust chain against a real nats-server in operator mode: broker-
//! enforced isolation between agents, revocation, registration tokens,
//! machine binding, approval, and rootd's peer check.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_schema::subjects;
use common::{
    agent_connect_options, random_machine_id, record_server_errors, wait_for, Host, Stack,
};
use serde_json::json;

/// Connects with an agent's own credentials and records the server's
/// complaints.
async fn connect_as(stack: &Stack, host: &Host) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let (opts, events) = record_server_errors(agent_connect_options(host).max_reconnects(1));
    let client = opts.connect(stack.nats.url()).await.unwrap();
    (client, events)
}

async fn wait_denied(events: &Arc<Mutex<Vec<String>>>, subject: &str) {
    wait_for(
        &format!("the broker to deny {subject}"),
        Duration::from_secs(10),
        || async {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.starts_with("Permissions Violation") && e.contains(subject))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_confines_each_agent_to_its_own_subjects() {
    let stack = Stack::start().await;
    let a = stack.start_host("a").await;
    let b = stack.start_host("b").await;
    let (ca, events) = connect_as(&stack, &a).await;

    // Its own heartbeat is allowed (no complaint), B's everything is not.
    ca.publish(subjects::heartbeat(&a.id), "x".into())
        .await
        .unwrap();
    let _cmd_sub = ca.subscribe(subjects::command(&b.id)).await.unwrap();
    wait_denied(&events, &subjects::command(&b.id)).await;
    ca.publish(subjects::heartbeat(&b.id), "x".into())
        .await
        .unwrap();
    wait_denied(&events, &subjects::heartbeat(&b.id)).await;
    ca.publish(subjects::result(&b.id, "c1"), "x".into())
        .await
        .unwrap();
    wait_denied(&events, &subjects::result(&b.id, "c1")).await;
    let b_inbox = format!("{}.>", subjects::inbox_prefix(&b.id));
    let _inbox_sub = ca.subscribe(b_inbox.clone()).await.unwrap();
    wait_denied(&events, &b_inbox).await;
    let consumer = subjects::agent_consumer(&b.id);
    for api in [
        format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{consumer}",
            subjects::cmd_stream(&b.id)
        ),
        format!(
            "$JS.API.CONSUMER.INFO.{}.{consumer}",
            subjects::cmd_stream(&b.id)
        ),
        format!(
            "$JS.ACK.{}.{consumer}.1.1.1.1.0",
            subjects::cmd_stream(&b.id)
        ),
    ] {
        ca.publish(api.clone(), "{}".into()).await.unwrap();
        wait_denied(&events, &api).await;
    }
    ca.flush().await.unwrap();
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains(&subjects::heartbeat(&a.id))),
        "its own subject is allowed"
    );
    // B never noticed.
    assert_eq!(stack.ping(&b.id).await["status"], "succeeded");
    assert_eq!(stack.ping(&a.id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_agent_cuts_it_off_and_the_others_keep_working() {
    let stack = Stack::start().await;
    let mut a = stack.start_host("a").await;
    let b = stack.start_host("b").await;

    let (code, v) = stack
        .post(&format!("/agents/{}/revoke", a.id), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    // The broker closes A's connection at once; A says why and stops.
    wait_for("agent A to stop", Duration::from_secs(20), || {
        let running = a.agent.running();
        async move { (!running).then_some(()) }
    })
    .await;
    let log = a.agent.log_text();
    assert!(log.contains("stopping without retrying"), "{log}");
    assert!(log.to_lowercase().contains("revoked"), "{log}");

    // Its credentials no longer get in.
    let jwt = std::fs::read_to_string(a.state_dir.join("agent.jwt")).unwrap();
    let seed = std::fs::read_to_string(a.state_dir.join("agent.seed")).unwrap();
    let kp = Arc::new(nkeys::KeyPair::from_seed(seed.trim()).unwrap());
    let refused = async_nats::ConnectOptions::with_jwt(jwt.trim().to_string(), move |nonce| {
        let kp = kp.clone();
        async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .connect(stack.nats.url())
    .await;
    assert!(refused.is_err(), "a revoked agent cannot connect");

    // Nothing more can be sent to it; B is untouched.
    let (code, v) = stack.command(&a.id, &json!({"action": "sys.ping"})).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(stack.ping(&b.id).await["status"], "succeeded");
    let (_, sec) = stack.get("/security").await;
    assert!(
        sec["revoked_agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == a.id.as_str()),
        "{sec}"
    );
    // Its queue is gone from the broker.
    let js = async_nats::jetstream::new(stack.client().await);
    let stream_a = js.get_stream(subjects::cmd_stream(&a.id)).await.unwrap();
    assert!(stream_a
        .consumer_info(subjects::agent_consumer(&a.id))
        .await
        .is_err());
    let stream_b = js.get_stream(subjects::cmd_stream(&b.id)).await.unwrap();
    assert!(stream_b
        .consumer_info(subjects::agent_consumer(&b.id))
        .await
        .is_ok());
}

/// Starts an agent that should be refused, and returns its log once it stopped.
async fn refused_enrolment(stack: &Stack, name: &str, token: &str, machine_id: &str) -> String {
    let mut h = stack.start_host_with(name, token, machine_id).await;
    wait_for(
        &format!("agent {name} to give up"),
        Duration::from_secs(20),
        || {
            let running = h.agent.running();
            async move { (!running).then_some(()) }
        },
    )
    .await;
    let log = h.agent.log_text();
    assert!(log.contains("enrolment rejected"), "{log}");
    assert!(
        !h.state_dir.join("agent.jwt").exists(),
        "no credentials were handed out"
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_tokens_expire_run_out_and_can_be_revoked() {
    let stack = Stack::start().await;
    // Expired.
    let short = stack.token(5, "1s", true).await;
    wait_for("the token to expire", Duration::from_secs(10), || async {
        let (_, v) = stack.get("/tokens").await;
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["state"] == "expired")
            .then_some(())
    })
    .await;
    let log = refused_enrolment(&stack, "late", &short, &random_machine_id()).await;
    assert!(log.contains("expired"), "{log}");
    // Used up: one use, two hosts.
    let once = stack.token(1, "1h", true).await;
    let first = stack
        .start_host_with("first", &once, &random_machine_id())
        .await;
    stack.wait_online(&first.id).await;
    let log = refused_enrolment(&stack, "second", &once, &random_machine_id()).await;
    assert!(log.contains("no uses left"), "{log}");
    // Revoked.
    let (_, created) = stack
        .post("/tokens", &json!({"uses": 3, "expires": "1h"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{}/api/v1/tokens/{id}", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let log = refused_enrolment(
        &stack,
        "revoked",
        created["token"].as_str().unwrap(),
        &random_machine_id(),
    )
    .await;
    assert!(log.contains("was revoked"), "{log}");
    // Unknown.
    let log = refused_enrolment(&stack, "stranger", "drvreg_nope", &random_machine_id()).await;
    assert!(log.contains("unknown registration token"), "{log}");
    // Tokens are never listed with their secret, and not stored in clear.
    let (_, v) = stack.get("/tokens").await;
    assert!(!v.to_string().contains(&once));
    assert!(!stack.database_holds(once.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_binding_conflicts_are_refused_and_listed() {
    let stack = Stack::start().await;
    let machine = random_machine_id();
    let token = stack.token(1, "1h", true).await;
    let a = stack.start_host_with("a", &token, &machine).await;
    stack.wait_online(&a.id).await;

    // The same machine under a new key.
    let t2 = stack.token(1, "1h", true).await;
    let log = refused_enrolment(&stack, "clone", &t2, &machine).await;
    assert!(log.contains("already enrolled"), "{log}");

    // A's key copied to another machine.
    let copy_dir = stack.tmp.path().join("copy").join("agent");
    std::fs::create_dir_all(&copy_dir).unwrap();
    std::fs::copy(a.state_dir.join("agent.seed"), copy_dir.join("agent.seed")).unwrap();
    let t3 = stack.token(1, "1h", true).await;
    let log = refused_enrolment(&stack, "copy", &t3, &random_machine_id()).await;
    assert!(log.contains("bound to another machine"), "{log}");

    let (_, sec) = stack.get("/security").await;
    let kinds: Vec<&str> = sec["binding_conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"machine_id_taken") && kinds.contains(&"key_on_other_machine"),
        "{sec}"
    );
    // A itself is unharmed.
    assert_eq!(stack.ping(&a.id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_waits_for_approval_unless_its_token_says_otherwise() {
    let stack = Stack::start().await;
    let token = stack.token(1, "1h", false).await;
    let h = stack
        .start_host_with("p", &token, &random_machine_id())
        .await;
    wait_for(
        "the agent to be pending",
        Duration::from_secs(20),
        || async {
            let (_, v) = stack.get(&format!("/agents/{}", h.id)).await;
            (v["status"] == "pending").then_some(())
        },
    )
    .await;
    let (code, _) = stack.command(&h.id, &json!({"action": "sys.ping"})).await;
    assert_eq!(code, 409, "no commands before approval");
    let (_, sec) = stack.get("/security").await;
    assert!(sec["pending_agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == h.id.as_str()));
    let (code, v) = stack
        .post(&format!("/agents/{}/approve", h.id), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    stack.wait_online(&h.id).await;
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
    let log = h.agent.log_text();
    assert!(
        log.contains("pinned the control plane's command-signing key"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootd_refuses_a_peer_under_another_uid() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("SKIPPED: switching to a second uid needs root; run the tests as root (CI does)");
        return;
    }
    // A directory the second uid can traverse (temp dirs are 0700).
    let dir = std::path::PathBuf::from(format!("/tmp/drover-rootd-uid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.join("rootd.sock");
    let key = bus_schema::CommandSigner::generate().public().to_base64();
    std::fs::write(dir.join("agent.id"), "UAGENT\n").unwrap();
    let conf = dir.join("rootd.toml");
    // The agent's uid is root here; the client runs as nobody (65534), in
    // the socket's group so the file mode lets it connect.
    std::fs::write(
        &conf,
        format!(
            "socket = {:?}\nagent_uid = 0\nsocket_group = \"nogroup\"\ncontrol_plane_key = {:?}\nagent_id_file = {:?}\nstate_dir = {:?}\n",
            socket,
            key,
            dir.join("agent.id"),
            dir.join("state")
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(common::bin("drover-rootd"));
    cmd.arg("--config").arg(&conf);
    let rootd = common::Proc::spawn("drover-rootd", cmd, dir.join("rootd.log"));
    let s = socket.clone();
    wait_for("rootd's socket", Duration::from_secs(20), || {
        let s = s.clone();
        async move { s.exists().then_some(()) }
    })
    .await;
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o660
    );
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);

    // A real client process under uid/gid 65534 reads rootd's answer frame.
    let client = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
head = s.recv(4)
n = struct.unpack(">I", head)[0]
body = b""
while len(body) < n:
    chunk = s.recv(n - len(body))
    if not chunk: break
    body += chunk
sys.stdout.write(repr(body))
"#;
    let out = std::process::Command::new("python3");
    let mut out = out;
    std::os::unix::process::CommandExt::uid(&mut out, 65534);
    std::os::unix::process::CommandExt::gid(&mut out, 65534);
    let output = out.arg("-c").arg(client).arg(&socket).output().unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        answer.contains("peer_uid") && answer.contains("refused"),
        "rootd's answer: {answer}"
    );
    let log = Stack::wait_log(&rootd, "peer is not the agent's user").await;
    assert!(log.contains("peer_uid=65534"), "{log}");
    drop(rootd);
    let _ = std::fs::remove_dir_all(&dir);
}
