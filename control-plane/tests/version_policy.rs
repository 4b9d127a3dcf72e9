//! The version policy with real processes: a nats-server, `drover serve`,
//! a real agent and rootd. An agent older than `min_agent_version` is shown
//! outdated (API, fleet page, `drover security`), gets no new command but
//! `agent.update` (its command ends rejected with the reason and never
//! reaches the broker), and is current again once the minimum is lowered;
//! an enrolment claim of another wire protocol version is refused with the
//! reason, and a heartbeat of another one marks the agent incompatible.

mod common;

use std::time::Duration;

use bus_schema::enroll::{agent_sign, open_answer, EnrollClaim, EnrollStatus};
use bus_schema::signing::release::{manifest_for, platform, ReleaseSigner};
use bus_schema::signing::PROTOCOL_VERSION;
use bus_schema::{subjects, Heartbeat, Metrics};
use common::*;
use serde_json::{json, Value};

/// The last sequence of the command stream this agent's queue is on.
async fn cmd_stream_last(stack: &Stack, agent: &str) -> u64 {
    let js = async_nats::jetstream::new(stack.client().await);
    js.get_stream(subjects::cmd_stream(agent))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence
}

/// `drover security --json`, parsed.
fn security(stack: &Stack) -> Value {
    let out = stack.drover(&["security", "--json"]);
    assert!(
        out.status.success(),
        "drover security: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `sys.ping` job for one agent, waited for; returns its one host row.
async fn ping_job(stack: &Stack, agent: &str) -> Value {
    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"agents": [agent]}, "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    stack.wait_job_done(id, Duration::from_secs(60)).await;
    let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
    let hosts = hosts["hosts"].as_array().unwrap().clone();
    assert_eq!(hosts.len(), 1, "one row per target: {hosts:?}");
    hosts[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_below_the_minimum_is_outdated_refused_and_counted_until_the_minimum_drops() {
    let mut stack = Stack::start().await;
    let mut host = stack.start_host("old").await;
    let id = host.id.clone();

    // With the built-in minimum, the agent built here is current.
    let (_, a) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(a["agent_version"], env!("CARGO_PKG_VERSION"), "{a}");
    assert_eq!(
        a["agent_channel"], "",
        "a build not installed from a release"
    );
    assert_eq!(a["protocol_version"], PROTOCOL_VERSION, "{a}");
    assert_eq!(a["version_standing"], "current", "{a}");
    assert_eq!(a["outdated"], false, "{a}");

    // A minimum above it: outdated, with the reason and what to do. (The
    // release key is pinned too: agent.update needs one.)
    let release_key = test_release_signer().public().to_base64();
    stack
        .restart_cp_with(&[
            ("DROVER_MIN_AGENT_VERSION", "99.0.0"),
            ("DROVER_RELEASE_KEY", release_key.as_str()),
        ])
        .await;
    let (_, a) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(a["outdated"], true, "{a}");
    assert_eq!(a["incompatible"], false, "{a}");
    assert_eq!(a["version_standing"], "outdated", "{a}");
    let why = a["outdated_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("99.0.0") && why.contains(env!("CARGO_PKG_VERSION")),
        "{why}"
    );
    assert!(
        why.contains("drover rollout start"),
        "says what to do: {why}"
    );
    let (_, list) = stack.get("/agents").await;
    assert_eq!(list["agents"][0]["outdated"], true, "{list}");

    // The fleet page and the host page show the badge.
    stack.add_user("ops", "admin", "a-long-test-password");
    let s = stack.login("ops", "a-long-test-password").await;
    for path in ["/fleet".to_string(), format!("/agents/{id}")] {
        let (code, page) = s.get_html(&path).await;
        assert_eq!(code, 200, "{path}");
        assert!(
            page.contains("version-badge") && page.contains("drover rollout start"),
            "{path} shows the outdated badge"
        );
    }

    // A job's command for it ends rejected with the reason, and never
    // reaches the broker (so never the agent).
    let before = cmd_stream_last(&stack, &id).await;
    let row = ping_job(&stack, &id).await;
    assert_eq!(row["status"], "rejected", "{row}");
    let summary = row["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("version policy") && summary.contains("99.0.0"),
        "{summary}"
    );
    let cid = row["command_id"].as_str().unwrap().to_string();
    let (_, c) = stack.get(&format!("/commands/{cid}")).await;
    assert_eq!(c["stream_seq"], Value::Null, "never published: {c}");
    assert_eq!(cmd_stream_last(&stack, &id).await, before, "nothing queued");
    assert!(
        !host.agent.log_text().contains(&cid),
        "the agent never saw it"
    );

    // Counted by `drover security` (and its API).
    let sec = security(&stack);
    let av = &sec["agent_versions"];
    assert_eq!(av["outdated"], 1, "{av}");
    assert_eq!(av["incompatible"], 0, "{av}");
    assert_eq!(av["min_agent_version"], "99.0.0", "{av}");
    assert_eq!(av["min_agent_version_from"], "config", "{av}");
    assert_eq!(av["agents"][0]["id"], id.as_str(), "{av}");
    let text = stack.drover(&["security"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 outdated"));

    // agent.update is the way out: the policy lets it through to the
    // broker (what the host then makes of this release is not tested here).
    let signer = test_release_signer();
    let m = manifest_for(
        b"some other agent build",
        "99.0.0",
        &platform(),
        "stable",
        "",
        "",
        bus_schema::now_ms(),
    );
    let (manifest, signature) = signer.sign(&m).unwrap();
    let before = cmd_stream_last(&stack, &id).await;
    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"agents": [id]}, "action": "agent.update",
                    "params": {"version": "99.0.0", "manifest": manifest, "signature": signature}}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let (_, hosts) = stack
        .get(&format!("/jobs/{}/hosts", job["id"].as_str().unwrap()))
        .await;
    let row = &hosts["hosts"][0];
    assert!(
        !row["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("version policy"),
        "{row}"
    );
    let (_, c) = stack
        .get(&format!(
            "/commands/{}",
            row["command_id"].as_str().unwrap()
        ))
        .await;
    assert!(c["stream_seq"].is_u64(), "published: {c}");
    assert!(cmd_stream_last(&stack, &id).await > before);

    // The built-in minimum again: current, commands run.
    stack.restart_cp_with(&[]).await;
    let (_, a) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(a["outdated"], false, "{a}");
    assert_eq!(a["outdated_reason"], Value::Null, "{a}");
    assert_eq!(security(&stack)["agent_versions"]["outdated"], 0);
    let row = ping_job(&stack, &id).await;
    assert_eq!(row["status"], "succeeded", "{row}");

    // A heartbeat of another wire protocol version (sent with the agent's
    // own credentials while the agent is stopped) marks it incompatible.
    host.agent.stop();
    let client = agent_client(&stack, &host).await;
    let hb = Heartbeat {
        agent_id: id.clone(),
        hostname: "old".into(),
        seq: 1,
        sent_at: bus_schema::now_ms(),
        interval_secs: 1,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        agent_channel: String::new(),
        os: "linux".into(),
        kernel: "6".into(),
        metrics: Metrics::default(),
        modules: vec!["sys".into()],
        operations: vec![],
        rootd_error: None,
        instance_id: String::new(),
        machine_id: String::new(),
        boot_id: String::new(),
        protocol_version: PROTOCOL_VERSION + 1,
        watch_revision: String::new(),
        services: vec![],
        services_full: false,
        key_fingerprints: None,
        rootd_box_key: None,
    };
    client
        .publish(subjects::heartbeat(&id), bus_schema::encode(&hb).into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let a = wait_for(
        "the agent to show as incompatible",
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{id}")).await;
            (a["incompatible"] == true).then_some(a)
        },
    )
    .await;
    assert_eq!(a["outdated"], true, "shown like outdated: {a}");
    assert_eq!(a["protocol_version"], PROTOCOL_VERSION + 1, "{a}");
    assert!(a["outdated_reason"]
        .as_str()
        .unwrap_or_default()
        .contains("protocol"));
    let (code, refused) = stack
        .post(
            &format!("/agents/{id}/commands"),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("protocol"),
        "{refused}"
    );
    assert_eq!(security(&stack)["agent_versions"]["incompatible"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_claim_of_another_protocol_version_is_refused_with_the_reason() {
    let stack = Stack::start().await;
    let token = stack.token(1, "1h", true).await;
    let client = enrolling_client(&stack).await;
    let key = nkeys::KeyPair::new_user();
    let reply_key = bus_schema::enroll::new_reply_key();
    let claim = EnrollClaim {
        token,
        public_key: key.public_key(),
        machine_id: random_machine_id(),
        hostname: "future".into(),
        facts: json!({"agent_version": "9.0.0"}),
        at: bus_schema::now_ms(),
        reply_key: reply_key.public_key(),
        display_name: None,
        labels: Default::default(),
        protocol_version: PROTOCOL_VERSION + 1,
        rootd_box_key: None,
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(
            subjects::ENROLL,
            bus_schema::encode(&agent_sign(&key, &claim)).into(),
        ),
    )
    .await
    .expect("answered within 30 s")
    .unwrap();
    let reply = open_answer(&answer.payload, &reply_key, &key.public_key(), claim.at).unwrap();
    assert_eq!(reply.status, EnrollStatus::Rejected, "{reply:?}");
    assert!(
        reply
            .message
            .contains(&format!("protocol version {}", PROTOCOL_VERSION + 1)),
        "{}",
        reply.message
    );
    assert!(reply.user_jwt.is_none());

    // Nothing stored, no token used.
    let (code, _) = stack.get(&format!("/agents/{}", key.public_key())).await;
    assert_eq!(code, 404);
    let (_, tokens) = stack.get("/tokens").await;
    let tokens = tokens["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty());
    assert!(tokens.iter().all(|t| t["uses"] == 0), "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_installed_from_a_release_reports_the_release_version_and_channel() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("released").await;
    let id = host.id.clone();
    // What rootd leaves in <agent_releases_dir>/<version>/: the binary and
    // release.json with the signed manifest that names it.
    let dir = host.dir.join("releases").join("7.0.0");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("drover-agent");
    std::fs::copy(bin("drover-agent"), &exe).unwrap();
    let bytes = std::fs::read(&exe).unwrap();
    let m = manifest_for(&bytes, "7.0.0", &platform(), "beta", "", "", 1);
    let (manifest, signature) = ReleaseSigner::generate().sign(&m).unwrap();
    std::fs::write(
        dir.join("release.json"),
        json!({"manifest": manifest, "signature": signature}).to_string(),
    )
    .unwrap();
    let version = std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains("7.0.0") && version.contains("beta"),
        "{version}"
    );

    host.agent.stop();
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--config").arg(&host.agent_toml).arg("run");
    host.agent = Proc::spawn("drover-agent 7.0.0", cmd, host.dir.join("agent-7.log"));
    let a = wait_for(
        "the agent to report the release's version",
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{id}")).await;
            (a["agent_version"] == "7.0.0").then_some(a)
        },
    )
    .await;
    assert_eq!(a["agent_channel"], "beta", "{a}");
    assert_eq!(a["version_standing"], "current", "{a}");
    let (code, c) = stack
        .post(
            &format!("/agents/{id}/commands?wait=20"),
            &json!({"action": "sys.info"}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let c = stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(c["result"]["agent_version"], "7.0.0", "{c}");
    assert_eq!(c["result"]["agent_channel"], "beta", "{c}");
}
