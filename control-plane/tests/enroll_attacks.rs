//! Attacks on enrolment from outside, with nothing but the shared enrolment
//! credentials (a raw `async_nats` client, not Drover's code), against a real
//! nats-server in operator mode, a real `drover serve` and real agents:
//!
//! - a reply subject naming a victim's command queue, heartbeat subject or
//!   the job intake never makes the control plane publish there (and its
//!   responder's broker user could not even if it tried);
//! - another enrolling client that listens on every enrolment inbox sees
//!   only sealed answers it cannot open, and cannot make a host take a
//!   forged answer;
//! - a normal enrolment (pending, then approved by an operator) still works.
//!
//! Decoder limits and refusal floods are tested elsewhere.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus_schema::enroll::{agent_sign, EnrollAnswer, EnrollClaim};
use bus_schema::subjects;
use common::{enrolling_client, random_machine_id, record_server_errors, wait_for, Stack};
use futures::{FutureExt, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

/// What the attacker sends: not even a valid claim.
const HELLO: &[u8] = b"\xa5HELLO";

/// Watches, as the control plane's unrestricted user, every Drover subject,
/// the enrolment inboxes and their look-alikes.
struct Watch {
    _client: async_nats::Client,
    subs: Vec<async_nats::Subscriber>,
    lost: Arc<AtomicBool>,
}

async fn watch(stack: &Stack) -> Watch {
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let client = async_nats::ConnectOptions::with_credentials_file(
        stack.data_dir.join("control-plane.creds"),
    )
    .await
    .unwrap()
    .event_callback(move |e| {
        let flag = flag.clone();
        async move {
            if matches!(e, async_nats::Event::Disconnected) {
                flag.store(true, Ordering::SeqCst);
            }
        }
    })
    .connect(stack.nats.url())
    .await
    .unwrap();
    let mut subs = Vec::new();
    for s in [
        format!("{}.>", subjects::PREFIX),
        format!("{}.>", subjects::ENROLL_INBOX_PREFIX),
        format!("{}ment.>", subjects::ENROLL_INBOX_PREFIX),
    ] {
        subs.push(client.subscribe(s).await.unwrap());
    }
    client.flush().await.unwrap();
    Watch {
        _client: client,
        subs,
        lost,
    }
}

impl Watch {
    /// Every message seen before the first one on `subject` (within 60 s),
    /// and that one. Those already received on the other subscriptions by
    /// then are included too: the broker sent them earlier.
    async fn until(&mut self, subject: &str) -> (Vec<async_nats::Message>, async_nats::Message) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        for _ in 0..1_000_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = futures::future::select_all(self.subs.iter_mut().map(|s| s.next()));
            let (msg, _, _) = tokio::time::timeout(left, next)
                .await
                .unwrap_or_else(|_| panic!("no message on {subject} within 60 s"));
            let msg = msg.expect("the watch subscriptions are open");
            if msg.subject.as_str() == subject {
                for sub in &mut self.subs {
                    while let Some(Some(m)) = sub.next().now_or_never() {
                        seen.push(m);
                    }
                }
                assert!(
                    !self.lost.load(Ordering::SeqCst),
                    "the watcher lost its connection: it may have missed messages"
                );
                return (seen, msg);
            }
            seen.push(msg);
        }
        panic!("more than a million messages before one on {subject}");
    }
}

/// Sends one unreadable request whose answer goes to a fresh enrolment inbox
/// and returns that inbox. The responder answers in order, so once this
/// answer passes, anything it published for earlier requests has passed.
async fn send_probe(sender: &async_nats::Client) -> String {
    let probe = format!(
        "{}.probe{}",
        subjects::ENROLL_INBOX_PREFIX,
        uuid::Uuid::new_v4().simple()
    );
    sender
        .publish_with_reply(subjects::ENROLL, probe.clone(), HELLO.into())
        .await
        .unwrap();
    sender.flush().await.unwrap();
    probe
}

