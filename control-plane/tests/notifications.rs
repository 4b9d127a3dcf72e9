//! Notifications end to end, with real parts: a nats-server, `drover
//! serve` on SQLite, a webhook receiver in this process and an `aiosmtpd`
//! SMTP server. Transitions are made through `POST
//! /notify/channels/{id}/test`, which appends a real `alert_transitions`
//! row that takes the whole path (outbox, dispatcher, DROVER_NOTIFY,
//! deliverer).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::json;

const SECRET: &str = "hmac-key-5b1e0c7d93fa44e1";
const SMTP_PASSWORD: &str = "smtp-pass-8f31a2c6d0b94e77";

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_bad_input_refused_and_secrets_never_shown() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;

    // Bad input: 400 with a reason, and nothing stored.
    let bad = [
        (
            json!({"name": "x", "kind": "pager", "config": {}}),
            "unknown channel kind",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "not a url"}}),
            "not a URL",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "file:///etc/passwd"}}),
            "scheme",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "ftp://h/x"}}),
            "scheme",
        ),
        (
            json!({"name": "x", "kind": "email", "config": {"host": "h", "from": "a@b.c", "to": []}}),
            "recipient",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "https://h/x", "format": "irc"}}),
            "format",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "https://h/x"}, "quiet_hours": {"start": "25:00", "end": "07:00"}}),
            "HH:MM",
        ),
        (
            json!({"name": "x", "kind": "webhook", "config": {"url": "https://h/x"}, "min_severity": "loud"}),
            "min_severity",
        ),
        (json!({"name": "bad name!", "kind": "bus"}), "name"),
    ];
    for (body, says) in bad {
        let (st, v) = stack.post("/notify/channels", &body).await;
        assert_eq!(st, 400, "{body} -> {v}");
        let err = v["error"].as_str().unwrap_or_default();
        assert!(
            err.contains(says),
            "{body}: error {err:?} should say {says:?}"
        );
    }
    let (_, v) = stack.get("/notify/channels").await;
    assert_eq!(v["channels"], json!([]), "nothing stored after bad input");

    let ch = stack.add_channel(
        json!({"name": "ops-hook", "kind": "webhook", "config": {"url": hook.url()}, "secret": SECRET}),
    )
    .await;
    assert_eq!(ch["secret"], "set");
    let id = ch["id"].as_str().unwrap().to_string();
    // An email channel with a password, to look for that secret too.
    let mail = stack.add_channel(
        json!({"name": "ops-mail", "kind": "email", "config": {"host": "127.0.0.1", "port": 2525,
               "tls": "starttls", "from": "drover@example.test", "to": ["ops@example.test"],
               "username": "drover"}, "secret": SMTP_PASSWORD, "enabled": false}),
    )
    .await;
    assert_eq!(mail["secret"], "set");
    // A duplicate name is refused.
    let (st, _) = stack
        .post(
            "/notify/channels",
            &json!({"name": "ops-hook", "kind": "bus"}),
        )
        .await;
    assert_eq!(st, 409);

    let tid = stack.test_notify(&id, "warning").await;
    let got = wait_for(
        "the webhook to get the test",
        Duration::from_secs(30),
        || async { hook.accepted().first().cloned() },
    )
    .await;
    let sig = got.header("x-drover-signature");
    assert_eq!(
        sig,
        format!("sha256={}", hmac_hex(SECRET, &got.body)),
        "HMAC of the body"
    );
    assert_ne!(sig, format!("sha256={}", hmac_hex("other", &got.body)));
    let body = got.json();
    assert_eq!(body["transitions"][0]["id"], tid);
    assert_eq!(body["severity"], "warning");
    assert_eq!(body["channel"]["name"], "ops-hook");
    let delivery = got.header("x-drover-delivery").to_string();
    assert_eq!(body["delivery"], delivery.as_str());
    let ds = wait_for(
        "the delivery recorded sent",
        Duration::from_secs(10),
        || async {
            let ds = stack.deliveries(&id).await;
            (ds.len() == 1 && ds[0]["state"] == "sent").then_some(ds)
        },
    )
    .await;
    assert_eq!(ds[0]["id"], delivery.as_str());
    assert_eq!(ds[0]["attempts"], 1);

    // A change keeps the secret unless given; the API never shows it.
    let (st, v) = stack
        .put(
            &format!("/notify/channels/{id}"),
            &json!({"name": "ops-hook", "kind": "webhook", "config": {"url": hook.url(), "format": "slack"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["secret"], "set");

    // Slack format: a `text` body, signed the same way.
    stack.test_notify(&id, "critical").await;
    let slack = wait_for("the slack-format test", Duration::from_secs(30), || async {
        hook.accepted().get(1).cloned()
    })
    .await;
    let text = slack.json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("[FIRING] Test notification"), "{text}");
    assert_eq!(
        slack.header("x-drover-signature"),
        format!("sha256={}", hmac_hex(SECRET, &slack.body))
    );

    // The window after a crash: the first transition's message published
    // again (another message id, past the broker's duplicate check) is
    // recognised by its (transition, channel) key and not sent again.
    let js = async_nats::jetstream::new(stack.client().await);
    js.publish(
        format!("drover.notify.{id}"),
        json!({"transition": tid, "channel": id}).to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    wait_consumer_settled(&stack, "DROVER_NOTIFY", "drover-notify").await;
    assert_eq!(
        hook.accepted().len(),
        2,
        "the republished one was not sent again"
    );

    // The secrets' bytes appear nowhere: database files, API answers, log.
    let mut answers = String::new();
    for p in [
        "/notify/channels".to_string(),
        format!("/notify/channels/{id}/deliveries"),
        "/audit".to_string(),
    ] {
        let (_, v) = stack.get(&p).await;
        answers.push_str(&v.to_string());
    }
    assert!(answers.contains("ops-mail"), "the answers were read");
    let log = stack.cp.log_text();
    assert!(
        log.contains("notification channel created"),
        "the log was read"
    );
    for secret in [SECRET, SMTP_PASSWORD] {
        assert!(!answers.contains(secret), "{secret} in an API answer");
        assert!(!log.contains(secret), "{secret} in the control plane's log");
        assert!(
            !stack.database_holds(secret.as_bytes()),
            "{secret} in the database"
        );
    }
    let key = std::fs::metadata(stack.data_dir.join("notify.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    let (st, _) = stack.delete(&format!("/notify/channels/{id}")).await;
    assert_eq!(st, 200);
    let (st, _) = stack
        .get(&format!("/notify/channels/{id}/deliveries"))
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_back_gets_each_notification_exactly_once() {
    let mut stack = Stack::start().await;
    // Short retries, so the outage passes quickly.
    let fast = [("DROVER_NOTIFY_RETRY_BASE_MS", "100")];
    stack.restart_cp_with(&fast).await;
    let mut hook = Hook::start().await;
    hook.stop().await; // connection refused from now on
    let ch = stack.add_channel(
        json!({"name": "pager", "kind": "webhook", "config": {"url": hook.url()}, "secret": SECRET}),
    )
    .await;
    let id = ch["id"].as_str().unwrap().to_string();
    let mut tids = Vec::new();
    for _ in 0..3 {
        tids.push(stack.test_notify(&id, "critical").await);
    }
    wait_for(
        "every delivery to have failed once (refused)",
        Duration::from_secs(30),
        || async {
            let ds = stack.deliveries(&id).await;
            (ds.len() == 3 && ds.iter().all(|d| d["state"] == "retrying")).then_some(())
        },
    )
    .await;
    // The control plane restarts while the receiver is still away.
    stack.restart_cp_with(&fast).await;
    // Back, but failing: 500s.
    hook.set_failing(true);
    hook.resume().await;
    wait_for("500s to be seen", Duration::from_secs(30), || async {
        let ds = stack.deliveries(&id).await;
        ds.iter()
            .any(|d| d["last_error"].as_str().unwrap_or("").contains("500"))
            .then_some(())
    })
    .await;
    hook.set_failing(false);
    wait_for("every delivery sent", Duration::from_secs(60), || async {
        let ds = stack.deliveries(&id).await;
        (ds.len() == 3 && ds.iter().all(|d| d["state"] == "sent")).then_some(())
    })
    .await;
    wait_consumer_settled(&stack, "DROVER_NOTIFY", "drover-notify").await;

    let accepted = hook.accepted();
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    let mut seen_transitions = Vec::new();
    for h in &accepted {
        *per_delivery
            .entry(h.header("x-drover-delivery").into())
            .or_default() += 1;
        for t in h.json()["transitions"].as_array().unwrap() {
            seen_transitions.push(t["id"].as_i64().unwrap());
        }
    }
    assert_eq!(per_delivery.len(), 3, "{per_delivery:?}");
    assert!(per_delivery.values().all(|n| *n == 1), "{per_delivery:?}");
    seen_transitions.sort();
    assert_eq!(seen_transitions, tids, "each transition exactly once");
    assert!(
        hook.all().len() > accepted.len(),
        "some attempts were answered 500"
    );
    // Every attempt of one delivery carried the same delivery id.
    for d in stack.deliveries(&id).await {
        assert!(d["attempts"].as_i64().unwrap() >= 2, "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_the_smtp_server() {
    let stack = Stack::start().await;
    let smtp = Smtp::start(stack.tmp.path()).await;
    let ch = stack.add_channel(
        json!({"name": "mail", "kind": "email", "config": {"host": "127.0.0.1", "port": smtp.port,
               "tls": "none", "from": "Drover <drover@example.test>", "to": ["ops@example.test"]}}),
    )
    .await;
    let id = ch["id"].as_str().unwrap();
    stack.test_notify(id, "critical").await;
    let log = wait_for(
        "the mail at the SMTP server",
        Duration::from_secs(30),
        || async {
            let l = smtp.log();
            l.contains("Test notification for channel mail")
                .then_some(l)
        },
    )
    .await;
    assert!(
        log.contains("Subject: [Drover] [FIRING] Test notification"),
        "{log}"
    );
    assert!(log.contains("ops@example.test"), "{log}");
    assert!(log.contains("- firing critical channel mail"), "{log}");
    // Recorded once the server has taken it.
    wait_for(
        "the mail recorded sent",
        Duration::from_secs(10),
        || async {
            let ds = stack.deliveries(id).await;
            (ds.len() == 1 && ds[0]["state"] == "sent").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_sends_one_message_for_many_transitions() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    let ch = stack.add_channel(
        json!({"name": "grouped", "kind": "webhook", "config": {"url": hook.url()}, "group_secs": 4}),
    )
    .await;
    let id = ch["id"].as_str().unwrap();
    let mut tids = Vec::new();
    for _ in 0..6 {
        tids.push(stack.test_notify(id, "warning").await);
    }
    let ds = wait_for(
        "the grouped delivery sent",
        Duration::from_secs(30),
        || async {
            let ds = stack.deliveries(id).await;
            (!ds.is_empty() && ds.iter().all(|d| d["state"] == "sent")).then_some(ds)
        },
    )
    .await;
    assert_eq!(ds.len(), 1, "one delivery: {ds:?}");
    assert_eq!(ds[0]["transition_ids"].as_array().unwrap().len(), 6);
    wait_consumer_settled(&stack, "DROVER_NOTIFY", "drover-notify").await;
    let got = hook.accepted();
    assert_eq!(got.len(), 1, "one message for six transitions");
    let body = got[0].json();
    assert_eq!(body["count"], 6);
    let mut ids: Vec<i64> = body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, tids);
    assert!(
        body["title"].as_str().unwrap().contains("(6 hosts)"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_until_they_end_and_critical_may_bypass() {
    use chrono::Timelike;
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    // Quiet hours from this minute to the next (UTC); with enough of this
    // minute left to see the notification held.
    let now = wait_for(
        "a minute with 20 s left",
        Duration::from_secs(61),
        || async {
            let n = chrono::Utc::now();
            (n.second() < 40).then_some(n)
        },
    )
    .await;
    let m = now.hour() * 60 + now.minute();
    let hhmm = |m: u32| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    let ch = stack
        .add_channel(
            json!({"name": "night", "kind": "webhook", "config": {"url": hook.url()},
               "quiet_hours": {"start": hhmm(m), "end": hhmm((m + 1) % 1440),
                               "timezone": "UTC", "bypass_critical": true}}),
        )
        .await;
    let id = ch["id"].as_str().unwrap();
    let held = stack.test_notify(id, "warning").await;
    let d = wait_for(
        "the warning held by quiet hours",
        Duration::from_secs(15),
        || async {
            let ds = stack.deliveries(id).await;
            ds.into_iter().find(|d| !d["held_until"].is_null())
        },
    )
    .await;
    assert_eq!(d["state"], "queued");
    let urgent = stack.test_notify(id, "critical").await;
    let first = wait_for(
        "the critical one, bypassing",
        Duration::from_secs(15),
        || async { hook.accepted().first().cloned() },
    )
    .await;
    assert_eq!(first.json()["transitions"][0]["id"], urgent);
    assert_eq!(hook.accepted().len(), 1, "the warning is still held");
    assert_eq!(
        stack
            .deliveries(id)
            .await
            .iter()
            .filter(|d| d["state"] == "queued")
            .count(),
        1
    );
    let later = wait_for(
        "the warning after quiet hours",
        Duration::from_secs(90),
        || async { hook.accepted().get(1).cloned() },
    )
    .await;
    assert_eq!(later.json()["transitions"][0]["id"], held);
    let sent = stack
        .deliveries(id)
        .await
        .into_iter()
        .find(|x| x["id"] == d["id"])
        .unwrap();
    assert_eq!(sent["state"], "sent");
    assert!(
        sent["sent_at"].as_i64() >= d["held_until"].as_i64(),
        "{sent}"
    );
}
