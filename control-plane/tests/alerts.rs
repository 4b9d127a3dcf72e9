//! Alert rules and the alert lifecycle end to end: a real nats-server,
//! `drover serve` with SQLite, and `drover-agent simulate` hosts whose disk
//! use the test sets through `--metrics-file`. What is proved: a metric rule
//! goes pending, fires only after its duration with one `firing` outbox row,
//! resolves with one `resolved` row; acknowledging suppresses the rest;
//! `host_offline` fires when the hosts die and resolves when they return;
//! a silence and an open maintenance window mark their hosts' transitions
//! suppressed; `agent_outdated` follows the configured minimum version; bad
//! rules are refused and nothing is stored; the CLI and the audit trail see
//! it all.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(60);

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

async fn audit_actions(stack: &Stack) -> Vec<String> {
    let (_, v) = stack.get("/audit?limit=1000").await;
    v["entries"]
        .as_array()
        .or_else(|| v["audit"].as_array())
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| s(&e["action"]).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_rule_goes_pending_fires_after_its_duration_and_resolves() {
    let stack = Stack::start().await;
    let bus = stack.client().await;
    let mut events = bus.subscribe("drover.evt.alert.>").await.unwrap();
    let (_sim, ids, file) = sim_hosts_with_metrics(&stack, 1, "disk").await;
    let host = &ids[0];
    let rule = add_rule(
        &stack,
        json!({
            "name": "disk-full", "kind": "metric", "selector": format!("id:{host}"),
            "params": {"metric": "disk_used_percent", "op": ">", "threshold": 90},
            "for_secs": 4, "severity": "critical", "labels": {"team": "ops"},
        }),
    )
    .await;
    let rid = s(&rule["id"]).to_string();

    // Over the threshold: pending first, firing only after 4 s of it.
    set_disk_percent(&file, 95);
    let pending = wait_alert(&stack, &rid, host, "pending", LONG).await;
    assert!(transitions(&pending).is_empty(), "{pending}");
    assert!(pending["fired_at"].is_null());
    let firing = wait_alert(&stack, &rid, host, "firing", LONG).await;
    assert_eq!(
        firing["id"], pending["id"],
        "the pending alert is the one that fires"
    );
    let held = firing["fired_at"].as_i64().unwrap() - firing["first_at"].as_i64().unwrap();
    assert!(
        held >= 4000,
        "fired after {held} ms of pending, before its 4 s: {firing}"
    );
    assert_eq!(transitions(&firing), vec![("firing".to_string(), None)]);
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["labels"]["team"], "ops");
    assert_eq!(firing["labels"]["rule"], "disk-full");
    assert!(firing["value"].as_f64().unwrap() > 90.0, "{firing}");
    assert!(
        s(&firing["summary"]).contains("disk_used_percent"),
        "{firing}"
    );

    // Back under: resolved, with one more transition.
    set_disk_percent(&file, 50);
    let resolved = wait_alert_state(&stack, s(&firing["id"]), "resolved", LONG).await;
    assert_eq!(
        transitions(&resolved),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)]
    );

    // A second episode is a new alert; acknowledged, its resolution is
    // still notified (its firing was): receivers learn it is over.
    set_disk_percent(&file, 97);
    let again = wait_alert(&stack, &rid, host, "firing", LONG).await;
    assert_ne!(again["id"], firing["id"]);
    let aid = s(&again["id"]).to_string();
    let (code, acked) = stack.post(&format!("/alerts/{aid}/ack"), &json!({})).await;
    assert_eq!(code, 200, "{acked}");
    assert!(
        acked["acked_by"].is_string() && acked["acked_at"].is_i64(),
        "{acked}"
    );
    let (code, twice) = stack.post(&format!("/alerts/{aid}/ack"), &json!({})).await;
    assert_eq!((code, &twice["acked_at"]), (200, &acked["acked_at"]));
    set_disk_percent(&file, 10);
    let done = wait_alert_state(&stack, &aid, "resolved", LONG).await;
    assert_eq!(
        transitions(&done),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)]
    );
    let (code, v) = stack.post(&format!("/alerts/{aid}/ack"), &json!({})).await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = stack.get("/alerts/no-such-alert").await;
    assert_eq!(code, 404, "{v}");
    assert!(s(&v["error"]).contains("drover alerts"), "{v}");

    // The bus saw each change of the first alert, in order.
    let first = s(&firing["id"]).to_string();
    let mut seen = vec![];
    let deadline = tokio::time::Instant::now() + LONG;
    while seen.len() < 3 {
        let m = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("alert events on the bus")
            .unwrap();
        if let Ok(bus_schema::Event::Alert {
            alert_id, state, ..
        }) = bus_schema::decode::<bus_schema::Event>(&m.payload, None)
        {
            if alert_id == first {
                seen.push(state);
            }
        }
    }
    assert_eq!(seen, ["pending", "firing", "resolved"]);
    let audit = audit_actions(&stack).await;
    assert!(audit.iter().any(|a| a == "alert_rule.create"), "{audit:?}");
    assert!(audit.iter().any(|a| a == "alert.ack"), "{audit:?}");

    // Removing the rule resolves what it raised.
    set_disk_percent(&file, 99);
    let third = wait_alert(&stack, &rid, host, "firing", LONG).await;
    let (code, v) = alerts_api(&stack, "DELETE", &format!("/alerts/rules/{rid}"), None).await;
    assert_eq!(code, 200, "{v}");
    let gone = wait_alert_state(&stack, s(&third["id"]), "resolved", LONG).await;
    assert_eq!(
        transitions(&gone),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)]
    );
    assert_eq!(gone["transitions"][1]["rule_name"], "disk-full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_offline_fires_when_hosts_die_and_a_silence_suppresses_its_host() {
    let stack = Stack::start().await;
    let (mut sim, ids, _file) = sim_hosts_with_metrics(&stack, 3, "edge").await;
    // edge-2 is in a maintenance window open all day, every day.
    let (code, w) = stack
        .post(
            "/windows",
            &json!({"name": "all-day", "selector": format!("id:{}", ids[2]),
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": "00:00", "duration_minutes": 1440, "timezone": "UTC"}),
        )
        .await;
    assert_eq!(code, 201, "{w}");
    let rule = add_rule(
        &stack,
        json!({"name": "down", "kind": "host_offline", "severity": "critical"}),
    )
    .await;
    let rid = s(&rule["id"]).to_string();
    let (code, v) = stack
        .post(
            "/silences",
            &json!({"rule": "down", "selector": "all", "duration_secs": 3600}),
        )
        .await;
    assert_eq!(code, 400, "a silence needs a comment: {v}");
    assert!(s(&v["error"]).contains("comment"), "{v}");
    let (code, silence) = stack
        .post(
            "/silences",
            &json!({"rule": "down", "selector": format!("id:{}", ids[1]),
                    "duration_secs": 3600, "comment": "planned work on edge-1"}),
        )
        .await;
    assert_eq!(code, 201, "{silence}");
    assert_eq!(silence["active"], true);

    sim.kill9();
    let loud = wait_alert(&stack, &rid, &ids[0], "firing", LONG).await;
    let quiet = wait_alert(&stack, &rid, &ids[1], "firing", LONG).await;
    assert_eq!(transitions(&loud), vec![("firing".to_string(), None)]);
    assert_eq!(
        transitions(&quiet),
        vec![("firing".to_string(), Some("silenced".to_string()))]
    );
    assert!(s(&loud["summary"]).contains("offline"), "{loud}");
    let kept = wait_alert(&stack, &rid, &ids[2], "firing", LONG).await;
    assert_eq!(
        transitions(&kept),
        vec![("firing".to_string(), Some("maintenance window".to_string()))]
    );

    let token = stack.token(4, "1h", true).await;
    let _back = sim_restart(&stack, &token, 3, &stack.tmp.path().join("edge"));
    let loud = wait_alert(&stack, &rid, &ids[0], "resolved", LONG).await;
    let quiet = wait_alert(&stack, &rid, &ids[1], "resolved", LONG).await;
    assert_eq!(
        transitions(&loud),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)]
    );
    assert_eq!(
        transitions(&quiet)[1],
        ("resolved".to_string(), Some("silenced".to_string()))
    );

    // Removing the silence ends it.
    let sid = s(&silence["id"]).to_string();
    let (code, _) = alerts_api(&stack, "DELETE", &format!("/silences/{sid}"), None).await;
    assert_eq!(code, 200);
    let (_, list) = stack.get("/silences").await;
    assert!(list["silences"].as_array().unwrap().is_empty(), "{list}");
    let (code, _) = alerts_api(&stack, "DELETE", &format!("/silences/{sid}"), None).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_what_to_write_and_nothing_is_stored() {
    let stack = Stack::start().await;
    let metric = |params: Value| json!({"name": "m", "kind": "metric", "params": params});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "x", "kind": "disk_full"}), "use one of"),
        (
            metric(json!({"metric": "disk_free", "op": ">", "threshold": 90})),
            "disk_used_percent",
        ),
        (
            metric(json!({"metric": "disk_used_percent", "op": ">", "threshold": 150})),
            "0 to 100",
        ),
        (
            metric(json!({"metric": "disk_used_percent", "op": "=", "threshold": 90})),
            "write",
        ),
        (
            metric(json!({"metric": "disk_used_percent", "op": ">"})),
            "threshold",
        ),
        (
            json!({"name": "x", "kind": "host_offline", "severity": "urgent"}),
            "info, warning or critical",
        ),
        (
            json!({"name": "x", "kind": "host_offline", "for_secs": -1}),
            "for_secs",
        ),
        (
            json!({"name": "x", "kind": "host_offline", "selector": "bogus:1"}),
            "selector",
        ),
        (
            json!({"name": "x", "kind": "host_offline", "params": {"unit": "x"}}),
            "unknown field",
        ),
        (
            json!({"name": "x", "kind": "job_failed", "params": {"min_hosts": 0}}),
            "min_hosts",
        ),
        (
            json!({"name": "x", "kind": "service_not_active", "params": {"unit": "a b"}}),
            "unit",
        ),
        (json!({"name": "", "kind": "host_offline"}), "name"),
        (
            json!({"name": "x", "kind": "host_offline", "labels": {"bad key": "v"}}),
            "label",
        ),
    ];
    for (body, says) in &cases {
        let (code, v) = stack.post("/alerts/rules", body).await;
        assert_eq!(code, 400, "{body} → {v}");
        assert!(
            s(&v["error"]).contains(says),
            "{body}: {v} should say {says:?}"
        );
    }
    let (code, v) = stack
        .post_raw_json(
            "/alerts/rules",
            r#"{"name": "x", "kind": "host_offline", "extra": 1}"#.into(),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    let (_, v) = stack.get("/alerts/rules").await;
    assert_eq!(v["rules"], json!([]), "nothing stored");

    // The CLI adds, lists, changes and removes.
    let out = stack.drover(&[
        "alerts",
        "rules",
        "add",
        "disk",
        "--kind",
        "metric",
        "--param",
        "metric=disk_used_percent",
        "--param",
        "op=>",
        "--param",
        "threshold=90",
        "--for",
        "5m",
        "--label",
        "team=ops",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["for_secs"].as_i64(), r["severity"].as_str()),
        (Some(300), Some("warning"))
    );
    assert_eq!(r["params"]["threshold"], 90.0);
    let out = stack.drover(&["alerts", "rules", "add", "disk", "--kind", "host_offline"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = stack.drover(&[
        "alerts",
        "rules",
        "add",
        "x",
        "--kind",
        "metric",
        "--param",
        "metric=nope",
    ]);
    assert!(!out.status.success());
    let out = stack.drover(&["alerts", "rules", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rules"].as_array().unwrap().len(), 1, "{v}");
    let (code, v) = alerts_api(
        &stack,
        "PUT",
        &format!("/alerts/rules/{}", s(&r["id"])),
        Some(&json!({"name": "disk", "kind": "metric", "enabled": false,
                     "params": {"metric": "disk_used_percent", "op": ">", "threshold": 80}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["enabled"].as_bool(), &v["params"]["threshold"]),
        (Some(false), &json!(80.0))
    );
    let out = stack.drover(&["alerts", "--state", "firing", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["alerts"], json!([]));
    let out = stack.drover(&["alerts", "--state", "burning"]);
    assert!(!out.status.success());
    let out = stack.drover(&[
        "silences",
        "add",
        "--rule",
        "disk",
        "--for",
        "2h",
        "--comment",
        "resize",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sil: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sil["rule_id"], r["id"]);
    let out = stack.drover(&["silences", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["silences"].as_array().unwrap().len(), 1);
    let out = stack.drover(&["silences", "remove", s(&sil["id"])]);
    assert!(out.status.success());
    let out = stack.drover(&["alerts", "rules", "remove", "disk"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = stack.get("/alerts/rules").await;
    assert_eq!(v["rules"], json!([]));
    let audit = audit_actions(&stack).await;
    for a in [
        "alert_rule.create",
        "alert_rule.update",
        "alert_rule.delete",
        "silence.create",
        "silence.delete",
    ] {
        assert!(audit.iter().any(|x| x == a), "{a} not in {audit:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_outdated_fires_when_the_minimum_version_rises_and_resolves_when_it_drops() {
    let mut stack = Stack::start().await;
    // The simulated hosts report SIM_FROM_VERSION (1.0.0).
    let (_sim, ids, _file) = sim_hosts_with_metrics(&stack, 1, "old").await;
    let rule = add_rule(
        &stack,
        json!({"name": "outdated", "kind": "agent_outdated"}),
    )
    .await;
    let rid = s(&rule["id"]).to_string();
    wait_alert_rounds(&stack, 2, LONG).await;
    assert!(
        alerts_of(&stack, &rid).await.is_empty(),
        "1.0.0 meets the built-in minimum"
    );

    stack
        .restart_cp_with(&[("DROVER_MIN_AGENT_VERSION", "1.5.0")])
        .await;
    let firing = wait_alert(&stack, &rid, &ids[0], "firing", LONG).await;
    assert!(s(&firing["summary"]).contains("1.0.0"), "{firing}");
    assert_eq!(transitions(&firing), vec![("firing".to_string(), None)]);

    stack
        .restart_cp_with(&[("DROVER_MIN_AGENT_VERSION", "1.0.0")])
        .await;
    let done = wait_alert_state(&stack, s(&firing["id"]), "resolved", LONG).await;
    assert_eq!(
        transitions(&done),
        vec![("firing".to_string(), None), ("resolved".to_string(), None)]
    );
}
