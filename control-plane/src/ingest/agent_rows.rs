//! The agent row's part of heartbeat ingest: inside the caller's write
//! transaction, flips agents that were `offline` back to `online`, writes
//! each heartbeat's reported state onto its agent's row, and says which
//! heartbeats had no approved agent to land on (refused). Owns the rule
//! that a heartbeat never creates an agent row and never brings a pending
//! or revoked agent back; not decoding, checking or grouping heartbeats
//! (`ingest::heartbeats`), nor the other tables a heartbeat feeds.

use std::collections::HashMap;

use bus_schema::Heartbeat;
use sea_orm::sea_query::{Condition, Expr, Value};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::db::entities::agent;

/// The statuses a heartbeat may update: an approved agent, online or not.
const APPROVED: [&str; 2] = ["online", "offline"];

/// What [`store`] did.
#[derive(Debug, Default)]
pub struct Stored {
    /// Agents read as `offline` and now `online` again (for the log; one
    /// that a sweep marked offline a moment before is flipped back too,
    /// without a line).
    pub back_online: Vec<String>,
    /// Heartbeats with no approved agent row, by agent id: the row's status
    /// (`pending`, `revoked`, ...) or `None` when there is no row. Nothing
    /// of theirs was written.
    pub refused: HashMap<String, Option<String>>,
}

/// Writes `hbs` (at most one per agent) onto their agent rows at `now` (ms)
/// inside `txn`, which must be a write transaction (the single writer's
/// turn on SQLite).
///
/// The write is an `UPDATE` by key, never an insert, and only where the
/// status is still `online` or `offline`: a heartbeat cannot create an
/// agent, and a revoked or pending one stays so. The status itself is set
/// by a separate `UPDATE … WHERE status = 'offline'` after it, so that the
/// big write leaves the status column — and its index — alone on the rows
/// already online, most of them (rewriting an unchanged indexed column
/// still rewrites its index entry: about a third of the write's cost,
/// measured on 10,000 rows). Both run in `txn`, so a sweep that marked an
/// agent offline a moment ago is undone by the heartbeat that proves it is
/// not. Only when fewer rows matched than heartbeats came are the rows read
/// to name the refused ones (the broker's permissions keep strangers off
/// these subjects; this is the second line).
pub async fn store<C: ConnectionTrait>(
    txn: &C,
    hbs: &[Heartbeat],
    now: i64,
) -> Result<Stored, sea_orm::DbErr> {
    let mut out = Stored::default();
    if hbs.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = hbs.iter().map(|h| h.agent_id.clone()).collect();
    for chunk in ids.chunks(500) {
        let back: Vec<String> = agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .filter(agent::Column::Status.eq("offline"))
            .into_tuple()
            .all(txn)
            .await?;
        out.back_online.extend(back);
    }
    // In key order: two replicas writing overlapping agents on PostgreSQL
    // then take the rows' locks in the same order.
    let mut in_order: Vec<&Heartbeat> = hbs.iter().collect();
    in_order.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let rows: Vec<Vec<Value>> = in_order.into_iter().map(|h| row(h, now)).collect();
    let only = Condition::all().add(agent::Column::Status.is_in(APPROVED));
    let matched = crate::db::bulk::update_by_key_if::<agent::Entity, _>(
        txn,
        agent::Column::Id,
        &COLUMNS,
        rows,
        Some(only),
    )
    .await?;
    // After the write, for every id (not only those read as offline above):
    // on PostgreSQL another replica's sweep may have marked one offline
    // since that read; the rows written above are locked now, so no sweep
    // gets in between this and the commit. Only rows this write stamped
    // (`last_seen = now`): an agent another replica approved a moment ago
    // (pending → offline) was not written, and stays as it is.
    for chunk in ids.chunks(500) {
        agent::Entity::update_many()
            .col_expr(agent::Column::Status, Expr::value("online"))
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .filter(agent::Column::Status.eq("offline"))
            .filter(agent::Column::LastSeen.eq(now))
            .exec(txn)
            .await?;
    }
    if matched as usize != ids.len() {
        out.refused = refused(txn, &ids, now).await?;
    }
    Ok(out)
}

/// The columns a heartbeat writes, in the order [`row`] gives their values.
const COLUMNS: [agent::Column; 15] = [
    agent::Column::Hostname,
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
];

/// The agent id, then one value per [`COLUMNS`] entry.
fn row(h: &Heartbeat, now: i64) -> Vec<Value> {
    let json = |v: serde_json::Result<String>| Value::from(v.unwrap_or_default());
    vec![
        h.agent_id.clone().into(),
        h.hostname.clone().into(),
        now.into(),
        (h.seq as i64).into(),
        (h.interval_secs as i32).into(),
        h.os.clone().into(),
        h.kernel.clone().into(),
        h.agent_version.clone().into(),
        // What `version_policy` judges the agent by.
        bus_schema::text::storable(&h.agent_channel, 32).into(),
        (h.protocol_version as i32).into(),
        json(serde_json::to_string(&h.metrics)),
        json(serde_json::to_string(&h.modules)),
        json(serde_json::to_string(&h.operations)),
        Value::String(
            h.rootd_error
                .as_ref()
                .map(|e| bus_schema::text::storable(e, 500)),
        ),
        // A reboot's return shows as another boot id (windows::reboots).
        Value::String(Some(h.boot_id.clone()).filter(|b| !b.is_empty())),
        Value::BigInt(Some(
            now - (h.metrics.uptime_secs as i64).saturating_mul(1000),
        )),
    ]
}

