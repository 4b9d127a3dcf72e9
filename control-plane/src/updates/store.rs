//! Writing approvals, declines and auto-approval rules: the checks every
//! request passes (selector, package and version forms, scope and package
//! consistency, expiry in the future, rule names and delays) and the rows
//! they become. Owns nothing about HTTP (`api::updates` maps
//! [`UpdatesError`] to statuses; the gate audits successful writes) and
//! nothing about what an approval covers (`super::approvals`).

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::entities::{approval, approval_rule};
use crate::selector::Selector;

/// Longest note on an approval, in characters.
pub const MAX_NOTE: usize = 500;
/// Longest delay of a rule, in days.
pub const MAX_DELAY_DAYS: i32 = 365;
/// Latest expiry accepted: this far after now (ms): about two years.
pub const MAX_EXPIRY_MS: i64 = 732 * super::approvals::DAY_MS;

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdatesError {
    /// The request is well-formed JSON but asks for something invalid; the
    /// text says what to send instead.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what is stored (a revoked approval, a
    /// rule name in use).
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

fn invalid(m: impl Into<String>) -> UpdatesError {
    UpdatesError::Invalid(m.into())
}

/// `POST /api/v1/updates/approvals`'s body.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    /// `approve` or `decline`.
    pub decision: String,
    /// `package` (needs `package`) or `security` (takes no package).
    pub scope: String,
    #[serde(default)]
    pub package: Option<String>,
    /// The candidate version; none: any candidate of the package.
    #[serde(default)]
    pub version: Option<String>,
    /// A selector object as jobs take it, or its CLI form as a string.
    pub selector: Value,
    #[serde(default)]
    pub note: Option<String>,
    /// Milliseconds since the epoch, in the future; none: never expires.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// `POST /api/v1/updates/rules`'s body.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    /// `security` or `all`.
    pub scope: String,
    pub selector: Value,
    /// 0..=365 days after an update's `first_seen`.
    #[serde(default)]
    pub delay_days: i32,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `PUT /api/v1/updates/rules/{id}`'s body: the fields to change.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    pub name: Option<String>,
    pub scope: Option<String>,
    pub selector: Option<Value>,
    pub delay_days: Option<i32>,
    pub enabled: Option<bool>,
}

/// A selector from a request (an object as jobs take it, or the CLI form),
/// checked; its stored JSON.
pub fn selector_json(v: &Value) -> Result<String, UpdatesError> {
    let bad = |e: String| {
        invalid(format!(
            "selector: {e}; send {{\"all\": true}}, {{\"labels\": {{\"env\": \"prod\"}}}} or the CLI form such as \"label:env=prod\""
        ))
    };
    let s = match v {
        Value::String(t) => Selector::parse(t).map_err(|e| bad(e.to_string()))?,
        Value::Object(_) => {
            let s: Selector = serde_json::from_value(v.clone()).map_err(|e| bad(e.to_string()))?;
            s.check().map_err(|e| bad(e.to_string()))?;
            s
        }
        _ => return Err(bad("it is missing or not an object".into())),
    };
    serde_json::to_string(&s).map_err(|e| bad(e.to_string()))
}

