//! Consuming what agents send: heartbeats and results. Each loop takes what
//! the broker has ready (up to a batch), validates every message, applies the
//! good ones in one transaction, and acks only after the commit. A bad
//! message is logged with its reason, terminated (never redelivered) and
//! counted ([`crate::poison`]); the next one is processed as usual.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bus_schema::enroll::{agent_open, AgentSignatureError, AgentSigned, RefusalReport};
use bus_schema::signing::bounded_detail;
use bus_schema::{
    codec, now_ms, subjects, CommandResult, CommandStatus, Event, Heartbeat, RefusalReason,
};
use futures::{FutureExt, StreamExt};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use tracing::{error, info, warn};

use crate::db::entities::{agent, command, metric_sample, refusal};
use crate::events;
use crate::poison::{self, Drops};
use crate::state::AppState;

const BATCH: usize = 1000;

/// Waits for one message, then takes whatever else is already there.
async fn next_batch(
    stream: &mut jetstream::consumer::pull::Stream,
    max: usize,
) -> Option<Vec<jetstream::Message>> {
    let first = loop {
        match stream.next().await? {
            Ok(m) => break m,
            Err(e) => {
                warn!(error = %e, "pull interrupted; continuing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let mut out = vec![first];
    while out.len() < max {
        match stream.next().now_or_never() {
            Some(Some(Ok(m))) => out.push(m),
            _ => break,
        }
    }
    Some(out)
}

fn content_type(m: &jetstream::Message) -> Option<String> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(codec::CONTENT_TYPE_HEADER))
        .map(|v| v.as_str().to_string())
}

/// Decodes and validates one heartbeat; the error says why it is refused.
///
/// The subject alone proves nothing: the broker does not check reply
/// subjects, so an agent can make the broker itself write an answer (a
/// JetStream API reply, JSON) onto another agent's heartbeat subject. A
/// heartbeat is therefore accepted only when its content decodes, within the
/// codec's limits, as a Drover heartbeat whose `agent_id` is the subject's
/// agent and whose values are plausible; anything else is malformed.
pub fn parse_heartbeat(m: &jetstream::Message) -> Result<Heartbeat, String> {
    let subject = m.subject.as_str();
    let bus_schema::subjects::Parsed::Heartbeat { agent } = subjects::parse(subject) else {
        return Err(format!("subject {subject} is not a heartbeat subject"));
    };
    let hb: Heartbeat =
        codec::decode(&m.payload, content_type(m).as_deref()).map_err(|e| e.to_string())?;
    if hb.agent_id != agent {
        let e = bus_schema::EnvelopeError::SubjectMismatch {
            subject: agent.to_string(),
            inner: hb.agent_id,
        };
        return Err(e.to_string());
    }
    hb.validate(agent).map_err(|e| e.to_string())?;
    Ok(hb)
}

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
        agent_id: Set(agent.chars().take(128).collect()),
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

pub async fn heartbeat_loop(state: AppState, consumer: PullConsumer) {
    loop {
        let mut stream = match consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot pull heartbeats; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(batch) = next_batch(&mut stream, BATCH).await {
            let mut parsed: Vec<Heartbeat> = Vec::with_capacity(batch.len());
            let mut drops = Drops::default();
            let mut bad: Vec<&jetstream::Message> = Vec::new();
            for m in &batch {
                match parse_heartbeat(m) {
                    Ok(hb) => parsed.push(hb),
                    Err(why) => {
                        warn!(subject = %m.subject, bytes = m.payload.len(), reason = %why, "rejected heartbeat");
                        let sender = poison::sender_of(&m.subject);
                        drops.add(poison::MALFORMED, subjects::HB_ALL, sender, &why);
                        bad.push(m);
                    }
                }
            }
            // Two machines on one identity: only the served one is applied.
            let mut latest: HashMap<String, Heartbeat> = HashMap::new();
            for hb in crate::clones::screen(&state, parsed).await {
                let newer = latest
                    .get(&hb.agent_id)
                    .map(|old| hb.sent_at >= old.sent_at)
                    .unwrap_or(true);
                if newer {
                    latest.insert(hb.agent_id.clone(), hb);
                }
            }
            match apply_heartbeats(&state, latest.into_values().collect()).await {
                Ok(()) => {
                    // Terminated, not acked: never delivered again.
                    for m in &bad {
                        poison::terminate(m).await;
                    }
                    poison::flush(&state, drops).await;
                    // AckPolicy::All: the last ack covers the whole batch.
                    if let Some(last) = batch.last() {
                        if !bad.iter().any(|b| std::ptr::eq(*b, last)) {
                            let _ = last.ack().await;
                        }
                    }
                }
                Err(e) => error!(error = %e, "storing heartbeats failed; they will be redelivered"),
            }
        }
    }
}

async fn apply_heartbeats(state: &AppState, hbs: Vec<Heartbeat>) -> anyhow::Result<()> {
    if hbs.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let ids: Vec<String> = hbs.iter().map(|h| h.agent_id.clone()).collect();
    let before: HashMap<String, String> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::Status)
        .filter(agent::Column::Id.is_in(ids))
        .into_tuple::<(String, String)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect();

    // Only enrolled, approved agents have a row to update. The broker's
    // permissions already keep others off these subjects; this is the
    // second line.
    let (hbs, strangers): (Vec<Heartbeat>, Vec<Heartbeat>) = hbs.into_iter().partition(|h| {
        matches!(
            before.get(&h.agent_id).map(String::as_str),
            Some("online" | "offline")
        )
    });
    for h in &strangers {
        warn!(agent_id = %h.agent_id, status = ?before.get(&h.agent_id), "rejected heartbeat: agent is not enrolled and approved");
    }
    if hbs.is_empty() {
        return Ok(());
    }
    let rows: Vec<agent::ActiveModel> = hbs
        .iter()
        .map(|h| agent::ActiveModel {
            id: Set(h.agent_id.clone()),
            hostname: Set(h.hostname.clone()),
            status: Set("online".into()),
            machine_id: Set(String::new()),
            facts: Set("{}".into()),
            token_id: sea_orm::ActiveValue::NotSet,
            approved_by: sea_orm::ActiveValue::NotSet,
            revoked_at: sea_orm::ActiveValue::NotSet,
            first_seen: Set(now),
            last_seen: Set(now),
            last_seq: Set(h.seq as i64),
            heartbeat_secs: Set(h.interval_secs as i32),
            os: Set(h.os.clone()),
            kernel: Set(h.kernel.clone()),
            agent_version: Set(h.agent_version.clone()),
            metrics: Set(serde_json::to_string(&h.metrics).unwrap_or_default()),
            modules: Set(serde_json::to_string(&h.modules).unwrap_or_default()),
            operations: Set(serde_json::to_string(&h.operations).unwrap_or_default()),
            labels: Set("{}".into()),
            rootd_error: Set(h
                .rootd_error
                .as_ref()
                .map(|e| e.chars().take(500).collect())),
        })
        .collect();
    // Samples are stored on the control plane's clock: a host's clock may
    // be off (its skew is measured here, from `sent_at`).
    let clocks: Vec<(String, i64)> = hbs
        .iter()
        .map(|h| {
            let skew = crate::skew::observe(&h.agent_id, h.sent_at, now);
            (h.agent_id.clone(), skew)
        })
        .collect();
    let samples: Vec<metric_sample::ActiveModel> = hbs
        .iter()
        .filter(|h| sample_due(&h.agent_id, now))
        .map(|h| metric_sample::ActiveModel {
            agent_id: Set(h.agent_id.clone()),
            at: Set(now),
            cpu_percent: Set(h.metrics.cpu_percent as f64),
            mem_used: Set(h.metrics.mem_used_bytes as i64),
            mem_total: Set(h.metrics.mem_total_bytes as i64),
            disk_used: Set(h.metrics.disk_used_bytes as i64),
            disk_total: Set(h.metrics.disk_total_bytes as i64),
            load1: Set(h.metrics.load1),
            ..Default::default()
        })
        .collect();

    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    // SQLite allows a limited number of bound variables per statement.
    for chunk in rows.chunks(500) {
        agent::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(agent::Column::Id)
                    .update_columns([
                        agent::Column::Hostname,
                        agent::Column::Status,
                        agent::Column::LastSeen,
                        agent::Column::LastSeq,
                        agent::Column::HeartbeatSecs,
                        agent::Column::Os,
                        agent::Column::Kernel,
                        agent::Column::AgentVersion,
                        agent::Column::Metrics,
                        agent::Column::Modules,
                        agent::Column::Operations,
                        agent::Column::RootdError,
                    ])
                    // Never bring a revoked (or pending) agent back to life.
                    .action_and_where(agent::Column::Status.is_in(["online", "offline"]))
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    for chunk in samples.chunks(500) {
        metric_sample::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    crate::skew::store(&txn, crate::skew::rows(&clocks, now)).await?;
    txn.commit().await?;

    for h in &hbs {
        if before.get(&h.agent_id).map(String::as_str) == Some("offline") {
            info!(agent_id = %h.agent_id, hostname = %h.hostname, "agent online");
        }
        events::publish(
            state,
            &Event::Agent {
                agent_id: h.agent_id.clone(),
                hostname: h.hostname.clone(),
                status: "online".into(),
                last_seen: now,
                metrics: Some(h.metrics.clone()),
                operations: h.operations.clone(),
            },
        )
        .await;
    }
    Ok(())
}

pub async fn result_loop(state: AppState, consumer: PullConsumer) {
    loop {
        let mut stream = match consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot pull results; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
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
    // Decided above against the rows as read in this transaction, under the
    // writer's turn; written back in a few statements, not one per result.
    use command::Column as C;
    let rows: Vec<Vec<sea_orm::Value>> = changed
        .values()
        .map(|c| {
            vec![
                c.id.clone().into(),
                c.status.clone().into(),
                c.updated_at.into(),
                c.attempts.into(),
                c.exit_code.into(),
                c.summary.clone().into(),
                c.result.clone().into(),
                c.finished_at.into(),
                c.outcome_source.clone().into(),
            ]
        })
        .collect();
    crate::db::bulk::update_by_key::<command::Entity, _>(
        &txn,
        C::Id,
        &[
            C::Status,
            C::UpdatedAt,
            C::Attempts,
            C::ExitCode,
            C::Summary,
            C::Result,
            C::FinishedAt,
            C::OutcomeSource,
        ],
        rows,
    )
    .await?;
    txn.commit().await?;
    Ok(changed.into_values().collect())
}

/// Periodic duties: agents that stopped sending heartbeats go offline;
/// commands nobody fetched before their expiry end `expired`.
pub async fn sweep_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = sweep_once(&state).await {
            warn!(error = %e, "sweep failed");
        }
    }
}

/// The broker's word that it gave up redelivering a command: end it
/// `failed`, once.
pub async fn max_deliveries_loop(state: AppState) {
    // Every command shard; the consumer name says which agent.
    let subject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.*".to_string();
    let mut sub = match state.nats.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for max-delivery advisories");
            return;
        }
    };
    while let Some(m) = sub.next().await {
        let v: serde_json::Value = codec::decode_json(&m.payload).unwrap_or_default();
        let (Some(consumer), Some(seq)) = (v["consumer"].as_str(), v["stream_seq"].as_i64()) else {
            continue;
        };
        let Some(agent) = consumer.strip_prefix("agent-") else {
            continue;
        };
        let deliveries = v["deliveries"].as_i64().unwrap_or(0);
        let now = now_ms();
        let summary =
            format!("gave up after {deliveries} deliveries: the agent never reported a result");
        let _turn = state.writer.lock().await;
        let res = crate::ledger::end_unreported(
            &state.db,
            Condition::all()
                .add(command::Column::AgentId.eq(agent))
                .add(command::Column::StreamSeq.eq(seq)),
            &crate::ledger::OPEN,
            &crate::ledger::Ending {
                status: CommandStatus::Failed,
                summary: &summary,
                source: crate::ledger::Source::Inferred,
                attempts: Some(deliveries),
            },
            now,
        )
        .await;
        drop(_turn);
        if let Ok(r) = res {
            if r > 0 {
                warn!(agent_id = %agent, stream_seq = seq, deliveries, "command failed (inferred): redelivery gave up");
            }
        }
    }
}

