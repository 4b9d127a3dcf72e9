//! The host's report is the truth, with real processes (nats-server, the
//! control plane, agent and rootd): a result that arrives after the control
//! plane inferred an outcome replaces it; commands waiting for a free slot
//! are kept alive, not redelivered and called interrupted; a restarted agent
//! reports at once what it was running; a broker restart is a redelivery,
//! not a replay. Does not cover forged or replayed commands (`trust.rs`,
//! `skeleton.rs`) or delivery in general (`delivery.rs`).

mod common;

use std::time::Duration;

use common::{gated_stack, wait_for, Host, Nats, Stack};
use serde_json::{json, Value};

/// Issues one `gated` install; returns its command id.
async fn gated(stack: &Stack, h: &Host, extra: Value) -> String {
    let mut body = json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let (code, c) = stack.command(&h.id, &body).await;
    assert_eq!(code, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

/// How many times rootd started the command.
fn runs_in_rootd(h: &Host, id: &str) -> usize {
    h.rootd
        .log_text()
        .lines()
        .filter(|l| l.contains("server: running ") && l.contains(&format!("command={id}")))
        .count()
}

/// Lines of the agent's log about command `id` that contain `what`.
fn agent_lines(h: &Host, id: &str, what: &str) -> usize {
    h.agent
        .log_text()
        .lines()
        .filter(|l| l.contains(&format!("command={id}")) && l.contains(what))
        .count()
}

async fn wait_started(h: &Host, id: &str) {
    wait_for(
        "rootd to start the install",
        Duration::from_secs(30),
        || {
            let n = runs_in_rootd(h, id);
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_result_replaces_the_inferred_failure_and_both_are_shown() {
    // A command is "silent" 1 s after its expiry plus its timeout.
    let (_tmp, gate, mut stack, h) = gated_stack(&[("DROVER_SILENT_GRACE_SECS", "1")]).await;
    let id = gated(&stack, &h, json!({"ttl_secs": 5, "timeout_secs": 10})).await;
    wait_started(&h, &id).await;
    wait_for("the command running", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/commands/{id}")).await;
        (v["status"] == "running").then_some(())
    })
    .await;

    // The broker goes away; the action finishes on the host, whose result
    // cannot get out. The control plane, hearing nothing, infers a failure.
    let (dir, conf, port) = stack.stop_nats();
    std::fs::write(&gate, "").unwrap();
    Stack::wait_log(&h.agent, "result not confirmed by the broker").await;
    let inferred = wait_for(
        "the control plane to infer a failure",
        Duration::from_secs(60),
        || async {
            let (_, v) = stack.get(&format!("/commands/{id}")).await;
            (v["status"] == "failed").then_some(v)
        },
    )
    .await;
    assert_eq!(inferred["outcome_source"], "inferred", "{inferred}");
    assert!(inferred["replaced_inferred"].is_null(), "{inferred}");

    // The broker returns; the host's own result arrives and is the truth.
    stack.nats = Nats::start_on(&dir, &conf, port).await;
    let v = wait_for(
        "the host's result to replace the inference",
        Duration::from_secs(90),
        || async {
            let (_, v) = stack.get(&format!("/commands/{id}")).await;
            (v["status"] == "succeeded").then_some(v)
        },
    )
    .await;
    assert_eq!(v["outcome_source"], "reported", "{v}");
    assert_eq!(v["replaced_inferred"]["status"], "failed", "{v}");
    assert!(
        v["replaced_inferred"]["summary"]
            .as_str()
            .unwrap()
            .contains("no result"),
        "{v}"
    );
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(runs_in_rootd(&h, &id), 1, "ran exactly once");

    // So do the CLI and the UI's command history.
    let out = stack.drover(&["command", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("replaced the inferred failed"),
        "{text}"
    );
    stack.add_user("ops", "viewer", "a long enough password");
    let session = stack.login("ops", "a long enough password").await;
    let (code, html) = session.get_html(&format!("/agents/{}", h.id)).await;
    assert_eq!(code, 200);
    assert!(
        html.contains("replaced the inferred outcome"),
        "the host page shows what the report replaced"
    );

    // A reported final state is never overwritten: sweeping again (it runs
    // every second) and re-sent results leave it as it is.
    let (_, again) = stack.get(&format!("/commands/{id}?wait=1")).await;
    assert_eq!(again["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_waiting_for_a_free_slot_are_kept_alive_not_interrupted() {
    // A 2 s ack wait: a waiting delivery nobody keeps alive is redelivered
    // within seconds.
    let (_tmp, gate, stack, h) = gated_stack(&[("DROVER_COMMAND_ACK_WAIT_SECS", "2")]).await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(gated(&stack, &h, json!({})).await);
    }
    // Four run (the agent's default), four wait. Hold them until each
    // waiting one was kept alive well past two ack waits (a progress ack
    // every third of one), or until anything ended (the fault).
    let running = wait_for("four installs running", Duration::from_secs(60), || {
        let r: Vec<String> = ids
            .iter()
            .filter(|id| runs_in_rootd(&h, id) == 1)
            .cloned()
            .collect();
        async move { (r.len() == 4).then_some(r) }
    })
    .await;
    let waiting: Vec<String> = ids
        .iter()
        .filter(|id| !running.contains(id))
        .cloned()
        .collect();
    // The broker's own count of redeliveries shows the fault.
    let js = async_nats::jetstream::new(stack.client().await);
    let stream = js
        .get_stream(bus_schema::subjects::cmd_stream(&h.id))
        .await
        .unwrap();
    let consumer_name = bus_schema::subjects::agent_consumer(&h.id);
    wait_for(
        "the waiting commands kept alive past two ack waits, or a redelivery",
        Duration::from_secs(120),
        || async {
            let kept = waiting
                .iter()
                .all(|id| agent_lines(&h, id, "delivery kept alive") >= 8);
            let redelivered = stream
                .consumer_info(&consumer_name)
                .await
                .map(|i| i.num_redelivered > 0)
                .unwrap_or(false);
            (kept || redelivered).then_some(())
        },
    )
    .await;
    std::fs::write(&gate, "").unwrap();
    for id in &ids {
        let v = stack.wait_final(id, Duration::from_secs(120)).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(v["attempts"], 1, "delivered once: {v}");
        assert_eq!(runs_in_rootd(&h, id), 1, "ran exactly once: {id}");
        assert_eq!(
            agent_lines(&h, id, "redelivered"),
            0,
            "never redelivered: {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_reports_what_it_was_running_at_once() {
    // A short ack wait, so the command that was only waiting is redelivered
    // soon after the restart.
    let (_tmp, gate, stack, mut h) = gated_stack(&[("DROVER_COMMAND_ACK_WAIT_SECS", "2")]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(gated(&stack, &h, json!({})).await);
    }
    // Four run (the agent's default), the fifth waits for a slot.
    let running = wait_for("four installs running", Duration::from_secs(60), || {
        let r: Vec<String> = ids
            .iter()
            .filter(|id| runs_in_rootd(&h, id) == 1)
            .cloned()
            .collect();
        async move { (r.len() == 4).then_some(r) }
    })
    .await;
    let waiting = ids.iter().find(|id| !running.contains(id)).unwrap().clone();
    wait_for("the fifth waiting", Duration::from_secs(30), || {
        let n = agent_lines(&h, &waiting, "waiting for a free slot");
        async move { (n > 0).then_some(()) }
    })
    .await;
    h.agent.kill9();
    // rootd stops the actions when its agent hangs up.
    Stack::wait_log(&h.rootd, "the agent hung up; stopping the action").await;
    h.agent = Stack::spawn_agent(&h.agent_toml, &h.dir);
    for id in &running {
        let v = stack.wait_final(id, Duration::from_secs(120)).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .contains("the agent stopped while it ran"),
            "{v}"
        );
        assert_eq!(v["outcome_source"], "reported", "the host said so: {v}");
        // Reported from the journal at start, not after a redelivery.
        assert_eq!(v["attempts"], 1, "{v}");
        assert_eq!(
            agent_lines(&h, id, "reporting it interrupted"),
            1,
            "{}",
            h.agent.log_text()
        );
        assert_eq!(runs_in_rootd(&h, id), 1, "never run again");
    }
    // The one that never started is not called interrupted: it runs now.
    wait_for("the waiting one to run", Duration::from_secs(60), || {
        let n = runs_in_rootd(&h, &waiting);
        async move { (n == 1).then_some(()) }
    })
    .await;
    std::fs::write(&gate, "").unwrap();
    let v = stack.wait_final(&waiting, Duration::from_secs(60)).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(runs_in_rootd(&h, &waiting), 1, "ran exactly once");
    assert_eq!(
        agent_lines(&h, &waiting, "it never started here, so it runs now"),
        1,
        "{}",
        h.agent.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_command_is_a_redelivery_not_a_replay() {
    let (_tmp, gate, mut stack, h) = gated_stack(&[]).await;
    let id = gated(&stack, &h, json!({})).await;
    wait_started(&h, &id).await;
    // The command consumer lives in the broker's memory: after a restart the
    // control plane declares it again and the broker delivers the unacked
    // command again, as a first delivery.
    let (dir, conf, port) = stack.stop_nats();
    stack.nats = Nats::start_on(&dir, &conf, port).await;
    wait_for(
        "the command delivered again after the restart",
        Duration::from_secs(90),
        || async {
            (agent_lines(&h, &id, "redelivered while still in hand") > 0
                || agent_lines(&h, &id, "reason=\"replayed\"") > 0)
                .then_some(())
        },
    )
    .await;
    std::fs::write(&gate, "").unwrap();
    let v = stack.wait_final(&id, Duration::from_secs(90)).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(
        agent_lines(&h, &id, "reason=\"replayed\""),
        0,
        "{}",
        h.agent.log_text()
    );
    assert_eq!(runs_in_rootd(&h, &id), 1, "ran exactly once");
    let (_, sec) = stack.get("/security").await;
    let replays = sec["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"] == "replayed")
        .count();
    assert_eq!(replays, 0, "no refusal counted: {sec}");
}
