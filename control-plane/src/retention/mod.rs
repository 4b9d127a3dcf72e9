//! Data retention: raw metric samples kept for a window, downsampled
//! rollups beyond it, old commands, outputs, jobs and refusals pruned in
//! bounded batches, and audit-trail archiving that keeps the chain
//! provable. Runs as the lease holder's `retention` duty.
//!
//! Owns what is kept how long; not the tables' writers.

use crate::state::AppState;

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(_state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    Ok(())
}
