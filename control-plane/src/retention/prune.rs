//! Pruning in bounded batches: each batch selects at most
//! `retention_batch_rows` ids with a plain read, then deletes exactly those
//! under the database writer's turn, and yields before the next, so
//! heartbeat and result ingest never wait behind a long delete. Owns what
//! is old enough to go; not the rollups that must exist first (`rollup`).

use bus_schema::CommandStatus;
use std::future::Future;

use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
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

/// One table's bounded-batch delete: `select` reads at most `batch` ids (a
/// plain read), `delete` removes exactly those under the database writer's
/// turn and returns how many went; a yield between batches; stops at a
/// short batch or at `deadline`. Returns the rows deleted.
async fn in_batches<K, S, SF, D, DF>(
    state: &AppState,
    batch: u64,
    deadline: Instant,
    mut select: S,
    mut delete: D,
) -> Result<u64, DbErr>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<Vec<K>, DbErr>>,
    D: FnMut(Vec<K>) -> DF,
    DF: Future<Output = Result<u64, DbErr>>,
{
    let mut n = 0;
    while Instant::now() < deadline {
        let ids = select().await?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as u64 == batch;
        let turn = state.writer.lock().await;
        n += delete(ids).await?;
        drop(turn);
        tokio::task::yield_now().await;
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Deletes raw samples taken before `cutoff` (ms).
pub async fn samples(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, DbErr> {
    let select = || {
        metric_sample::Entity::find()
            .select_only()
            .column(metric_sample::Column::Id)
            .filter(metric_sample::Column::At.lt(cutoff))
            .order_by_asc(metric_sample::Column::At)
            .limit(batch)
            .into_tuple::<i64>()
            .all(&state.db)
    };
    let delete = |ids: Vec<i64>| async move {
        let gone = metric_sample::Entity::delete_many()
            .filter(metric_sample::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected;
        // Counted per batch: `/metrics` shows a long prune progressing.
        super::PRUNED_TOTAL.fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
        Ok(gone)
    };
    in_batches(state, batch, deadline, select, delete).await
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
) -> Result<u64, DbErr> {
    let finals: Vec<&str> = CommandStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let select = || {
        command::Entity::find()
            .select_only()
            .column(command::Column::Id)
            .filter(command::Column::Status.is_in(finals.clone()))
            .filter(command::Column::UpdatedAt.lt(cutoff))
            .limit(batch)
            .into_tuple::<String>()
            .all(&state.db)
    };
    let delete = |ids: Vec<String>| {
        let finals = finals.clone();
        async move {
            Ok(command::Entity::delete_many()
                .filter(command::Column::Id.is_in(ids))
                // Re-checked under the turn: a command is never pruned open.
                .filter(command::Column::Status.is_in(finals))
                .exec(&state.db)
                .await?
                .rows_affected)
        }
    };
    in_batches(state, batch, deadline, select, delete).await
}

/// Deletes jobs created before `cutoff` (ms) none of whose commands is
/// left.
pub async fn jobs(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Expr;
    // Ids go up from batch to batch: a job kept (its commands remain) is
    // not read again.
    let after = std::sync::Mutex::new(String::new());
    let select = || async {
        let from = after.lock().expect("job cursor").clone();
        let ids: Vec<String> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::CreatedAt.lt(cutoff))
            .filter(job::Column::Id.gt(from))
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM commands WHERE commands.job_id = jobs.id)",
            ))
            .order_by_asc(job::Column::Id)
            .limit(batch)
            .into_tuple()
            .all(&state.db)
            .await?;
        if let Some(last) = ids.last() {
            *after.lock().expect("job cursor") = last.clone();
        }
        Ok(ids)
    };
    let delete = |ids: Vec<String>| async move {
        Ok(job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected)
    };
    in_batches(state, batch, deadline, select, delete).await
}

/// Deletes refusals recorded before `cutoff` (ms).
pub async fn refusals(
    state: &AppState,
    cutoff: i64,
    batch: u64,
    deadline: Instant,
) -> Result<u64, DbErr> {
    let select = || {
        refusal::Entity::find()
            .select_only()
            .column(refusal::Column::Id)
            .filter(refusal::Column::At.lt(cutoff))
            .order_by_asc(refusal::Column::Id)
            .limit(batch)
            .into_tuple::<i64>()
            .all(&state.db)
    };
    let delete = |ids: Vec<i64>| async move {
        Ok(refusal::Entity::delete_many()
            .filter(refusal::Column::Id.is_in(ids))
            .exec(&state.db)
            .await?
            .rows_affected)
    };
    in_batches(state, batch, deadline, select, delete).await
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
