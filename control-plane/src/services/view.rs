//! The fleet-wide services view ("where is php-fpm down right now?"):
//! `service_states` joined with the hosts' names, filtered, and counted per
//! unit. Shared by `GET /api/v1/services`, `drover services` and the
//! Services page. Owns the query and the JSON shape; not the writes.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::service_state;
use crate::db::entities::agent;

/// Most rows one answer holds (`truncated` says when more matched).
pub const MAX_ROWS: u64 = 5000;

/// The filters (`GET /api/v1/services?unit=&state=&agent=`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// A unit name (`php-fpm` means `php-fpm.service`).
    #[serde(default)]
    pub unit: Option<String>,
    /// An `active_state` (`active`, `inactive`, `failed`, ...) or `down`
    /// (anything not active, activating or reloading).
    #[serde(default)]
    pub state: Option<String>,
    /// One host's agent id.
    #[serde(default)]
    pub agent: Option<String>,
}

/// Why a filter is refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("unit: {0}")]
    Unit(String),
    #[error("state {0:?} is not understood; use down, active, inactive, failed, activating, deactivating or reloading")]
    State(String),
}

const STATES: &[&str] = &[
    "down",
    "active",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "reloading",
];

/// Whether an `active_state` counts as down (not serving).
pub fn is_down(active_state: &str) -> bool {
    !matches!(active_state, "active" | "activating" | "reloading")
}

impl Filter {
    /// The filter checked, the unit in full form.
    pub fn checked(mut self) -> Result<Self, FilterError> {
        if let Some(u) = self
            .unit
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            let full = bus_schema::catalogue::parse_unit(u)
                .map_err(FilterError::Unit)?
                .full();
            self.unit = Some(full);
        } else {
            self.unit = None;
        }
        if let Some(s) = self
            .state
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if !STATES.contains(&s) {
                return Err(FilterError::State(s.to_string()));
            }
            self.state = Some(s.to_string());
        } else {
            self.state = None;
        }
        self.agent = self.agent.filter(|a| !a.trim().is_empty());
        Ok(self)
    }
}

/// One unit on one host as the view shows it.
#[derive(Debug, Clone)]
pub struct Row {
    pub state: service_state::Model,
    pub hostname: String,
    pub host_status: String,
}

/// The matching rows (by unit, then hostname) and whether more matched.
pub async fn rows(db: &DatabaseConnection, f: &Filter) -> Result<(Vec<Row>, bool), sea_orm::DbErr> {
    let mut q = service_state::Entity::find();
    if let Some(u) = &f.unit {
        q = q.filter(service_state::Column::Unit.eq(u.clone()));
    }
    if let Some(a) = &f.agent {
        q = q.filter(service_state::Column::AgentId.eq(a.clone()));
    }
    match f.state.as_deref() {
        Some("down") => {
            q = q.filter(service_state::Column::ActiveState.is_not_in([
                "active",
                "activating",
                "reloading",
            ]))
        }
        Some(s) => q = q.filter(service_state::Column::ActiveState.eq(s)),
        None => {}
    }
    let mut states = q
        .order_by_asc(service_state::Column::Unit)
        .order_by_asc(service_state::Column::AgentId)
        .limit(MAX_ROWS + 1)
        .all(db)
        .await?;
    let truncated = states.len() as u64 > MAX_ROWS;
    states.truncate(MAX_ROWS as usize);
    let mut ids: Vec<String> = states.iter().map(|s| s.agent_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut hosts: HashMap<String, (String, String)> = HashMap::new();
    for chunk in ids.chunks(500) {
        let found: Vec<(String, String, Option<String>, String)> = agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::Hostname)
            .column(agent::Column::DisplayName)
            .column(agent::Column::Status)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        for (id, host, display, status) in found {
            hosts.insert(id, (display.unwrap_or(host), status));
        }
    }
    let mut out: Vec<Row> = states
        .into_iter()
        .map(|s| {
            let (hostname, host_status) = hosts
                .get(&s.agent_id)
                .cloned()
                .unwrap_or_else(|| (s.agent_id.clone(), "removed".into()));
            Row {
                state: s,
                hostname,
                host_status,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (a.state.unit.as_str(), a.hostname.as_str())
            .cmp(&(b.state.unit.as_str(), b.hostname.as_str()))
    });
    Ok((out, truncated))
}

/// One row of `GET /api/v1/services`.
pub fn row_json(r: &Row) -> Value {
    json!({
        "agent_id": r.state.agent_id,
        "hostname": r.hostname,
        "host_status": r.host_status,
        "unit": r.state.unit,
        "load_state": r.state.load_state,
        "active_state": r.state.active_state,
        "sub_state": r.state.sub_state,
        "down": is_down(&r.state.active_state),
        "since": r.state.since,
        "seen_at": r.state.seen_at,
        "host_url": format!("/agents/{}", r.state.agent_id),
    })
}

/// Per unit: how many hosts report it, and how many are active, failed,
/// inactive, other (activating, deactivating...) and down.
pub fn per_unit(rows: &[Row]) -> Vec<Value> {
    count_units(
        rows.iter()
            .map(|r| (r.state.unit.as_str(), r.state.active_state.as_str(), 1)),
    )
}

/// [`per_unit`] from `(unit, active_state, hosts)` triples.
fn count_units<'a>(triples: impl Iterator<Item = (&'a str, &'a str, u64)>) -> Vec<Value> {
    let mut by: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
    for (unit, state, n) in triples {
        let c = by.entry(unit).or_default();
        c[0] += n;
        match state {
            "active" => c[1] += n,
            "failed" => c[2] += n,
            "inactive" => c[3] += n,
            _ => c[4] += n,
        }
        if is_down(state) {
            c[5] += n;
        }
    }
    by.into_iter()
        .map(|(unit, c)| {
            json!({
                "unit": unit, "hosts": c[0], "active": c[1], "failed": c[2],
                "inactive": c[3], "other": c[4], "down": c[5],
            })
        })
        .collect()
}

