//! Who takes part in a window's run: the hosts eligible when it opens, the
//! ones that become eligible while it is open (a later approval, a first
//! scan, a host back online), and the guard that keeps two overlapping
//! windows from installing on one host at once. Owns choosing hosts; the
//! run's progress is `runner.rs`'s, what is approved `updates::approvals`'s.

use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter,
};

use super::runner::{batch_size, needs_reboot};
use super::Occurrence;
use crate::selector::Selector;
use crate::state::AppState;
use crate::updates::approvals::approved_for;
use crate::updates::entities::{run, run_host, window};

/// What a host row waiting for another window's run says.
pub const WAITING: &str = "waiting: another window's run is working on this host";

/// How often an open run looks for hosts that became eligible, ms.
const JOIN_EVERY_MS: i64 = 60_000;

/// The window's hosts, not in `known`, that have approved updates or (when
/// the window reboots) need a reboot, by id.
pub async fn eligible_hosts(
    state: &AppState,
    w: &window::Model,
    known: &BTreeSet<String>,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let sel: Selector = serde_json::from_str(&w.selector)?;
    let mut hosts = Vec::new();
    for a in crate::jobs::targets(state, &sel).await? {
        if known.contains(&a.id) {
            continue;
        }
        let updates = approved_for(&state.db, &a, now).await?;
        let reboot = w.reboot == "if_required" && needs_reboot(&state.db, &a.id).await?;
        if !updates.is_empty() || reboot {
            hosts.push(a.id);
        }
    }
    Ok(hosts)
}

/// Whether another run has this host installing or rebooting.
pub async fn busy_elsewhere(
    db: &DatabaseConnection,
    agent_id: &str,
    run_id: &str,
) -> Result<bool, sea_orm::DbErr> {
    Ok(run_host::Entity::find()
        .filter(run_host::Column::AgentId.eq(agent_id))
        .filter(run_host::Column::RunId.ne(run_id))
        .filter(run_host::Column::Status.is_in(["installing", "rebooting"]))
        .count(db)
        .await?
        > 0)
}

/// Adds the hosts that became eligible since the occurrence's run opened,
/// in batches after the existing ones, and sets a completed run running
/// again. A halted or aborted run takes no one. Looked at once a minute
/// per run on this replica (the lease holder).
pub async fn join_late(
    state: &AppState,
    w: &window::Model,
    o: Occurrence,
    now: i64,
) -> anyhow::Result<()> {
    static LAST: LazyLock<Mutex<HashMap<String, i64>>> = LazyLock::new(Default::default);
    let db = &state.db;
    let Some(r) = run::Entity::find()
        .filter(run::Column::WindowId.eq(w.id.clone()))
        .filter(run::Column::OccurrenceStart.eq(o.start_ms))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    if !matches!(r.status.as_str(), "running" | "completed") {
        return Ok(());
    }
    {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|_, t| now - *t < 24 * 3_600_000);
        match last.get(&r.id) {
            Some(t) if now - t < JOIN_EVERY_MS => return Ok(()),
            // The first look is the run's opening itself.
            None if now - r.started_at < JOIN_EVERY_MS => {
                last.insert(r.id.clone(), r.started_at);
                return Ok(());
            }
            _ => {
                last.insert(r.id.clone(), now);
            }
        }
    }
    let rows = run_host::Entity::find()
        .filter(run_host::Column::RunId.eq(r.id.clone()))
        .all(db)
        .await?;
    let known: BTreeSet<String> = rows.iter().map(|h| h.agent_id.clone()).collect();
    let new = eligible_hosts(state, w, &known, now).await?;
    if new.is_empty() {
        return Ok(());
    }
    let first = rows.iter().map(|h| h.batch + 1).max().unwrap_or(0);
    let size = batch_size(w, rows.len() + new.len());
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(db).await?;
    for (i, a) in new.iter().enumerate() {
        run_host::Entity::insert(run_host::ActiveModel {
            run_id: Set(r.id.clone()),
            agent_id: Set(a.clone()),
            batch: Set(first + (i / size) as i32),
            status: Set("pending".into()),
            install_command_id: Set(None),
            scan_command_id: Set(None),
            reboot_command_id: Set(None),
            boot_id_before: Set(None),
            reboot_started_at: Set(None),
            returned_at: Set(None),
            message: Set("joined after the run opened".into()),
            updated_at: Set(now),
        })
        .exec(&txn)
        .await?;
    }
    let mut m: run::ActiveModel = r.clone().into();
    m.hosts_total = Set(r.hosts_total + new.len() as i32);
    m.status = Set("running".into());
    m.finished_at = Set(None);
    m.update(&txn).await?;
    txn.commit().await?;
    tracing::info!(window = %w.name, run = %r.id, hosts = new.len(), "hosts joined an open run");
    Ok(())
}
