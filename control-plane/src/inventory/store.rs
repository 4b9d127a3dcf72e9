//! Reading and writing the inventory: the `agent_inventory` row of a host
//! and the effective values on its `agents` row, in one write turn and one
//! transaction, so a selector sees a label change as soon as the call
//! returns. Decommissioning revokes through `trust::revoke` (the broker's
//! revocation list) and marks the row. The rules are the parent module's;
//! HTTP is `api/inventory.rs`'s.

use std::collections::HashMap;

use bus_schema::now_ms;
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter,
};
use tracing::{info, warn};

use super::{apply_labels, effective, parse_labels, parse_operator, Edit, InventoryError};
use crate::db::entities::{agent, agent_inventory};
use crate::state::AppState;

/// The inventory row of `id`, if an operator ever touched it.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<agent_inventory::Model>, sea_orm::DbErr> {
    agent_inventory::Entity::find_by_id(id.to_string())
        .one(db)
        .await
}

/// The inventory rows of `ids`, by agent id.
pub async fn many<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
) -> Result<HashMap<String, agent_inventory::Model>, sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        for r in agent_inventory::Entity::find()
            .filter(agent_inventory::Column::AgentId.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            out.insert(r.agent_id.clone(), r);
        }
    }
    Ok(out)
}

/// A condition on `agents` keeping decommissioned hosts out (fleet views).
pub fn not_decommissioned() -> sea_orm::sea_query::SimpleExpr {
    agent::Column::Id.not_in_subquery(
        Query::select()
            .column(agent_inventory::Column::AgentId)
            .from(agent_inventory::Entity)
            .and_where(agent_inventory::Column::DecommissionedAt.is_not_null())
            .to_owned(),
    )
}

fn blank(id: &str) -> agent_inventory::Model {
    agent_inventory::Model {
        agent_id: id.to_string(),
        operator_name: None,
        enrolled_name: None,
        operator_labels: "{}".into(),
        agent_labels: None,
        notes: String::new(),
        decommissioned_at: None,
        decommissioned_by: None,
        updated_at: 0,
        updated_by: String::new(),
    }
}

async fn save<C: ConnectionTrait>(
    db: &C,
    existed: bool,
    row: agent_inventory::Model,
) -> Result<(), sea_orm::DbErr> {
    let mut am = row.into_active_model();
    if existed {
        am = am.reset_all();
        am.update(db).await?;
    } else {
        am = am.reset_all();
        agent_inventory::Entity::insert(am).exec(db).await?;
    }
    Ok(())
}

/// Applies an operator's edit of host `id` (checked first: a bad edit
/// changes nothing) and returns the agent's row as stored after it.
pub async fn edit(
    state: &AppState,
    id: &str,
    e: &Edit,
    by: &str,
) -> Result<agent::Model, InventoryError> {
    e.check()?;
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    let a = agent::Entity::find_by_id(id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| InventoryError::UnknownAgent(id.into()))?;
    let old = get(&txn, id).await?;
    let existed = old.is_some();
    let mut inv = old.unwrap_or_else(|| blank(id));
    if inv.decommissioned_at.is_some() {
        return Err(InventoryError::Decommissioned(id.into()));
    }
    let mut row = a.clone().into_active_model();
    let mut changed = false;
    if let Some(name) = &e.display_name {
        if inv.operator_name.is_none() {
            inv.enrolled_name = a.display_name.clone();
        }
        inv.operator_name = name.clone().filter(|n| !n.is_empty());
        row.display_name = Set(inv.operator_name.clone().or(inv.enrolled_name.clone()));
        changed = true;
    }
    if !e.labels.is_empty() || !e.remove_labels.is_empty() {
        if inv.agent_labels.is_none() {
            inv.agent_labels = Some(a.labels.clone());
        }
        let own = parse_labels(inv.agent_labels.as_deref().unwrap_or("{}"));
        let op = apply_labels(&own, parse_operator(&inv.operator_labels), e)?;
        inv.operator_labels = serde_json::to_string(&op).unwrap_or_else(|_| "{}".into());
        row.labels =
            Set(serde_json::to_string(&effective(&own, &op)).unwrap_or_else(|_| "{}".into()));
        changed = true;
    }
    if let Some(n) = &e.notes {
        inv.notes = n.clone();
    }
    inv.updated_at = now_ms();
    inv.updated_by = by.to_string();
    let stored = if changed { row.update(&txn).await? } else { a };
    save(&txn, existed, inv).await?;
    txn.commit().await?;
    info!(agent_id = %id, by, "inventory edited");
    Ok(stored)
}

/// Decommissions host `id`: revokes it when it is still trusted (its NATS
/// credentials stop working, its queue is emptied), then marks it so fleet
/// views and selectors leave it out. Its commands, jobs and audit rows are
/// kept. A host already decommissioned is a conflict.
pub async fn decommission(
    state: &AppState,
    id: &str,
    by: &str,
) -> Result<agent_inventory::Model, InventoryError> {
    let a = agent::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| InventoryError::UnknownAgent(id.into()))?;
    if get(&state.db, id)
        .await?
        .is_some_and(|i| i.decommissioned_at.is_some())
    {
        return Err(InventoryError::Decommissioned(id.into()));
    }
    if matches!(a.status.as_str(), "pending" | "online" | "offline") {
        crate::trust::revoke(state, id, by).await?;
    }
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    let old = get(&txn, id).await?;
    let existed = old.is_some();
    let mut inv = old.unwrap_or_else(|| blank(id));
    let now = now_ms();
    inv.decommissioned_at = Some(now);
    inv.decommissioned_by = Some(by.to_string());
    inv.updated_at = now;
    inv.updated_by = by.to_string();
    save(&txn, existed, inv.clone()).await?;
    // Its last unit states would count in the fleet's "services down" and
    // the Services page for ever: a decommissioned host reports no more.
    crate::services::state::service_state::Entity::delete_many()
        .filter(crate::services::state::service_state::Column::AgentId.eq(id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    warn!(agent_id = %id, by, "agent decommissioned");
    Ok(inv)
}
