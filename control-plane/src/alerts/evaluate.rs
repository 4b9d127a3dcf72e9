//! Alert evaluation: the lease holder's `alerts` duty, one round of every
//! rule against the current state, and the alert lifecycle it drives.
//!
//! Each round: the condition holds for a target with no open alert → a
//! `pending` alert (or `firing` at once when the rule's `for_secs` is 0);
//! pending for `for_secs` → `firing`; the condition gone → a pending alert
//! is dropped (deleted, nothing was announced) and a firing one `resolved`.
//! Every firing/resolved change appends an `alert_transitions` row in the
//! same transaction, `suppressed` when the alert is acknowledged (not the
//! resolution of a notified firing), silenced or its host is in an open
//! maintenance window; `Event::Alert` goes out
//! after the commit. A disabled or removed rule resolves its alerts.
//! An open alert's `value`/`summary`/`last_at` are refreshed at most once a
//! minute (writes stay few at 10,000 hosts); `last_at` is when the
//! condition was last confirmed, to within that minute.
//!
//! Owns the lifecycle; not what each kind finds (`conditions`) nor
//! delivering notifications (`notify` reads the outbox).

use std::collections::{BTreeMap, HashMap};

use bus_schema::Event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use tracing::warn;

use super::conditions::{self, Finding, Snapshot};
use super::entities::{alert, alert_rule};
use super::rules::Condition;
use super::silences;
use super::transition::alert_transition;
use crate::selector::Selector;
use crate::state::AppState;
use crate::version_policy::Policy;

/// How often a firing alert's value and `last_at` are refreshed, ms.
const REFRESH_MS: i64 = 60_000;

/// One change to write, and the event to publish after it.
enum Change {
    Insert(alert::Model),
    Update(alert::Model),
    Delete(alert::Model),
}

struct Plan {
    changes: Vec<Change>,
    /// (alert, rule name, new state) for each firing/resolved transition.
    transitions: Vec<(alert::Model, String)>,
}

fn labels_json(rule: &alert_rule::Model, f: &Finding) -> String {
    let mut l: BTreeMap<String, String> = serde_json::from_str(&rule.labels).unwrap_or_default();
    l.insert("rule".into(), rule.name.clone());
    l.insert("severity".into(), rule.severity.clone());
    for (k, v) in &f.labels {
        l.insert(k.clone(), v.clone());
    }
    serde_json::to_string(&l).unwrap_or_default()
}

fn resolve(mut a: alert::Model, now: i64, plan: &mut Plan, rule_name: &str) {
    if a.state == "pending" {
        plan.changes.push(Change::Delete(a));
        return;
    }
    a.state = "resolved".into();
    a.resolved_at = Some(now);
    plan.transitions.push((a.clone(), rule_name.to_string()));
    plan.changes.push(Change::Update(a));
}

fn judge(
    rule: &alert_rule::Model,
    outcome: conditions::Outcome,
    mut open: HashMap<String, alert::Model>,
    now: i64,
    plan: &mut Plan,
) {
    let due = rule.for_secs * 1000;
    for f in outcome.findings {
        match open.remove(&f.target) {
            Some(mut a) if a.state == "pending" => {
                let fire = now - a.first_at >= due;
                if !fire && now - a.last_at < REFRESH_MS {
                    continue;
                }
                a.value = f.value;
                a.last_at = now;
                a.summary = f.summary;
                if fire {
                    a.state = "firing".into();
                    a.fired_at = Some(now);
                    plan.transitions.push((a.clone(), rule.name.clone()));
                }
                plan.changes.push(Change::Update(a));
            }
            Some(mut a) => {
                if now - a.last_at >= REFRESH_MS {
                    a.value = f.value;
                    a.last_at = now;
                    a.summary = f.summary;
                    plan.changes.push(Change::Update(a));
                }
            }
            None => {
                let firing = due == 0;
                let a = alert::Model {
                    id: uuid::Uuid::now_v7().simple().to_string(),
                    rule_id: rule.id.clone(),
                    target: f.target.clone(),
                    agent_id: f.agent_id.clone(),
                    state: if firing { "firing" } else { "pending" }.into(),
                    severity: rule.severity.clone(),
                    summary: f.summary.clone(),
                    labels: labels_json(rule, &f),
                    value: f.value,
                    first_at: now,
                    fired_at: firing.then_some(now),
                    last_at: now,
                    resolved_at: None,
                    acked_by: None,
                    acked_at: None,
                };
                if firing {
                    plan.transitions.push((a.clone(), rule.name.clone()));
                }
                plan.changes.push(Change::Insert(a));
            }
        }
    }
    for (target, a) in open {
        if !outcome.unknown.contains(&target) {
            resolve(a, now, plan, &rule.name);
        }
    }
}

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let db = &state.db;
    let rules = super::rules::list(db).await?;
    let open = alert::Entity::find()
        .filter(alert::Column::State.ne("resolved"))
        .all(db)
        .await?;
    if open.is_empty() && !rules.iter().any(|r| r.enabled) {
        return Ok(());
    }
    let mut by_rule: HashMap<String, HashMap<String, alert::Model>> = HashMap::new();
    for a in open {
        by_rule
            .entry(a.rule_id.clone())
            .or_default()
            .insert(a.target.clone(), a);
    }
    let need_services = rules
        .iter()
        .any(|r| r.enabled && r.kind == "service_not_active");
    let snap = Snapshot::load(db, Policy::of(&state.cfg), need_services).await?;
    let mut plan = Plan {
        changes: vec![],
        transitions: vec![],
    };
    for rule in &rules {
        let open = by_rule.remove(&rule.id).unwrap_or_default();
        let cond = Condition::parse(&rule.kind, &serde_json::from_str(&rule.params)?);
        let sel: Option<Selector> = serde_json::from_str(&rule.selector).ok();
        let outcome = match (rule.enabled, cond, sel) {
            (false, _, _) => conditions::Outcome::default(),
            (true, Ok(cond), Some(sel)) => {
                conditions::findings(db, &snap, &sel, &cond, rule.for_secs, now_ms).await?
            }
            (true, cond, _) => {
                // Stored rules were checked; one that no longer parses keeps
                // its alerts as they are until it is fixed.
                warn!(rule = %rule.name, error = ?cond.err(), "alert rule cannot be evaluated");
                continue;
            }
        };
        judge(rule, outcome, open, now_ms, &mut plan);
    }
    // Alerts of rules that are gone.
    for (_, open) in by_rule {
        for (_, a) in open {
            let name = rule_name_of(&a);
            resolve(a, now_ms, &mut plan, &name);
        }
    }
    if plan.changes.is_empty() {
        return Ok(());
    }
    let events = write(state, &snap, plan, now_ms).await?;
    for ev in &events {
        crate::events::publish(state, ev).await;
    }
    Ok(())
}

