//! Cancelling a command: still queued, its message is deleted from its
//! agent's stream and the row ends `cancelled`; already taken, a
//! `sys.cancel` goes to the agent, which stops it and reports the truth.
//! Owns only the cancel decision; issuing commands is `commands`'.

use bus_schema::{now_ms, subjects, CommandStatus, Source};
use sea_orm::EntityTrait;

use crate::commands::{create, CreateError, NewCommand};
use crate::db::entities::command;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no command {0}")]
    Unknown(String),
    #[error("command {0} is already {1}")]
    Final(String, String),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("broker: {0}")]
    Broker(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// What a cancel did.
pub enum Cancelled {
    /// It was still queued: removed from the broker, now `cancelled`.
    Queued(Box<command::Model>),
    /// It was running: `sys.cancel` went to the agent, which will report
    /// the command `cancelled`.
    Signalled {
        command: Box<command::Model>,
        cancel_command: Box<command::Model>,
    },
}

/// Cancels a command. Still waiting in its agent's queue: its message is
/// deleted from the stream, then the row ends `cancelled`. Already taken:
/// a `sys.cancel` goes to the agent, which stops it (and rootd's process
/// group) and reports it `cancelled`.
pub async fn cancel(state: &AppState, id: &str, by: &str) -> Result<Cancelled, CancelError> {
    let c = command::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| CancelError::Unknown(id.into()))?;
    let status = CommandStatus::parse(&c.status).unwrap_or(CommandStatus::Queued);
    if status.is_final() {
        return Err(CancelError::Final(c.id, c.status));
    }
    // A `sys.cancel` to the agent: it stops the command if it runs, and
    // remembers the id so that a copy it already fetched never starts.
    let signal = || async {
        create(
            state,
            NewCommand {
                agent_id: c.agent_id.clone(),
                action: "sys.cancel".into(),
                params: serde_json::json!({ "command_id": c.id }),
                timeout_secs: None,
                ttl_secs: Some(60),
                requested_by: by.into(),
                source: Source::User,
                job_id: None,
            },
        )
        .await
    };
    let signalled = |cancel_command: command::Model| {
        tracing::info!(command = %id, by, "cancel sent to the agent");
        Ok(Cancelled::Signalled {
            command: Box::new(c.clone()),
            cancel_command: Box::new(cancel_command),
        })
    };
    if status != CommandStatus::Queued {
        return signalled(signal().await?);
    }
    // The database may not know yet that the agent took it. A work queue
    // keeps a fetched message until it is acked, so a successful delete
    // alone does not prove the agent never got it: its consumer's delivered
    // sequence does. Delivered before or during the delete means it may run
    // (or have run): then the agent stops it and reports the truth.
    let Some(seq) = c.stream_seq.map(|s| s as u64) else {
        return signalled(signal().await?);
    };
    let stream = state
        .js
        .get_stream_no_info(subjects::cmd_stream(&c.agent_id))
        .await
        .map_err(|e| CancelError::Broker(e.to_string()))?;
    let consumer = subjects::agent_consumer(&c.agent_id);
    let delivered = || async {
        stream
            .consumer_info(&consumer)
            .await
            .map(|i| i.delivered.stream_sequence >= seq)
            .unwrap_or(true) // unknown: assume the agent may have it
    };
    if delivered().await || stream.delete_message(seq).await.is_err() || delivered().await {
        return signalled(signal().await?);
    }
    let t = now_ms();
    let summary = format!("cancelled by {by}");
    let _turn = state.writer.lock().await;
    // Removed from its queue before any delivery: the control plane's own
    // decision, not a guess (a host's report would still replace it).
    let ended = crate::ledger::end_one_unreported(
        &state.db,
        id,
        &[CommandStatus::Queued.as_str()],
        &crate::ledger::Ending {
            status: CommandStatus::Cancelled,
            summary: &summary,
            source: crate::ledger::Source::ControlPlane,
            attempts: None,
        },
        t,
    )
    .await?;
    drop(_turn);
    let now = command::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| CancelError::Unknown(id.into()))?;
    if ended {
        crate::events::publish(state, &crate::events::of_command(&now)).await;
        tracing::info!(command = %id, by, "command cancelled");
        // The agent may have fetched it just before the delete (a work
        // queue keeps a message until it is acked): tell it too, so it
        // never starts it. Best effort: the row is already final.
        if let Err(e) = signal().await {
            tracing::debug!(command = %id, error = %e, "no sys.cancel after a queued cancel");
        }
        Ok(Cancelled::Queued(Box::new(now)))
    } else {
        signalled(signal().await?)
    }
}