/// [`per_unit`] over the whole fleet, counted by the database (not bounded
/// by [`MAX_ROWS`]).
pub async fn fleet_units(db: &DatabaseConnection) -> Result<Vec<Value>, sea_orm::DbErr> {
    let counted: Vec<(String, String, i64)> = service_state::Entity::find()
        .select_only()
        .column(service_state::Column::Unit)
        .column(service_state::Column::ActiveState)
        .column_as(service_state::Column::AgentId.count(), "n")
        .group_by(service_state::Column::Unit)
        .group_by(service_state::Column::ActiveState)
        .into_tuple()
        .all(db)
        .await?;
    Ok(count_units(counted.iter().map(|(u, s, n)| {
        (u.as_str(), s.as_str(), (*n).max(0) as u64)
    })))
}

/// The whole answer: `{"services": [row...], "units": [per unit...],
/// "total": n, "truncated": bool}`.
pub fn answer(rows: &[Row], truncated: bool) -> Value {
    json!({
        "services": rows.iter().map(row_json).collect::<Vec<_>>(),
        "units": per_unit(rows),
        "total": rows.len(),
        "truncated": truncated,
    })
}

/// How many (host, unit) pairs are down now, fleet-wide (the fleet page).
pub async fn down_count(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::PaginatorTrait;
    service_state::Entity::find()
        .filter(service_state::Column::ActiveState.is_not_in(["active", "activating", "reloading"]))
        .count(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_counted_by_state() {
        let c = count_units(
            [
                ("php-fpm.service", "active", 3),
                ("php-fpm.service", "failed", 2),
                ("php-fpm.service", "deactivating", 1),
                ("nginx.service", "inactive", 1),
            ]
            .into_iter(),
        );
        assert_eq!(c[0]["unit"], "nginx.service");
        assert_eq!(
            (c[0]["inactive"].as_u64(), c[0]["down"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(c[1]["hosts"], 6);
        assert_eq!(c[1]["failed"], 2);
        assert_eq!(c[1]["other"], 1);
        assert_eq!(c[1]["down"], 3);
    }

    #[test]
    fn filters_are_checked() {
        let f = Filter {
            unit: Some("php-fpm".into()),
            state: Some("down".into()),
            agent: None,
        };
        assert_eq!(
            f.checked().unwrap().unit.as_deref(),
            Some("php-fpm.service")
        );
        let bad = Filter {
            state: Some("sleepy".into()),
            ..Default::default()
        };
        assert!(bad.checked().unwrap_err().to_string().contains("use down"));
        let bad = Filter {
            unit: Some("-x".into()),
            ..Default::default()
        };
        assert!(bad.checked().is_err());
    }
}
