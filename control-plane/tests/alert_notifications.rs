//! Alerting end to end, every part real: a nats-server, `drover serve` on
//! SQLite (its `alerts` and `notifications` duties, the DROVER_NOTIFY
//! stream and its deliverer), a webhook receiver in this process, an
//! `aiosmtpd` SMTP server, simulated hosts whose disk use the test sets
//! through `--metrics-file`, and a real agent + rootd whose `systemctl` is a
//! test double (systemd cannot run as PID 1 here; the double answers `show`
//! from state files the test edits).
//!
//! What is proved: a disk rule fires only after its duration and its
//! firing and resolved transitions each reach the webhook once, signed
//! with the channel's HMAC key; a watched unit that stops fires a
//! `service_not_active` alert that reaches a mailbox, and resolves when the
//! unit runs again.

mod common;

use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(90);
const SECRET: &str = "e2e-hook-key-0c5d7b2a9e41";

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// The accepted webhook messages whose `state` is `state`.
fn hooked(hook: &Hook, state: &str) -> Vec<Hooked> {
    hook.accepted()
        .into_iter()
        .filter(|h| h.json()["state"] == state)
        .collect()
}

/// Asserts the message is signed with [`SECRET`] over its exact body.
fn assert_signed(h: &Hooked) {
    assert_eq!(
        h.header("x-drover-signature"),
        format!("sha256={}", hmac_hex(SECRET, &h.body)),
        "signature of {}",
        String::from_utf8_lossy(&h.body)
    );
    assert!(!h.header("x-drover-delivery").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_alert_reaches_a_signed_webhook_once_per_transition_and_resolves() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    stack
        .add_channel(json!({
            "name": "ops-hook", "kind": "webhook", "config": {"url": hook.url()},
            "secret": SECRET, "min_severity": "warning",
        }))
        .await;
    let (_sim, ids, file) = sim_hosts_with_metrics(&stack, 1, "disk").await;
    let host = ids[0].clone();
    let rule = add_rule(
        &stack,
        json!({
            "name": "disk-full", "kind": "metric", "selector": format!("id:{host}"),
            "params": {"metric": "disk_used_percent", "op": ">", "threshold": 90},
            "for_secs": 3, "severity": "critical", "labels": {"team": "ops"},
        }),
    )
    .await;
    let rid = rule["id"].as_str().unwrap().to_string();

    // Over the threshold: pending (nothing sent), then firing after 3 s.
    set_disk_percent(&file, 95);
    wait_alert(&stack, &rid, &host, "pending", LONG).await;
    assert!(
        hook.accepted().is_empty(),
        "a pending alert is not notified"
    );
    let firing = wait_alert(&stack, &rid, &host, "firing", LONG).await;
    let msg = wait_for("the firing notification", LONG, || async {
        hooked(&hook, "firing").into_iter().next()
    })
    .await;
    assert_signed(&msg);
    let body = msg.json();
    assert_eq!(body["severity"], "critical", "{body}");
    assert_eq!(body["rule"]["name"], "disk-full", "{body}");
    let t = &body["transitions"][0];
    assert_eq!(t["alert_id"], firing["id"], "{body}");
    assert!(
        t["summary"].as_str().unwrap_or_default().contains("disk"),
        "{body}"
    );

    // Back under it: resolved, notified once, signed.
    set_disk_percent(&file, 20);
    wait_alert(&stack, &rid, &host, "resolved", LONG).await;
    let msg = wait_for("the resolved notification", LONG, || async {
        hooked(&hook, "resolved").into_iter().next()
    })
    .await;
    assert_signed(&msg);

    // A few more evaluation rounds and dispatcher ticks send nothing more:
    // one message per transition.
    wait_alert_rounds(&stack, 3, LONG).await;
    let all = hook.accepted();
    assert_eq!(all.len(), 2, "one firing and one resolved message");
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|h| h.header("x-drover-delivery")).collect();
    assert_eq!(ids.len(), 2, "two distinct deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_watched_unit_fires_its_alert_by_email_and_resolves() {
    let stack = Stack::start().await;
    let smtp = Smtp::start(stack.tmp.path()).await;
    stack
        .add_channel(json!({
            "name": "mail", "kind": "email",
            "config": {"host": "127.0.0.1", "port": smtp.port, "tls": "none",
                       "from": "Drover <drover@example.test>", "to": ["ops@example.test"]},
        }))
        .await;
    let (host, states) = host_with_unit_states(&stack, "web-e2e").await;
    let (code, body) = stack
        .post(
            "/services/watches",
            &json!({"name": "web", "selector": format!("id:{}", host.id), "units": ["nginx"]}),
        )
        .await;
    assert!(code < 300, "watch list: {code} {body}");
    let rule = add_rule(
        &stack,
        json!({
            "name": "nginx-down", "kind": "service_not_active",
            "params": {"unit": "nginx"}, "for_secs": 0, "severity": "warning",
        }),
    )
    .await;
    let rid = rule["id"].as_str().unwrap().to_string();
    let target = format!("{}/nginx.service", host.id);

    // The unit is reported running first: nothing fires.
    wait_for("nginx reported active", LONG, || async {
        service_rows(&stack, "?unit=nginx")
            .await
            .iter()
            .any(|r| r["agent_id"] == host.id.as_str() && r["active_state"] == "active")
            .then_some(())
    })
    .await;
    wait_alert_rounds(&stack, 2, LONG).await;
    assert!(alerts_of(&stack, &rid).await.is_empty());

    // It stops: the alert fires and the mail says so.
    set_unit_state(&states, "nginx.service", "failed", "failed");
    let firing = wait_alert(&stack, &rid, &target, "firing", LONG).await;
    assert_eq!(firing["agent_id"], host.id.as_str(), "{firing}");
    let log = wait_for("the firing mail", LONG, || async {
        let l = smtp.log();
        l.contains("[FIRING]").then_some(l)
    })
    .await;
    assert!(log.contains("nginx-down"), "{log}");
    assert!(log.contains("ops@example.test"), "{log}");

    // It runs again: resolved, and a second mail.
    set_unit_state(&states, "nginx.service", "active", "running");
    let resolved: Value = wait_alert(&stack, &rid, &target, "resolved", LONG).await;
    assert_eq!(
        transitions(&resolved),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)],
        "{resolved}"
    );
    wait_for("the resolved mail", LONG, || async {
        smtp.log().contains("[RESOLVED]").then_some(())
    })
    .await;
}
