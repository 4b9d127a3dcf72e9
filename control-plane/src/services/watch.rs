//! Bringing each host's watch list in line with the watched-service lists
//! that match it: the lease holder's `service_watch` duty.
//!
//! Each round, for every online host the version policy lets commands
//! reach: the desired set is the union of the units of every list whose
//! selector matches it ([`super::lists::watch_set`]); when its revision
//! differs from the one the host last reported, and no `agent.watch` is open
//! for it (nor one with this revision finished in the last
//! [`SETTLE_MS`], whose heartbeat has not arrived yet), one `agent.watch`
//! goes out through the normal job path (source system, requested by
//! [`REQUESTER`]).
//!
//! Owns the duty's tick; not the lists' storage nor heartbeat ingest.

use std::collections::HashMap;

use bus_schema::catalogue::agent::WatchParams;
use bus_schema::{CommandStatus, Source};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::lists;
use super::reports::entity as report;
use crate::db::entities::{agent, command};
use crate::idempotency::Requester;
use crate::jobs::{self, NewJob, Selector};
use crate::state::AppState;

/// The `requested_by` of the commands this duty sends.
pub const REQUESTER: &str = "service_watch";

/// The action.
pub const ACTION: &str = "agent.watch";

/// How long after an `agent.watch` succeeded its host's heartbeat may
/// still report the old revision before it is sent again, ms.
pub const SETTLE_MS: i64 = 30_000;

/// How long after an `agent.watch` failed the same list is sent again, ms.
pub const RETRY_MS: i64 = 300_000;

/// How many `agent.watch` commands one round sends at most (the rest go
/// next round).
const PER_ROUND: usize = 200;

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let lists: Vec<(Selector, Vec<String>)> = lists::list(&state.db)
        .await?
        .iter()
        .filter_map(|w| Some((lists::selector_of(w)?, lists::units_of(w))))
        .collect();
    let online = agent::Entity::find()
        .filter(agent::Column::Status.eq("online"))
        .all(&state.db)
        .await?;
    let reported: HashMap<String, String> = report::Entity::find()
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| (r.agent_id, r.revision))
        .collect();
    let policy = crate::version_policy::Policy::of(&state.cfg);
    let mut sent = 0;
    for a in &online {
        if sent >= PER_ROUND {
            break;
        }
        if !matches!(policy.of_agent(a).as_str(), "current" | "unknown") {
            continue;
        }
        let (units, revision) = lists::watch_set(&lists, a);
        if reported.get(&a.id).map(String::as_str).unwrap_or("") == revision {
            continue;
        }
        if !due(state, &a.id, &revision, now_ms).await? {
            continue;
        }
        let req = NewJob {
            selector: Selector {
                agents: vec![a.id.clone()],
                ..Default::default()
            },
            action: ACTION.into(),
            params: serde_json::to_value(WatchParams {
                units: units.clone(),
                revision: revision.clone(),
            })?,
            timeout_secs: None,
            ttl_secs: Some(300),
            idempotency_key: None,
        };
        let who = Requester {
            name: REQUESTER.into(),
            scope: REQUESTER.into(),
        };
        match jobs::submit(state, req, &who, Source::System).await {
            Ok((job, _)) => {
                sent += 1;
                tracing::info!(agent = %a.id, units = units.len(), %revision, job = %job.id, "watch list sent");
            }
            Err(e) => {
                tracing::warn!(agent = %a.id, error = %e, "could not send the watch list; trying again next round")
            }
        }
    }
    Ok(())
}

/// Whether a new `agent.watch` for `revision` may go to `agent_id`: none is
/// open, and the last one is not a recent success with this revision.
async fn due(
    state: &AppState,
    agent_id: &str,
    revision: &str,
    now_ms: i64,
) -> Result<bool, sea_orm::DbErr> {
    let last = command::Entity::find()
        .filter(command::Column::AgentId.eq(agent_id))
        .filter(command::Column::Action.eq(ACTION))
        .order_by_desc(command::Column::CreatedAt)
        .one(&state.db)
        .await?;
    let Some(last) = last else {
        return Ok(true);
    };
    let status: Option<CommandStatus> =
        serde_json::from_value(serde_json::Value::String(last.status.clone())).ok();
    let open = status.is_some_and(|s| !s.is_final());
    if open {
        return Ok(false);
    }
    let same = serde_json::from_str::<serde_json::Value>(&last.params)
        .ok()
        .is_some_and(|p| p["revision"] == revision);
    // A failed one (an agent too old to know the action...) is retried
    // every RETRY_MS, not every round.
    let wait = if status == Some(CommandStatus::Succeeded) {
        SETTLE_MS
    } else {
        RETRY_MS
    };
    let recent = last
        .finished_at
        .is_some_and(|t| now_ms.saturating_sub(t) < wait);
    Ok(!(same && recent))
}
