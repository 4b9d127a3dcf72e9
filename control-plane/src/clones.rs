//! Identity conflicts: two machines sending under one agent id (a copied
//! state directory, a cloned VM). Owns detection from heartbeats, the
//! `duplicate_identity` rows of `binding_conflicts`, which heartbeats are
//! applied while a conflict stands, the refusal of new commands, the
//! operator's decision and the routing headers that leave commands to the
//! kept machine. It does not own enrolment-time binding checks
//! (`enroll.rs`) nor revocation: the shared credentials stay valid, so
//! the original host is never cut off.
//!
//! Signals: the heartbeat's `machine_id` differing from the one bound at
//! enrolment (at once), or two instance ids of one agent alternating within
//! a few heartbeat intervals (clones that share a machine-id too). Agents
//! too old to send an instance id are never judged.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use bus_schema::codec::{NOT_INSTANCE_HEADER, NOT_MACHINE_HEADER};
use bus_schema::{now_ms, Heartbeat};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::warn;

use crate::db::entities::{agent, binding_conflict};
use crate::state::AppState;

/// `binding_conflicts.kind` of an identity used by two machines at once.
pub const KIND: &str = "duplicate_identity";
/// Instances remembered per agent for alternation checks.
const RECENT: usize = 8;
/// Least time an instance counts as live after its last heartbeat.
const LIVE_AT_LEAST_MS: i64 = 10_000;

/// One agent process as its heartbeats describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub instance_id: String,
    pub machine_id: String,
    pub boot_id: String,
    pub hostname: String,
    /// First and last heartbeat seen (control-plane clock, ms).
    pub first_at: i64,
    pub last_at: i64,
}

impl Seen {
    fn of(hb: &Heartbeat, now: i64) -> Self {
        Self {
            instance_id: hb.instance_id.clone(),
            machine_id: hb.machine_id.clone(),
            boot_id: hb.boot_id.clone(),
            hostname: hb.hostname.clone(),
            first_at: now,
            last_at: now,
        }
    }
}

/// Which side of a conflict an operator kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bound,
    Other,
}

/// One `duplicate_identity` row, decoded.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub id: i64,
    pub agent_id: String,
    pub at: i64,
    /// The first-bound machine: served while the conflict is open.
    pub bound: Seen,
    /// The machine that appeared second: refused while open.
    pub other: Seen,
    pub kept: Option<Side>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Detail {
    bound: Seen,
    other: Seen,
}

impl Conflict {
    fn from_row(m: &binding_conflict::Model) -> Option<Self> {
        let d: Detail = serde_json::from_str(m.detail.as_deref()?).ok()?;
        Some(Self {
            id: m.id,
            agent_id: m.existing_agent_id.clone(),
            at: m.at,
            bound: d.bound,
            other: d.other,
            kept: match m.kept.as_deref() {
                Some("bound") => Some(Side::Bound),
                Some("other") => Some(Side::Other),
                _ => None,
            },
            resolved_at: m.resolved_at,
            resolved_by: m.resolved_by.clone(),
        })
    }

    /// The two sides are told apart by machine-id when they differ, else
    /// by agent process.
    fn by_machine(&self) -> bool {
        self.bound.machine_id != self.other.machine_id
    }

    /// The side whose heartbeats are ignored and who gets no commands: the
    /// second machine while open, the side not kept once decided.
    fn refused(&self) -> &Seen {
        match self.kept {
            Some(Side::Other) => &self.bound,
            _ => &self.other,
        }
    }

    fn is_refused(&self, hb: &Heartbeat) -> bool {
        let r = self.refused();
        if self.by_machine() {
            hb.machine_id == r.machine_id
        } else {
            hb.instance_id == r.instance_id
        }
    }

    pub fn is_open(&self) -> bool {
        self.kept.is_none()
    }

    /// The 409 given to new commands while the conflict is open.
    pub fn refusal(&self) -> String {
        format!(
            "identity conflict: two machines use agent {id} ({b}, and {o}); new commands are \
             held until an operator decides. Keep the real host with POST \
             /api/v1/agents/{id}/conflict/resolve {{\"keep\": \"<its machine-id or instance id>\"}}, \
             then on the other machine stop drover-agent, remove its state directory and enrol \
             it again with a new registration token",
            id = self.agent_id,
            b = describe(&self.bound),
            o = describe(&self.other),
        )
    }

    /// Routing headers for commands once decided: they name the side that
    /// must leave the command alone.
    pub fn headers(&self) -> Option<(&'static str, String)> {
        self.kept?;
        let r = self.refused();
        Some(if self.by_machine() {
            (NOT_MACHINE_HEADER, r.machine_id.clone())
        } else {
            (NOT_INSTANCE_HEADER, r.instance_id.clone())
        })
    }