/// Every message on `sub` before the first one on `subject` (within 60 s),
/// and that one.
async fn read_until(
    sub: &mut async_nats::Subscriber,
    subject: &str,
) -> (Vec<async_nats::Message>, async_nats::Message) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    for _ in 0..1_000_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no message on {subject} within 60 s"))
            .expect("the subscription is open");
        if msg.subject.as_str() == subject {
            return (seen, msg);
        }
        seen.push(msg);
    }
    panic!("more than a million messages before one on {subject}");
}

/// A claim signed by a fresh key, with a token that does not exist.
fn signed_bogus_claim() -> Vec<u8> {
    let key = nkeys::KeyPair::new_user();
    let claim = EnrollClaim {
        token: "no-such-token".into(),
        public_key: key.public_key(),
        machine_id: random_machine_id(),
        hostname: "attacker".into(),
        facts: json!({}),
        at: bus_schema::now_ms(),
        reply_key: bus_schema::enroll::new_reply_key().public_key(),
        display_name: None,
        labels: Default::default(),
        protocol_version: bus_schema::signing::PROTOCOL_VERSION,
        rootd_box_key: None,
    };
    bus_schema::encode(&agent_sign(&key, &claim))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_subject_outside_the_enrolment_inboxes_is_never_answered() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("victim").await;
    let victim = host.id.clone();
    // The victim is away: whatever lands on its queue waits there.
    host.agent.stop();

    let js = async_nats::jetstream::new(stack.client().await);
    let hb_seq = |js: async_nats::jetstream::Context, id: String| async move {
        js.get_stream(subjects::HB_STREAM)
            .await
            .unwrap()
            .get_last_raw_message_by_subject(&subjects::heartbeat(&id))
            .await
            .map(|m| m.sequence)
            .ok()
    };
    let jobs_seq = |js: async_nats::jetstream::Context| async move {
        js.get_stream(subjects::JOBS_STREAM)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .last_sequence
    };
    let hb_before = hb_seq(js.clone(), victim.clone()).await;
    let jobs_before = jobs_seq(js.clone()).await;

    let mut watch = watch(&stack).await;
    let attacker = enrolling_client(&stack).await;
    let lookalike = format!("{}ment.x", subjects::ENROLL_INBOX_PREFIX);
    let targets = [
        subjects::command(&victim),
        subjects::heartbeat(&victim),
        subjects::JOBS_SUBMIT.to_string(),
    ];
    let mut sent = 0u64;
    for target in &targets {
        for _ in 0..120 {
            attacker
                .publish_with_reply(subjects::ENROLL, target.clone(), HELLO.into())
                .await
                .unwrap();
            sent += 1;
        }
    }
    // A well-formed, signed claim gets no further: the subject is checked first.
    for target in [subjects::command(&victim), lookalike.clone()] {
        for _ in 0..5 {
            attacker
                .publish_with_reply(
                    subjects::ENROLL,
                    target.clone(),
                    signed_bogus_claim().into(),
                )
                .await
                .unwrap();
            sent += 1;
        }
    }
    // No reply subject at all: nobody to answer, nothing to do.
    for _ in 0..5 {
        attacker
            .publish(subjects::ENROLL, HELLO.into())
            .await
            .unwrap();
        sent += 1;
    }

    let probe = send_probe(&attacker).await;
    let (seen, probe_answer) = watch.until(&probe).await;
    // Garbage on a proper inbox still gets a clear answer.
    match bus_schema::decode::<EnrollAnswer>(&probe_answer.payload, None).unwrap() {
        EnrollAnswer::Unreadable { message } => {
            assert!(message.contains("malformed"), "{message}")
        }
        other => panic!("garbage was answered with {other:?}"),
    }
    let landed: Vec<&str> = seen
        .iter()
        .map(|m| m.subject.as_str())
        .filter(|s| targets.iter().any(|t| t == s) || s.starts_with(&lookalike))
        .collect();
    assert!(
        landed.is_empty(),
        "the control plane published on subjects the requester chose: {landed:?}"
    );

    // Nothing is stored where the attacker pointed.
    let cmd_stream = js.get_stream(subjects::cmd_stream(&victim)).await.unwrap();
    let per_subject = cmd_stream
        .info_with_subjects(subjects::command(&victim))
        .await
        .unwrap()
        .next()
        .await;
    assert!(
        per_subject.is_none(),
        "the victim's queue holds messages: {per_subject:?}"
    );
    assert_eq!(hb_seq(js.clone(), victim.clone()).await, hb_before);
    assert_eq!(jobs_seq(js.clone()).await, jobs_before);

    // The drops are counted, and nothing is counted against anyone.
    let (code, sec) = stack.get("/security").await;
    assert_eq!(code, 200, "{sec}");
    assert_eq!(sec["enrolment"]["dropped_requests"], json!(sent), "{sec}");
    assert_eq!(sec["refused"], json!([]), "{sec}");

    // The operator's next command is queued, and the host runs it when back.
    let (code, c) = stack.command(&victim, &json!({"action": "sys.ping"})).await;
    assert_eq!(code, 201, "{c}");
    host.agent = Stack::spawn_agent(&host.agent_toml, &host.dir);
    let done = stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let refusals = control_plane::db::entities::refusal::Entity::find()
        .filter(control_plane::db::entities::refusal::Column::AgentId.eq(victim.clone()))
        .all(&stack.db().await)
        .await
        .unwrap();
    assert!(refusals.is_empty(), "{refusals:?}");
    let (_, sec) = stack.get("/security").await;
    assert_eq!(sec["refused"], json!([]), "{sec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrolment_responder_may_publish_only_on_enrolment_inboxes() {
    let stack = Stack::start().await;
    let (opts, events) = record_server_errors(
        async_nats::ConnectOptions::with_credentials_file(
            stack.data_dir.join("enroll-responder.creds"),
        )
        .await
        .unwrap(),
    );
    let responder = opts.connect(stack.nats.url()).await.unwrap();
    let mut watch = watch(&stack).await;

    let someone = nkeys::KeyPair::new_user().public_key();
    let forbidden = [
        subjects::command(&someone),
        subjects::heartbeat(&someone),
        subjects::JOBS_SUBMIT.to_string(),
        subjects::agent_event(&someone),
        format!("{}ment.x", subjects::ENROLL_INBOX_PREFIX),
    ];
    for s in &forbidden {
        responder.publish(s.clone(), "x".into()).await.unwrap();
    }
    let allowed = format!("{}.allowed", subjects::ENROLL_INBOX_PREFIX);
    responder
        .publish(allowed.clone(), "ok".into())
        .await
        .unwrap();
    responder.flush().await.unwrap();

    // The allowed message passes; nothing published before it did.
    let (seen, _) = watch.until(&allowed).await;
    let seen: Vec<String> = seen.iter().map(|m| m.subject.to_string()).collect();
    for s in &forbidden {
        assert!(
            !seen.contains(s),
            "the broker let the responder publish on {s}"
        );
        let s = s.clone();
        let events = events.clone();
        wait_for(
            &format!("the broker to deny publishing on {s}"),
            Duration::from_secs(10),
            || {
                let (events, s) = (events.clone(), s.clone());
                async move {
                    events
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|e| {
                            e.starts_with("Permissions Violation for Publish") && e.contains(&s)
                        })
                        .then_some(())
                }
            },
        )
        .await;
    }
    // Nor may it read what it has no business with.
    let _sub = responder.subscribe(subjects::HB_ALL).await.unwrap();
    wait_for(
        "the broker to deny the responder's heartbeat subscription",
        Duration::from_secs(10),
        || async {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.starts_with("Permissions Violation for Subscription"))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_enrolling_clients_cannot_read_or_forge_a_hosts_answer() {
    let stack = Stack::start().await;
    // The eavesdropper holds the same shared credentials and listens on
    // every enrolment inbox, which the broker allows.
    let eavesdropper = enrolling_client(&stack).await;
    let mut all_inboxes = eavesdropper
        .subscribe(format!("{}.>", subjects::ENROLL_INBOX_PREFIX))
        .await
        .unwrap();
    eavesdropper.flush().await.unwrap();

    let token = stack.token(1, "1h", false).await;
    let mut host = stack
        .start_host_with("pending", &token, &random_machine_id())
        .await;
    let id = host.id.clone();

    // The first answer (pending) passes by; the eavesdropper learns the
    // host's inbox from it and floods it with answers of its making: the
    // control plane's answers to garbage and to someone else's valid claim.
    let first = tokio::time::timeout(Duration::from_secs(30), all_inboxes.next())
        .await
        .expect("the host's first enrolment answer within 30 s")
        .unwrap();
    let host_inbox = first.subject.to_string();
    let mut captured = vec![first];
    for _ in 0..50 {
        eavesdropper
            .publish_with_reply(subjects::ENROLL, host_inbox.clone(), HELLO.into())
            .await
            .unwrap();
    }
    for _ in 0..5 {
        eavesdropper
            .publish_with_reply(
                subjects::ENROLL,
                host_inbox.clone(),
                signed_bogus_claim().into(),
            )
            .await
            .unwrap();
    }
    wait_for(
        "the host to be pending",
        Duration::from_secs(30),
        || async {
            let (code, v) = stack.get(&format!("/agents/{id}")).await;
            (code == 200 && v["status"] == "pending").then_some(())
        },
    )
    .await;
    let (code, v) = stack
        .post(&format!("/agents/{id}/approve"), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    stack.wait_online(&id).await;
    assert_eq!(stack.ping(&id).await["status"], "succeeded");

    // Everything the responder sent before now, the approval included.
    let probe = send_probe(&eavesdropper).await;
    let (seen, _) = read_until(&mut all_inboxes, &probe).await;
    captured.extend(seen);
    let jwt = std::fs::read_to_string(host.state_dir.join("agent.jwt")).unwrap();
    let jwt = jwt.trim();
    assert!(!jwt.is_empty());
    let to_host: Vec<&async_nats::Message> = captured
        .iter()
        .filter(|m| m.subject.as_str() == host_inbox)
        .collect();
    // At least the pending answers, the approval and the flood's answers.
    assert!(
        to_host.len() >= 2 + 55,
        "only {} answers seen",
        to_host.len()
    );
    let mine = bus_schema::enroll::new_reply_key();
    let mut sealed = 0;
    for m in &to_host {
        let bytes: &[u8] = &m.payload;
        for secret in [jwt.as_bytes(), id.as_bytes(), b"approved", b"pending"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "an enrolment answer shows {} in clear",
                String::from_utf8_lossy(secret)
            );
        }
        match bus_schema::decode::<EnrollAnswer>(bytes, None).unwrap() {
            EnrollAnswer::Sealed {
                sender,
                sealed: body,
            } => {
                sealed += 1;
                let sender = nkeys::XKey::from_public_key(&sender).unwrap();
                assert!(
                    mine.open(&body, &sender).is_err(),
                    "another key opened a host's answer"
                );
            }
            EnrollAnswer::Unreadable { message } => {
                assert!(message.contains("malformed"), "{message}")
            }
        }
    }
    // The host's own answers and the bogus claims' answers are sealed; the
    // garbage's are not (there was no key to seal to).
    assert!(sealed >= 2 + 5, "only {sealed} sealed answers");
    let log = host.agent.log_text();
    assert!(!log.contains("enrolment rejected"), "{log}");
    host.agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_agents_enrol_through_sealed_answers() {
    let stack = Stack::start().await;
    let token = stack.token(3, "1h", true).await;
    let sim = stack.spawn_simulate(3, &token, 2, &[], "simulate.log");
    stack
        .wait_online_count("three virtual agents online", 3, Duration::from_secs(120))
        .await;
    assert!(!sim.log_text().contains("enrolment attempt failed"));
}
