//! Alert rules: what an operator may write (`RuleInput`), its checks (a bad
//! kind, parameter, severity or selector is refused with a message saying
//! what to write, and nothing is stored), the typed condition the evaluator
//! runs ([`Condition`]), and storing, listing and removing rules.
//!
//! Owns rule rows; not evaluating them (`evaluate`, `conditions`).

use std::collections::BTreeMap;

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::entities::alert_rule;
use crate::selector::Selector;

/// Why a rule was not stored or found.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A field is wrong; the text names it and says what to write.
    #[error("{0}")]
    Invalid(String),
    #[error("no alert rule {0}; list them with `drover alerts rules list`")]
    NotFound(String),
    #[error("an alert rule named {0:?} exists already; choose another name")]
    NameTaken(String),
    #[error("no silence {0}; list them with `drover silences list`")]
    NoSilence(String),
    #[error("no alert {0}; list them with `drover alerts --state all`")]
    NoAlert(String),
    #[error("alert {0} is resolved already; there is nothing to acknowledge")]
    Resolved(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// Every rule kind, in the order pages list them.
pub const KINDS: &[&str] = &[
    "metric",
    "host_offline",
    "service_not_active",
    "job_failed",
    "updates_pending",
    "security_refusal",
    "identity_conflict",
    "agent_outdated",
];

/// The metrics a `metric` rule may compare.
pub const METRICS: &[&str] = &[
    "disk_used_percent",
    "mem_used_percent",
    "cpu_percent",
    "load1",
];

pub const SEVERITIES: &[&str] = &["info", "warning", "critical"];

/// A selector as the API takes it: JSON (`{"labels": {"env": "prod"}}`) or
/// the CLI's text (`label:env=prod`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SelectorInput {
    Json(Selector),
    Text(String),
}

/// Resolves and checks a selector; `None` or `""` means every host.
pub fn selector_of(input: Option<SelectorInput>) -> Result<Selector, RuleError> {
    let s = match input {
        None => {
            return Ok(Selector {
                all: true,
                ..Default::default()
            })
        }
        Some(SelectorInput::Text(t)) if t.trim().is_empty() => {
            return Ok(Selector {
                all: true,
                ..Default::default()
            })
        }
        Some(SelectorInput::Text(t)) => {
            Selector::parse(&t).map_err(|e| RuleError::Invalid(format!("selector: {e}")))?
        }
        Some(SelectorInput::Json(s)) => s,
    };
    s.check()
        .map_err(|e| RuleError::Invalid(format!("selector: {e}")))?;
    Ok(s)
}

/// The body of `POST /api/v1/alerts/rules` and `PUT /api/v1/alerts/rules/{id}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// 1..=64 printable characters, unique.
    pub name: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// Hosts the rule covers; absent: every host.
    #[serde(default)]
    pub selector: Option<SelectorInput>,
    /// Per kind; see [`Condition::parse`].
    #[serde(default)]
    pub params: Option<Value>,
    /// `info`, `warning` (the default) or `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Seconds the condition must hold before firing, 0..=604800 (default 0).
    #[serde(default)]
    pub for_secs: Option<i64>,
    /// Labels copied onto the rule's alerts (routing matches them).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

pub use super::kinds::{Condition, Op};

/// The checked fields of a rule.
struct Checked {
    name: String,
    kind: String,
    selector: Selector,
    condition: Condition,
    severity: String,
    for_secs: i64,
    labels: BTreeMap<String, String>,
    enabled: bool,
}

fn check(input: RuleInput) -> Result<Checked, RuleError> {
    let bad = |m: String| Err(RuleError::Invalid(m));
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return bad("name: use 1 to 64 printable characters".into());
    }
    let kind = input.kind.trim().to_string();
    let condition = Condition::parse(&kind, input.params.as_ref().unwrap_or(&Value::Null))?;
    let selector = selector_of(input.selector)?;
    let severity = input.severity.unwrap_or_else(|| "warning".into());
    if !SEVERITIES.contains(&severity.as_str()) {
        return bad(format!(
            "severity {severity:?} is not known; use info, warning or critical"
        ));
    }
    let for_secs = input.for_secs.unwrap_or(0);
    if !(0..=604_800).contains(&for_secs) {
        return bad("for_secs must be from 0 to 604800 (a week)".into());
    }
    let labels = input.labels.unwrap_or_default();
    if labels.len() > 32 {
        return bad("labels: at most 32".into());
    }
    for (k, v) in &labels {
        let ok_key = !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !ok_key {
            return bad(format!(
                "label name {k:?}: use 1 to 64 letters, digits, '_', '-' or '.'"
            ));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return bad(format!("label {k:?}: use at most 256 printable characters"));
        }
    }
    Ok(Checked {
        name,
        kind,
        selector,
        condition,
        severity,
        for_secs,
        labels,
        enabled: input.enabled.unwrap_or(true),
    })
}

