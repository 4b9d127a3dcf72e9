//! Hostile input from a host that holds real agent credentials, against real
//! processes: deeply nested messages on every subject the control plane and
//! the agent consume, on the enrolment subject and on rootd's socket; a
//! flood of signed refusal reports; the broker made to write onto another
//! agent's heartbeat subject. Nothing may die, every consumer goes on, each
//! poison message is terminated (never redelivered, not even to a restarted
//! control plane) and counted in `/security`.

mod common;

use std::time::{Duration, Instant};

use bus_schema::codec::MAX_DEPTH;
use bus_schema::enroll::{agent_sign, AgentSigned};
use bus_schema::rootd_proto::{self, RootFrame, RootRequest};
use bus_schema::subjects;
use common::{
    agent_client, agent_key, enrolling_client, nested_msgpack, rootd_modules,
    wait_consumer_settled, wait_for, Stack,
};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

/// How many malformed messages `/security` counts for `subject` and `agent`.
async fn malformed(stack: &Stack, subject: &str, agent: &str) -> i64 {
    drop_count(stack, "malformed_messages", subject, agent).await
}

async fn drop_count(stack: &Stack, list: &str, subject: &str, agent: &str) -> i64 {
    let (code, v) = stack.get("/security").await;
    assert_eq!(code, 200, "{v}");
    v[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["subject"] == subject && d["agent_id"] == agent)
        .map(|d| d["count"].as_i64().unwrap_or(0))
        .sum()
}

async fn wait_malformed(stack: &Stack, subject: &str, agent: &str, at_least: i64) -> i64 {
    wait_for(
        &format!("{at_least} malformed message(s) on {subject} from {agent} to be counted"),
        Duration::from_secs(30),
        || async {
            let n = malformed(stack, subject, agent).await;
            (n >= at_least).then_some(n)
        },
    )
    .await
}

