//! Reading deliveries for people (API, CLI, page) and making test
//! notifications.
//!
//! Owns the delivery view and the test transition; not sending.

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{json, Value};

use super::channels::{self, ChannelError};
use super::model::delivery;
use super::route::TEST_RULE;
use crate::alerts::transition::alert_transition;
use crate::state::AppState;

/// The newest `limit` deliveries of a channel.
pub async fn recent(
    db: &DatabaseConnection,
    channel_id: &str,
    limit: u64,
) -> Result<Vec<delivery::Model>, ChannelError> {
    Ok(delivery::Entity::find()
        .filter(delivery::Column::ChannelId.eq(channel_id))
        .order_by_desc(delivery::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await?)
}

/// `{id, channel_id, transition_ids: [..], state, attempts, last_error,
/// created_at, due_at, held_until, sent_at}` (times in ms).
pub fn view(d: &delivery::Model) -> Value {
    json!({
        "id": d.id, "channel_id": d.channel_id,
        "transition_ids": serde_json::from_str::<Value>(&d.transition_ids).unwrap_or(Value::Null),
        "state": d.state, "attempts": d.attempts, "last_error": d.last_error,
        "created_at": d.created_at, "due_at": d.due_at, "held_until": d.held_until,
        "sent_at": d.sent_at,
    })
}

/// Appends a test transition for channel `id` (by id or name) to the
/// outbox: `(transition id, channel id)`. It goes only to that channel.
pub async fn enqueue_test(
    state: &AppState,
    id: &str,
    severity: Option<&str>,
    by: &str,
) -> Result<(i64, String), ChannelError> {
    let c = channels::get(&state.db, id).await?;
    let severity = severity.unwrap_or("info");
    if channels::severity_rank(severity) < 0 {
        return Err(ChannelError::Invalid(format!(
            "severity {severity:?}: use info, warning or critical"
        )));
    }
    let now = now_ms();
    let t = alert_transition::ActiveModel {
        alert_id: Set(format!("test-{}", uuid::Uuid::new_v4())),
        rule_id: Set(TEST_RULE.into()),
        rule_name: Set("Test notification".into()),
        agent_id: Set(None),
        hostname: Set(None),
        target: Set(format!("channel {}", c.name)),
        state: Set("firing".into()),
        severity: Set(severity.into()),
        summary: Set(format!(
            "Test notification for channel {} (asked by {by})",
            c.name
        )),
        labels: Set(json!({"channel": c.id}).to_string()),
        at: Set(now),
        suppressed: Set(None),
        dispatched_at: Set(None),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    Ok((t.id, c.id))
}
