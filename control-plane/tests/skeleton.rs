//! The walking skeleton, end to end with real processes: control plane →
//! JetStream → agent → rootd → back.

mod common;

use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use bus_schema::{
    Command, CommandResult, CommandSigner, CommandStatus, Heartbeat, Metrics, SignedCommand, Source,
};
use common::{ask_rootd, wait_for, Stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_rootd_action_round_trip_and_heartbeat_is_stored() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;

    // Heartbeat: online, real metrics, modules.
    let agent = wait_for("metrics", Duration::from_secs(20), || async {
        let a = stack.wait_online(&host.id).await;
        (a["metrics"]["mem_total_bytes"].as_u64().unwrap_or(0) > 0).then_some(a)
    })
    .await;
    assert!(
        agent["metrics"]["mem_total_bytes"].as_u64().unwrap() > 0,
        "metrics stored: {agent}"
    );
    assert!(agent["metrics"]["disk_total_bytes"].as_u64().unwrap() > 0);
    assert!(agent["metrics"]["uptime_secs"].as_u64().unwrap() > 0);
    assert!(!agent["hostname"].as_str().unwrap().is_empty());
    let modules = agent["modules"].as_array().unwrap();
    assert!(
        modules.contains(&json!("sys")) && modules.contains(&json!("pkg")),
        "{modules:?}"
    );

    // sys.ping, answered by the agent itself.
    let (code, created) = stack
        .post(
            &format!("/agents/{}/commands?wait=20", host.id),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let done = stack.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"], "pong");
    assert_eq!(done["result"]["agent_id"], host.id.as_str());
    assert_eq!(done["attempts"], 1);

    // pkg.scan, forwarded to rootd, which runs apt-get for real.
    let (code, created) = stack
        .command(&host.id, &json!({"action": "pkg.scan"}))
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let done = stack.wait_final(&id, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["manager"], "apt");
    assert!(done["result"]["upgradable"].is_array());
    let rootd_log = host.rootd.log_text();
    assert!(
        rootd_log.contains(&format!("command={id}")),
        "rootd ran it: {rootd_log}"
    );

    // Unknown actions and invalid params are refused before anything is signed.
    let (code, body) = stack
        .command(&host.id, &json!({"action": "sys.nope"}))
        .await;
    assert_eq!(code, 422, "{body}");
    let (code, body) = stack
        .command(
            &host.id,
            &json!({"action": "sys.ping", "params": {"x": "; rm -rf /"}}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let (code, _) = stack
        .post("/agents/NOPE/commands", &json!({"action": "sys.ping"}))
        .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_the_token() {
    let stack = Stack::start().await;
    let r = reqwest::get(format!("{}/api/v1/agents", stack.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth("drv_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (code, v) = stack.get("/agents").await;
    assert_eq!(code, 200);
    assert!(v["agents"].is_array());
    // The database never holds the token in clear.
    assert!(!stack.database_holds(stack.token.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_for_a_stopped_agent_waits_on_the_broker() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("h1").await;
    stack.wait_online(&host.id).await;
    host.agent.stop();

    let (code, created) = stack
        .command(&host.id, &json!({"action": "sys.ping"}))
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, v) = stack.get(&format!("/commands/{id}")).await;
    assert_eq!(v["status"], "queued", "nobody can have run it: {v}");

    // The agent comes back with the same identity and finds the command waiting.
    host.agent = Stack::spawn_agent(&host.agent_toml, &host.dir);
    let done = stack.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

fn heartbeat(agent: &str) -> Heartbeat {
    Heartbeat {
        agent_id: agent.into(),
        hostname: "fake-host".into(),
        seq: 1,
        sent_at: bus_schema::now_ms(),
        interval_secs: 30,
        agent_version: "test".into(),
        agent_channel: String::new(),
        os: "test".into(),
        kernel: "test".into(),
        metrics: Metrics {
            mem_total_bytes: 1024,
            ..Default::default()
        },
        modules: vec!["sys".into()],
        operations: vec![],
        rootd_error: None,
        instance_id: String::new(),
        machine_id: String::new(),
        boot_id: String::new(),
        protocol_version: bus_schema::signing::PROTOCOL_VERSION,
        watch_revision: String::new(),
        services: vec![],
        services_full: false,
        key_fingerprints: None,
        rootd_box_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_rejected_and_the_next_good_one_is_processed() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("h1").await;
    // Only our messages reach its subjects from here on.
    host.agent.stop();
    let agent = host.id.clone();
    let agent_key = nkeys::KeyPair::from_seed(
        std::fs::read_to_string(host.state_dir.join("agent.seed"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let nc = stack.client().await;
    let hb_subject = bus_schema::subjects::heartbeat(&agent);

    let mut json_headers = async_nats::HeaderMap::new();
    json_headers.insert("Content-Type", "application/json");
    let wrong_types =
        serde_json::to_vec(&json!({"agent_id": 7, "hostname": ["x"], "seq": "one"})).unwrap();
    let big = vec![0x91u8; 300 * 1024];
    // The good heartbeat's rootd error carries a NUL and an escape: stored
    // (on PostgreSQL too) with spaces for them, the heartbeat not lost.
    let mut good_hb = heartbeat(&agent);
    good_hb.rootd_error = Some("rootd\0down\x1b[2J".into());
    let mut other = heartbeat("SOMEONE_ELSE");
    other.seq = 2;

    nc.publish(hb_subject.clone(), b"\xc1\xff garbage".to_vec().into())
        .await
        .unwrap();
    nc.publish_with_headers(
        hb_subject.clone(),
        json_headers.clone(),
        wrong_types.clone().into(),
    )
    .await
    .unwrap();
    nc.publish(hb_subject.clone(), big.clone().into())
        .await
        .unwrap();
    nc.publish(hb_subject.clone(), bus_schema::encode(&other).into())
        .await
        .unwrap();
    // And then a good one, in JSON to show the header is honoured.
    nc.publish_with_headers(
        hb_subject.clone(),
        json_headers.clone(),
        serde_json::to_vec(&good_hb).unwrap().into(),
    )
    .await
    .unwrap();
    nc.flush().await.unwrap();

    wait_for(
        "the good heartbeat after the bad ones",
        Duration::from_secs(20),
        || async {
            let (_, a) = stack.get(&format!("/agents/{agent}")).await;
            (a["hostname"] == "fake-host").then_some(a)
        },
    )
    .await;
    let (_, a) = stack.get(&format!("/agents/{agent}")).await;
    assert_eq!(a["rootd_error"], "rootd down [2J", "{a}");
    let log = Stack::wait_log(&stack.cp, "arrived on the subject").await;
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rejected heartbeat"))
        .collect();
    assert_eq!(
        rejected.len(),
        4,
        "each bad heartbeat is logged once with its reason:\n{}",
        rejected.join("\n")
    );
    assert!(log.contains("not valid MessagePack"), "{log}");
    assert!(log.contains("not valid JSON"), "{log}");
    assert!(log.contains("the limit is"), "{log}");
    let (_, someone) = stack.get("/agents/SOMEONE_ELSE").await;
    assert!(
        someone["id"].is_null(),
        "a heartbeat on another agent's subject changes nothing"
    );

    // Results: a real command for the agent, then bad results, then a good one.
    let (code, created) = stack.command(&agent, &json!({"action": "sys.ping"})).await;
    assert_eq!(code, 201, "{created}");
    let cmd = created["id"].as_str().unwrap().to_string();
    let res_subject = bus_schema::subjects::result(&agent, &cmd);
    let good = CommandResult {
        command_id: cmd.clone(),
        agent_id: agent.clone(),
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        // A NUL from the host's output (PostgreSQL cannot store one): the
        // result is stored all the same, the NUL shown as U+FFFD.
        summary: "first\0line".into(),
        data: json!({"n": 1, "out": "a\u{0}b"}),
        attempt: 1,
        at: bus_schema::now_ms(),
    };
    let sign =
        |r: &CommandResult| bus_schema::encode(&bus_schema::enroll::sign_result(&agent_key, r));
    let mut mismatched = good.clone();
    mismatched.command_id = "another".into();
    let forger = nkeys::KeyPair::new_user();
    let forged = bus_schema::encode(&bus_schema::enroll::sign_result(&forger, &good));
    let js = async_nats::jetstream::new(nc.clone());
    for bad in [b"\x00\x01".to_vec(), big.clone(), sign(&mismatched), forged] {
        js.publish(res_subject.clone(), bad.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.publish_with_headers(res_subject.clone(), json_headers, wrong_types.into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish(res_subject.clone(), sign(&good).into())
        .await
        .unwrap()
        .await
        .unwrap();
    // The oversized result ends the command as an inferred failure first;
    // the good, signed result that follows replaces it.
    let done = wait_for(
        "the good result to end the command",
        Duration::from_secs(20),
        || async {
            let (_, c) = stack.get(&format!("/commands/{cmd}")).await;
            (c["status"] == "succeeded").then_some(c)
        },
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"], "first\u{FFFD}line");
    assert_eq!(done["result"]["out"], "a\u{0}b", "{done}");
    let log = Stack::wait_log(&stack.cp, "does not match the subject").await;
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("rejected result"))
            .count(),
        5,
        "{log}"
    );
    assert!(log.contains("signature does not verify"), "{log}");
    let (_, sec) = stack.get("/security").await;
    let forged_count = sec["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "control-plane" && r["reason"] == "bad_signature")
        .map(|r| r["count"].as_i64().unwrap());
    assert_eq!(forged_count, Some(1), "{sec}");

    // A duplicate (or a different later report) for a final command changes nothing.
    let mut dup = good.clone();
    dup.summary = "second".into();
    dup.status = CommandStatus::Failed;
    js.publish(res_subject.clone(), sign(&dup).into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A marker result proves the duplicate was consumed before we look.
    let (_, created) = stack.command(&agent, &json!({"action": "sys.ping"})).await;
    let marker = created["id"].as_str().unwrap().to_string();
    let mut m = good.clone();
    m.command_id = marker.clone();
    js.publish(
        bus_schema::subjects::result(&agent, &marker),
        sign(&m).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    stack.wait_final(&marker, Duration::from_secs(20)).await;
    let (_, after) = stack.get(&format!("/commands/{cmd}")).await;
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["summary"], "first\u{FFFD}line");
}

fn command(agent: &str, expires_in_ms: i64) -> Command {
    let now = bus_schema::now_ms();
    Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
        agent_id: agent.into(),
        action: "pkg.scan".into(),
        params: json!({}),
        issued_at: now,
        expires_at: now + expires_in_ms,
        timeout_secs: 60,
        requested_by: "test".into(),
        source: Source::User,
        job_id: None,
        clock_skew_ms: None,
    }
}

fn refused_label(f: &RootFrame) -> &str {
    match f {
        RootFrame::Refused { label, .. } => label,
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_rootd_stopped_says_so_and_rootd_actions_are_refused_with_why() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("h1").await;
    let (_, a) = stack.get(&format!("/agents/{}", host.id)).await;
    assert!(a["rootd_error"].is_null(), "{a}");
    host.rootd.stop();
    let a = wait_for(
        "the heartbeat to say rootd is gone",
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{}", host.id)).await;
            a["rootd_error"].is_string().then_some(a)
        },
    )
    .await;
    assert_eq!(a["modules"], json!(["sys"]), "{a}");
    // It says why and what to do.
    stack
        .assert_refused(
            &host.id,
            &json!({"action": "pkg.scan"}),
            &["drover-rootd", "not answering", "start"],
        )
        .await;
    // The agent's own actions still run.
    assert_eq!(stack.ping(&host.id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_commands_are_refused_by_the_agent_and_by_rootd() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.wait_online(&host.id).await;
    let forger = CommandSigner::generate();
    let real = stack.signer();

    // On the bus: a forged signature, and a genuine command for another agent.
    let js = async_nats::jetstream::new(stack.client().await);
    let forged = forger.sign(&command(&host.id, 60_000));
    js.publish(
        bus_schema::subjects::command(&host.id),
        bus_schema::encode(&forged).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    Stack::wait_log(&host.agent, "reason=\"bad_signature\"").await;
    let misaddressed = real.sign(&command("UOTHERAGENT", 60_000));
    js.publish(
        bus_schema::subjects::command(&host.id),
        bus_schema::encode(&misaddressed).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    Stack::wait_log(&host.agent, "reason=\"wrong_agent\"").await;
    // Genuine but expired; then one genuine command delivered twice.
    // Past its expiry by more than the clock-skew tolerance.
    let mut stale = command(
        &host.id,
        -1_000 - bus_schema::clock::CLOCK_SKEW_TOLERANCE_MS,
    );
    stale.action = "sys.ping".into();
    js.publish(
        bus_schema::subjects::command(&host.id),
        bus_schema::encode(&real.sign(&stale)).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    Stack::wait_log(&host.agent, "reason=\"expired\"").await;
    let mut once = command(&host.id, 60_000);
    once.action = "sys.ping".into();
    let once = real.sign(&once);
    for _ in 0..2 {
        js.publish(
            bus_schema::subjects::command(&host.id),
            bus_schema::encode(&once).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // The two deliveries are handled concurrently, so the replay refusal may be
    // logged before the first run finishes: wait for both, then count each.
    let once_id = format!("command={}", real_id(&once));
    let count = |log: &str, what: &str| {
        log.lines()
            .filter(|l| l.contains(&once_id) && l.contains(what))
            .count()
    };
    let log = wait_for(
        "one run and one replay refusal",
        Duration::from_secs(20),
        || async {
            let log = host.agent.log_text();
            (count(&log, "command finished") >= 1 && count(&log, "reason=\"replayed\"") >= 1)
                .then_some(log)
        },
    )
    .await;
    assert_eq!(
        count(&log, "command finished"),
        1,
        "ran exactly once: {log}"
    );
    assert_eq!(
        count(&log, "reason=\"replayed\""),
        1,
        "replay refused once: {log}"
    );
    // The agent's refusals reach the security overview.
    wait_for("refusals counted", Duration::from_secs(20), || async {
        let (_, sec) = stack.get("/security").await;
        let reasons: Vec<String> = sec["refused"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["source"] == "agent")
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect();
        ["bad_signature", "wrong_agent", "expired", "replayed"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(())
    })
    .await;

    // Straight to rootd's socket, bypassing the agent.
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &forged).await),
        "bad_signature"
    );
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &misaddressed).await),
        "wrong_agent"
    );
    let expired = real.sign(&command(
        &host.id,
        -1 - bus_schema::clock::CLOCK_SKEW_TOLERANCE_MS,
    ));
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &expired).await),
        "expired"
    );
    let mut not_rootd = command(&host.id, 60_000);
    not_rootd.action = "sys.ping".into();
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &real.sign(&not_rootd)).await),
        "unknown_action"
    );
    let mut bad_params = command(&host.id, 60_000);
    bad_params.params = json!({"pkg": "$(reboot)"});
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &real.sign(&bad_params)).await),
        "invalid_params"
    );
    let mut tampered = real.sign(&command(&host.id, 60_000));
    let n = tampered.body.len();
    tampered.body[n - 1] ^= 0x01;
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &tampered).await),
        "bad_signature"
    );

    // An oversized request is refused before it is even decoded.
    let mut huge = command(&host.id, 60_000);
    huge.params = json!({"padding": "x".repeat(100 * 1024)});
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &real.sign(&huge)).await),
        "too_large"
    );

    // A genuine command runs once; the same bytes again are a replay.
    let good = real.sign(&command(&host.id, 60_000));
    let first = ask_rootd(&host.socket, &good).await;
    assert!(matches!(first, RootFrame::Done { .. }), "{first:?}");
    assert_eq!(
        refused_label(&ask_rootd(&host.socket, &good).await),
        "replayed"
    );

    let log = host.rootd.log_text();
    for reason in [
        "bad_signature",
        "wrong_agent",
        "expired",
        "replayed",
        "unknown_action",
        "invalid_params",
    ] {
        assert!(
            log.contains(&format!("reason=\"{reason}\"")),
            "rootd logs {reason}: {log}"
        );
    }
    // Nothing forged was ever run.
    assert!(!host
        .agent
        .log_text()
        .contains(&format!("command={}", real_id(&forged))));
}

fn real_id(s: &SignedCommand) -> String {
    rmp_serde::from_slice::<Command>(&s.body)
        .map(|c| c.id)
        .unwrap_or_default()
}
