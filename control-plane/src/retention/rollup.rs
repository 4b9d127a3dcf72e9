//! Metric rollups: raw `metric_samples` into five-minute rows, five-minute
//! rows into hourly ones, in `metric_rollups`. Each round recomputes from
//! the last rolled bucket on (an idempotent upsert), one bounded span per
//! statement with the database writer taken per statement. Owns the
//! rollup arithmetic; not what is deleted afterwards (`prune`).

use sea_orm::{ConnectionTrait, Statement};
use tokio::time::Instant;

use crate::state::AppState;

/// Five minutes, in seconds.
pub const FIVE_MIN: i64 = 300;
/// One hour, in seconds.
pub const HOUR: i64 = 3600;

/// Buckets of one statement: six hours of raw samples, or two days of
/// five-minute rows.
const SPAN_RAW_MS: i64 = 6 * 3_600_000;
const SPAN_5M_MS: i64 = 48 * 3_600_000;

fn floor(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

async fn one_i64(state: &AppState, sql: String) -> Result<Option<i64>, sea_orm::DbErr> {
    let backend = state.db.get_database_backend();
    let row = state
        .db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    match row {
        Some(r) => r.try_get_by_index::<Option<i64>>(0),
        None => Ok(None),
    }
}

/// Rolls raw samples up into five-minute rows for every complete bucket
/// before `now_ms`, stopping at `deadline`. Returns the time (ms) up to
/// which every raw sample is rolled up: raw samples older than that may go.
pub async fn raw_to_5m(
    state: &AppState,
    now_ms: i64,
    deadline: Instant,
) -> Result<i64, sea_orm::DbErr> {
    let step = FIVE_MIN * 1000;
    let end = floor(now_ms, step);
    let last = one_i64(
        state,
        format!("SELECT MAX(bucket_at) FROM metric_rollups WHERE resolution_secs = {FIVE_MIN}"),
    )
    .await?;
    // The last rolled bucket again: samples may have joined it since.
    let mut cur = match last {
        Some(b) => b,
        None => match one_i64(state, "SELECT MIN(at) FROM metric_samples".into()).await? {
            Some(t) => floor(t, step),
            None => return Ok(end),
        },
    };
    while cur < end {
        if Instant::now() >= deadline {
            return Ok(cur);
        }
        // Skip empty stretches at once.
        match one_i64(
            state,
            format!("SELECT MIN(at) FROM metric_samples WHERE at >= {cur}"),
        )
        .await?
        {
            Some(t) if t < end => cur = cur.max(floor(t, step)),
            _ => return Ok(end),
        }
        let to = (cur + SPAN_RAW_MS).min(end);
        let sql = format!(
            "INSERT INTO metric_rollups (agent_id, resolution_secs, bucket_at, samples, \
             cpu_avg, cpu_max, mem_used_avg, mem_total, disk_used_max, disk_total, \
             load1_avg, load1_max) \
             SELECT agent_id, {FIVE_MIN}, (at / {step}) * {step}, COUNT(*), \
             CAST(AVG(cpu_percent) AS DOUBLE PRECISION), MAX(cpu_percent), \
             CAST(AVG(mem_used) AS BIGINT), MAX(mem_total), MAX(disk_used), MAX(disk_total), \
             CAST(AVG(load1) AS DOUBLE PRECISION), MAX(load1) \
             FROM metric_samples WHERE at >= {cur} AND at < {to} \
             GROUP BY agent_id, (at / {step}) {UPSERT}"
        );
        exec(state, sql).await?;
        cur = to;
        tokio::task::yield_now().await;
    }
    Ok(end.max(cur))
}

/// Rolls five-minute rows up into hourly ones for every complete hour
/// before both `now_ms` and `rolled_5m` (ms, from [`raw_to_5m`]). Returns
/// the time up to which five-minute rows are covered by hourly ones.
pub async fn five_min_to_hour(
    state: &AppState,
    now_ms: i64,
    rolled_5m: i64,
    deadline: Instant,
) -> Result<i64, sea_orm::DbErr> {
    let step = HOUR * 1000;
    let end = floor(now_ms.min(rolled_5m), step);
    let last = one_i64(
        state,
        format!("SELECT MAX(bucket_at) FROM metric_rollups WHERE resolution_secs = {HOUR}"),
    )
    .await?;
    let mut cur = match last {
        Some(b) => b,
        None => match one_i64(
            state,
            format!("SELECT MIN(bucket_at) FROM metric_rollups WHERE resolution_secs = {FIVE_MIN}"),
        )
        .await?
        {
            Some(t) => floor(t, step),
            None => return Ok(end),
        },
    };
    while cur < end {
        if Instant::now() >= deadline {
            return Ok(cur);
        }
        match one_i64(
            state,
            format!(
                "SELECT MIN(bucket_at) FROM metric_rollups \
                 WHERE resolution_secs = {FIVE_MIN} AND bucket_at >= {cur}"
            ),
        )
        .await?
        {
            Some(t) if t < end => cur = cur.max(floor(t, step)),
            _ => return Ok(end),
        }
        let to = (cur + SPAN_5M_MS).min(end);
        let w = "CAST(SUM(samples) AS DOUBLE PRECISION)";
        let sql = format!(
            "INSERT INTO metric_rollups (agent_id, resolution_secs, bucket_at, samples, \
             cpu_avg, cpu_max, mem_used_avg, mem_total, disk_used_max, disk_total, \
             load1_avg, load1_max) \
             SELECT agent_id, {HOUR}, (bucket_at / {step}) * {step}, SUM(samples), \
             SUM(cpu_avg * samples) / {w}, MAX(cpu_max), \
             CAST(SUM(CAST(mem_used_avg AS DOUBLE PRECISION) * samples) / {w} AS BIGINT), \
             MAX(mem_total), MAX(disk_used_max), MAX(disk_total), \
             SUM(load1_avg * samples) / {w}, MAX(load1_max) \
             FROM metric_rollups WHERE resolution_secs = {FIVE_MIN} \
             AND bucket_at >= {cur} AND bucket_at < {to} \
             GROUP BY agent_id, (bucket_at / {step}) {UPSERT}"
        );
        exec(state, sql).await?;
        cur = to;
        tokio::task::yield_now().await;
    }
    Ok(end.max(cur))
}

/// A recomputed bucket replaces the stored one.
const UPSERT: &str = "ON CONFLICT (agent_id, resolution_secs, bucket_at) DO UPDATE SET \
     samples = excluded.samples, cpu_avg = excluded.cpu_avg, cpu_max = excluded.cpu_max, \
     mem_used_avg = excluded.mem_used_avg, mem_total = excluded.mem_total, \
     disk_used_max = excluded.disk_used_max, disk_total = excluded.disk_total, \
     load1_avg = excluded.load1_avg, load1_max = excluded.load1_max";

/// One write statement under the writer turn. Returns rows affected.
pub(super) async fn exec(state: &AppState, sql: String) -> Result<u64, sea_orm::DbErr> {
    let backend = state.db.get_database_backend();
    let _turn = state.writer.lock().await;
    let r = state
        .db
        .execute_raw(Statement::from_string(backend, sql))
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::floor;

    #[test]
    fn floors_to_the_bucket() {
        assert_eq!(floor(299_999, 300_000), 0);
        assert_eq!(floor(300_000, 300_000), 300_000);
        assert_eq!(floor(-1, 300_000), -300_000);
    }
}