    pub fn json(&self) -> Value {
        let side = |s: &Seen| {
            json!({
                "hostname": s.hostname, "machine_id": s.machine_id, "instance_id": s.instance_id,
                "boot_id": s.boot_id, "first_seen": s.first_at, "last_seen": s.last_at,
            })
        };
        json!({
            "agent_id": self.agent_id,
            "detected_at": self.at,
            "open": self.is_open(),
            "bound": side(&self.bound),
            "other": side(&self.other),
            "kept": self.kept.map(|k| match k { Side::Bound => "bound", Side::Other => "other" }),
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "what_to_do": if self.is_open() {
                self.refusal()
            } else {
                format!(
                    "decided: {} is served; {} is ignored and takes no commands. Re-enrol that \
                     machine with a fresh state directory and a new registration token",
                    describe(if self.kept == Some(Side::Other) { &self.other } else { &self.bound }),
                    describe(self.refused()),
                )
            },
        })
    }
}

fn describe(s: &Seen) -> String {
    format!(
        "host {} machine-id {} process {}",
        if s.hostname.is_empty() {
            "?"
        } else {
            &s.hostname
        },
        if s.machine_id.is_empty() {
            "?"
        } else {
            &s.machine_id
        },
        if s.instance_id.is_empty() {
            "?"
        } else {
            &s.instance_id
        },
    )
}

/// The latest identity conflict of each agent (all agents when `only` is
/// `None`).
pub async fn latest(
    db: &DatabaseConnection,
    only: Option<&[String]>,
) -> Result<HashMap<String, Conflict>, DbErr> {
    let mut q = binding_conflict::Entity::find().filter(binding_conflict::Column::Kind.eq(KIND));
    if let Some(ids) = only {
        if ids.len() <= 500 {
            q = q.filter(binding_conflict::Column::ExistingAgentId.is_in(ids.to_vec()));
        }
    }
    let rows = q.order_by_asc(binding_conflict::Column::Id).all(db).await?;
    let mut out = HashMap::new();
    for r in &rows {
        if let Some(c) = Conflict::from_row(r) {
            out.insert(c.agent_id.clone(), c);
        }
    }
    Ok(out)
}

/// The latest identity conflict of one agent, as JSON (null when none).
pub async fn view(db: &DatabaseConnection, agent_id: &str) -> Result<Value, DbErr> {
    let all = latest(db, Some(&[agent_id.to_string()])).await?;
    Ok(all.get(agent_id).map(Conflict::json).unwrap_or(Value::Null))
}

/// Every agent's latest identity conflict, open ones first.
pub async fn all_json(db: &DatabaseConnection) -> Result<Vec<Value>, DbErr> {
    let mut all: Vec<Conflict> = latest(db, None).await?.into_values().collect();
    all.sort_by_key(|c| (!c.is_open(), -c.at));
    Ok(all.iter().map(Conflict::json).collect())
}

/// Per agent: the instances lately seen, newest last.
static TRACKER: LazyLock<Mutex<HashMap<String, Vec<Seen>>>> = LazyLock::new(Default::default);

/// What to do with one heartbeat's instance, given what was seen before.
enum Verdict {
    Apply,
    /// A conflict starts: (bound, other); the heartbeat is applied only
    /// when it comes from the bound side.
    Conflict(Box<(Seen, Seen)>),
}

fn judge(hb: &Heartbeat, enrolled: &str, has_row: bool, now: i64) -> Verdict {
    let mut tracker = TRACKER.lock().unwrap_or_else(|p| p.into_inner());
    let seen = tracker.entry(hb.agent_id.clone()).or_default();
    let live_ms = (hb.interval_secs as i64 * 3000).max(LIVE_AT_LEAST_MS);
    let me = seen.iter().position(|s| s.instance_id == hb.instance_id);
    let current = seen.last().cloned();
    // The key used on another machine than the one bound at enrolment.
    if !has_row && !enrolled.is_empty() && !hb.machine_id.is_empty() && hb.machine_id != enrolled {
        let bound = seen
            .iter()
            .rev()
            .find(|s| s.machine_id == enrolled)
            .cloned()
            .unwrap_or(Seen {
                instance_id: String::new(),
                machine_id: enrolled.to_string(),
                boot_id: String::new(),
                hostname: String::new(),
                first_at: 0,
                last_at: 0,
            });
        return Verdict::Conflict(Box::new((bound, Seen::of(hb, now))));
    }
    match (me, current) {
        (Some(i), Some(cur)) if cur.instance_id != hb.instance_id => {
            // An instance that had been replaced speaks again while the
            // newer one is live: two processes alternate.
            let mut mine = seen.remove(i);
            mine.last_at = now;
            if now - cur.last_at <= live_ms {
                let (bound, other) = if mine.first_at <= cur.first_at {
                    (mine.clone(), cur)
                } else {
                    (cur, mine.clone())
                };
                seen.push(mine);
                return Verdict::Conflict(Box::new((bound, other)));
            }
            seen.push(mine);
        }
        (Some(i), _) => seen[i].last_at = now,
        (None, _) => {
            // New process: a restart, unless the old one speaks again.
            seen.push(Seen::of(hb, now));
            if seen.len() > RECENT {
                seen.remove(0);
            }
        }
    }
    Verdict::Apply
}

