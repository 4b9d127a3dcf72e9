//! Each host's clock skew: measured from its heartbeats, stored in
//! `agent_clocks`, judged against the warning threshold and the tolerance
//! (`bus_schema::clock`), and shown in the agent views. Does not own the
//! checks the agent and rootd run (`bus_schema::clock`) nor the heartbeat
//! stream (`ingest.rs`).
//!
//! A sample is `sent_at - received_at` of one heartbeat: the host's clock
//! minus the control plane's, less the transit time. Transit only ever
//! makes a sample smaller, so the estimate is the largest of the last
//! [`WINDOW`] samples: the one that waited least.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bus_schema::clock::{
    describe_skew, CLOCK_SKEW_ADVICE, CLOCK_SKEW_TOLERANCE_MS, CLOCK_SKEW_WARN_MS,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde_json::{json, Value};

pub use crate::db::m0010_clock_skew::agent_clock;

/// How many recent heartbeats of a host the estimate looks at.
pub const WINDOW: usize = 8;

/// Most ids one `IN (...)` query names (SQLite's bound-variable limit).
const CHUNK: usize = 500;

static SAMPLES: Mutex<Option<HashMap<String, VecDeque<i64>>>> = Mutex::new(None);

/// Adds one heartbeat's sample (both in ms since the epoch: the host's
/// `sent_at`, the control plane's receive time) and returns the host's
/// skew estimate in ms (positive: the host is ahead).
pub fn observe(agent_id: &str, sent_at: i64, received_at: i64) -> i64 {
    let sample = sent_at - received_at;
    let mut guard = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    let window = guard
        .get_or_insert_with(HashMap::new)
        .entry(agent_id.to_string())
        .or_default();
    if window.len() == WINDOW {
        window.pop_front();
    }
    window.push_back(sample);
    window.iter().copied().max().unwrap_or(sample)
}

/// A stored estimate is written again when it moved by at least this
/// much (ms): far below the warning threshold, above transit jitter.
const REWRITE_MOVE_MS: i64 = 100;
/// ... or when this process last stored it this long ago (ms), so
/// `measured_at` stays recent while heartbeats flow.
const REWRITE_EVERY_MS: i64 = 60_000;

/// What this process last stored per agent: (skew ms, at ms).
static STORED: Mutex<Option<HashMap<String, (i64, i64)>>> = Mutex::new(None);

/// Of `estimates` (agent id → skew ms) at `now`, those worth writing: not
/// stored by this process yet, moved by [`REWRITE_MOVE_MS`] or more, or
/// stored [`REWRITE_EVERY_MS`] ago or longer. Writing every heartbeat's
/// estimate was a sixth of heartbeat ingest at 10,000 agents. Call
/// [`stored`] once the rows are committed.
pub fn due(estimates: Vec<(String, i64)>, now: i64) -> Vec<(String, i64)> {
    let guard = STORED.lock().unwrap_or_else(|p| p.into_inner());
    let Some(map) = guard.as_ref() else {
        return estimates;
    };
    estimates
        .into_iter()
        .filter(|(id, skew)| match map.get(id) {
            Some((was, at)) => {
                (skew - was).abs() >= REWRITE_MOVE_MS || now - at >= REWRITE_EVERY_MS || now < *at
            }
            None => true,
        })
        .collect()
}

/// Records `estimates` as committed at `now` (see [`due`]).
pub fn stored(estimates: &[(String, i64)], now: i64) {
    let mut guard = STORED.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    for (id, skew) in estimates {
        map.insert(id.clone(), (*skew, now));
    }
}

/// The rows to write for `estimates` (agent id → skew ms) measured at `now`.
pub fn rows(estimates: &[(String, i64)], now: i64) -> Vec<agent_clock::ActiveModel> {
    estimates
        .iter()
        .map(|(id, skew)| agent_clock::ActiveModel {
            agent_id: Set(id.clone()),
            skew_ms: Set(*skew),
            measured_at: Set(now),
        })
        .collect()
}

