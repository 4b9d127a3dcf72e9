//! The rollout engine: one round of every running rollout per tick (a duty
//! under the lease).

use crate::state::AppState;

/// Advances every running rollout once.
pub async fn tick(_state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    Ok(())
}
