//! Alert evaluation: the lease holder's `alerts` duty, one round of every
//! enabled rule against the current state.
//!
//! Owns the duty's tick; not the rules' storage nor notification.

use crate::state::AppState;

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(_state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    Ok(())
}
