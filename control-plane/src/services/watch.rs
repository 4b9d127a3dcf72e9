//! Bringing each host's watch list in line with the watched-service lists
//! that match it: the lease holder's `service_watch` duty.
//!
//! Owns the duty's tick; not the lists' storage nor heartbeat ingest.

use crate::state::AppState;

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(_state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    Ok(())
}
