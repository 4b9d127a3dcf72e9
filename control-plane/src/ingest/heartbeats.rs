//! Heartbeats: decoding and checking each one against its subject, keeping
//! the newest per agent (after the cloned-host screen), and storing the
//! agents' state and sampled metrics. Decoding runs ahead of storing (a
//! reader task and a store task, batches stored and acked in the order
//! read; waiting batches are stored together). Knows nothing of commands.

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::{self, consumer::PullConsumer};
use bus_schema::{codec, now_ms, subjects, Event, Heartbeat};
use sea_orm::{ActiveValue::Set, EntityTrait};
use tracing::{error, info, warn};

use super::agent_rows;
use super::{content_type, next_batch, pull, BATCH};
use crate::db::entities::metric_sample;
use crate::events;
use crate::poison::{self, Drops};
use crate::state::AppState;

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

/// Batches read and checked ahead of the one being stored.
const AHEAD: usize = 4;
/// Most checked batches stored together in one transaction.
const MAX_GROUP: usize = 8;

/// One batch from the broker, decoded and checked, waiting to be stored.
struct Checked {
    batch: Vec<jetstream::Message>,
    parsed: Vec<Heartbeat>,
    /// Indexes in `batch` of the malformed messages.
    bad: Vec<usize>,
    drops: Drops,
}

/// Pulls heartbeats, decodes and checks them, and hands each batch to
/// [`store_loop`], which stores batches in the order they were read: decoding
/// the next batches overlaps storing the current one, and when storing falls
/// behind, the batches waiting are stored together (one transaction, the
/// newest heartbeat per agent) — same rule, fewer statements per heartbeat.
pub async fn heartbeat_loop(state: AppState, consumer: PullConsumer) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Checked>(AHEAD);
    let writer = tokio::spawn(store_loop(state, rx));
    loop {
        let mut stream = pull(&consumer, "heartbeats").await;
        while let Some(batch) = next_batch(&mut stream, BATCH).await {
            let mut parsed: Vec<Heartbeat> = Vec::with_capacity(batch.len());
            let mut drops = Drops::default();
            let mut bad = Vec::new();
            for (i, m) in batch.iter().enumerate() {
                match parse_heartbeat(m) {
                    Ok(hb) => parsed.push(hb),
                    Err(why) => {
                        warn!(subject = %m.subject, bytes = m.payload.len(), reason = %why, "rejected heartbeat");
                        let sender = poison::sender_of(&m.subject);
                        drops.add(poison::MALFORMED, subjects::HB_ALL, sender, &why);
                        bad.push(i);
                    }
                }
            }
            let checked = Checked {
                batch,
                parsed,
                bad,
                drops,
            };
            if tx.send(checked).await.is_err() {
                error!("the heartbeat store loop ended; heartbeats are no longer stored");
                writer.abort();
                return;
            }
        }
    }
}

/// Stores checked batches in arrival order, each group in one transaction,
/// and acks each batch only after its group is committed.
async fn store_loop(state: AppState, mut rx: tokio::sync::mpsc::Receiver<Checked>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let parsed: Vec<Heartbeat> = group
            .iter_mut()
            .flat_map(|c| std::mem::take(&mut c.parsed))
            .collect();
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
                for c in group {
                    // Terminated, not acked: never delivered again.
                    for &i in &c.bad {
                        poison::terminate(&c.batch[i]).await;
                    }
                    poison::flush(&state, c.drops).await;
                    // AckPolicy::All: the last ack covers the whole batch.
                    let last = c.batch.len() - 1;
                    if !c.bad.contains(&last) {
                        let _ = c.batch[last].ack().await;
                    }
                }
            }
            // Not acked: redelivered unless a later batch's ack (the
            // consumer acks all up to it) covers it first. Heartbeats are
            // snapshots, so each agent's next one replaces what is lost.
            Err(e) => {
                error!(error = %e, "storing heartbeats failed; each agent's next heartbeat replaces this batch")
            }
        }
    }
}

async fn apply_heartbeats(state: &AppState, hbs: Vec<Heartbeat>) -> anyhow::Result<()> {
    if hbs.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    let stored = agent_rows::store(&txn, &hbs, now).await?;
    for (id, status) in &stored.refused {
        warn!(agent_id = %id, status = ?status, "rejected heartbeat: agent is not enrolled and approved");
    }
    let hbs: Vec<Heartbeat> = hbs
        .into_iter()
        .filter(|h| !stored.refused.contains_key(&h.agent_id))
        .collect();
    if hbs.is_empty() {
        txn.commit().await?;
        return Ok(());
    }
    // Samples are stored on the control plane's clock: a host's clock may
    // be off (its skew is measured here, from `sent_at`).
    let clocks: Vec<(String, i64)> = hbs
        .iter()
        .map(|h| {
            let skew = crate::skew::observe(&h.agent_id, h.sent_at, now);
            (h.agent_id.clone(), skew)
        })
        .collect();
    let clocks = crate::skew::due(clocks, now);
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
    // SQLite allows a limited number of bound variables per statement.
    for chunk in samples.chunks(500) {
        metric_sample::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    crate::skew::store(&txn, crate::skew::rows(&clocks, now)).await?;
    let service_changes = crate::services::ingest::store(&txn, &hbs, now).await?;
    txn.commit().await?;
    crate::skew::stored(&clocks, now);
    if let Err(e) = crate::keys::record_heartbeats(state, &hbs).await {
        warn!(error = %e, "could not store the hosts' reported signing keys");
    }
    crate::prometheus::HEARTBEATS.inc_by(hbs.len() as u64);
    // The UI's events and the rootd box keys (`sealing`, which takes the
    // write turn itself) after the turn is given back: a command or result
    // waiting for it should not also wait for one event per heartbeat. The
    // store loop is one task, so heartbeat events leave in the order their
    // groups were committed (other writers' events, the sweep's among them,
    // were never ordered with these).
    drop(_turn);
    crate::services::ingest::publish(state, service_changes).await;

    let back: HashSet<&str> = stored.back_online.iter().map(String::as_str).collect();
    for h in &hbs {
        if back.contains(h.agent_id.as_str()) {
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
    let box_keys: Vec<(String, String)> = hbs
        .iter()
        .filter_map(|h| Some((h.agent_id.clone(), h.rootd_box_key.clone()?)))
        .collect();
    if let Err(e) = crate::sealing::observe(state, &box_keys, "heartbeat").await {
        warn!(error = %e, "storing rootd box keys failed; the next heartbeats report them again");
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
