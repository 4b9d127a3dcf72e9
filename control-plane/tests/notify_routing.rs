//! Notifications fed the way alert evaluation feeds them — rows appended to
//! the `alert_transitions` outbox — and the bus channel, driven through the
//! `drover notify` CLI. Real parts: a nats-server, `drover serve` on
//! SQLite, a webhook receiver in this process.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Appends outbox rows the way alert evaluation does (part of the contract:
/// the evaluator writes `alert_transitions`, nothing else).
async fn outbox(
    db: &sea_orm::DatabaseConnection,
    rule: &str,
    host: &str,
    severity: &str,
    labels: Value,
    suppressed: Option<&str>,
) -> i64 {
    use control_plane::alerts::transition::alert_transition;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    alert_transition::ActiveModel {
        alert_id: Set(format!("{rule}:{host}")),
        rule_id: Set(rule.into()),
        rule_name: Set(format!("rule {rule}")),
        agent_id: Set(Some(format!("agent-{host}"))),
        hostname: Set(Some(host.into())),
        target: Set(format!("agent-{host}")),
        state: Set("firing".into()),
        severity: Set(severity.into()),
        summary: Set(format!("{rule} on {host}")),
        labels: Set(labels.to_string()),
        at: Set(bus_schema::now_ms()),
        suppressed: Set(suppressed.map(String::from)),
        dispatched_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_are_routed_grouped_and_suppressed_ones_skipped() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    let db = stack.db().await;
    // Every critical alert of rule "disk" for team db, grouped.
    let ch = stack
        .add_channel(
            json!({"name": "db-team", "kind": "webhook", "config": {"url": hook.url()},
               "min_severity": "critical", "rule_ids": ["disk"], "matchers": {"team": "db"},
               "group_secs": 5}),
        )
        .await;
    let id = ch["id"].as_str().unwrap();
    let db_team = json!({"team": "db"});
    let mut wanted = Vec::new();
    for i in 0..40 {
        wanted.push(
            outbox(
                &db,
                "disk",
                &format!("db-{i}"),
                "critical",
                db_team.clone(),
                None,
            )
            .await,
        );
    }
    // Not for this channel: too low, another rule, another team, silenced.
    let low = outbox(&db, "disk", "db-x", "warning", db_team.clone(), None).await;
    let other_rule = outbox(&db, "load", "db-y", "critical", db_team.clone(), None).await;
    let other_team = outbox(
        &db,
        "disk",
        "web-1",
        "critical",
        json!({"team": "web"}),
        None,
    )
    .await;
    let silenced = outbox(
        &db,
        "disk",
        "db-z",
        "critical",
        db_team.clone(),
        Some("silenced"),
    )
    .await;

    let ds = wait_for(
        "one grouped delivery sent",
        Duration::from_secs(30),
        || async {
            let ds = stack.deliveries(id).await;
            (!ds.is_empty() && ds.iter().all(|d| d["state"] == "sent")).then_some(ds)
        },
    )
    .await;
    // Every outbox row is marked dispatched, the skipped ones included.
    use control_plane::alerts::transition::alert_transition;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    wait_for(
        "every outbox row dispatched",
        Duration::from_secs(15),
        || async {
            let left = alert_transition::Entity::find()
                .filter(alert_transition::Column::DispatchedAt.is_null())
                .count(&db)
                .await
                .ok()?;
            (left == 0).then_some(())
        },
    )
    .await;
    wait_consumer_settled(&stack, "DROVER_NOTIFY", "drover-notify").await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(
        stack.deliveries(id).await.len(),
        1,
        "no later delivery either"
    );
    let got = hook.accepted();
    assert_eq!(got.len(), 1, "40 hosts, one message");
    let body = got[0].json();
    let mut ids: Vec<i64> = body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, wanted);
    for not in [low, other_rule, other_team, silenced] {
        assert!(!ids.contains(&not), "{not} must not be sent");
    }
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("db-0") && text.contains("db-39"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_channel_publishes_to_drover_alerts_through_the_cli() {
    use futures::StreamExt;
    let stack = Stack::start().await;
    let run = |args: &[&str]| {
        let out = stack.drover(args);
        assert!(
            out.status.success(),
            "drover {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Quiet hours that critical alerts bypass: the critical test below
    // goes out whatever the time of day.
    let added: Value = serde_json::from_str(&run(&[
        "notify",
        "channels",
        "add",
        "robots",
        "--kind",
        "bus",
        "--quiet",
        "22:00-07:00",
        "--quiet-timezone",
        "Europe/Paris",
        "--quiet-bypass-critical",
        "--match",
        "channel-test=yes",
        "--json",
    ]))
    .unwrap();
    let id = added["id"].as_str().unwrap().to_string();
    assert_eq!(added["quiet_hours"]["start"], "22:00", "{added}");
    assert_eq!(added["quiet_hours"]["timezone"], "Europe/Paris");
    assert_eq!(added["quiet_hours"]["bypass_critical"], true);
    assert_eq!(added["matchers"]["channel-test"], "yes");
    // Bad input from the CLI: a clear error, nothing stored.
    let bad = stack.drover(&[
        "notify",
        "channels",
        "add",
        "x",
        "--kind",
        "webhook",
        "--url",
        "gopher://h",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("http"),
        "{bad:?}"
    );
    let list: Value =
        serde_json::from_str(&run(&["notify", "channels", "list", "--json"])).unwrap();
    assert_eq!(list["channels"].as_array().unwrap().len(), 1, "{list}");
    assert!(run(&["notify", "channels", "list"]).contains("robots"));

    let js = async_nats::jetstream::new(stack.client().await);
    run(&[
        "notify",
        "channels",
        "test",
        "robots",
        "--severity",
        "critical",
    ]);
    let stream = wait_for(
        "the DROVER_ALERTS stream",
        Duration::from_secs(30),
        || async {
            let mut s = js.get_stream("DROVER_ALERTS").await.ok()?;
            (s.info().await.ok()?.state.messages == 1).then_some(s)
        },
    )
    .await;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let mut msgs = consumer.fetch().max_messages(1).messages().await.unwrap();
    let m = msgs.next().await.unwrap().unwrap();
    assert_eq!(m.subject.as_str(), format!("drover.alert.{id}"));
    let body: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["channel"]["name"], "robots");
    let d: Value =
        serde_json::from_str(&run(&["notify", "deliveries", "robots", "--json"])).unwrap();
    assert_eq!(d["deliveries"][0]["state"], "sent", "{d}");
    assert_eq!(body["delivery"], d["deliveries"][0]["id"]);
    assert!(run(&["notify", "deliveries", "robots"]).contains("sent"));
    run(&["notify", "channels", "remove", "robots"]);
    let list: Value =
        serde_json::from_str(&run(&["notify", "channels", "list", "--json"])).unwrap();
    assert_eq!(list["channels"], json!([]));
}
