//! A window's runs as the API and pages show them, and an operator's abort.
//! Owns reading runs and their host rows and the abort; does not decide
//! what a run does next (`runner`).

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{json, Value};

use crate::db::entities::agent;
use crate::updates::entities::{run, run_host};

/// Host statuses that still move: the run is not over while one is left.
pub const ACTIVE: [&str; 3] = ["pending", "installing", "rebooting"];

/// Why a run could not be read or aborted.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no run {0}; list a window's runs with `drover windows runs WINDOW`")]
    NotFound(String),
    #[error("run {0} is {1} already; only a running run can be aborted")]
    NotRunning(String, String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

pub fn run_json(r: &run::Model) -> Value {
    json!({
        "id": r.id,
        "window_id": r.window_id,
        "occurrence_start": r.occurrence_start,
        "occurrence_end": r.occurrence_end,
        "status": r.status,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "hosts_total": r.hosts_total,
        "hosts_succeeded": r.hosts_succeeded,
        "hosts_failed": r.hosts_failed,
        "hosts_deferred": r.hosts_deferred,
        "halted_reason": r.halted_reason,
    })
}

pub fn host_json(h: &run_host::Model, hostname: Option<&str>) -> Value {
    json!({
        "agent_id": h.agent_id,
        "hostname": hostname,
        "batch": h.batch,
        "status": h.status,
        "install_command_id": h.install_command_id,
        "scan_command_id": h.scan_command_id,
        "reboot_command_id": h.reboot_command_id,
        "boot_id_before": h.boot_id_before,
        "reboot_started_at": h.reboot_started_at,
        "returned_at": h.returned_at,
        "message": h.message,
        "updated_at": h.updated_at,
    })
}

/// A window's runs, newest first, at most `limit`.
pub async fn of_window(
    db: &DatabaseConnection,
    window_id: &str,
    limit: u64,
) -> Result<Vec<run::Model>, sea_orm::DbErr> {
    run::Entity::find()
        .filter(run::Column::WindowId.eq(window_id))
        .order_by_desc(run::Column::OccurrenceStart)
        .limit(limit)
        .all(db)
        .await
}

/// A run's host rows by batch, then agent, with each host's name.
pub async fn hosts(
    db: &DatabaseConnection,
    run_id: &str,
) -> Result<Vec<(run_host::Model, Option<String>)>, sea_orm::DbErr> {
    let rows = run_host::Entity::find()
        .filter(run_host::Column::RunId.eq(run_id))
        .order_by_asc(run_host::Column::Batch)
        .order_by_asc(run_host::Column::AgentId)
        .all(db)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.agent_id.clone()).collect();
    let names: std::collections::HashMap<String, String> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::Hostname)
        .filter(agent::Column::Id.is_in(ids))
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = names.get(&r.agent_id).cloned();
            (r, n)
        })
        .collect())
}

/// A run with its host rows: `{run fields..., "hosts": [...]}`.
pub async fn detail(db: &DatabaseConnection, run_id: &str) -> Result<Value, RunError> {
    let r = run::Entity::find_by_id(run_id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| RunError::NotFound(run_id.to_string()))?;
    let hs = hosts(db, run_id).await?;
    let mut v = run_json(&r);
    v["hosts"] = hs.iter().map(|(h, n)| host_json(h, n.as_deref())).collect();
    Ok(v)
}

/// Stops a running run: hosts not started yet are `deferred` (they get the
/// next occurrence); installs and reboots already under way finish and are
/// recorded.
pub async fn abort(
    db: &DatabaseConnection,
    run_id: &str,
    who: &str,
) -> Result<run::Model, RunError> {
    let r = run::Entity::find_by_id(run_id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| RunError::NotFound(run_id.to_string()))?;
    if r.status != "running" {
        return Err(RunError::NotRunning(r.id, r.status));
    }
    let now = now_ms();
    defer_pending(
        db,
        run_id,
        &format!("not started: run aborted by {who}"),
        now,
    )
    .await?;
    let mut m: run::ActiveModel = r.into();
    m.status = Set("aborted".into());
    m.finished_at = Set(Some(now));
    m.halted_reason = Set(Some(format!("aborted by {who}")));
    let r = m.update(db).await?;
    recount(db, &r.id).await?;
    Ok(r)
}

/// Marks a run's `pending` hosts `deferred` with `why`.
pub async fn defer_pending(
    db: &DatabaseConnection,
    run_id: &str,
    why: &str,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    run_host::Entity::update_many()
        .col_expr(run_host::Column::Status, "deferred".into())
        .col_expr(run_host::Column::Message, why.into())
        .col_expr(run_host::Column::UpdatedAt, now.into())
        .filter(run_host::Column::RunId.eq(run_id))
        .filter(run_host::Column::Status.eq("pending"))
        .exec(db)
        .await?;
    Ok(())
}

/// A run's host counts by status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub pending: i32,
    pub installing: i32,
    pub rebooting: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub deferred: i32,
}

impl Counts {
    /// Hosts that still move.
    pub fn active(&self) -> i32 {
        self.pending + self.installing + self.rebooting
    }
}

/// Counts a run's hosts and stores the totals on the run.
pub async fn recount(db: &DatabaseConnection, run_id: &str) -> Result<Counts, sea_orm::DbErr> {
    let rows = run_host::Entity::find()
        .filter(run_host::Column::RunId.eq(run_id))
        .all(db)
        .await?;
    let mut c = Counts::default();
    for h in &rows {
        match h.status.as_str() {
            "pending" => c.pending += 1,
            "installing" => c.installing += 1,
            "rebooting" => c.rebooting += 1,
            "installed" | "rebooted" => c.succeeded += 1,
            "failed" | "reboot_failed" => c.failed += 1,
            "deferred" => c.deferred += 1,
            _ => {}
        }
    }
    debug_assert!(ACTIVE.len() == 3);
    run::Entity::update_many()
        .col_expr(run::Column::HostsSucceeded, c.succeeded.into())
        .col_expr(run::Column::HostsFailed, c.failed.into())
        .col_expr(run::Column::HostsDeferred, c.deferred.into())
        .filter(run::Column::Id.eq(run_id))
        .exec(db)
        .await?;
    Ok(c)
}
