//! Delivering notifications: the durable consumer of `DROVER_NOTIFY`, run on
//! every replica. For each message (transition, channel) it joins the
//! transition to its channel's open group of the same rule or opens a new
//! delivery (whose message, the "leader", sends it once the grouping
//! window ends), holds it through quiet hours, sends it, and records the
//! outcome BEFORE acking. Retries are delayed naks: `notify_retry_base_ms`
//! × 1, 6, 24, then 120 (5 s, 30 s, 2 min, 10 min by default), until
//! `notify_max_attempts` makes it `failed`.
//!
//! Exactly once per transition per channel, except for one window: a crash
//! after the receiver took a message and before `sent` is recorded sends
//! it again with the same `X-Drover-Delivery` id, for receivers to dedupe.
//!
//! Owns delivery records and timing; not how each kind sends
//! (`notify::send`) nor routing (`notify::dispatch`).

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use bus_schema::now_ms;
use futures::StreamExt;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use tracing::{info, warn};

use super::dispatch::NotifyMsg;
use super::model::{channel, delivery, item};
use super::{route, send};
use crate::alerts::transition::alert_transition;
use crate::state::AppState;

/// What to do with a message after handling it.
enum Outcome {
    Ack,
    /// Redeliver after this long.
    Later(Duration),
}

/// The deliverer's loop: pulls small batches (4, so the ones waiting in a
/// batch stay well inside the consumer's 90 s ack wait) and handles them
/// one by one.
pub async fn run(state: AppState, consumer: jetstream::consumer::PullConsumer) {
    loop {
        let mut msgs = match consumer
            .stream()
            .max_messages_per_batch(20)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot pull notifications; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(next) = msgs.next().await {
            let m = match next {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "notification stream error");
                    break;
                }
            };
            let outcome = match serde_json::from_slice::<NotifyMsg>(&m.payload) {
                Ok(n) => handle(&state, &n, &m).await.unwrap_or_else(|e| {
                    warn!(error = %e, "notification not handled; redelivering");
                    Outcome::Later(Duration::from_secs(5))
                }),
                Err(e) => {
                    warn!(error = %e, "malformed notification message dropped");
                    let _ = m.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            let _ = match outcome {
                Outcome::Ack => m.ack().await,
                Outcome::Later(d) => m.ack_with(AckKind::Nak(Some(d))).await,
            };
        }
    }
}

/// The delay before retry number `attempts` (1-based).
pub fn backoff(base_ms: u64, attempts: i32) -> Duration {
    let factor = match attempts {
        ..=1 => 1,
        2 => 6,
        3 => 24,
        _ => 120,
    };
    Duration::from_millis(base_ms.saturating_mul(factor))
}

fn ms(d: i64) -> Duration {
    Duration::from_millis(d.max(1) as u64)
}

/// The delivery transition `tid` belongs to on `ch`: found, joined to the
/// channel's open group of the same rule, or opened.
async fn delivery_of(
    state: &AppState,
    ch: &channel::Model,
    tid: i64,
    now: i64,
) -> anyhow::Result<Option<delivery::Model>> {
    let _w = state.writer.lock().await;
    if let Some(it) = item::Entity::find_by_id((ch.id.clone(), tid))
        .one(&state.db)
        .await?
    {
        return Ok(delivery::Entity::find_by_id(&it.delivery_id)
            .one(&state.db)
            .await?);
    }
    let Some(t) = alert_transition::Entity::find_by_id(tid)
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    let open = if ch.group_secs > 0 {
        delivery::Entity::find()
            .filter(delivery::Column::ChannelId.eq(&ch.id))
            .filter(delivery::Column::GroupKey.eq(&t.rule_id))
            .filter(delivery::Column::State.eq("queued"))
            .filter(delivery::Column::CreatedAt.gte(now - ch.group_secs * 1000))
            // Not one about to be sent: a transition joining it then
            // could be left out of the message.
            .filter(delivery::Column::DueAt.gt(now + 500))
            .order_by_desc(delivery::Column::CreatedAt)
            .one(&state.db)
            .await?
    } else {
        None
    };
    let d = match open {
        Some(d) => {
            let mut ids: Vec<i64> = serde_json::from_str(&d.transition_ids).unwrap_or_default();
            ids.push(tid);
            let mut a: delivery::ActiveModel = d.into();
            a.transition_ids = Set(json!(ids).to_string());
            a.update(&state.db).await?
        }
        None => {
            delivery::ActiveModel {
                id: Set(uuid::Uuid::new_v4().to_string()),
                channel_id: Set(ch.id.clone()),
                group_key: Set(t.rule_id.clone()),
                transition_ids: Set(json!([tid]).to_string()),
                leader: Set(tid),
                state: Set("queued".into()),
                attempts: Set(0),
                last_error: Set(None),
                created_at: Set(now),
                due_at: Set(now + ch.group_secs * 1000),
                held_until: Set(None),
                sent_at: Set(None),
            }
            .insert(&state.db)
            .await?
        }
    };
    item::ActiveModel {
        channel_id: Set(ch.id.clone()),
        transition_id: Set(tid),
        delivery_id: Set(d.id.clone()),
    }
    .insert(&state.db)
    .await?;
    Ok(Some(d))
}

