//! Operator decisions about agents: approve, reject, revoke. Revoking pushes
//! the revocation to the broker (the agent's connection closes at once and
//! reconnection is refused), removes its command queue and cancels what was
//! waiting for it.

use bus_schema::{now_ms, subjects, CommandStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::db::entities::{agent, binding_conflict, command, input_drop, refusal};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no agent {0}")]
    UnknownAgent(String),
    #[error("agent {id} is {status}; only a {wanted} agent can be {verb}")]
    WrongState {
        id: String,
        status: String,
        wanted: &'static str,
        verb: &'static str,
    },
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("broker: {0}")]
    Broker(String),
}

async fn set_status(
    state: &AppState,
    id: &str,
    from: &[&str],
    to: &str,
    approved_by: Option<&str>,
) -> Result<bool, TrustError> {
    let _turn = state.writer.lock().await;
    let mut q = agent::Entity::update_many()
        .col_expr(agent::Column::Status, Expr::value(to))
        .filter(agent::Column::Id.eq(id))
        .filter(agent::Column::Status.is_in(from.iter().copied()));
    if let Some(by) = approved_by {
        q = q.col_expr(agent::Column::ApprovedBy, Expr::value(by));
    }
    if to == "revoked" {
        q = q.col_expr(agent::Column::RevokedAt, Expr::value(now_ms()));
    }
    Ok(q.exec(&state.db).await?.rows_affected == 1)
}

async fn current(state: &AppState, id: &str) -> Result<agent::Model, TrustError> {
    agent::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| TrustError::UnknownAgent(id.into()))
}

pub async fn approve(state: &AppState, id: &str, by: &str) -> Result<(), TrustError> {
    let a = current(state, id).await?;
    if !set_status(state, id, &["pending"], "offline", Some(by)).await? {
        return Err(TrustError::WrongState {
            id: id.into(),
            status: a.status,
            wanted: "pending",
            verb: "approved",
        });
    }
    crate::commands::ensure_consumer(state, id)
        .await
        .map_err(|e| TrustError::Broker(format!("{e:#}")))?;
    info!(agent_id = %id, by, "agent approved");
    Ok(())
}

pub async fn reject(state: &AppState, id: &str, by: &str) -> Result<(), TrustError> {
    let a = current(state, id).await?;
    if !set_status(state, id, &["pending"], "rejected", None).await? {
        return Err(TrustError::WrongState {
            id: id.into(),
            status: a.status,
            wanted: "pending",
            verb: "rejected",
        });
    }
    info!(agent_id = %id, by, "agent rejected");
    Ok(())
}

pub async fn revoke(state: &AppState, id: &str, by: &str) -> Result<(), TrustError> {
    let a = current(state, id).await?;
    if !set_status(
        state,
        id,
        &["pending", "online", "offline"],
        "revoked",
        None,
    )
    .await?
    {
        return Err(TrustError::WrongState {
            id: id.into(),
            status: a.status,
            wanted: "pending, online or offline",
            verb: "revoked",
        });
    }
    warn!(agent_id = %id, by, "agent revoked");
    // 1. The broker: the account's revocation list, pushed to the resolver.
    push_revocations(state).await?;
    // 2. Its queue and what waited in it.
    let stream = state
        .js
        .get_stream(subjects::cmd_stream(id))
        .await
        .map_err(|e| TrustError::Broker(e.to_string()))?;
    let _ = stream.delete_consumer(&subjects::agent_consumer(id)).await;
    let _ = stream.purge().filter(subjects::command(id)).await;
    state.consumers.lock().await.remove(id);
    let _turn = state.writer.lock().await;
    // The agent may have run some of them: inferred, so a result it had
    // already sent still replaces this.
    crate::ledger::end_unreported(
        &state.db,
        sea_orm::Condition::all().add(command::Column::AgentId.eq(id)),
        &crate::ledger::OPEN,
        &crate::ledger::Ending {
            status: CommandStatus::Cancelled,
            summary: "cancelled: the agent was revoked",
            source: crate::ledger::Source::Inferred,
            attempts: None,
        },
        now_ms(),
    )
    .await?;
    Ok(())
}

