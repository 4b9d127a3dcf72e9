//! How the agent tells the control plane what became of a command: the
//! result built from an action's outcome, intermediate states, the final
//! result journaled, published until confirmed and then acked, and signed
//! refusal reports. Owns publishing and signing of results and refusals;
//! does not know how commands are fetched, verified or run (`commands`) or
//! what a redelivery means (`redelivery`).

use std::time::Duration;

use async_nats::jetstream;
use bus_schema::{now_ms, subjects, Command, CommandResult, CommandStatus, Refusal};
use tracing::warn;

use crate::result_fit;
use crate::state::Agent;
use bus_schema::Outcome;

/// The final result of `cmd` from what its action did: the summary cut to
/// 4000 bytes (on a character boundary), the data kept to the result budget.
pub(crate) fn result_of(agent: &Agent, cmd: &Command, attempt: u32, o: Outcome) -> CommandResult {
    CommandResult {
        command_id: cmd.id.clone(),
        agent_id: agent.id.clone(),
        status: o.status,
        exit_code: o.exit_code,
        summary: truncate(o.summary, 4000),
        data: result_fit::guard(o.data),
        attempt,
        at: now_ms(),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// An intermediate state; best effort (the final result is what counts).
pub(crate) async fn publish_state(
    agent: &Agent,
    cmd: &Command,
    attempt: u32,
    status: CommandStatus,
) {
    let r = CommandResult {
        command_id: cmd.id.clone(),
        agent_id: agent.id.clone(),
        status,
        exit_code: None,
        summary: String::new(),
        data: serde_json::Value::Null,
        attempt,
        at: now_ms(),
    };
    let _ = publish_result(agent, &r).await;
}

/// Journal the final result, publish it until the broker confirms, then ack
/// the command. If we die in between, the journal re-sends on start.
pub(crate) async fn finish(
    agent: &Agent,
    cmd: &Command,
    result: CommandResult,
    msg: &jetstream::Message,
) {
    if let Err(e) = agent
        .journal
        .lock()
        .await
        .record_result(cmd.expires_at, &result)
    {
        warn!(command = %cmd.id, error = %e, "journal write failed; publishing anyway");
    }
    publish_confirmed(agent, &result).await;
    // A plain ack, not a confirmed one: if it is lost the broker redelivers
    // and the journal answers with the same result, so waiting for the
    // broker's confirmation would only cost a round trip per command.
    if let Err(e) = msg.ack().await {
        warn!(command = %cmd.id, error = %e, "ack not sent; the broker will redeliver");
    }
}

/// Publishes a result until the broker confirms it (retrying with a backoff
/// up to 10 s), then marks it confirmed in the journal.
pub async fn publish_confirmed(agent: &Agent, result: &CommandResult) {
    let mut delay = Duration::from_millis(100);
    loop {
        match publish_result(agent, result).await {
            Ok(()) => {
                let _ = agent.journal.lock().await.confirm(&result.command_id);
                return;
            }
            Err(e) => {
                warn!(command = %result.command_id, error = %e, "result not confirmed by the broker; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Results travel signed with the agent's key; the control plane checks them
/// against the agent id (which is that key).
async fn publish_result(agent: &Agent, result: &CommandResult) -> anyhow::Result<()> {
    let subject = subjects::result(&agent.id, &result.command_id);
    let signed = bus_schema::enroll::sign_result(agent.identity.key(), result);
    let ack = agent
        .js
        .publish(subject, bus_schema::encode(&signed).into())
        .await?;
    ack.await?;
    Ok(())
}

/// Ends a command refused because this host's clock is off beyond the
/// tolerance: `failed`, with the skew and what to do in the summary. Not
/// reported as a refusal: a wrong clock is an operations fault, not an
/// attack, and must not count as one on the Security page.
pub(crate) async fn refuse_for_skew(
    agent: &Agent,
    cmd: &Command,
    delivered: u32,
    r: &Refusal,
    msg: &async_nats::jetstream::Message,
) {
    warn!(command = %cmd.id, reason = r.label(), detail = %r, "refused command");
    let res = result_of(agent, cmd, delivered, Outcome::failed(r.to_string()));
    finish(agent, cmd, res, msg).await;
}

/// Tells the control plane (security overview) that a command was refused:
/// a signed refusal report, best effort (waits at most 5 s for the broker).
pub(crate) async fn report_refusal(agent: &Agent, r: &Refusal) {
    let report = bus_schema::enroll::RefusalReport {
        agent_id: agent.id.clone(),
        reason: r.reason(),
        detail: bus_schema::signing::bounded_detail(&r.to_string()),
        at: now_ms(),
    };
    let signed = bus_schema::enroll::agent_sign(agent.identity.key(), &report);
    match agent
        .js
        .publish(
            subjects::refusal(&agent.id),
            bus_schema::encode(&signed).into(),
        )
        .await
    {
        Ok(ack) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), ack).await;
        }
        Err(e) => warn!(error = %e, "refusal report not sent"),
    }
}
