//! Pruning in bounded batches: each batch selects at most
//! `retention_batch_rows` ids with a plain read, then deletes exactly those
//! under the database writer's turn, and yields before the next, so
//! heartbeat and result ingest never wait behind a long delete. Owns what
//! is old enough to go; not the rollups that must exist first (`rollup`).

use bus_schema::CommandStatus;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::time::Instant;

use crate::db::entities::{command, input_drop, job, metric_sample, refusal};
use crate::state::AppState;

use super::rollup::exec;

/// Rows deleted by one round, per table.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Pruned {
    pub samples: u64,
    pub rollups: u64,
    pub commands: u64,
    pub jobs: u64,
    pub refusals: u64,
    pub input_drops: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.samples + self.rollups + self.commands + self.jobs + self.refusals + self.input_drops
    }
}

/// Deletes raw samples taken before `cutoff` (ms).
pub async fn samples(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, sea_orm::DbErr> {
    let mut n = 0;
    while Instant::now() < deadline {
        let ids: Vec<i64> = metric_sample::Entity::find()
            .select_only()
            .column(metric_sample::Column::Id)
            .filter(metric_sample::Column::At.lt(cutoff))
            .order_by_asc(metric_sample::Column::At)
            .limit(batch)
            .into_tuple()
            .all(&state.db)
            .await?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as u64 == batch;
        let _turn = state.writer.lock().await;
        let gone = metric_sample::Entity::delete_many()
            .filter(metric_sample::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected;
        drop(_turn);
        // Counted per batch: `/metrics` shows a long prune progressing.
        super::PRUNED_TOTAL.fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
        n += gone;
        tokio::task::yield_now().await;
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Deletes rollups of `resolution_secs` whose bucket starts before
/// `cutoff` (ms), an hour of buckets (all agents) per statement.
pub async fn rollups(
    state: &AppState,
    resolution_secs: i64,
    cutoff: i64,
    deadline: Instant,
) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    let mut n = 0;
    let step = 3_600_000i64.max(resolution_secs * 1000);
    while Instant::now() < deadline {
        let backend = state.db.get_database_backend();
        let oldest: Option<i64> = match state
            .db
            .query_one_raw(Statement::from_string(
                backend,
                format!(
                    "SELECT MIN(bucket_at) FROM metric_rollups WHERE resolution_secs = {resolution_secs}"
                ),
            ))
            .await?
        {
            Some(r) => r.try_get_by_index(0)?,
            None => None,
        };
        let Some(oldest) = oldest.filter(|o| *o < cutoff) else {
            break;
        };
        let upto = (oldest + step).min(cutoff);
        n += exec(
            state,
            format!(
                "DELETE FROM metric_rollups WHERE resolution_secs = {resolution_secs} \
                 AND bucket_at < {upto}"
            ),
        )
        .await?;
        tokio::task::yield_now().await;
    }
    Ok(n)
}

/// Deletes final commands last changed before `cutoff` (ms). Open ones
/// (queued, accepted, running) are never pruned.
pub async fn commands(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, sea_orm::DbErr> {
    let finals: Vec<&str> = CommandStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let mut n = 0;
    while Instant::now() < deadline {
        let ids: Vec<String> = command::Entity::find()
            .select_only()
            .column(command::Column::Id)
            .filter(command::Column::Status.is_in(finals.clone()))
            .filter(command::Column::UpdatedAt.lt(cutoff))
            .limit(batch)
            .into_tuple()
            .all(&state.db)
            .await?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as u64 == batch;
        let _turn = state.writer.lock().await;
        n += command::Entity::delete_many()
            .filter(command::Column::Id.is_in(ids))
            // Re-checked under the turn: a command is never pruned open.
            .filter(command::Column::Status.is_in(finals.clone()))
            .exec(&state.db)
            .await?
            .rows_affected;
        drop(_turn);
        tokio::task::yield_now().await;
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Deletes jobs created before `cutoff` (ms) none of whose commands is
/// left.
pub async fn jobs(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    let mut n = 0;
    let mut after = String::new();
    while Instant::now() < deadline {
        let ids: Vec<String> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::CreatedAt.lt(cutoff))
            .filter(job::Column::Id.gt(after.clone()))
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM commands WHERE commands.job_id = jobs.id)",
            ))
            .order_by_asc(job::Column::Id)
            .limit(batch)
            .into_tuple()
            .all(&state.db)
            .await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        let full = ids.len() as u64 == batch;
        let _turn = state.writer.lock().await;
        n += job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected;
        drop(_turn);
        after = last;
        tokio::task::yield_now().await;
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Deletes refusals recorded before `cutoff` (ms).
pub async fn refusals(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, sea_orm::DbErr> {
    let mut n = 0;
    while Instant::now() < deadline {
        let ids: Vec<i64> = refusal::Entity::find()
            .select_only()
            .column(refusal::Column::Id)
            .filter(refusal::Column::At.lt(cutoff))
            .order_by_asc(refusal::Column::Id)
            .limit(batch)
            .into_tuple()
            .all(&state.db)
            .await?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as u64 == batch;
        let _turn = state.writer.lock().await;
        n += refusal::Entity::delete_many()
            .filter(refusal::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected;
        drop(_turn);
        tokio::task::yield_now().await;
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Deletes dropped-input counts whose last drop was before `cutoff` (ms):
/// one row per (kind, subject, sender), so a small table.
pub async fn input_drops(state: &AppState, cutoff: i64) -> Result<u64, sea_orm::DbErr> {
    let _turn = state.writer.lock().await;
    Ok(input_drop::Entity::delete_many()
        .filter(input_drop::Column::LastAt.lt(cutoff))
        .exec(&state.db)
        .await?
        .rows_affected)
}
