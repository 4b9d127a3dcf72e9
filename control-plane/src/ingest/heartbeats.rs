//! Heartbeats: decoding and checking each one against its subject, keeping
//! the newest per agent (after the cloned-host screen), and storing the
//! agents' state and sampled metrics. Decoding runs ahead of storing (a
//! reader task and a store task, batches stored and acked in the order
//! read; waiting batches are stored together). Knows nothing of commands.

use std::collections::HashMap;

use async_nats::jetstream::{self, consumer::PullConsumer};
use bus_schema::{codec, now_ms, subjects, Event, Heartbeat};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use tracing::{error, info, warn};

use super::{content_type, next_batch, pull, BATCH};
use crate::db::entities::{agent, metric_sample};
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
    let ids: Vec<String> = hbs.iter().map(|h| h.agent_id.clone()).collect();
    let before = statuses(&state.db, &ids).await?;

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
            display_name: sea_orm::ActiveValue::NotSet,
            // A reboot's return shows as another boot id (windows::reboots).
            boot_id: Set(Some(h.boot_id.clone()).filter(|b| !b.is_empty())),
            booted_at: Set(Some(
                now - (h.metrics.uptime_secs as i64).saturating_mul(1000),
            )),
            rootd_error: Set(h
                .rootd_error
                .as_ref()
                .map(|e| bus_schema::text::storable(e, 500))),
            // What `version_policy` judges the agent by.
            agent_channel: Set(bus_schema::text::storable(&h.agent_channel, 32)),
            protocol_version: Set(h.protocol_version as i32),
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
                        agent::Column::AgentChannel,
                        agent::Column::ProtocolVersion,
                        agent::Column::Metrics,
                        agent::Column::Modules,
                        agent::Column::Operations,
                        agent::Column::RootdError,
                        agent::Column::BootId,
                        agent::Column::BootedAt,
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
    let service_changes = crate::services::ingest::store(&txn, &hbs, now).await?;
    txn.commit().await?;
    crate::services::ingest::publish(state, service_changes).await;
    if let Err(e) = crate::keys::record_heartbeats(state, &hbs).await {
        warn!(error = %e, "could not store the hosts' reported signing keys");
    }
    crate::prometheus::HEARTBEATS.inc_by(hbs.len() as u64);

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
    // rootd box keys: pinned or refused (`sealing`), which takes the write
    // turn itself.
    drop(_turn);
    let box_keys: Vec<(String, String)> = hbs
        .iter()
        .filter_map(|h| Some((h.agent_id.clone(), h.rootd_box_key.clone()?)))
        .collect();
    if let Err(e) = crate::sealing::observe(state, &box_keys, "heartbeat").await {
        warn!(error = %e, "storing rootd box keys failed; the next heartbeats report them again");
    }
    Ok(())
}

/// The status of each of `ids` (distinct agent ids) that has a row. In the
/// usual case — every sender approved, most already online — one `COUNT`
/// says so and only the rows not `online` are read (an offline agent's
/// return is logged), instead of one row per heartbeat through the
/// database driver's channel. Otherwise every row is read. Either way the
/// write itself only touches rows still `online` or `offline`.
async fn statuses(
    db: &sea_orm::DatabaseConnection,
    ids: &[String],
) -> Result<HashMap<String, String>, sea_orm::DbErr> {
    use sea_orm::PaginatorTrait;
    let approved = agent::Entity::find()
        .filter(agent::Column::Id.is_in(ids.to_vec()))
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .count(db)
        .await? as usize;
    let all_approved = approved == ids.len();
    let mut q = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .column(agent::Column::Status)
        .filter(agent::Column::Id.is_in(ids.to_vec()));
    if all_approved {
        q = q.filter(agent::Column::Status.ne("online"));
    }
    let mut out: HashMap<String, String> = q
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    if all_approved {
        for id in ids {
            out.entry(id.clone()).or_insert_with(|| "online".into());
        }
    }
    Ok(out)
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
