//! Moving alert transitions from the outbox onto the notification stream:
//! the lease holder's `notifications` duty.
//!
//! Owns the duty's tick; not sending (the stream's consumer does).

use crate::state::AppState;

/// One round at `now_ms` (ms since the epoch).
pub async fn tick(_state: &AppState, _now_ms: i64) -> anyhow::Result<()> {
    Ok(())
}
