//! Silences and the other quiet times: a silence (for a time, for a rule
//! and/or the hosts a selector matches) and open maintenance windows
//! covering a host make an alert's transitions `suppressed` (recorded, not
//! notified). Owns silence rows and the [`Quiet`] check; not the alert
//! lifecycle (`evaluate`) nor maintenance windows themselves (`windows`).

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::entities::{alert, silence};
use super::rules::{self, RuleError, SelectorInput};
use crate::db::entities::agent;
use crate::selector::Selector;

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// Only this rule's alerts (id or name); absent: every rule.
    #[serde(default)]
    pub rule: Option<String>,
    /// Only alerts on hosts this selector matches; absent: any host.
    #[serde(default)]
    pub selector: Option<SelectorInput>,
    /// Start, ms since the epoch; default now.
    #[serde(default)]
    pub starts_at: Option<i64>,
    /// End, ms since the epoch; or give `duration_secs`.
    #[serde(default)]
    pub ends_at: Option<i64>,
    /// Length from the start, 60..=31536000 seconds.
    #[serde(default)]
    pub duration_secs: Option<i64>,
    /// Why (1..=500 characters): shown to everyone who wonders why an
    /// alert was quiet.
    pub comment: String,
}

/// Checks and stores a silence.
pub async fn create(
    db: &DatabaseConnection,
    input: SilenceInput,
    who: &str,
) -> Result<silence::Model, RuleError> {
    let bad = |m: &str| Err(RuleError::Invalid(m.to_string()));
    let now = now_ms();
    let comment = input.comment.trim().to_string();
    if comment.is_empty() || comment.chars().count() > 500 {
        return bad("comment: say why, in 1 to 500 characters");
    }
    let starts_at = input.starts_at.unwrap_or(now);
    let ends_at = match (input.ends_at, input.duration_secs) {
        (Some(_), Some(_)) => return bad("give ends_at or duration_secs, not both"),
        (Some(e), None) => e,
        (None, Some(d)) if (60..=31_536_000).contains(&d) => starts_at + d * 1000,
        (None, Some(_)) => return bad("duration_secs must be from 60 to 31536000 (a year)"),
        (None, None) => return bad("give ends_at (ms) or duration_secs"),
    };
    if ends_at <= starts_at || ends_at <= now {
        return bad("the silence must end after it starts and in the future");
    }
    if ends_at - starts_at > 31_536_000_000 {
        return bad("a silence lasts at most a year");
    }
    let rule_id = match input.rule.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => Some(rules::get(db, r).await?.id),
    };
    let selector = match input.selector {
        None => None,
        Some(SelectorInput::Text(t)) if t.trim().is_empty() => None,
        s => Some(serde_json::to_string(&rules::selector_of(s)?).unwrap_or_default()),
    };
    Ok(silence::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        rule_id: Set(rule_id),
        selector: Set(selector),
        starts_at: Set(starts_at),
        ends_at: Set(ends_at),
        comment: Set(comment),
        created_by: Set(who.to_string()),
        created_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// Silences not yet ended (and those ended in the last day), newest first.
pub async fn list(db: &DatabaseConnection, now: i64) -> Result<Vec<silence::Model>, DbErr> {
    silence::Entity::find()
        .filter(silence::Column::EndsAt.gt(now - 86_400_000))
        .order_by_desc(silence::Column::CreatedAt)
        .all(db)
        .await
}

/// Removes a silence (it stops at once).
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<silence::Model, RuleError> {
    let s = silence::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| RuleError::NoSilence(id.to_string()))?;
    silence::Entity::delete_by_id(id).exec(db).await?;
    Ok(s)
}

/// A silence as the API shows it.
pub fn view(s: &silence::Model, now: i64) -> Value {
    let sel: Option<Selector> = s
        .selector
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    json!({
        "id": s.id,
        "rule_id": s.rule_id,
        "selector": sel.as_ref().map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
        "selector_text": sel.map(|s| s.to_text()),
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "active": s.starts_at <= now && now < s.ends_at,
        "comment": s.comment,
        "created_by": s.created_by,
        "created_at": s.created_at,
    })
}

/// The silences and maintenance windows in force at one moment.
#[derive(Default)]
pub struct Quiet {
    silences: Vec<(Option<String>, Option<Selector>)>,
    windows: Vec<Selector>,
}

impl Quiet {
    /// Silences active at `now` and enabled windows open at `now`.
    pub async fn load(db: &DatabaseConnection, now: i64) -> Result<Self, DbErr> {
        let silences = silence::Entity::find()
            .filter(silence::Column::StartsAt.lte(now))
            .filter(silence::Column::EndsAt.gt(now))
            .all(db)
            .await?
            .into_iter()
            .map(|s| {
                let sel = s
                    .selector
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok());
                (s.rule_id, sel)
            })
            .collect();
        let windows = crate::windows::list(db)
            .await?
            .into_iter()
            .filter(|w| w.enabled)
            .filter(|w| crate::windows::schedule_of(w).is_some_and(|s| s.open_at(now).is_some()))
            .filter_map(|w| serde_json::from_str(&w.selector).ok())
            .collect();
        Ok(Self { silences, windows })
    }

    /// Whether a silence covers `a` (on host `host`, when it has one).
    pub fn silenced(&self, a: &alert::Model, host: Option<&agent::Model>) -> bool {
        self.silences.iter().any(|(rule, sel)| {
            rule.as_ref().is_none_or(|r| r == &a.rule_id)
                && match sel {
                    None => true,
                    Some(sel) => host.is_some_and(|h| sel.matches(h)),
                }
        })
    }

    /// Whether an open maintenance window covers the host.
    pub fn in_window(&self, host: &agent::Model) -> bool {
        self.windows.iter().any(|s| s.matches(host))
    }
}
