//! What heartbeat ingest does with the watched-service part of each
//! heartbeat: upserts `service_states` (setting `since` when `active_state`
//! changes), deletes the units a full list no longer names, records the
//! host's watch revision (`service_watch_reports`), and after commit
//! publishes `Event::Service` for every unit whose state changed.
//!
//! Owns those writes; not decoding or checking heartbeats
//! (`ingest::heartbeats`, `Heartbeat::validate`) nor the watch lists.

use std::collections::HashMap;

use bus_schema::{Event, Heartbeat};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::reports::entity as report;
use super::state::service_state;
use crate::state::AppState;

/// The events to publish after the transaction commits.
#[derive(Debug, Default)]
pub struct Changes(Vec<Event>);

/// Stores the service part of `hbs` (accepted heartbeats of approved
/// agents) inside the caller's transaction, at `now` (ms).
pub async fn store<C: ConnectionTrait>(
    txn: &C,
    hbs: &[Heartbeat],
    now: i64,
) -> Result<Changes, sea_orm::DbErr> {
    let mut changes = Changes::default();
    if hbs.is_empty() {
        return Ok(changes);
    }
    // Revisions: written only when they changed — decided by the upsert's
    // condition, not by reading every row back first (at 10,000 agents that
    // read was one row per heartbeat through the driver's channel).
    let revs: Vec<report::ActiveModel> = hbs
        .iter()
        .map(|h| report::ActiveModel {
            agent_id: Set(h.agent_id.clone()),
            revision: Set(h.watch_revision.clone()),
            reported_at: Set(now),
        })
        .collect();
    for chunk in revs.chunks(300) {
        report::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(report::Column::AgentId)
                    .update_columns([report::Column::Revision, report::Column::ReportedAt])
                    .action_and_where(Expr::col((report::Entity, report::Column::Revision)).ne(
                        Expr::col((Alias::new("excluded"), report::Column::Revision)),
                    ))
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }

    let reporting: Vec<&Heartbeat> = hbs
        .iter()
        .filter(|h| h.services_full || !h.services.is_empty())
        .collect();
    if reporting.is_empty() {
        return Ok(changes);
    }
    let agents: Vec<String> = reporting.iter().map(|h| h.agent_id.clone()).collect();
    let before: HashMap<(String, String), service_state::Model> = service_state::Entity::find()
        .filter(service_state::Column::AgentId.is_in(agents))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| ((m.agent_id.clone(), m.unit.clone()), m))
        .collect();
    let mut rows: Vec<service_state::ActiveModel> = Vec::new();
    for h in &reporting {
        for s in &h.services {
            let old = before.get(&(h.agent_id.clone(), s.unit.clone()));
            let moved = old.is_none_or(|o| o.active_state != s.active_state);
            let changed = old.is_none_or(|o| {
                o.active_state != s.active_state
                    || o.sub_state != s.sub_state
                    || o.load_state != s.load_state
            });
            rows.push(service_state::ActiveModel {
                agent_id: Set(h.agent_id.clone()),
                unit: Set(s.unit.clone()),
                load_state: Set(s.load_state.clone()),
                active_state: Set(s.active_state.clone()),
                sub_state: Set(s.sub_state.clone()),
                since: Set(if moved {
                    now
                } else {
                    old.map_or(now, |o| o.since)
                }),
                seen_at: Set(now),
            });
            if changed {
                changes.0.push(Event::Service {
                    agent_id: h.agent_id.clone(),
                    unit: s.unit.clone(),
                    active_state: s.active_state.clone(),
                    sub_state: s.sub_state.clone(),
                });
            }
        }
        if h.services_full {
            let gone: Vec<String> = before
                .keys()
                .filter(|(a, u)| a == &h.agent_id && !h.services.iter().any(|s| &s.unit == u))
                .map(|(_, u)| u.clone())
                .collect();
            if !gone.is_empty() {
                service_state::Entity::delete_many()
                    .filter(service_state::Column::AgentId.eq(h.agent_id.clone()))
                    .filter(service_state::Column::Unit.is_in(gone.clone()))
                    .exec(txn)
                    .await?;
                for unit in gone {
                    changes.0.push(Event::Service {
                        agent_id: h.agent_id.clone(),
                        unit,
                        active_state: "unwatched".into(),
                        sub_state: String::new(),
                    });
                }
            }
        }
    }
    for chunk in rows.chunks(100) {
        service_state::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([service_state::Column::AgentId, service_state::Column::Unit])
                    .update_columns([
                        service_state::Column::LoadState,
                        service_state::Column::ActiveState,
                        service_state::Column::SubState,
                        service_state::Column::Since,
                        service_state::Column::SeenAt,
                    ])
                    .to_owned(),
            )
            .exec(txn)
            .await?;
    }
    Ok(changes)
}

/// Publishes the changes (after commit; best effort like every event).
pub async fn publish(state: &AppState, changes: Changes) {
    for e in changes.0 {
        crate::events::publish(state, &e).await;
    }
}