/// Writes a round's changes and transitions in one transaction; returns the
/// events to publish after the commit.
async fn write(
    state: &AppState,
    snap: &Snapshot,
    plan: Plan,
    now: i64,
) -> Result<Vec<Event>, DbErr> {
    let quiet = if plan.transitions.is_empty() {
        silences::Quiet::default()
    } else {
        silences::Quiet::load(&state.db, now).await?
    };
    let rule_names: HashMap<String, String> = plan
        .transitions
        .iter()
        .map(|(a, n)| (a.rule_id.clone(), n.clone()))
        .collect();
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    let mut events = Vec::with_capacity(plan.changes.len());
    for c in plan.changes {
        let (a, state_now) = match c {
            Change::Insert(a) => {
                alert::ActiveModel::from(a.clone()).insert(&txn).await?;
                (a.clone(), a.state)
            }
            Change::Update(a) => {
                alert::ActiveModel::from(a.clone())
                    .reset_all()
                    .update(&txn)
                    .await?;
                (a.clone(), a.state)
            }
            Change::Delete(a) => {
                alert::Entity::delete_by_id(a.id.clone()).exec(&txn).await?;
                (a, "resolved".to_string())
            }
        };
        events.push(event(&a, rule_names.get(&a.rule_id), &state_now, now));
    }
    for (a, rule_name) in plan.transitions {
        let host = a.agent_id.as_ref().and_then(|id| snap.hosts.get(id));
        // An acknowledgement quiets what follows, but the resolution of an
        // alert whose firing was notified is still sent: receivers learn it
        // is over.
        let ack_quiets = a.acked_at.is_some()
            && (a.state != "resolved" || !firing_was_notified(&txn, &a.id).await?);
        let suppressed = if ack_quiets {
            Some("acknowledged")
        } else if quiet.silenced(&a, host.map(|h| &h.agent)) {
            Some("silenced")
        } else if host.is_some_and(|h| quiet.in_window(&h.agent)) {
            Some("maintenance window")
        } else {
            None
        };
        append(
            &txn,
            &a,
            &rule_name,
            host.map(|h| h.name().to_string()),
            suppressed,
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(events)
}

/// Whether the last `firing` transition of alert `id` was notified (not
/// suppressed).
async fn firing_was_notified<C: ConnectionTrait>(db: &C, id: &str) -> Result<bool, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    Ok(alert_transition::Entity::find()
        .filter(alert_transition::Column::AlertId.eq(id))
        .filter(alert_transition::Column::State.eq("firing"))
        .order_by_desc(alert_transition::Column::Id)
        .one(db)
        .await?
        .is_some_and(|t| t.suppressed.is_none()))
}

/// Appends one outbox row for `a`'s current state (`firing`/`resolved`).
pub async fn append<C: ConnectionTrait>(
    db: &C,
    a: &alert::Model,
    rule_name: &str,
    hostname: Option<String>,
    suppressed: Option<&str>,
    at: i64,
) -> Result<(), DbErr> {
    alert_transition::ActiveModel {
        alert_id: Set(a.id.clone()),
        rule_id: Set(a.rule_id.clone()),
        rule_name: Set(rule_name.to_string()),
        agent_id: Set(a.agent_id.clone()),
        hostname: Set(hostname),
        target: Set(a.target.clone()),
        state: Set(a.state.clone()),
        severity: Set(a.severity.clone()),
        summary: Set(a.summary.clone()),
        labels: Set(a.labels.clone()),
        at: Set(at),
        suppressed: Set(suppressed.map(str::to_string)),
        dispatched_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The bus event for an alert in `state`.
pub fn event(a: &alert::Model, rule_name: Option<&String>, state: &str, at: i64) -> Event {
    let rule_name = rule_name.cloned().unwrap_or_else(|| rule_name_of(a));
    Event::Alert {
        alert_id: a.id.clone(),
        rule_id: a.rule_id.clone(),
        rule_name,
        state: state.to_string(),
        severity: a.severity.clone(),
        agent_id: a.agent_id.clone(),
        target: a.target.clone(),
        summary: a.summary.clone(),
        at,
    }
}

/// The rule's name as the alert's `rule` label kept it.
fn rule_name_of(a: &alert::Model) -> String {
    serde_json::from_str::<BTreeMap<String, String>>(&a.labels)
        .ok()
        .and_then(|l| l.get("rule").cloned())
        .unwrap_or_default()
}
