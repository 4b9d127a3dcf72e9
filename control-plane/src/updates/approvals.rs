//! Which of a host's pending updates may be installed: explicit approvals
//! and declines. The one place that answers "is this update approved for
//! this host"; does not own writing approvals or showing them.

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use super::entities::{approval, inventory};
use crate::db::entities::agent;
use crate::selector::Selector;

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

/// Whether an approval or decline is in force at `now_ms`.
pub fn in_force(a: &approval::Model, now_ms: i64) -> bool {
    a.revoked_at.is_none() && a.expires_at.is_none_or(|e| e > now_ms)
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
    what && serde_json::from_str::<Selector>(&a.selector).is_ok_and(|s| s.matches(host))
}

/// The host's inventory entries that an approval in force covers and no
/// decline in force covers.
pub async fn approved_for(
    db: &DatabaseConnection,
    host: &agent::Model,
    now_ms: i64,
) -> Result<Vec<ApprovedUpdate>, DbErr> {
    let rows = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(host.id.clone()))
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<approval::Model> = approval::Entity::find()
        .filter(approval::Column::RevokedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .filter(|a| in_force(a, now_ms))
        .collect();
    Ok(rows
        .into_iter()
        .filter(|r| !r.held)
        .filter(|r| {
            !all.iter()
                .any(|a| a.decision == "decline" && covers(a, host, r))
        })
        .filter_map(|r| {
            let a = all
                .iter()
                .find(|a| a.decision == "approve" && covers(a, host, &r))?;
            Some(ApprovedUpdate {
                package: r.package,
                version: r.candidate_version,
                approved_by: a.created_by.clone(),
                approval_id: Some(a.id.clone()),
                rule_id: None,
            })
        })
        .collect())
}