/// An empty string counts as absent (forms send empty fields).
fn given(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A package name as the catalogue accepts it, without a version.
pub fn check_package_name(p: &str) -> Result<(), UpdatesError> {
    bus_schema::catalogue::parse_package(p)
        .map_err(|e| invalid(format!("package: {e}")))
        .and_then(|spec| match spec.version {
            Some(_) => Err(invalid(format!(
                "package {p:?}: give the version in `version`, not after `=`"
            ))),
            None => Ok(()),
        })
}

/// A version as the catalogue accepts it after `package=`.
pub fn check_version(p: &str, v: &str) -> Result<(), UpdatesError> {
    bus_schema::catalogue::check_package(&format!("{p}={v}"))
        .map_err(|e| invalid(format!("version: {e}")))
}

/// Checks a new approval at `now` (ms) and stores it for `by`.
pub async fn create_approval<C: ConnectionTrait>(
    db: &C,
    req: &NewApproval,
    by: &str,
    now: i64,
) -> Result<approval::Model, UpdatesError> {
    if !["approve", "decline"].contains(&req.decision.as_str()) {
        return Err(invalid(format!(
            "decision {:?} is not understood; send \"approve\" or \"decline\"",
            req.decision
        )));
    }
    let package = given(&req.package);
    let version = given(&req.version);
    match req.scope.as_str() {
        "package" => {
            let p = package
                .as_deref()
                .ok_or_else(|| invalid("scope \"package\" needs `package`: the package's name"))?;
            check_package_name(p)?;
            if let Some(v) = &version {
                check_version(p, v)?;
            }
        }
        "security" => {
            if package.is_some() || version.is_some() {
                return Err(invalid(
                    "scope \"security\" covers every security update: leave out `package` and `version`",
                ));
            }
        }
        s => {
            return Err(invalid(format!(
                "scope {s:?} is not understood; send \"package\" (with `package`) or \"security\""
            )))
        }
    }
    let selector = selector_json(&req.selector)?;
    let note = given(&req.note).unwrap_or_default();
    if note.chars().count() > MAX_NOTE || note.chars().any(char::is_control) {
        return Err(invalid(format!(
            "note: at most {MAX_NOTE} characters on one line"
        )));
    }
    if let Some(e) = req.expires_at {
        if e <= now {
            return Err(invalid(
                "expires_at is in the past: give a time in the future (milliseconds since the epoch), or leave it out to never expire",
            ));
        }
        if e > now + MAX_EXPIRY_MS {
            return Err(invalid(
                "expires_at is more than two years ahead: leave it out to never expire",
            ));
        }
    }
    let row = approval::Model {
        id: uuid::Uuid::now_v7().simple().to_string(),
        decision: req.decision.clone(),
        scope: req.scope.clone(),
        package,
        version,
        selector,
        note,
        created_by: by.to_string(),
        created_at: now,
        expires_at: req.expires_at,
        revoked_at: None,
        revoked_by: None,
    };
    Ok(row.into_active_model().insert(db).await?)
}

/// Revokes approval `id` at `now` for `by`; a revoked one is a conflict.
pub async fn revoke_approval<C: ConnectionTrait>(
    db: &C,
    id: &str,
    by: &str,
    now: i64,
) -> Result<approval::Model, UpdatesError> {
    let a = approval::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| {
            UpdatesError::NotFound(format!(
                "no approval {id}; `drover updates approvals` (or GET /api/v1/updates/approvals) lists them"
            ))
        })?;
    if a.revoked_at.is_some() {
        return Err(UpdatesError::Conflict(format!(
            "approval {id} is already revoked"
        )));
    }
    let mut am = a.into_active_model();
    am.revoked_at = Set(Some(now));
    am.revoked_by = Set(Some(by.to_string()));
    Ok(am.update(db).await?)
}

/// Approvals, newest first (at most `limit`).
pub async fn list_approvals<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<approval::Model>, DbErr> {
    approval::Entity::find()
        .order_by_desc(approval::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// `active`, `expired` or `revoked` at `now`.
pub fn approval_state(a: &approval::Model, now: i64) -> &'static str {
    if a.revoked_at.is_some() {
        "revoked"
    } else if super::approvals::in_force(a, now) {
        "active"
    } else {
        "expired"
    }
}

/// An approval as the API shows it.
pub fn approval_json(a: &approval::Model, now: i64) -> Value {
    json!({
        "id": a.id,
        "decision": a.decision,
        "scope": a.scope,
        "package": a.package,
        "version": a.version,
        "selector": serde_json::from_str::<Value>(&a.selector).unwrap_or(Value::Null),
        "note": a.note,
        "created_by": a.created_by,
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "revoked_at": a.revoked_at,
        "revoked_by": a.revoked_by,
        "state": approval_state(a, now),
    })
}

/// A rule as the API shows it.
pub fn rule_json(r: &approval_rule::Model) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "scope": r.scope,
        "selector": serde_json::from_str::<Value>(&r.selector).unwrap_or(Value::Null),
        "delay_days": r.delay_days,
        "enabled": r.enabled,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

fn check_rule_name(n: &str) -> Result<(), UpdatesError> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "rule name {n:?}: 1 to 64 letters, digits, `.`, `_` or `-` (such as prod-security)"
        )))
    }
}

