//! The control plane's guard for result messages over the bus limit
//! ([`bus_schema::codec::MAX_MESSAGE_BYTES`]). Agents keep results within
//! [`bus_schema::result_budget`]; an agent that does not (an old or broken
//! one) must not leave its command `running` until the sweep. The subject
//! (`drover.res.<agent>.<command>`, which the broker lets only that agent
//! publish on) names the command, so it ends `failed` with the reason, as an
//! inferred outcome: a readable report from the host still replaces it.
//!
//! Owns only that decision; decoding, terminating the message and counting
//! it stay in `ingest` and `poison`.

use bus_schema::{codec, now_ms, subjects, CommandStatus};
use sea_orm::{ColumnTrait, Condition};
use tracing::warn;

use crate::db::entities::command;
use crate::ledger::{self, Ending, Source};
use crate::state::AppState;

/// Whether a payload of `len` bytes is over the bus limit.
pub fn oversized(len: usize) -> bool {
    len > codec::MAX_MESSAGE_BYTES
}

/// Ends the command that `subject` names `failed`, if it is that agent's and
/// still open. Returns whether a row was ended.
pub async fn end_oversized(state: &AppState, subject: &str, len: usize) -> bool {
    let subjects::Parsed::Result { agent, command: id } = subjects::parse(subject) else {
        return false;
    };
    let summary = format!(
        "failed: the agent's result was {len} bytes, over the bus limit of {} bytes, and could \
         not be read (the agent should move a large result to the output stream)",
        codec::MAX_MESSAGE_BYTES
    );
    let _turn = state.writer.lock().await;
    let res = ledger::end_unreported(
        &state.db,
        Condition::all()
            .add(command::Column::Id.eq(id))
            .add(command::Column::AgentId.eq(agent)),
        &ledger::OPEN,
        &Ending {
            status: CommandStatus::Failed,
            summary: &summary,
            source: Source::Inferred,
            attempts: None,
        },
        now_ms(),
    )
    .await;
    match res {
        Ok(n) if n > 0 => {
            warn!(agent_id = %agent, command = %id, bytes = len, "command failed: its result was too large to read");
            true
        }
        Ok(_) => false,
        Err(e) => {
            warn!(command = %id, error = %e, "could not end the command of an oversized result");
            false
        }
    }
}