async fn handle(
    state: &AppState,
    n: &NotifyMsg,
    m: &jetstream::Message,
) -> anyhow::Result<Outcome> {
    let Some(ch) = channel::Entity::find_by_id(&n.channel)
        .one(&state.db)
        .await?
    else {
        // The channel was removed: nothing to send to.
        return Ok(Outcome::Ack);
    };
    let now = now_ms();
    let Some(d) = delivery_of(state, &ch, n.transition, now).await? else {
        return Ok(Outcome::Ack);
    };
    // Only the leader's message sends; the others are in its list now.
    if d.leader != n.transition || matches!(d.state.as_str(), "sent" | "failed") {
        return Ok(Outcome::Ack);
    }
    if d.due_at > now {
        return Ok(Outcome::Later(ms(d.due_at - now)));
    }
    let ids: Vec<i64> = serde_json::from_str(&d.transition_ids).unwrap_or_default();
    let transitions = alert_transition::Entity::find()
        .filter(alert_transition::Column::Id.is_in(ids))
        .order_by_asc(alert_transition::Column::Id)
        .all(&state.db)
        .await?;
    let critical = transitions.iter().any(|t| t.severity == "critical");
    let mut row: delivery::ActiveModel = d.clone().into();
    if !ch.enabled {
        row.state = Set("failed".into());
        row.last_error = Set(Some("the channel was disabled before sending".into()));
        row.update(&state.db).await?;
        return Ok(Outcome::Ack);
    }
    if let Some(until) = route::quiet_until(&ch, now, critical) {
        if d.held_until != Some(until) {
            row.held_until = Set(Some(until));
            row.update(&state.db).await?;
        }
        return Ok(Outcome::Later(ms(until - now)));
    }
    let attempts = d.attempts + 1;
    row.attempts = Set(attempts);
    // The send may take up to `notify_send_timeout_secs`: restart the
    // broker's ack wait so no other replica gets this message meanwhile.
    let _ = m.ack_with(AckKind::Progress).await;
    match send::send(state, &ch, &d, &transitions).await {
        Ok(()) => {
            row.state = Set("sent".into());
            row.sent_at = Set(Some(now_ms()));
            row.last_error = Set(None);
            row.update(&state.db).await?;
            info!(channel = %ch.name, delivery = %d.id, transitions = transitions.len(), "notification sent");
            Ok(Outcome::Ack)
        }
        Err(e) => {
            let why = format!("{e:#}");
            // The receiver's words (an HTTP body, an SMTP reply).
            row.last_error = Set(Some(bus_schema::text::storable(&why, 500)));
            if attempts >= state.cfg.notify_max_attempts {
                row.state = Set("failed".into());
                row.update(&state.db).await?;
                warn!(channel = %ch.name, delivery = %d.id, attempts, error = %why, "notification failed; giving up");
                return Ok(Outcome::Ack);
            }
            let wait = backoff(state.cfg.notify_retry_base_ms, attempts);
            row.state = Set("retrying".into());
            row.due_at = Set(now_ms() + wait.as_millis() as i64);
            row.update(&state.db).await?;
            warn!(channel = %ch.name, delivery = %d.id, attempts, error = %why, "notification not sent; retrying");
            Ok(Outcome::Later(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_then_caps() {
        let s = |a| super::backoff(5_000, a).as_secs();
        assert_eq!([s(1), s(2), s(3), s(4), s(9)], [5, 30, 120, 600, 600]);
    }
}