/// Drops a refused process from the alternation check: its heartbeats are
/// not applied, so they must not make the served one look alternating.
fn forget(agent_id: &str, instance_id: &str) {
    let mut tracker = TRACKER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(seen) = tracker.get_mut(agent_id) {
        seen.retain(|s| s.instance_id != instance_id);
    }
}

/// Keeps the heartbeats that may be applied: drops those of a refused side
/// and records new conflicts. Heartbeats come in stream order.
pub async fn screen(state: &AppState, hbs: Vec<Heartbeat>) -> Vec<Heartbeat> {
    if hbs.iter().all(|h| h.instance_id.is_empty()) {
        return hbs;
    }
    let mut ids: Vec<String> = hbs.iter().map(|h| h.agent_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let (mut conflicts, enrolled) = match lookups(&state.db, &ids).await {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "identity conflicts could not be read; heartbeats applied unscreened");
            return hbs;
        }
    };
    let now = now_ms();
    let mut out = Vec::with_capacity(hbs.len());
    for hb in hbs {
        if hb.instance_id.is_empty() {
            out.push(hb);
            continue;
        }
        if let Some(c) = conflicts.get(&hb.agent_id) {
            if c.is_refused(&hb) {
                forget(&hb.agent_id, &hb.instance_id);
                continue;
            }
        }
        let enrolled_id = enrolled.get(&hb.agent_id).map(String::as_str).unwrap_or("");
        let has_row = conflicts.contains_key(&hb.agent_id);
        match judge(&hb, enrolled_id, has_row, now) {
            Verdict::Apply => out.push(hb),
            Verdict::Conflict(sides) => {
                let (bound, other) = *sides;
                let from_bound = if bound.machine_id != other.machine_id {
                    hb.machine_id == bound.machine_id
                } else {
                    hb.instance_id == bound.instance_id
                };
                match record(state, &hb.agent_id, &bound, &other).await {
                    Ok(c) => {
                        warn!(agent_id = %hb.agent_id, bound = %describe(&c.bound), other = %describe(&c.other),
                            "identity conflict: two machines use one agent identity; the second is refused until an operator decides");
                        forget(&hb.agent_id, &c.other.instance_id);
                        conflicts.insert(hb.agent_id.clone(), c);
                    }
                    Err(e) => {
                        warn!(agent_id = %hb.agent_id, error = %e, "identity conflict not recorded")
                    }
                }
                if from_bound {
                    out.push(hb);
                }
            }
        }
    }
    out
}

type Lookups = (HashMap<String, Conflict>, HashMap<String, String>);

async fn lookups(db: &DatabaseConnection, ids: &[String]) -> Result<Lookups, DbErr> {
    let conflicts = latest(db, Some(ids)).await?;
    let mut enrolled = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String)> = agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::MachineId)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        enrolled.extend(rows);
    }
    Ok((conflicts, enrolled))
}

