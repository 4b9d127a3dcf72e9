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
    // The rule the channel names must exist (refused otherwise): a row
    // with id "disk", the id the outbox rows below carry.
    {
        use control_plane::alerts::entities::alert_rule;
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        alert_rule::ActiveModel {
            id: Set("disk".into()),
            name: Set("disk-usage".into()),
            kind: Set("host_offline".into()),
            selector: Set("{}".into()),
            params: Set("{}".into()),
            severity: Set("critical".into()),
            for_secs: Set(0),
            labels: Set("{}".into()),
            enabled: Set(false),
            created_by: Set("test".into()),
            created_at: Set(0),
            updated_at: Set(0),
        }
        .insert(&db)
        .await
        .unwrap();
    }
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

/// `--rule <name>` routes that rule's notifications: the API resolves a
/// rule name to its id (what outbox rows carry), shows the name back, and
/// refuses an unknown rule with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_for_a_rule_by_name_gets_its_notifications() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    let db = stack.db().await;
    let (st, rule) = stack
        .post(
            "/alerts/rules",
            &json!({"name": "hosts-down", "kind": "host_offline", "enabled": false}),
        )
        .await;
    assert_eq!(st, 201, "{rule}");
    let rid = rule["id"].as_str().unwrap().to_string();
    let url = hook.url();
    let out = stack.drover(&[
        "notify",
        "channels",
        "add",
        "by-name",
        "--kind",
        "webhook",
        "--url",
        &url,
        "--rule",
        "hosts-down",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["rule_ids"], json!([rid]), "{added}");
    assert_eq!(added["rules"], json!(["hosts-down"]), "{added}");
    let list = stack.drover(&["notify", "channels", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("rules hosts-down"),
        "{list:?}"
    );

    // A transition of that rule (by id, as evaluation writes it) reaches
    // the channel; one of another rule does not.
    let other = outbox(&db, "other-rule", "web-1", "critical", json!({}), None).await;
    let mine = outbox(&db, &rid, "web-1", "critical", json!({}), None).await;
    let got = wait_for(
        "the rule's notification",
        Duration::from_secs(30),
        || async { hook.accepted().first().cloned() },
    )
    .await;
    let ids: Vec<i64> = got.json()["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![mine], "only the named rule's transition");
    assert!(!ids.contains(&other));

    // An unknown rule: 400, nothing stored.
    let (st, v) = stack
        .post(
            "/notify/channels",
            &json!({"name": "nope", "kind": "webhook", "config": {"url": url},
                    "rule_ids": ["no-such-rule"]}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no alert rule"),
        "{v}"
    );
    let (_, v) = stack.get("/notify/channels").await;
    assert_eq!(v["channels"].as_array().unwrap().len(), 1, "{v}");
}
