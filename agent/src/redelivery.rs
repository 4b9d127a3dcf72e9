//! What a delivery of a command the journal already knows means, and the
//! commands an earlier run of the agent left unfinished. Owns the "in hand"
//! set (a command waiting for a slot or running), telling a redelivery from
//! a replay, and the interrupted reports at start; does not own fetching
//! or running (`commands`), publishing results (`report`) or the journal's
//! file (`journal`).

use async_nats::jetstream::{self, AckKind};
use bus_schema::{now_ms, Command, CommandResult, CommandStatus, Refusal};
use tracing::{info, warn};

use crate::report::{finish, publish_confirmed, report_refusal, result_of};
use crate::state::Agent;
use bus_schema::Outcome;

/// What the journal says of a command it saw start but never end.
pub const INTERRUPTED: &str =
    "interrupted: the agent stopped while it ran; not run again so it never runs twice";

/// Takes a command in hand, unless a delivery of it already is: returns the
/// switch that cancels it, or `None`. One step under one lock, so two
/// deliveries handled at once never both run it.
pub(crate) fn take_in_hand(agent: &Agent, id: &str) -> Option<tokio_util::sync::CancellationToken> {
    let mut running = agent.running.lock().unwrap();
    if running.contains_key(id) {
        return None;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    running.insert(id.to_string(), stop.clone());
    Some(stop)
}

/// Removes a command from the ones in hand when its handling ends, however
/// it ends.
pub(crate) struct InHand<'a> {
    pub agent: &'a Agent,
    pub id: String,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.agent.running.lock().unwrap().remove(&self.id);
    }
}

/// A delivery of a command the journal already knows. The same message
/// again (the broker redelivered it: an ack lost, a broker restart, a slow
/// run) is normal: a result in the journal is sent again; a command still in
/// hand here is left to the delivery that has it; one an earlier run of the
/// agent took but never started runs now (returns its cancel switch); one it
/// started and never finished is reported interrupted. The command in a
/// different message is a replay and is refused.
pub(crate) async fn seen_again(
    agent: &Agent,
    cmd: &Command,
    entry: crate::journal::Entry,
    delivered: u32,
    stream_seq: Option<u64>,
    msg: &jetstream::Message,
) -> Option<tokio_util::sync::CancellationToken> {
    let same_message = match (entry.stream_seq, stream_seq) {
        (Some(known), Some(now)) => known == now,
        // Journals from before the stream sequence was kept.
        _ => delivered > 1,
    };
    if !same_message {
        let r = Refusal::Replayed(cmd.id.clone());
        warn!(command = %cmd.id, reason = r.label(), stream_seq = ?stream_seq, first_stream_seq = ?entry.stream_seq, "refused command");
        report_refusal(agent, &r).await;
        let _ = msg.ack_with(AckKind::Term).await;
        return None;
    }
    if let Some(result) = entry.result {
        info!(command = %cmd.id, delivered, "redelivered; sending its result again");
        finish(agent, cmd, result, msg).await;
        return None;
    }
    if !entry.started {
        if let Some(stop) = take_in_hand(agent, &cmd.id) {
            info!(command = %cmd.id, delivered, "redelivered; it never started here, so it runs now");
            return Some(stop);
        }
    }
    if agent.held.lock().unwrap().contains_key(&cmd.id) {
        // An update rootd switched to: its result goes out after the
        // self-test, from the journal; this message has done its job.
        info!(command = %cmd.id, delivered, "redelivered while its update waits for the self-test; acked, reported later");
        let _ = msg.ack().await;
        return None;
    }
    if agent.running.lock().unwrap().contains_key(&cmd.id) {
        // The delivery in hand acks it when done; this one only keeps it
        // alive.
        info!(command = %cmd.id, delivered, "redelivered while still in hand here; the first delivery reports it");
        let _ = msg.ack_with(AckKind::Progress).await;
        return None;
    }
    let result = result_of(agent, cmd, delivered, Outcome::failed(INTERRUPTED));
    info!(command = %cmd.id, delivered, "redelivered after the agent stopped while it ran; reporting it interrupted");
    finish(agent, cmd, result, msg).await;
    None
}

/// Reports, at start, the commands the journal saw start and never end: the
/// agent stopped while they ran. Each gets a journaled `failed` result
/// ([`INTERRUPTED`]), published until the broker confirms it. Returns how
/// many there were.
pub async fn report_interrupted(agent: &Agent) -> usize {
    let mut entries = agent.journal.lock().await.interrupted();
    {
        let held = agent.held.lock().unwrap();
        entries.retain(|e| !held.contains_key(&e.id));
    }
    for e in &entries {
        let result = CommandResult {
            command_id: e.id.clone(),
            agent_id: agent.id.clone(),
            status: CommandStatus::Failed,
            exit_code: None,
            summary: INTERRUPTED.into(),
            data: serde_json::Value::Null,
            attempt: e.delivered.max(1),
            at: now_ms(),
        };
        warn!(command = %e.id, "the agent stopped while this command ran; reporting it interrupted");
        if let Err(err) = agent
            .journal
            .lock()
            .await
            .record_result(e.expires_at, &result)
        {
            warn!(command = %e.id, error = %err, "journal write failed; publishing anyway");
        }
        publish_confirmed(agent, &result).await;
    }
    entries.len()
}
