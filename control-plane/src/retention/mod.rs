//! Data retention: raw metric samples kept for a window, downsampled
//! rollups beyond it, old commands, jobs and refusals pruned in bounded
//! batches, and audit-trail archiving that keeps the chain provable. Runs
//! as the lease holder's `retention` duty.
//!
//! Owns what is kept how long; not the tables' writers. Order within a
//! round: roll raw samples up into five-minute rows, five-minute rows into
//! hourly ones, and only then prune — a raw sample goes only once its
//! bucket is rolled up, a five-minute row only once its hour is.

pub mod archive;
pub mod entity;
pub mod history;
pub mod prune;
pub mod rollup;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::state::AppState;

/// When the last round started here (ms); 0: never.
static LAST_ROUND: AtomicI64 = AtomicI64::new(0);
/// Rows deleted by retention since this process started (for `/metrics`).
pub static PRUNED_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Completed rounds since this process started.
pub static ROUNDS_TOTAL: AtomicU64 = AtomicU64::new(0);

/// A round stops starting new batches after this long, and goes on at the
/// next round (the duty's timeout is longer).
const BUDGET: Duration = Duration::from_secs(60);

/// One round at `now_ms` (ms since the epoch), at most every
/// `retention_every_secs` (the duty is called more often; 0 turns
/// retention off).
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let every = state.cfg.retention_every_secs;
    if every == 0 {
        return Ok(());
    }
    let last = LAST_ROUND.load(Ordering::Relaxed);
    if last != 0 && now_ms - last < (every as i64) * 1000 {
        return Ok(());
    }
    LAST_ROUND.store(now_ms, Ordering::Relaxed);
    let p = round(state, now_ms, Instant::now() + BUDGET).await?;
    if p.total() > 0 {
        tracing::info!(pruned = ?p, "retention round");
    }
    Ok(())
}

/// Rolls up, then prunes everything past its window; returns what went.
pub async fn round(
    state: &AppState,
    now_ms: i64,
    deadline: Instant,
) -> anyhow::Result<prune::Pruned> {
    let cfg = &state.cfg;
    let ms = |secs: u64| (secs.min(i64::MAX as u64 / 1000) as i64) * 1000;
    let batch = cfg.retention_batch_rows.clamp(1, 50_000);

    let rolled_5m = rollup::raw_to_5m(state, now_ms, deadline).await?;
    let rolled_1h = rollup::five_min_to_hour(state, now_ms, rolled_5m, deadline).await?;

    let mut p = prune::Pruned::default();
    let samples_cutoff = (now_ms - ms(cfg.retention_samples_secs)).min(rolled_5m);
    p.samples = prune::samples(state, samples_cutoff, batch, deadline).await?;
    let five_cutoff = (now_ms - ms(cfg.retention_rollup_5m_secs)).min(rolled_1h);
    p.rollups = prune::rollups(state, rollup::FIVE_MIN, five_cutoff, deadline).await?;
    p.rollups += prune::rollups(
        state,
        rollup::HOUR,
        now_ms - ms(cfg.retention_rollup_1h_secs),
        deadline,
    )
    .await?;
    p.commands = prune::commands(
        state,
        now_ms - ms(cfg.retention_commands_secs),
        batch,
        deadline,
    )
    .await?;
    p.jobs = prune::jobs(state, now_ms - ms(cfg.retention_jobs_secs), batch, deadline).await?;
    let refusal_cutoff = now_ms - ms(cfg.retention_refusals_secs);
    p.refusals = prune::refusals(state, refusal_cutoff, batch, deadline).await?;
    p.input_drops = prune::input_drops(state, refusal_cutoff).await?;
    // Samples were counted batch by batch.
    PRUNED_TOTAL.fetch_add(p.total() - p.samples, Ordering::Relaxed);
    ROUNDS_TOTAL.fetch_add(1, Ordering::Relaxed);
    Ok(p)
}