/// Writes the estimates (insert or replace), in chunks.
pub async fn store<C: ConnectionTrait>(
    db: &C,
    rows: Vec<agent_clock::ActiveModel>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(CHUNK) {
        agent_clock::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(agent_clock::Column::AgentId)
                    .update_columns([agent_clock::Column::SkewMs, agent_clock::Column::MeasuredAt])
                    .to_owned(),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The stored skew (ms) of each of `ids` that has one.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
) -> Result<HashMap<String, agent_clock::Model>, DbErr> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for row in agent_clock::Entity::find()
            .filter(agent_clock::Column::AgentId.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            out.insert(row.agent_id.clone(), row);
        }
    }
    Ok(out)
}

/// Every stored skew, by agent id.
pub async fn load_all<C: ConnectionTrait>(
    db: &C,
) -> Result<HashMap<String, agent_clock::Model>, DbErr> {
    Ok(agent_clock::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.agent_id.clone(), r))
        .collect())
}

/// What operators are told about a skew of `skew_ms`, or `None` when it is
/// within the warning threshold.
pub fn warning(skew_ms: i64) -> Option<String> {
    if skew_ms.abs() <= CLOCK_SKEW_WARN_MS {
        return None;
    }
    let consequence = if skew_ms.abs() > CLOCK_SKEW_TOLERANCE_MS {
        format!(
            "commands are refused (clock skew) until it is within {} s",
            CLOCK_SKEW_TOLERANCE_MS / 1000
        )
    } else {
        format!(
            "commands still run (tolerance {} s)",
            CLOCK_SKEW_TOLERANCE_MS / 1000
        )
    };
    Some(format!(
        "clock {} the control plane's; {consequence}; {CLOCK_SKEW_ADVICE}",
        describe_skew(skew_ms)
    ))
}

/// The clock fields of an agent view: `clock_skew_ms` (null when not
/// measured), `clock_measured_at` and `clock_warning` (null when fine).
pub fn fields(row: Option<&agent_clock::Model>) -> Value {
    json!({
        "clock_skew_ms": row.map(|r| r.skew_ms),
        "clock_measured_at": row.map(|r| r.measured_at),
        "clock_warning": row.and_then(|r| warning(r.skew_ms)),
    })
}

/// Adds [`fields`] to an agent view object (`view["id"]` names the agent).
pub fn decorate(view: &mut Value, clocks: &HashMap<String, agent_clock::Model>) {
    let row = view["id"].as_str().and_then(|id| clocks.get(id));
    if let (Some(obj), Value::Object(extra)) = (view.as_object_mut(), fields(row)) {
        obj.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_delayed_sample_wins_and_old_ones_leave() {
        let id = "skew-test-agent";
        assert_eq!(observe(id, 1_000, 900), 100);
        // A slower heartbeat does not lower the estimate.
        assert_eq!(observe(id, 2_000, 1_950), 100);
        for i in 0..WINDOW as i64 {
            observe(id, 10_000 + i, 10_000 + i);
        }
        assert_eq!(observe(id, 20_000, 20_000), 0);
    }

    #[test]
    fn warnings_follow_the_thresholds() {
        assert_eq!(warning(CLOCK_SKEW_WARN_MS), None);
        let w = warning(120_000).unwrap();
        assert!(
            w.contains("120.0 s ahead of") && w.contains("still run"),
            "{w}"
        );
        let w = warning(-600_000).unwrap();
        assert!(w.contains("behind") && w.contains("refused"), "{w}");
        assert!(w.contains(CLOCK_SKEW_ADVICE));
    }

    #[test]
    fn an_estimate_is_written_again_when_it_moves_or_ages() {
        let id = |s: &str| format!("due-test-{s}");
        let est = |s: &str, skew: i64| vec![(id(s), skew)];
        // Never stored by this process: due.
        assert_eq!(due(est("a", 40), 1_000).len(), 1);
        stored(&est("a", 40), 1_000);
        stored(&est("b", 40), 1_000);
        // Moved by less than REWRITE_MOVE_MS, not old: not due.
        assert!(due(est("a", 40 + REWRITE_MOVE_MS - 1), 2_000).is_empty());
        // Moved enough (either way): due.
        assert_eq!(due(est("a", 40 - REWRITE_MOVE_MS), 2_000).len(), 1);
        // Old enough, or the control plane's clock went back: due.
        assert_eq!(due(est("b", 40), 1_000 + REWRITE_EVERY_MS).len(), 1);
        assert_eq!(due(est("b", 40), 999).len(), 1);
    }
}
