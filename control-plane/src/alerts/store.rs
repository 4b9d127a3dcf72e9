//! Reading and acting on alerts: lists, one alert with its transitions,
//! acknowledging, and removing a rule (which resolves its alerts). Owns
//! these operations; not the evaluation round (`evaluate`).

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{json, Value};

use super::entities::{alert, alert_rule};
use super::rules::RuleError;
use super::transition::alert_transition;
use crate::db::entities::agent;

/// `state` filter values `GET /api/v1/alerts` takes.
pub const STATE_FILTERS: &[&str] = &["open", "pending", "firing", "resolved", "all"];

/// Alerts in `state` (`open` = pending and firing), newest first, at most
/// `limit`.
pub async fn list(
    db: &DatabaseConnection,
    state: &str,
    limit: u64,
) -> Result<Vec<alert::Model>, sea_orm::DbErr> {
    let mut q = alert::Entity::find();
    q = match state {
        "open" => q.filter(alert::Column::State.ne("resolved")),
        "all" => q,
        s => q.filter(alert::Column::State.eq(s)),
    };
    q.order_by_desc(alert::Column::FirstAt)
        .limit(limit)
        .all(db)
        .await
}

/// How many alerts fire now (the nav's badge).
pub async fn firing_count(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    alert::Entity::find()
        .filter(alert::Column::State.eq("firing"))
        .count(db)
        .await
}

/// An alert as the API shows it; `names` gives rule and host names.
pub fn view(a: &alert::Model, rule: Option<&alert_rule::Model>, host: Option<&str>) -> Value {
    json!({
        "id": a.id,
        "rule_id": a.rule_id,
        "rule_name": rule.map(|r| r.name.clone()),
        "target": a.target,
        "agent_id": a.agent_id,
        "host": host,
        "state": a.state,
        "severity": a.severity,
        "summary": a.summary,
        "labels": serde_json::from_str::<Value>(&a.labels).unwrap_or(Value::Null),
        "value": a.value,
        "first_at": a.first_at,
        "fired_at": a.fired_at,
        "last_at": a.last_at,
        "resolved_at": a.resolved_at,
        "acked_by": a.acked_by,
        "acked_at": a.acked_at,
    })
}

/// Views of `alerts` with their rules' and hosts' names (two queries).
pub async fn views(
    db: &DatabaseConnection,
    alerts: &[alert::Model],
) -> Result<Vec<Value>, sea_orm::DbErr> {
    let rules: std::collections::HashMap<String, alert_rule::Model> = alert_rule::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let ids: Vec<String> = alerts.iter().filter_map(|a| a.agent_id.clone()).collect();
    let hosts: std::collections::HashMap<String, String> = if ids.is_empty() {
        Default::default()
    } else {
        agent::Entity::find()
            .filter(agent::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|a| {
                (
                    a.id.clone(),
                    a.display_name
                        .clone()
                        .filter(|d| !d.is_empty())
                        .unwrap_or(a.hostname),
                )
            })
            .collect()
    };
    Ok(alerts
        .iter()
        .map(|a| {
            let host = a
                .agent_id
                .as_ref()
                .and_then(|id| hosts.get(id))
                .map(String::as_str);
            view(a, rules.get(&a.rule_id), host)
        })
        .collect())
}

/// A transition as the API shows it.
pub fn transition_view(t: &alert_transition::Model) -> Value {
    json!({
        "id": t.id,
        "state": t.state,
        "at": t.at,
        "summary": t.summary,
        "severity": t.severity,
        "rule_name": t.rule_name,
        "hostname": t.hostname,
        "labels": serde_json::from_str::<Value>(&t.labels).unwrap_or(Value::Null),
        "suppressed": t.suppressed,
        "dispatched_at": t.dispatched_at,
    })
}

/// One alert with `transitions` (oldest first).
pub async fn detail(db: &DatabaseConnection, id: &str) -> Result<Value, RuleError> {
    let a = alert::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| RuleError::NoAlert(id.to_string()))?;
    let mut v = views(db, std::slice::from_ref(&a)).await?.remove(0);
    let ts = alert_transition::Entity::find()
        .filter(alert_transition::Column::AlertId.eq(id))
        .order_by_asc(alert_transition::Column::Id)
        .all(db)
        .await?;
    v["transitions"] = Value::Array(ts.iter().map(transition_view).collect());
    Ok(v)
}

/// Acknowledges an open alert: its later transitions are not notified.
/// Acknowledging twice keeps the first.
pub async fn ack(db: &DatabaseConnection, id: &str, who: &str) -> Result<alert::Model, RuleError> {
    let a = alert::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| RuleError::NoAlert(id.to_string()))?;
    if a.state == "resolved" {
        return Err(RuleError::Resolved(id.to_string()));
    }
    if a.acked_at.is_some() {
        return Ok(a);
    }
    let mut m: alert::ActiveModel = a.into();
    m.acked_by = Set(Some(who.to_string()));
    m.acked_at = Set(Some(now_ms()));
    Ok(m.update(db).await?)
}

/// Removes a rule. Its open alerts resolve in the next evaluation round
/// (a firing one with a `resolved` transition).
pub async fn delete_rule(
    db: &DatabaseConnection,
    id: &str,
) -> Result<alert_rule::Model, RuleError> {
    let r = super::rules::get(db, id).await?;
    alert_rule::Entity::delete_by_id(r.id.clone())
        .exec(db)
        .await?;
    Ok(r)
}
