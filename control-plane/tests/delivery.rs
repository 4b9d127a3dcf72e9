//! Delivery with real processes: jobs and fan-out, hosts that do not answer,
//! expiry, the per-agent queue cap, cancel, and what happens when the agent
//! is killed or the broker goes away mid-command.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{gated_stack, wait_for, Nats, Stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fans_out_and_names_the_hosts_that_did_not_answer() {
    let stack = Stack::start().await;
    let a = stack.start_host("a").await;
    let b = stack.start_host("b").await;
    let mut c = stack.start_host("c").await;
    c.agent.stop();
    // C goes offline after three missed heartbeats (1 s apart here).
    wait_for("C offline", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/agents/{}", c.id)).await;
        (v["status"] == "offline").then_some(())
    })
    .await;

    let body = json!({"selector": {"all": true}, "action": "sys.ping", "idempotency_key": "ping-everyone"});
    let (code, job) = stack.post("/jobs", &body).await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["target_count"], 3);
    let id = job["id"].as_str().unwrap().to_string();
    // The same key is the same job.
    let (code, again) = stack.post("/jobs", &body).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["id"], id.as_str());

    let partial = wait_for("A and B to answer", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/jobs/{id}")).await;
        (v["counts"]["succeeded"] == 2).then_some(v)
    })
    .await;
    assert_eq!(partial["done"], false);
    assert_eq!(partial["counts"]["offline"], 1, "{partial}");
    assert_eq!(partial["counts"]["pending"], 1, "{partial}");
    let silent = partial["not_answered"].as_array().unwrap();
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0]["agent_id"], c.id.as_str());
    // A long poll on a job that cannot finish yet answers at its deadline,
    // still not done.
    let (code, waited) = stack.get(&format!("/jobs/{id}?wait=1")).await;
    assert_eq!(code, 200);
    assert_eq!(waited["done"], false, "{waited}");
    assert_eq!(waited["counts"]["pending"], 1, "{waited}");

    // C comes back; the broker kept its command. The long poll answers once
    // it has (wait_job_done uses `?wait=`).
    c.agent = Stack::spawn_agent(&c.agent_toml, &c.dir);
    let done = stack.wait_job_done(&id, Duration::from_secs(30)).await;
    assert_eq!(done["counts"]["succeeded"], 3, "{done}");
    let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
    let ids: Vec<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["agent_id"].as_str().unwrap())
        .collect();
    for h in [&a.id, &b.id, &c.id] {
        assert!(ids.contains(&h.as_str()));
    }

    // Selectors: a label every agent has (dev tokens label nothing here), a
    // hostname glob that matches none, and the preview.
    let (code, v) = stack
        .post(
            "/jobs",
            &json!({"selector": {"hostname": "no-such-*"}, "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    let (code, v) = stack
        .post("/jobs", &json!({"selector": {}, "action": "sys.ping"}))
        .await;
    assert_eq!(code, 422, "an empty selector is refused: {v}");
    let (code, v) = stack
        .post("/jobs/preview", &json!({"agents": [a.id, b.id]}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["count"], 2);

    // The CLI: a progress bar on a terminal, a per-host summary always.
    let out = Command::new(common::bin("drover"))
        .args([
            "run",
            &format!("id:{},id:{}", a.id, b.id),
            "sys.ping",
            "--wait",
            "60",
        ])
        .env("DROVER_API", &stack.base)
        .env("DROVER_TOKEN", &stack.token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drover run failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.matches("succeeded").count(),
        3,
        "two hosts and the total line:\n{text}"
    );
    assert!(text.contains("pong"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_for_a_host_that_stays_away_expires_and_never_runs() {
    let stack = Stack::start().await;
    let mut h = stack.start_host("h").await;
    h.agent.stop();
    let (code, c) = stack
        .command(&h.id, &json!({"action": "sys.ping", "ttl_secs": 1}))
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let v = stack.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(v["status"], "expired", "{v}");
    // Back again: the broker dropped the message at its TTL, so nothing runs.
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    stack.wait_online(&h.id).await;
    // A later command proves the agent has drained its queue.
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
    assert!(
        !h.agent.log_text().contains(&id),
        "the expired command never reached the agent"
    );
    let (_, v) = stack.get(&format!("/commands/{id}")).await;
    assert_eq!(v["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_more_work_with_a_clear_error() {
    let stack = Stack::start().await;
    let mut h = stack.start_host("h").await;
    h.agent.stop();
    for i in 0..100 {
        let (code, v) = stack.command(&h.id, &json!({"action": "sys.ping"})).await;
        assert_eq!(code, 201, "command {i}: {v}");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/agents/{}/commands", stack.base, h.id))
        .bearer_auth(&stack.token)
        .json(&json!({"action": "sys.ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    // No Retry-After: the CLI sends a 429 with one again by itself, and
    // this refusal is recorded, so a resend would record it twice.
    assert!(
        r.headers().get("retry-after").is_none(),
        "{:?}",
        r.headers()
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("is full"), "{v}");
    // The refused one is recorded in its one final state.
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", h.id)).await;
    let rejected = cmds["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "rejected")
        .count();
    assert_eq!(rejected, 1);
}

/// A stack whose one host's agent is stopped, and a `sys.ping` queued for it.
async fn ping_queued_for_a_stopped_agent() -> (Stack, common::Host, String) {
    let stack = Stack::start().await;
    let mut h = stack.start_host("h").await;
    h.agent.stop();
    let (_, c) = stack.command(&h.id, &json!({"action": "sys.ping"})).await;
    let id = c["id"].as_str().unwrap().to_string();
    (stack, h, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_command_can_be_cancelled() {
    let (stack, mut h, id) = ping_queued_for_a_stopped_agent().await;
    let (code, v) = stack
        .post(&format!("/commands/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "cancelled");
    let (code, v) = stack
        .post(&format!("/commands/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 409, "a final command cannot be cancelled again: {v}");
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
    // The cancelled command never ran; the agent only heard the sys.cancel
    // that makes sure a copy fetched before the delete would not start.
    assert!(
        !h.agent.log_text().contains(&format!("command={id}")),
        "the cancelled command never reached the agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_fetched_but_not_yet_reported_is_not_declared_cancelled() {
    // The window between an agent fetching a command and its first report,
    // held open: the agent is stopped and the test fetches from the agent's
    // own consumer, without acking, as the agent would.
    let (stack, mut h, id) = ping_queued_for_a_stopped_agent().await;
    let js = async_nats::jetstream::new(stack.client().await);
    let consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream(bus_schema::subjects::cmd_stream(&h.id))
        .await
        .unwrap()
        .get_consumer(&bus_schema::subjects::agent_consumer(&h.id))
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    use futures::StreamExt;
    let taken = batch
        .next()
        .await
        .expect("the command is delivered")
        .unwrap();
    assert!(taken.info().unwrap().delivered >= 1);

    let (code, v) = stack
        .post(&format!("/commands/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        code, 202,
        "the agent has it: the cancel goes to the agent: {v}"
    );
    let (_, now) = stack.get(&format!("/commands/{id}")).await;
    assert_eq!(now["status"], "queued", "not declared cancelled: {now}");

    // The fetcher lets go (as the broker would after the ack wait); the real
    // agent gets the command again and the sys.cancel. Whichever it handles
    // first, the command ends in one final state that says what happened.
    taken
        .ack_with(async_nats::jetstream::AckKind::Nak(None))
        .await
        .unwrap();
    drop(batch);
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    let (_, end) = stack.get(&format!("/commands/{id}?wait=60")).await;
    assert!(
        ["cancelled", "succeeded"].contains(&end["status"].as_str().unwrap_or("")),
        "{end}"
    );
}

/// Counts how often rootd started a command: its effect, one log line per run.
fn runs_in_rootd(h: &common::Host, id: &str) -> usize {
    h.rootd
        .log_text()
        .lines()
        .filter(|l| l.contains("server: running ") && l.contains(&format!("command={id}")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_command_never_runs_it_twice() {
    let stack = Stack::start().await;
    let mut h = stack.start_host("h").await;
    let (_, c) = stack.command(&h.id, &json!({"action": "pkg.scan"})).await;
    let id = c["id"].as_str().unwrap().to_string();
    // The heartbeat names the running operation and who started it.
    let op = wait_for(
        "the heartbeat to show the operation",
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{}", h.id)).await;
            a["operations"].as_array().and_then(|o| o.first().cloned())
        },
    )
    .await;
    assert_eq!(op["command_id"], id.as_str());
    assert_eq!(op["source"], "user");
    wait_for("rootd to start the scan", Duration::from_secs(30), || {
        let n = runs_in_rootd(&h, &id);
        async move { (n == 1).then_some(()) }
    })
    .await;
    h.agent.kill9();
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    let v = stack.wait_final(&id, Duration::from_secs(120)).await;
    // Either the result was out before the kill, or the journal turned the
    // redelivery into an "interrupted" report; never a second run.
    assert!(
        v["status"] == "succeeded" || v["summary"].as_str().unwrap().contains("interrupted"),
        "{v}"
    );
    assert_eq!(runs_in_rootd(&h, &id), 1, "ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_finished_during_an_outage_survives_a_crash_and_arrives_once() {
    // The action runs until the broker is gone: with a real action (a scan
    // of a few seconds) the result could be confirmed before the broker
    // stopped on a slow machine, and then there is no outage to survive.
    let (_tmp, gate, mut stack, mut h) = gated_stack(&[]).await;
    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    wait_for(
        "rootd to start the install",
        Duration::from_secs(30),
        || {
            let n = runs_in_rootd(&h, &id);
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
    // The broker goes away while the action runs; then the action finishes,
    // the agent cannot get its result confirmed, and is killed.
    let port = stack.nats.port;
    let conf = stack.data_dir.join("nats-config").join("nats.conf");
    let dir = stack.nats.dir.clone();
    stack.nats.proc.stop();
    std::fs::write(&gate, "").unwrap();
    Stack::wait_log(&h.agent, "result not confirmed by the broker").await;
    let journal = std::fs::read_to_string(h.state_dir.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(&id) && journal.contains("succeeded"),
        "the result is journaled: {journal}"
    );
    h.agent.kill9();

    stack.nats = Nats::start_on(&dir, &conf, port).await;
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    let v = stack.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let log = h.agent.log_text();
    assert!(log.contains("re-sending unconfirmed results"), "{log}");
    assert_eq!(runs_in_rootd(&h, &id), 1, "ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automation_submits_signed_jobs_on_the_bus() {
    use bus_schema::jobs::JobSubmission;
    use bus_schema::signing::automation::AutomationKey;
    let stack = Stack::start().await;
    let h = stack.start_host("h").await;
    let ci = AutomationKey::generate();
    stack
        .add_automation_key("ci", "operator", &ci.public_base64())
        .await;
    let watcher = AutomationKey::generate();
    stack
        .add_automation_key("watcher", "viewer", &watcher.public_base64())
        .await;
    let forger = AutomationKey::generate();

    let job = |key: &str| JobSubmission {
        selector: json!({"agents": [h.id]}),
        action: "sys.ping".into(),
        params: json!({}),
        timeout_secs: None,
        ttl_secs: None,
        idempotency_key: key.into(),
        issued_at: bus_schema::now_ms(),
        expires_at: bus_schema::now_ms() + 60_000,
    };
    let js = async_nats::jetstream::new(stack.client().await);
    let send = |signed: bus_schema::signing::automation::SignedJob| {
        let js = js.clone();
        async move {
            js.publish(
                bus_schema::subjects::JOBS_SUBMIT,
                bus_schema::encode(&signed).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    // Twice the same submission (as a retrying automation would): one job.
    send(ci.sign(&job("deploy-42"))).await;
    send(ci.sign(&job("deploy-42"))).await;
    // Refused: a viewer's key, and a key nobody registered (with ci's name on it).
    send(watcher.sign(&job("viewer-try"))).await;
    let mut forged = forger.sign(&job("forged-try"));
    forged.key_id = ci.sign(&job("x")).key_id;
    send(forged).await;
    // A marker after them: once it is in, the others were handled.
    send(ci.sign(&job("marker"))).await;

    let jobs = stack.wait_job_keyed("marker").await;
    let keys: Vec<&str> = jobs
        .iter()
        .map(|j| j["idempotency_key"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        keys.iter().filter(|k| **k == "deploy-42").count(),
        1,
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"viewer-try") && !keys.contains(&"forged-try"),
        "{keys:?}"
    );
    let deploy = jobs
        .iter()
        .find(|j| j["idempotency_key"] == "deploy-42")
        .unwrap();
    assert_eq!(deploy["requested_by"], "automation:ci");
    let id = deploy["id"].as_str().unwrap().to_string();
    let done = stack.wait_job_done(&id, Duration::from_secs(30)).await;
    assert_eq!(done["counts"]["succeeded"], 1);
    let (_, sec) = stack.get("/security").await;
    let reasons: Vec<&str> = sec["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"forbidden") && reasons.contains(&"bad_signature"),
        "{sec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_command_can_be_cancelled() {
    // The gate never opens: the action runs until the cancel stops it (a
    // real scan could finish before the cancel arrived, or as the agent hung
    // up, and leave nothing running to cancel).
    let (_tmp, _gate, stack, h) = gated_stack(&[]).await;
    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    wait_for("the install to run", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/commands/{id}")).await;
        (v["status"] == "running").then_some(())
    })
    .await;
    let (code, v) = stack
        .post(&format!("/commands/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 202, "{v}");
    let cancel_id = v["cancel_command"].as_str().unwrap().to_string();
    let cancel = stack.wait_final(&cancel_id, Duration::from_secs(30)).await;
    assert_eq!(cancel["status"], "succeeded", "{cancel}");
    assert_eq!(cancel["result"]["was_running"], true, "{cancel}");
    let done = stack.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    Stack::wait_log(&h.rootd, "the agent hung up; stopping the action").await;
    assert_eq!(runs_in_rootd(&h, &id), 1);
}