async fn record(
    state: &AppState,
    agent_id: &str,
    bound: &Seen,
    other: &Seen,
) -> Result<Conflict, DbErr> {
    let detail = serde_json::to_string(&Detail {
        bound: bound.clone(),
        other: other.clone(),
    })
    .unwrap_or_default();
    let row = binding_conflict::ActiveModel {
        at: Set(now_ms()),
        kind: Set(KIND.into()),
        public_key: Set(agent_id.into()),
        machine_id: Set(other.machine_id.clone()),
        hostname: Set(other.hostname.clone()),
        existing_agent_id: Set(agent_id.into()),
        detail: Set(Some(detail)),
        ..Default::default()
    };
    let _turn = state.writer.lock().await;
    let m = row.insert(&state.db).await?;
    Ok(Conflict::from_row(&m).expect("a row just written decodes"))
}

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("agent {0} has no identity conflict")]
    NoConflict(String),
    #[error("the identity conflict of agent {agent} was already decided by {by}")]
    AlreadyDecided { agent: String, by: String },
    #[error("keep must name one side's machine-id or instance id: {0}")]
    BadKeep(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// An operator keeps one side of an agent's open identity conflict. `keep`
/// is that side's machine-id or instance id (the instance id when both
/// sides report the same machine-id).
pub async fn resolve(
    state: &AppState,
    agent_id: &str,
    keep: &str,
    by: &str,
) -> Result<Conflict, ResolveError> {
    let c = latest(&state.db, Some(&[agent_id.to_string()]))
        .await?
        .remove(agent_id)
        .ok_or_else(|| ResolveError::NoConflict(agent_id.into()))?;
    if !c.is_open() {
        return Err(ResolveError::AlreadyDecided {
            agent: agent_id.into(),
            by: c.resolved_by.clone().unwrap_or_default(),
        });
    }
    let keep = keep.trim();
    let names = |s: &Seen| {
        !keep.is_empty() && (keep == s.instance_id || (c.by_machine() && keep == s.machine_id))
    };
    let side = match (names(&c.bound), names(&c.other)) {
        (true, false) => Side::Bound,
        (false, true) => Side::Other,
        _ => {
            return Err(ResolveError::BadKeep(format!(
                "{} or {}",
                describe(&c.bound),
                describe(&c.other)
            )))
        }
    };
    let now = now_ms();
    let row = binding_conflict::Entity::find_by_id(c.id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ResolveError::NoConflict(agent_id.into()))?;
    let mut am = row.into_active_model();
    am.kept = Set(Some(
        match side {
            Side::Bound => "bound",
            Side::Other => "other",
        }
        .into(),
    ));
    am.resolved_at = Set(Some(now));
    am.resolved_by = Set(Some(by.into()));
    let _turn = state.writer.lock().await;
    let m = am.update(&state.db).await?;
    Ok(Conflict::from_row(&m).expect("a row just written decodes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(agent: &str, instance: &str, machine: &str) -> Heartbeat {
        Heartbeat {
            agent_id: agent.into(),
            hostname: "h".into(),
            seq: 1,
            sent_at: 0,
            interval_secs: 1,
            agent_version: String::new(),
            agent_channel: String::new(),
            os: String::new(),
            kernel: String::new(),
            metrics: Default::default(),
            modules: vec![],
            operations: vec![],
            rootd_error: None,
            instance_id: instance.into(),
            machine_id: machine.into(),
            boot_id: String::new(),
            protocol_version: bus_schema::signing::PROTOCOL_VERSION,
            watch_revision: String::new(),
            services: vec![],
            services_full: false,
            key_fingerprints: None,
            rootd_box_key: None,
        }
    }

    #[test]
    fn a_restart_is_not_a_conflict_but_alternation_is() {
        let now = 1_000_000;
        // Restart: the old process never speaks again.
        for (i, inst) in ["a1", "a2", "a2", "a2"].iter().enumerate() {
            let v = judge(&hb("RESTART", inst, "m"), "m", false, now + i as i64);
            assert!(matches!(v, Verdict::Apply));
        }
        // Clones sharing a machine-id: a, b, then a again while b is live.
        assert!(matches!(
            judge(&hb("CLONE", "a", "m"), "m", false, now),
            Verdict::Apply
        ));
        assert!(matches!(
            judge(&hb("CLONE", "b", "m"), "m", false, now + 1),
            Verdict::Apply
        ));
        match judge(&hb("CLONE", "a", "m"), "m", false, now + 2) {
            Verdict::Conflict(sides) => {
                assert_eq!(sides.0.instance_id, "a", "the first seen is bound");
                assert_eq!(sides.1.instance_id, "b");
            }
            Verdict::Apply => panic!("alternation not detected"),
        }
        // The old process speaking long after the new one went quiet is a
        // restart back, not a conflict.
        assert!(matches!(
            judge(&hb("LATE", "a", "m"), "m", false, now),
            Verdict::Apply
        ));
        assert!(matches!(
            judge(&hb("LATE", "b", "m"), "m", false, now + 1),
            Verdict::Apply
        ));
        let later = now + 1 + LIVE_AT_LEAST_MS + 1;
        assert!(matches!(
            judge(&hb("LATE", "a", "m"), "m", false, later),
            Verdict::Apply
        ));
        // Another machine-id than the enrolled one: at once.
        assert!(matches!(
            judge(&hb("MOVED", "x", "other"), "m", false, now),
            Verdict::Conflict(_)
        ));
        // Older agents without the fields are never judged by the caller;
        // an empty machine-id is never a mismatch.
        assert!(matches!(
            judge(&hb("OLD", "y", ""), "m", false, now),
            Verdict::Apply
        ));
    }
}