fn check_rule_scope(s: &str) -> Result<(), UpdatesError> {
    if ["security", "all"].contains(&s) {
        Ok(())
    } else {
        Err(invalid(format!(
            "scope {s:?} is not understood; a rule's scope is \"security\" or \"all\""
        )))
    }
}

fn check_delay(d: i32) -> Result<(), UpdatesError> {
    if (0..=MAX_DELAY_DAYS).contains(&d) {
        Ok(())
    } else {
        Err(invalid(format!(
            "delay_days {d}: a whole number of days from 0 (at once) to {MAX_DELAY_DAYS}"
        )))
    }
}

async fn name_free<C: ConnectionTrait>(
    db: &C,
    name: &str,
    except: Option<&str>,
) -> Result<(), UpdatesError> {
    let clash = approval_rule::Entity::find()
        .filter(approval_rule::Column::Name.eq(name))
        .one(db)
        .await?
        .filter(|r| Some(r.id.as_str()) != except);
    match clash {
        Some(_) => Err(UpdatesError::Conflict(format!(
            "a rule named {name:?} exists; choose another name or change that rule"
        ))),
        None => Ok(()),
    }
}

/// Checks and stores a new rule for `by` at `now`.
pub async fn create_rule<C: ConnectionTrait>(
    db: &C,
    req: &NewRule,
    by: &str,
    now: i64,
) -> Result<approval_rule::Model, UpdatesError> {
    let name = req.name.trim();
    check_rule_name(name)?;
    check_rule_scope(&req.scope)?;
    check_delay(req.delay_days)?;
    let selector = selector_json(&req.selector)?;
    name_free(db, name, None).await?;
    let row = approval_rule::Model {
        id: uuid::Uuid::now_v7().simple().to_string(),
        name: name.to_string(),
        scope: req.scope.clone(),
        selector,
        delay_days: req.delay_days,
        enabled: req.enabled,
        created_by: by.to_string(),
        created_at: now,
        updated_at: now,
    };
    Ok(row.into_active_model().insert(db).await?)
}

async fn find_rule<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<approval_rule::Model, UpdatesError> {
    approval_rule::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| {
            UpdatesError::NotFound(format!(
                "no rule {id}; `drover updates rules list` (or GET /api/v1/updates/rules) lists them"
            ))
        })
}

/// Changes the given fields of rule `id`.
pub async fn update_rule<C: ConnectionTrait>(
    db: &C,
    id: &str,
    ch: &RuleChange,
    now: i64,
) -> Result<approval_rule::Model, UpdatesError> {
    let r = find_rule(db, id).await?;
    let mut am = r.into_active_model();
    if let Some(n) = &ch.name {
        let n = n.trim();
        check_rule_name(n)?;
        name_free(db, n, Some(id)).await?;
        am.name = Set(n.to_string());
    }
    if let Some(s) = &ch.scope {
        check_rule_scope(s)?;
        am.scope = Set(s.clone());
    }
    if let Some(s) = &ch.selector {
        am.selector = Set(selector_json(s)?);
    }
    if let Some(d) = ch.delay_days {
        check_delay(d)?;
        am.delay_days = Set(d);
    }
    if let Some(e) = ch.enabled {
        am.enabled = Set(e);
    }
    am.updated_at = Set(now);
    Ok(am.update(db).await?)
}

/// Removes rule `id`; returns what it was.
pub async fn delete_rule<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<approval_rule::Model, UpdatesError> {
    let r = find_rule(db, id).await?;
    approval_rule::Entity::delete_by_id(id.to_string())
        .exec(db)
        .await?;
    Ok(r)
}

/// Every rule, by name.
pub async fn list_rules<C: ConnectionTrait>(db: &C) -> Result<Vec<approval_rule::Model>, DbErr> {
    approval_rule::Entity::find()
        .order_by_asc(approval_rule::Column::Name)
        .all(db)
        .await
}
