//! Results and refusal reports from agents: decoding, checking the
//! agent's signature, storing refusals, and applying results by the
//! ledger's rule. Does not decide final states itself and does not end a
//! command the agent never reported (that is the sweep's).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bus_schema::enroll::{agent_open, AgentSignatureError, AgentSigned, RefusalReport};
use bus_schema::signing::bounded_detail;
use bus_schema::{codec, now_ms, subjects, CommandResult, RefusalReason};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::{error, warn};

use super::{content_type, next_batch, pull, BATCH};
use crate::db::entities::{command, refusal};
use crate::events;
use crate::poison::{self, Drops};
use crate::state::AppState;

/// What arrives on the result stream.
pub enum Report {
    Result(CommandResult),
    Refusal(RefusalReport),
}

/// Why a message on the result stream was refused.
pub struct Rejection {
    /// `Malformed` messages are counted as such; others are refusals.
    pub reason: RefusalReason,
    /// The subject pattern it came in on (`drover.res.*.*`, `drover.sec.*`).
    pub subject: &'static str,
    pub agent: String,
    pub why: String,
}

impl Rejection {
    fn new(reason: RefusalReason, subject: &'static str, agent: &str, why: String) -> Self {
        Self {
            reason,
            subject,
            agent: agent.to_string(),
            why,
        }
    }
}

/// Decodes, checks the agent's signature (the agent id is its public key) and
/// validates one message of the result stream.
pub fn parse_report(m: &jetstream::Message) -> Result<Report, Rejection> {
    let subject = m.subject.as_str();
    let (agent, command, pattern) = match subjects::parse(subject) {
        subjects::Parsed::Result { agent, command } => (agent, Some(command), subjects::RES_ALL),
        subjects::Parsed::Refusal { agent } => (agent, None, subjects::SEC_ALL),
        _ => {
            return Err(Rejection::new(
                RefusalReason::Malformed,
                subjects::RES_STREAM,
                "",
                format!("subject {subject} is not a result subject"),
            ))
        }
    };
    let malformed = |why: String| Rejection::new(RefusalReason::Malformed, pattern, agent, why);
    let signed: AgentSigned = codec::decode(&m.payload, content_type(m).as_deref())
        .map_err(|e| malformed(e.to_string()))?;
    let opened = |e: AgentSignatureError| match e {
        AgentSignatureError::Malformed(_) => malformed(e.to_string()),
        _ => Rejection::new(RefusalReason::BadSignature, pattern, agent, e.to_string()),
    };
    match command {
        Some(command) => {
            let r: CommandResult = agent_open(agent, &signed).map_err(opened)?;
            r.validate(agent, command)
                .map_err(|e| malformed(e.to_string()))?;
            Ok(Report::Result(r))
        }
        None => {
            let r: RefusalReport = agent_open(agent, &signed).map_err(opened)?;
            if r.agent_id != agent {
                return Err(malformed(
                    "refusal report does not match its subject".into(),
                ));
            }
            Ok(Report::Refusal(r))
        }
    }
}

/// Stores one refusal (`source`: `agent` or `control-plane`) with its fixed
/// reason and a bounded detail, unless `agent` (the sender: an agent id or
/// an automation key's name) has spent its rate
/// ([`poison::refusal_allowed`]); then it is only counted in `drops` as
/// `refusal_dropped` on `subject` (a pattern such as `drover.sec.*`).
pub async fn record_refusal(
    state: &AppState,
    agent: &str,
    source: &str,
    reason: RefusalReason,
    detail: &str,
    subject: &str,
    drops: &mut Drops,
) {
    if !poison::refusal_allowed(&format!("{source}/{agent}")) {
        drops.add(poison::REFUSAL_DROPPED, subject, agent, reason.as_str());
        return;
    }
    let row = refusal::ActiveModel {
        at: Set(now_ms()),
        agent_id: Set(bus_schema::text::storable(agent, 128)),
        source: Set(source.to_string()),
        reason: Set(reason.as_str().to_string()),
        detail: Set(bounded_detail(detail)),
        ..Default::default()
    };
    let _turn = state.writer.lock().await;
    if let Err(e) = refusal::Entity::insert(row).exec(&state.db).await {
        warn!(error = %e, "could not record a refusal");
    }
}