/// Of `ids`, those this write did not land on: the row's status, or `None`
/// when there is no row at all. A row counts as written when it is approved
/// and carries this write's `last_seen` (`now`, ms): one approved by
/// another replica after the write is still refused.
async fn refused<C: ConnectionTrait>(
    txn: &C,
    ids: &[String],
    now: i64,
) -> Result<HashMap<String, Option<String>>, sea_orm::DbErr> {
    let mut known: HashMap<String, (String, i64)> = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String, i64)> = agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::Status)
            .column(agent::Column::LastSeen)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(txn)
            .await?;
        known.extend(rows.into_iter().map(|(id, s, at)| (id, (s, at))));
    }
    Ok(ids
        .iter()
        .filter_map(|id| match known.get(id) {
            Some((s, at)) if APPROVED.contains(&s.as_str()) && *at == now => None,
            other => Some((id.clone(), other.map(|(s, _)| s.clone()))),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::Metrics;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, TransactionTrait};

    fn agent_row(id: &str, status: &str) -> agent::Model {
        agent::Model {
            id: id.into(),
            hostname: format!("{id}-old"),
            status: status.into(),
            machine_id: format!("m-{id}"),
            facts: "{}".into(),
            token_id: None,
            approved_by: None,
            revoked_at: None,
            first_seen: 1,
            last_seen: 1,
            last_seq: 0,
            heartbeat_secs: 30,
            os: String::new(),
            kernel: String::new(),
            agent_version: String::new(),
            metrics: "{}".into(),
            modules: "[]".into(),
            operations: "[]".into(),
            labels: "{}".into(),
            rootd_error: None,
            display_name: None,
            boot_id: None,
            booted_at: None,
            agent_channel: String::new(),
            protocol_version: 1,
        }
    }

    fn hb(id: &str) -> Heartbeat {
        Heartbeat {
            agent_id: id.into(),
            hostname: format!("{id}-new"),
            seq: 7,
            sent_at: 5,
            interval_secs: 15,
            agent_version: "1.2".into(),
            agent_channel: "beta".into(),
            protocol_version: bus_schema::signing::PROTOCOL_VERSION,
            watch_revision: String::new(),
            services: vec![],
            services_full: false,
            key_fingerprints: None,
            os: "debian".into(),
            kernel: "6".into(),
            metrics: Metrics::default(),
            modules: vec!["sys".into()],
            operations: vec![],
            rootd_error: Some("it's down".into()),
            instance_id: String::new(),
            machine_id: String::new(),
            boot_id: "b1".into(),
            rootd_box_key: None,
        }
    }

    #[tokio::test]
    async fn writes_approved_rows_flips_offline_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        for (id, status) in [
            ("on", "online"),
            ("off", "offline"),
            ("rev", "revoked"),
            ("pend", "pending"),
        ] {
            agent_row(id, status)
                .into_active_model()
                .insert(&db)
                .await
                .unwrap();
        }
        // More heartbeats than one statement takes, all of unknown agents
        // but the first four.
        let mut hbs: Vec<Heartbeat> = ["on", "off", "rev", "pend"].map(hb).to_vec();
        hbs.extend((0..600).map(|i| hb(&format!("stranger{i}"))));
        let txn = db.begin().await.unwrap();
        let stored = store(&txn, &hbs, 1_000).await.unwrap();
        txn.commit().await.unwrap();

        assert_eq!(stored.back_online, vec!["off".to_string()]);
        assert_eq!(stored.refused.len(), 602, "{:?}", stored.refused.keys());
        assert_eq!(stored.refused["rev"].as_deref(), Some("revoked"));
        assert_eq!(stored.refused["pend"].as_deref(), Some("pending"));
        assert_eq!(stored.refused["stranger599"], None);

        let all = agent::Entity::find().all(&db).await.unwrap();
        assert_eq!(all.len(), 4, "a heartbeat never creates an agent row");
        let get = |id: &str| all.iter().find(|a| a.id == id).unwrap().clone();
        for id in ["on", "off"] {
            let a = get(id);
            assert_eq!(a.status, "online", "{id}");
            assert_eq!(a.hostname, format!("{id}-new"));
            assert_eq!((a.last_seen, a.last_seq, a.heartbeat_secs), (1_000, 7, 15));
            assert_eq!(a.agent_channel, "beta");
            assert_eq!(a.rootd_error.as_deref(), Some("it's down"));
            assert_eq!(a.boot_id.as_deref(), Some("b1"));
            assert_eq!(a.machine_id, format!("m-{id}"), "columns not written stay");
        }
        for (id, status) in [("rev", "revoked"), ("pend", "pending")] {
            let a = get(id);
            assert_eq!(a.status, status);
            assert_eq!(
                a.hostname,
                format!("{id}-old"),
                "a refused row is untouched"
            );
            assert_eq!(a.last_seen, 1);
        }
    }

    #[tokio::test]
    async fn all_approved_reads_no_rows_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        agent_row("a", "online")
            .into_active_model()
            .insert(&db)
            .await
            .unwrap();
        let txn = db.begin().await.unwrap();
        let stored = store(&txn, &[hb("a")], 9).await.unwrap();
        txn.commit().await.unwrap();
        assert!(stored.refused.is_empty() && stored.back_online.is_empty());
        let a = agent::Entity::find_by_id("a")
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.status.as_str(), a.last_seen), ("online", 9));
    }

    #[tokio::test]
    async fn a_row_approved_after_the_write_is_still_refused() {
        // What `refused` sees when another replica approved the agent
        // (pending → offline) between the write and this read: an approved
        // row that does not carry this write's `last_seen`.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        for (id, status, seen) in [("late", "offline", 1), ("written", "online", 50)] {
            let mut a = agent_row(id, status);
            a.last_seen = seen;
            a.into_active_model().insert(&db).await.unwrap();
        }
        let ids = ["late".to_string(), "written".to_string()];
        let r = refused(&db, &ids, 50).await.unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r["late"].as_deref(), Some("offline"));
    }
}