fn fill(m: &mut alert_rule::ActiveModel, c: Checked, now: i64) {
    m.name = Set(c.name);
    m.kind = Set(c.kind);
    m.selector = Set(serde_json::to_string(&c.selector).unwrap_or_default());
    m.params = Set(c.condition.params_json().to_string());
    m.severity = Set(c.severity);
    m.for_secs = Set(c.for_secs);
    m.labels = Set(serde_json::to_string(&c.labels).unwrap_or_default());
    m.enabled = Set(c.enabled);
    m.updated_at = Set(now);
}

async fn name_taken(
    db: &DatabaseConnection,
    name: &str,
    except: Option<&str>,
) -> Result<bool, sea_orm::DbErr> {
    let mut q = alert_rule::Entity::find().filter(alert_rule::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(alert_rule::Column::Id.ne(id));
    }
    Ok(q.one(db).await?.is_some())
}

/// Stores a new rule; `who` is the creating user.
pub async fn create(
    db: &DatabaseConnection,
    input: RuleInput,
    who: &str,
) -> Result<alert_rule::Model, RuleError> {
    let c = check(input)?;
    if name_taken(db, &c.name, None).await? {
        return Err(RuleError::NameTaken(c.name));
    }
    let now = now_ms();
    let mut m = alert_rule::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        created_by: Set(who.to_string()),
        created_at: Set(now),
        ..Default::default()
    };
    fill(&mut m, c, now);
    Ok(m.insert(db).await?)
}

/// Replaces a rule's settings. Its open alerts stay; the next round judges
/// them by the new condition.
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    input: RuleInput,
) -> Result<alert_rule::Model, RuleError> {
    let c = check(input)?;
    let old = get(db, id).await?;
    if name_taken(db, &c.name, Some(&old.id)).await? {
        return Err(RuleError::NameTaken(c.name));
    }
    let mut m: alert_rule::ActiveModel = old.into();
    fill(&mut m, c, now_ms());
    Ok(m.update(db).await?)
}

/// Enables or disables a rule (a disabled rule's alerts resolve in the
/// next round).
pub async fn set_enabled(
    db: &DatabaseConnection,
    id: &str,
    enabled: bool,
) -> Result<alert_rule::Model, RuleError> {
    let r = get(db, id).await?;
    let mut m: alert_rule::ActiveModel = r.into();
    m.enabled = Set(enabled);
    m.updated_at = Set(now_ms());
    Ok(m.update(db).await?)
}

/// A rule by id or by name.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<alert_rule::Model, RuleError> {
    if let Some(r) = alert_rule::Entity::find_by_id(id).one(db).await? {
        return Ok(r);
    }
    alert_rule::Entity::find()
        .filter(alert_rule::Column::Name.eq(id))
        .one(db)
        .await?
        .ok_or_else(|| RuleError::NotFound(id.to_string()))
}

/// Every rule, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<alert_rule::Model>, sea_orm::DbErr> {
    alert_rule::Entity::find()
        .order_by_asc(alert_rule::Column::Name)
        .all(db)
        .await
}

/// A rule as the API shows it.
pub fn view(r: &alert_rule::Model) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let selector: Option<Selector> = serde_json::from_str(&r.selector).ok();
    json!({
        "id": r.id,
        "name": r.name,
        "kind": r.kind,
        "selector": parse(&r.selector),
        "selector_text": selector.map(|s| s.to_text()).unwrap_or_default(),
        "params": parse(&r.params),
        "severity": r.severity,
        "for_secs": r.for_secs,
        "labels": parse(&r.labels),
        "enabled": r.enabled,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}
