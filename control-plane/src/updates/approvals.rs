//! Which of a host's pending updates may be installed: explicit approvals,
//! declines and auto-approval rules. The one place that answers "is this
//! update approved for this host" ([`decide`] for one row, [`approved_for`]
//! for a host); does not own writing approvals or rules (`super::store`) or
//! showing them.
//!
//! The order, for one inventory row on one host:
//! 1. a held package is never approved;
//! 2. a decline in force that covers it wins over everything;
//! 3. an explicit approval in force that covers it approves it;
//! 4. an enabled rule whose scope and selector cover it approves it once
//!    `first_seen + delay_days` has passed (`approved_by = "rule:<name>"`);
//! 5. otherwise it is pending.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{approval, approval_rule, inventory};
use crate::db::entities::agent;
use crate::selector::Selector;

/// One day in milliseconds: rule delays count in days.
pub const DAY_MS: i64 = 86_400_000;

/// One update a host may install now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedUpdate {
    pub package: String,
    /// The candidate version to install.
    pub version: String,
    /// The approving user's name, or `rule:<rule name>`.
    pub approved_by: String,
    pub approval_id: Option<String>,
    pub rule_id: Option<String>,
}

/// What the approvals say about one inventory row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// On hold on the host: never installed.
    Held,
    /// A decline in force covers it (`by`: who declined).
    Declined { by: String, approval_id: String },
    /// May be installed.
    Approved(ApprovedUpdate),
    /// Nothing approves it yet; `auto_at`: when a rule will (ms since the
    /// epoch), if one covers it.
    Pending { auto_at: Option<i64> },
}

impl Decision {
    /// `held`, `declined`, `approved` or `pending`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Held => "held",
            Decision::Declined { .. } => "declined",
            Decision::Approved(_) => "approved",
            Decision::Pending { .. } => "pending",
        }
    }
}

/// Whether an approval or decline is in force at `now_ms`.
pub fn in_force(a: &approval::Model, now_ms: i64) -> bool {
    a.revoked_at.is_none() && a.expires_at.is_none_or(|e| e > now_ms)
}

fn selector_matches(json: &str, host: &agent::Model) -> bool {
    serde_json::from_str::<Selector>(json).is_ok_and(|s| s.matches(host))
}

/// Whether `a` covers this inventory row on this host.
pub fn covers(a: &approval::Model, host: &agent::Model, row: &inventory::Model) -> bool {
    let what = match a.scope.as_str() {
        "security" => row.security,
        "package" => {
            a.package.as_deref() == Some(row.package.as_str())
                && a.version
                    .as_deref()
                    .is_none_or(|v| v == row.candidate_version)
        }
        _ => false,
    };
    what && selector_matches(&a.selector, host)
}

/// Whether rule `r` (enabled or not) covers this row on this host, delay
/// aside.
pub fn rule_covers(r: &approval_rule::Model, host: &agent::Model, row: &inventory::Model) -> bool {
    let what = match r.scope.as_str() {
        "security" => row.security,
        "all" => true,
        _ => false,
    };
    what && selector_matches(&r.selector, host)
}

/// When rule `r` approves `row`: its `first_seen` plus the delay.
pub fn rule_due(r: &approval_rule::Model, row: &inventory::Model) -> i64 {
    row.first_seen
        .saturating_add(i64::from(r.delay_days.max(0)).saturating_mul(DAY_MS))
}

/// Decides one row. `approvals` are those in force (any order: the oldest
/// covering one is named), `rules` the enabled ones.
pub fn decide(
    host: &agent::Model,
    row: &inventory::Model,
    approvals: &[approval::Model],
    rules: &[approval_rule::Model],
    now_ms: i64,
) -> Decision {
    if row.held {
        return Decision::Held;
    }
    let oldest = |decision: &str| {
        approvals
            .iter()
            .filter(|a| a.decision == decision && in_force(a, now_ms) && covers(a, host, row))
            .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
    };
    if let Some(d) = oldest("decline") {
        return Decision::Declined {
            by: d.created_by.clone(),
            approval_id: d.id.clone(),
        };
    }
    if let Some(a) = oldest("approve") {
        return Decision::Approved(ApprovedUpdate {
            package: row.package.clone(),
            version: row.candidate_version.clone(),
            approved_by: a.created_by.clone(),
            approval_id: Some(a.id.clone()),
            rule_id: None,
        });
    }
    let mut covering: Vec<&approval_rule::Model> = rules
        .iter()
        .filter(|r| r.enabled && rule_covers(r, host, row))
        .collect();
    covering.sort_by(|a, b| (rule_due(a, row), &a.name).cmp(&(rule_due(b, row), &b.name)));
    match covering.first() {
        Some(r) if rule_due(r, row) <= now_ms => Decision::Approved(ApprovedUpdate {
            package: row.package.clone(),
            version: row.candidate_version.clone(),
            approved_by: format!("rule:{}", r.name),
            approval_id: None,
            rule_id: Some(r.id.clone()),
        }),
        Some(r) => Decision::Pending {
            auto_at: Some(rule_due(r, row)),
        },
        None => Decision::Pending { auto_at: None },
    }
}

/// The approvals that may be in force at `now_ms` (not revoked, not
/// expired), oldest first.
pub async fn load_in_force<C: ConnectionTrait>(
    db: &C,
    now_ms: i64,
) -> Result<Vec<approval::Model>, DbErr> {
    Ok(approval::Entity::find()
        .filter(approval::Column::RevokedAt.is_null())
        .order_by_asc(approval::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .filter(|a| in_force(a, now_ms))
        .collect())
}

/// The enabled auto-approval rules.
pub async fn load_rules<C: ConnectionTrait>(db: &C) -> Result<Vec<approval_rule::Model>, DbErr> {
    approval_rule::Entity::find()
        .filter(approval_rule::Column::Enabled.eq(true))
        .order_by_asc(approval_rule::Column::Name)
        .all(db)
        .await
}

/// The host's inventory entries that an approval in force or a rule whose
/// delay has passed covers and no decline in force covers; held packages
/// never.
pub async fn approved_for<C: ConnectionTrait>(
    db: &C,
    host: &agent::Model,
    now_ms: i64,
) -> Result<Vec<ApprovedUpdate>, DbErr> {
    let rows = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(host.id.clone()))
        .order_by_asc(inventory::Column::Package)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let approvals = load_in_force(db, now_ms).await?;
    let rules = load_rules(db).await?;
    Ok(rows
        .iter()
        .filter_map(|r| match decide(host, r, &approvals, &rules, now_ms) {
            Decision::Approved(a) => Some(a),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
#[path = "approvals_tests.rs"]
mod tests;
