//! Moving alert transitions from the outbox onto the notification stream:
//! the lease holder's `notifications` duty.
//!
//! Each round reads up to [`BATCH`] `alert_transitions` rows with
//! `dispatched_at IS NULL` in id order; a suppressed row is only marked;
//! otherwise one message per (transition, routed channel) goes to
//! `drover.notify.<channel>` with `Nats-Msg-Id: <transition>.<channel>`,
//! and once the broker has acked them all the rows get `dispatched_at`. A
//! crash between the two republishes the same ids, which the stream's
//! duplicate window (and the deliverer's per-channel item key) drops.
//!
//! Owns the duty's tick; not sending (the stream's consumer,
//! `notify::deliver`, does).

use anyhow::Context;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::{channels, route};
use crate::alerts::transition::alert_transition;
use crate::state::AppState;

/// Transitions read per round (a larger backlog takes more rounds).
pub const BATCH: u64 = 500;

/// The message on `drover.notify.<channel>`: which transition, which
/// channel. The deliverer reads both rows from the database.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NotifyMsg {
    pub transition: i64,
    pub channel: String,
}

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let rows = alert_transition::Entity::find()
        .filter(alert_transition::Column::DispatchedAt.is_null())
        .order_by_asc(alert_transition::Column::Id)
        .limit(BATCH)
        .all(&state.db)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let chans = channels::list(&state.db).await?;
    let mut acks = Vec::new();
    for t in &rows {
        if t.suppressed.is_some() {
            continue;
        }
        for c in chans.iter().filter(|c| route::selects(c, t)) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{}.{}", t.id, c.id).as_str());
            let body = json!(NotifyMsg {
                transition: t.id,
                channel: c.id.clone(),
            })
            .to_string();
            let ack = state
                .js
                .publish_with_headers(
                    bus_schema::subjects::notify_subject(&c.id),
                    headers,
                    body.into(),
                )
                .await
                .context("publishing a notification")?;
            acks.push(ack);
        }
    }
    let published = acks.len();
    for a in acks {
        a.await
            .context("the notification stream did not take a notification")?;
    }
    let ids: Vec<i64> = rows.iter().map(|t| t.id).collect();
    alert_transition::Entity::update_many()
        .col_expr(
            alert_transition::Column::DispatchedAt,
            sea_orm::sea_query::Expr::value(now_ms),
        )
        .filter(alert_transition::Column::Id.is_in(ids))
        .exec(&state.db)
        .await?;
    tracing::debug!(
        transitions = rows.len(),
        published,
        "notifications dispatched"
    );
    Ok(())
}