/// Re-signs the account with every revoked agent listed and pushes it.
pub async fn push_revocations(state: &AppState) -> Result<(), TrustError> {
    let revoked: Vec<(String, Option<i64>)> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::RevokedAt)
        .filter(agent::Column::Status.eq("revoked"))
        .into_tuple()
        .all(&state.db)
        .await?;
    let list: Vec<(String, i64)> = revoked
        .into_iter()
        .map(|(id, at)| (id, at.unwrap_or_else(now_ms) / 1000))
        .collect();
    state
        .auth
        .push_account(&state.sys, &list)
        .await
        .map_err(|e| TrustError::Broker(format!("{e:#}")))
}

/// Most counter rows of dropped input shown (the most recent first).
const MAX_DROP_ROWS: u64 = 500;

/// `GET /api/v1/security` and `drover security`.
pub async fn overview(state: &AppState) -> Result<Value, TrustError> {
    let refused: Vec<(String, String, i64)> = refusal::Entity::find()
        .select_only()
        .column(refusal::Column::Source)
        .column(refusal::Column::Reason)
        .column_as(refusal::Column::Id.count(), "n")
        .group_by(refusal::Column::Source)
        .group_by(refusal::Column::Reason)
        .into_tuple()
        .all(&state.db)
        .await?;
    let drops = input_drop::Entity::find()
        .order_by_desc(input_drop::Column::LastAt)
        .limit(MAX_DROP_ROWS)
        .all(&state.db)
        .await?;
    let drop_json = |kind: &str| {
        drops
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| {
                json!({
                    "subject": d.subject, "agent_id": d.agent_id, "count": d.count,
                    "first_at": d.first_at, "last_at": d.last_at, "last_detail": d.last_detail,
                })
            })
            .collect::<Vec<_>>()
    };
    let conflicts = binding_conflict::Entity::find()
        .filter(binding_conflict::Column::Kind.ne(crate::clones::KIND))
        .all(&state.db)
        .await?;
    let revoked = agent::Entity::find()
        .filter(agent::Column::Status.eq("revoked"))
        .all(&state.db)
        .await?;
    let pending = agent::Entity::find()
        .filter(agent::Column::Status.eq("pending"))
        .all(&state.db)
        .await?;
    // The generation that signs now (`keys`).
    let (_, key) = state.keys.current();
    let policy = crate::version_policy::Policy::of(&state.cfg);
    let versions = crate::version_policy::findings(&state.db, &policy).await?;
    Ok(json!({
        "signing_key": { "fingerprint": key.fingerprint(), "public_key": key.to_base64() },
        "broker": state.auth.describe(),
        "enrolment": {
            "dropped_requests": crate::enroll::dropped_requests(),
            "unreadable_requests": crate::enroll::unreadable_requests(),
        },
        // Only refusals that may be attacks: a skewed clock is not one.
        "refused": refused.iter().filter(|(_, reason, _)| bus_schema::RefusalReason::parse(reason).is_security()).map(|(source, reason, n)| json!({"source": source, "reason": reason, "count": n})).collect::<Vec<_>>(),
        // Undecodable bus messages, terminated on the broker, per subject and sender.
        "malformed_messages": drop_json(crate::poison::MALFORMED),
        // Refusals beyond a sender's rate: counted, not stored.
        "refusals_dropped": drop_json(crate::poison::REFUSAL_DROPPED),
        "binding_conflicts": conflicts.iter().map(|c| json!({
            "at": c.at, "kind": c.kind, "public_key": c.public_key, "machine_id": c.machine_id,
            "hostname": c.hostname, "existing_agent_id": c.existing_agent_id,
        })).collect::<Vec<_>>(),
        // Two machines on one agent id (cloned state), open ones first.
        "identity_conflicts": crate::clones::all_json(&state.db).await?,
        "revoked_agents": revoked.iter().map(|a| json!({"id": a.id, "hostname": a.hostname, "revoked_at": a.revoked_at})).collect::<Vec<_>>(),
        // Agents outdated or of another protocol version: they get no
        // command but agent.update (version_policy).
        "agent_versions": versions,
        "pending_agents": pending.iter().map(|a| json!({"id": a.id, "hostname": a.hostname, "machine_id": a.machine_id, "first_seen": a.first_seen})).collect::<Vec<_>>(),
        // Agent JWT life (0: no expiry) and renewals refused by this process.
        "credentials": {
            "agent_jwt_ttl_secs": state.cfg.agent_jwt_ttl_secs,
            "refused_renewals": crate::credentials::refused_renewals(),
        },
    }))
}