pub async fn result_loop(state: AppState, consumer: PullConsumer) {
    loop {
        let mut stream = pull(&consumer, "results").await;
        while let Some(batch) = next_batch(&mut stream, BATCH).await {
            let mut good = Vec::with_capacity(batch.len());
            let mut drops = Drops::default();
            for m in batch {
                match parse_report(&m) {
                    Ok(Report::Result(r)) => good.push((m, r)),
                    Ok(Report::Refusal(r)) => {
                        record_refusal(
                            &state,
                            &r.agent_id,
                            "agent",
                            r.reason,
                            &r.detail,
                            subjects::SEC_ALL,
                            &mut drops,
                        )
                        .await;
                        let _ = m.ack().await;
                    }
                    Err(rej) => {
                        warn!(subject = %m.subject, bytes = m.payload.len(), label = rej.reason.as_str(), reason = %rej.why, "rejected result");
                        if rej.reason == RefusalReason::Malformed {
                            drops.add(poison::MALFORMED, rej.subject, &rej.agent, &rej.why);
                        } else {
                            record_refusal(
                                &state,
                                &rej.agent,
                                "control-plane",
                                rej.reason,
                                &rej.why,
                                rej.subject,
                                &mut drops,
                            )
                            .await;
                        }
                        // Too large to read, but the subject names the
                        // command: it ends, it does not hang.
                        if crate::result_guard::oversized(m.payload.len()) {
                            crate::result_guard::end_oversized(&state, &m.subject, m.payload.len())
                                .await;
                        }
                        poison::terminate(&m).await;
                    }
                }
            }
            poison::flush(&state, drops).await;
            if good.is_empty() {
                continue;
            }
            let results: Vec<CommandResult> = good.iter().map(|(_, r)| r.clone()).collect();
            let t0 = std::time::Instant::now();
            let applied = apply_results(&state, &results).await;
            tracing::debug!(
                results = results.len(),
                apply_ms = t0.elapsed().as_millis() as u64,
                "result batch"
            );
            match applied {
                Ok(changed) => {
                    crate::prometheus::RESULTS.inc_by(results.len() as u64);
                    // Stored first, acked second: a crash in between means a
                    // redelivery, which changes nothing.
                    for (m, _) in &good {
                        let _ = m.ack().await;
                    }
                    state.results_stored.send_modify(|n| *n += 1);
                    for c in changed {
                        events::publish(&state, &events::of_command(&c)).await;
                    }
                }
                Err(e) => {
                    error!(error = %e, "storing results failed; they will be redelivered");
                    for (m, _) in &good {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                }
            }
        }
    }
}

/// Applies results idempotently by the rule of `crate::ledger`: a command
/// never moves backwards, a reported final state never changes, and an
/// inferred one is replaced by the host's final report. Returns the
/// commands that changed.
pub async fn apply_results(
    state: &AppState,
    results: &[CommandResult],
) -> anyhow::Result<Vec<command::Model>> {
    let ids: Vec<String> = results.iter().map(|r| r.command_id.clone()).collect();
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    let mut current: HashMap<String, command::Model> = HashMap::new();
    for chunk in ids.chunks(500) {
        for c in command::Entity::find()
            .filter(command::Column::Id.is_in(chunk.to_vec()))
            .all(&txn)
            .await?
        {
            current.insert(c.id.clone(), c);
        }
    }
    let mut changed: HashMap<String, command::Model> = HashMap::new();
    let now = now_ms();
    for r in results {
        let Some(c) = changed
            .get(&r.command_id)
            .or_else(|| current.get(&r.command_id))
            .cloned()
        else {
            warn!(command = %r.command_id, agent_id = %r.agent_id, "result for a command this control plane never issued; ignored");
            continue;
        };
        if c.agent_id != r.agent_id {
            warn!(command = %r.command_id, from = %r.agent_id, addressed = %c.agent_id, "result from an agent the command was not for; ignored");
            continue;
        }
        // Never backwards; a reported final state never changes; an
        // inferred one gives way to the host's final report, once.
        let mut updated = c;
        if !crate::ledger::apply_reported(&mut updated, r, now) {
            continue; // duplicate or late: applied once already
        }
        changed.insert(updated.id.clone(), updated);
    }
    crate::ledger::write_reported(&txn, changed.values()).await?;
    crate::updates::inventory::apply_scans(state, &txn, changed.values(), now).await?;
    txn.commit().await?;
    Ok(changed.into_values().collect())
}
