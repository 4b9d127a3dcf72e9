//! A measurement, not a check run by default (`cargo test -p control-plane
//! --test notify_bench -- --ignored --nocapture`): a 500-host outage — 500
//! outbox rows of one rule appended at once — through the real path
//! (dispatcher, DROVER_NOTIFY, deliverer) to a webhook receiver in this
//! process, grouped into one message. Prints how long the path took.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn a_500_host_outage_is_one_message() {
    use control_plane::alerts::transition::alert_transition;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    let ch = stack
        .add_channel(json!({"name": "oncall", "kind": "webhook",
                            "config": {"url": hook.url()}, "group_secs": 20}))
        .await;
    let id = ch["id"].as_str().unwrap();
    let db = stack.db().await;
    let now = bus_schema::now_ms();
    let rows: Vec<alert_transition::ActiveModel> = (0..500)
        .map(|i| alert_transition::ActiveModel {
            alert_id: Set(format!("down:{i}")),
            rule_id: Set("host-down".into()),
            rule_name: Set("host down".into()),
            agent_id: Set(Some(format!("agent-{i}"))),
            hostname: Set(Some(format!("web-{i}"))),
            target: Set(format!("agent-{i}")),
            state: Set("firing".into()),
            severity: Set("critical".into()),
            summary: Set(format!("web-{i} missed 3 heartbeats")),
            labels: Set(json!({"host": format!("web-{i}")}).to_string()),
            at: Set(now),
            suppressed: Set(None),
            dispatched_at: Set(None),
            ..Default::default()
        })
        .collect();
    let started = Instant::now();
    alert_transition::Entity::insert_many(rows)
        .exec(&db)
        .await
        .unwrap();
    let got = wait_for("the one message", Duration::from_secs(120), || async {
        hook.accepted().first().cloned()
    })
    .await;
    let took = started.elapsed();
    wait_consumer_settled(&stack, "DROVER_NOTIFY", "drover-notify").await;
    assert_eq!(hook.accepted().len(), 1);
    assert_eq!(got.json()["count"], 500);
    assert_eq!(stack.deliveries(id).await.len(), 1);
    println!("500 transitions -> 1 message in {took:?} (grouping window 20 s included)");
}