/// Publishes through JetStream and waits for the broker's ack: the message
/// is stored when this returns.
async fn js_publish(js: &async_nats::jetstream::Context, subject: String, payload: Vec<u8>) {
    js.publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Sends one frame to rootd and returns its answer (`None`: it hung up).
async fn rootd_answer(socket: &std::path::Path, frame: Vec<u8>) -> Option<RootFrame> {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(stream, rootd_proto::codec());
    framed.send(bytes::Bytes::from(frame)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(20), framed.next())
        .await
        .expect("rootd answers or hangs up within 20 s")?
        .ok()?;
    Some(bus_schema::codec::decode_limited(&answer, None, rootd_proto::MAX_FRAME_BYTES).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_messages_on_every_subject_are_terminated_counted_and_survived() {
    let mut stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    let me = host.id.clone();
    let attacker = agent_client(&stack, &host).await;
    let ajs = async_nats::jetstream::new(attacker.clone());
    let cp = stack.client().await;
    let cjs = async_nats::jetstream::new(cp.clone());
    let ping = stack.ping(&me).await;
    assert_eq!(ping["status"], "succeeded", "{ping}");
    let ping_id = ping["id"].as_str().unwrap().to_string();

    // The bytes of the report (1,000 deep) and depth just under and just
    // over the limit, as the agent may publish them.
    let variants = [
        nested_msgpack(1000),
        nested_msgpack(MAX_DEPTH - 1),
        nested_msgpack(MAX_DEPTH),
    ];
    for v in &variants {
        js_publish(&ajs, subjects::heartbeat(&me), v.clone()).await;
        js_publish(&ajs, subjects::result(&me, "poison"), v.clone()).await;
        js_publish(&ajs, subjects::refusal(&me), v.clone()).await;
        js_publish(&ajs, subjects::output(&me, &ping_id), v.clone()).await;
        js_publish(&cjs, subjects::JOBS_SUBMIT.into(), v.clone()).await;
    }
    // JSON, when the header asks for it, is held to the same depth.
    let deep_json = format!("{{\"agent_id\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
    let mut h = async_nats::HeaderMap::new();
    h.insert("Content-Type", "application/json");
    ajs.publish_with_headers(
        subjects::heartbeat(&me),
        h.clone(),
        deep_json.clone().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // A well-formed envelope, genuinely signed, whose body is the poison.
    let body = nested_msgpack(1000);
    let wrapped = bus_schema::encode(&AgentSigned {
        v: bus_schema::signing::PROTOCOL_VERSION,
        signature: agent_key(&host).sign(&body).unwrap(),
        body,
    });
    js_publish(&ajs, subjects::result(&me, "poison"), wrapped.clone()).await;
    // And on the agent's own command consumer, as if the broker held it.
    js_publish(&cjs, subjects::command(&me), nested_msgpack(1000)).await;

    let hb = wait_malformed(&stack, subjects::HB_ALL, &me, 4).await;
    let res = wait_malformed(&stack, subjects::RES_ALL, &me, 4).await;
    let sec = wait_malformed(&stack, subjects::SEC_ALL, &me, 3).await;
    assert_eq!(hb, 4);
    assert_eq!(res, 4);
    assert_eq!(sec, 3);
    let jobs = wait_malformed(&stack, subjects::JOBS_SUBMIT, "-", 3).await;
    // The agent refused the command as malformed and said so.
    wait_for(
        "the agent's refusal of the poison command",
        Duration::from_secs(30),
        || async {
            let (_, v) = stack.get("/security").await;
            v["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["source"] == "agent" && r["reason"] == "malformed")
                .then_some(())
        },
    )
    .await;

    // Enrolment: nested bytes and a nested claim inside a real envelope,
    // with the shared enrolment credentials. Whatever the answer, the
    // control plane must still be there afterwards.
    let enroll = enrolling_client(&stack).await;
    for payload in [
        nested_msgpack(1000),
        nested_msgpack(MAX_DEPTH),
        wrapped.clone(),
    ] {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            enroll.request(subjects::ENROLL, payload.into()),
        )
        .await;
    }
    // None of them was readable, and each was counted.
    let (_, v) = stack.get("/security").await;
    assert_eq!(
        v["enrolment"]["unreadable_requests"].as_u64(),
        Some(3),
        "unreadable enrolment requests are counted: {v}"
    );
    // A JSON body of the API, 1,000 deep.
    let deep_body = format!(
        "{{\"action\":\"sys.ping\",\"params\":{{\"x\":{}1{}}}}}",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    stack
        .assert_bad_json(
            &format!("/agents/{me}/commands"),
            deep_body,
            "nested deeper",
        )
        .await;

    // rootd: frames from the agent's uid, just under and over the limit,
    // the report's bytes, garbage, and a lying length prefix.
    for frame in [
        nested_msgpack(MAX_DEPTH - 1),
        nested_msgpack(MAX_DEPTH),
        nested_msgpack(1000),
        b"\xc1\xff\x00".to_vec(),
        bus_schema::encode(&RootRequest::Run {
            command: bus_schema::SignedCommand {
                v: bus_schema::signing::PROTOCOL_VERSION,
                body: nested_msgpack(1000),
                signature: vec![0; 64],
                key_id: "x".into(),
            },
        }),
    ] {
        match rootd_answer(&host.socket, frame).await {
            Some(RootFrame::Refused { .. }) | None => {}
            other => panic!("rootd answered a hostile frame with {other:?}"),
        }
    }
    {
        use tokio::io::AsyncWriteExt;
        let mut raw = tokio::net::UnixStream::connect(&host.socket).await.unwrap();
        raw.write_all(&[0xff, 0xff, 0xff, 0xf0, 0x91, 0x91])
            .await
            .unwrap();
    }
    assert!(!rootd_modules(&host.socket).await.is_empty());

    // Every consumer went on and holds nothing: the poison was terminated.
    wait_consumer_settled(&stack, subjects::HB_STREAM, subjects::CP_HB_CONSUMER).await;
    wait_consumer_settled(&stack, subjects::RES_STREAM, subjects::CP_RES_CONSUMER).await;
    wait_consumer_settled(&stack, subjects::JOBS_STREAM, subjects::CP_JOBS_CONSUMER).await;
    wait_consumer_settled(
        &stack,
        &subjects::cmd_stream(&me),
        &subjects::agent_consumer(&me),
    )
    .await;
    // The output of the command reads as before, without the poison.
    let (code, out) = stack.get(&format!("/commands/{ping_id}/output")).await;
    assert_eq!(code, 200, "{out}");

    // No process died, and a normal command still completes end to end.
    let mut agent = host.agent;
    let mut rootd = host.rootd;
    assert!(stack.cp.running(), "{}", stack.cp.log_text());
    assert!(agent.running(), "{}", agent.log_text());
    assert!(rootd.running(), "{}", rootd.log_text());
    let again = stack.ping(&me).await;
    assert_eq!(again["status"], "succeeded", "{again}");

    // A restarted control plane is not handed the poison again: it starts,
    // and the counts do not move.
    let port: u16 = stack.base.rsplit(':').next().unwrap().parse().unwrap();
    stack.cp.stop();
    stack.cp = Stack::spawn_cp(&stack.data_dir, &stack.nats.url(), port);
    stack.wait_healthy().await;
    let after = stack.ping(&me).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    wait_consumer_settled(&stack, subjects::HB_STREAM, subjects::CP_HB_CONSUMER).await;
    wait_consumer_settled(&stack, subjects::RES_STREAM, subjects::CP_RES_CONSUMER).await;
    assert_eq!(malformed(&stack, subjects::HB_ALL, &me).await, hb);
    assert_eq!(malformed(&stack, subjects::RES_ALL, &me).await, res);
    assert_eq!(malformed(&stack, subjects::SEC_ALL, &me).await, sec);
    assert_eq!(malformed(&stack, subjects::JOBS_SUBMIT, "-").await, jobs);
    assert!(stack.cp.running(), "{}", stack.cp.log_text());

    // `drover security` shows the counts.
    let out = stack.drover(&["security"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Malformed messages") && text.contains(&me),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_floods_are_throttled_and_redirected_answers_are_no_heartbeats() {
    use control_plane::db::entities::refusal;
    use control_plane::poison::{REFUSALS_PER_MINUTE, REFUSAL_BURST};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let stack = Stack::start().await;
    let a = stack.start_host("a").await;
    let b = stack.start_host("b").await;
    let attacker = agent_client(&stack, &a).await;

    // A's credentials make the broker answer a JetStream API request onto
    // B's heartbeat subject (the broker does not check reply subjects).
    let before = stack.wait_online(&b.id).await;
    attacker
        .publish_with_reply(
            format!(
                "$JS.API.CONSUMER.INFO.{}.{}",
                subjects::cmd_stream(&a.id),
                subjects::agent_consumer(&a.id)
            ),
            subjects::heartbeat(&b.id),
            "".into(),
        )
        .await
        .unwrap();
    attacker.flush().await.unwrap();
    wait_malformed(&stack, subjects::HB_ALL, &b.id, 1).await;
    // B's real heartbeats are still taken.
    let seen = before["last_seen"].as_i64().unwrap();
    wait_for("B's next heartbeat", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/agents/{}", b.id)).await;
        (v["status"] == "online" && v["last_seen"].as_i64().unwrap_or(0) > seen).then_some(())
    })
    .await;
    wait_consumer_settled(&stack, subjects::HB_STREAM, subjects::CP_HB_CONSUMER).await;

    // 2,000 genuinely signed refusal reports with a made-up reason and a
    // long detail.
    let key = agent_key(&a);
    let js = async_nats::jetstream::new(attacker.clone());
    const FLOOD: usize = 2000;
    let started = Instant::now();
    for window in 0..FLOOD / 500 {
        let mut acks = Vec::new();
        for i in 0..500 {
            let report = json!({
                "agent_id": a.id,
                "reason": format!("invented reason {}", window * 500 + i),
                "detail": "d".repeat(5000),
                "at": bus_schema::now_ms(),
            });
            let signed = agent_sign(&key, &report);
            acks.push(
                js.publish(subjects::refusal(&a.id), bus_schema::encode(&signed).into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
    let db = stack.db().await;
    let stored = wait_for(
        "every report to be stored or counted as dropped",
        Duration::from_secs(60),
        || async {
            let rows = refusal::Entity::find()
                .filter(refusal::Column::AgentId.eq(a.id.clone()))
                .all(&db)
                .await
                .ok()?;
            let dropped =
                drop_count(&stack, "refusals_dropped", subjects::SEC_ALL, &a.id).await as usize;
            (rows.len() + dropped == FLOOD).then_some(rows)
        },
    )
    .await;
    let minutes = started.elapsed().as_secs() / 60 + 1;
    let allowed = (REFUSAL_BURST + REFUSALS_PER_MINUTE * minutes as u32) as usize;
    assert!(
        stored.len() <= allowed,
        "{} rows stored, at most {allowed} allowed",
        stored.len()
    );
    assert!(!stored.is_empty());
    for r in &stored {
        assert_eq!(r.reason, "other", "unknown reasons are one group");
        assert!(r.detail.chars().count() <= 512, "{}", r.detail.len());
    }
    // One group for all of them, not one per invented reason.
    let (_, v) = stack.get("/security").await;
    let groups: Vec<&Value> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "agent")
        .collect();
    assert_eq!(groups.len(), 1, "{v}");
    assert_eq!(groups[0]["reason"], "other");
    wait_consumer_settled(&stack, subjects::RES_STREAM, subjects::CP_RES_CONSUMER).await;
    assert_eq!(stack.ping(&a.id).await["status"], "succeeded");
}