/// Grace after expiry before a still-queued command is declared expired, so
/// a command fetched just before expiry can still report.
const EXPIRY_GRACE_MS: i64 = 5_000;

/// The inferred outcomes of the sweep (a host's report replaces them).
const NO_RESULT: &str = "no result: the agent took the command and never reported back";
const NOT_FETCHED: &str =
    "expired: no word from the agent before its expiry (inferred: it may still report)";

async fn sweep_once(state: &AppState) -> anyhow::Result<()> {
    let now = now_ms();
    let missed = std::cmp::max(state.cfg.offline_after_missed, 1) as i64;
    let gone = agent::Entity::find()
        .filter(agent::Column::Status.eq("online"))
        .filter(
            Expr::col(agent::Column::LastSeen)
                .add(Expr::col(agent::Column::HeartbeatSecs).mul(missed * 1000))
                .lt(now),
        )
        .all(&state.db)
        .await?;
    for a in gone {
        let _turn = state.writer.lock().await;
        let res = agent::Entity::update_many()
            .col_expr(agent::Column::Status, Expr::value("offline"))
            .col_expr(agent::Column::Operations, Expr::value("[]"))
            .filter(agent::Column::Id.eq(a.id.clone()))
            .filter(agent::Column::Status.eq("online"))
            .filter(agent::Column::LastSeen.eq(a.last_seen))
            .exec(&state.db)
            .await?;
        if res.rows_affected == 1 {
            info!(agent_id = %a.id, missed, "agent offline: heartbeats missed");
            let mut off = a.clone();
            off.status = "offline".into();
            off.operations = "[]".into();
            events::publish(state, &events::of_agent(&off)).await;
        }
    }
    // Backstop: taken but never finished, long past expiry plus run time
    // (the host died with it). Ends in one final state all the same.
    let silent = command::Entity::find()
        .filter(command::Column::Status.is_in(["accepted", "running"]))
        .filter(
            Expr::col(command::Column::ExpiresAt)
                .add(Expr::col(command::Column::TimeoutSecs).mul(1000))
                .add(state.cfg.silent_grace_secs as i64 * 1000)
                .lt(now),
        )
        .limit(1000)
        .all(&state.db)
        .await?;
    for c in silent {
        let _turn = state.writer.lock().await;
        let ended = crate::ledger::end_one_unreported(
            &state.db,
            &c.id,
            &["accepted", "running"],
            &crate::ledger::Ending {
                status: CommandStatus::Failed,
                summary: NO_RESULT,
                source: crate::ledger::Source::Inferred,
                attempts: None,
            },
            now,
        )
        .await?;
        if ended {
            warn!(command = %c.id, agent_id = %c.agent_id, "command failed (inferred): no result after expiry and timeout");
            let mut f = c.clone();
            f.status = CommandStatus::Failed.as_str().into();
            f.summary = NO_RESULT.into();
            f.outcome_source = Some(crate::ledger::Source::Inferred.as_str().into());
            events::publish(state, &events::of_command(&f)).await;
        }
    }
    let expired = command::Entity::find()
        .filter(command::Column::Status.eq(CommandStatus::Queued.as_str()))
        .filter(command::Column::ExpiresAt.lt(now - EXPIRY_GRACE_MS))
        .limit(1000)
        .all(&state.db)
        .await?;
    for c in expired {
        let _turn = state.writer.lock().await;
        let ended = crate::ledger::end_one_unreported(
            &state.db,
            &c.id,
            &[CommandStatus::Queued.as_str()],
            &crate::ledger::Ending {
                status: CommandStatus::Expired,
                summary: NOT_FETCHED,
                source: crate::ledger::Source::Inferred,
                attempts: None,
            },
            now,
        )
        .await?;
        if ended {
            let mut e = c.clone();
            e.status = CommandStatus::Expired.as_str().into();
            e.summary = NOT_FETCHED.into();
            e.outcome_source = Some(crate::ledger::Source::Inferred.as_str().into());
            events::publish(state, &events::of_command(&e)).await;
        }
    }
    Ok(())
}

/// Metric history (the UI's charts) keeps at most one sample per agent per
/// minute, however often agents report.
const SAMPLE_EVERY_MS: i64 = 60_000;

fn sample_due(agent_id: &str, at: i64) -> bool {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static LAST: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
    let mut last = LAST.lock().expect("sample map");
    match last.get(agent_id) {
        Some(t) if at - *t < SAMPLE_EVERY_MS && at >= *t => false,
        _ => {
            last.insert(agent_id.to_string(), at);
            true
        }
    }
}
