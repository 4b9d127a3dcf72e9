//! The window runner: one round of installing approved updates inside open
//! maintenance windows. [`tick`] is idempotent and safe to call every few
//! seconds on any replica: a run is created once per occurrence (a unique
//! index on `(window_id, occurrence_start)`), and each step moves a host
//! row forward only from the state it was read in.
//!
//! A run's life: created when the occurrence opens, with the selector's
//! hosts that have approved updates (or, when the window reboots, need a
//! reboot), in batches; hosts that become eligible while it is open join
//! it in later batches (`late.rs`); one batch at a time gets a `pkg.upgrade` (source
//! `system`, requested by `window:<name>`); the next batch starts when every
//! host of the current one has ended (installed, failed, deferred,
//! rebooted, reboot_failed). After an install: history rows are completed
//! and a `pkg.scan` follows, whose result decides a reboot (`reboots`).
//! Offline hosts are `deferred` at their turn; failures past
//! `max_failures` halt the run; the occurrence's end defers the rest.
//!
//! Owns the runs' progress; not which updates are approved
//! (`updates::approvals`), not the inventory (the scan's ingest).

use bus_schema::{CommandStatus, Source};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::json;

use crate::commands::{self, NewCommand};
use crate::db::entities::{agent, command};
use crate::state::AppState;
use crate::updates::approvals::{approved_for, ApprovedUpdate};
use crate::updates::entities::{host_state, run, run_host, window};

use super::runs::{defer_pending, recount};
use super::{history, reboots, schedule_of};

/// After the post-install scan's command ended, how long its result may
/// take to reach the host's patch state before the runner decides without
/// it (and does not reboot).
const SCAN_GRACE_MS: i64 = 60_000;

/// What a window runs on a host: `pkg.upgrade` of the approved
/// `name=version`s (installed packages only; apt with `--no-remove`).
pub const INSTALL_ACTION: &str = "pkg.upgrade";

/// Packages one `pkg.upgrade` may name (the catalogue's limit).
const MAX_PACKAGES: usize = 50;

/// One round: open runs for open occurrences, move installing and
/// rebooting hosts forward, start batches, end runs. Errors of one run are
/// logged and do not stop the others.
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let windows = window::Entity::find()
        .filter(window::Column::Enabled.eq(true))
        .all(&state.db)
        .await?;
    for w in &windows {
        if let Some(o) = schedule_of(w).and_then(|s| s.open_at(now_ms)) {
            if let Err(e) = open_run(state, w, o, now_ms).await {
                tracing::warn!(window = %w.name, error = %e, "window run not opened");
            }
            if let Err(e) = super::late::join_late(state, w, o, now_ms).await {
                tracing::warn!(window = %w.name, error = %e, "late hosts not added");
            }
        }
    }
    let moving = run_host::Entity::find()
        .filter(run_host::Column::Status.is_in(["installing", "rebooting"]))
        .all(&state.db)
        .await?;
    for h in moving {
        let res = match h.status.as_str() {
            "installing" => progress_install(state, &h, now_ms).await,
            _ => reboots::check(state, &h, now_ms).await,
        };
        if let Err(e) = res {
            tracing::warn!(run = %h.run_id, agent_id = %h.agent_id, error = %e, "run host not advanced");
        }
    }
    let running = run::Entity::find()
        .filter(run::Column::Status.eq("running"))
        .all(&state.db)
        .await?;
    for r in running {
        if let Err(e) = advance(state, &r, now_ms).await {
            tracing::warn!(run = %r.id, error = %e, "window run not advanced");
        }
    }
    Ok(())
}

/// Hosts per batch: `max_hosts`, or `max_percent`% of `n` rounded up, or
/// all of them; at least 1.
pub fn batch_size(w: &window::Model, n: usize) -> usize {
    let size = match (w.max_hosts, w.max_percent) {
        (Some(h), _) => h.max(1) as usize,
        (None, Some(p)) => (n * p.clamp(1, 100) as usize).div_ceil(100),
        (None, None) => n,
    };
    size.max(1)
}

/// The run of occurrence `o`, created with its hosts and batches when it
/// does not exist yet.
async fn open_run(
    state: &AppState,
    w: &window::Model,
    o: super::Occurrence,
    now: i64,
) -> anyhow::Result<()> {
    let exists = run::Entity::find()
        .filter(run::Column::WindowId.eq(w.id.clone()))
        .filter(run::Column::OccurrenceStart.eq(o.start_ms))
        .count(&state.db)
        .await?
        > 0;
    if exists {
        return Ok(());
    }
    let hosts = super::late::eligible_hosts(state, w, &Default::default(), now).await?;
    let size = batch_size(w, hosts.len());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let empty = hosts.is_empty();
    let r = run::ActiveModel {
        id: Set(id.clone()),
        window_id: Set(w.id.clone()),
        occurrence_start: Set(o.start_ms),
        occurrence_end: Set(o.end_ms),
        status: Set(if empty { "completed" } else { "running" }.into()),
        started_at: Set(now),
        finished_at: Set(empty.then_some(now)),
        hosts_total: Set(hosts.len() as i32),
        hosts_succeeded: Set(0),
        hosts_failed: Set(0),
        hosts_deferred: Set(0),
        halted_reason: Set(None),
    };
    let rows: Vec<run_host::ActiveModel> = hosts
        .iter()
        .enumerate()
        .map(|(i, a)| run_host::ActiveModel {
            run_id: Set(id.clone()),
            agent_id: Set(a.clone()),
            batch: Set((i / size) as i32),
            status: Set("pending".into()),
            install_command_id: Set(None),
            scan_command_id: Set(None),
            reboot_command_id: Set(None),
            boot_id_before: Set(None),
            reboot_started_at: Set(None),
            returned_at: Set(None),
            message: Set(String::new()),
            updated_at: Set(now),
        })
        .collect();
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    // Another replica may have opened it meanwhile: the unique index says
    // no, and that run is the one.
    if run::Entity::insert(r).exec(&txn).await.is_err() {
        return Ok(());
    }
    for chunk in rows.chunks(500) {
        run_host::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(window = %w.name, run = %id, hosts = hosts.len(), batch = size, "window run opened");
    Ok(())
}

pub(super) async fn needs_reboot(
    db: &DatabaseConnection,
    agent_id: &str,
) -> Result<bool, sea_orm::DbErr> {
    Ok(host_state::Entity::find_by_id(agent_id.to_string())
        .one(db)
        .await?
        .is_some_and(|s| s.reboot_required))
}

/// Moves a running run on: ends it when the occurrence closed, halts it
/// past the failure threshold, starts the next batch when the current one
/// has ended, completes it when no host moves any more.
async fn advance(state: &AppState, r: &run::Model, now: i64) -> anyhow::Result<()> {
    let db = &state.db;
    let w = window::Entity::find_by_id(r.window_id.clone())
        .one(db)
        .await?;
    let counts = recount(db, &r.id).await?;
    let mut status = "running";
    let mut reason = None;
    match &w {
        None => {
            defer_pending(db, &r.id, "not started: the window was deleted", now).await?;
        }
        Some(_) if now >= r.occurrence_end => {
            defer_pending(
                db,
                &r.id,
                "not started: the window closed before its turn",
                now,
            )
            .await?;
        }
        Some(w) if w.max_failures.is_some_and(|m| counts.failed > m) => {
            let why = format!(
                "{} hosts failed, more than max_failures = {}",
                counts.failed,
                w.max_failures.unwrap_or(0)
            );
            tracing::warn!(window = %w.name, run = %r.id, "{why}; run halted");
            defer_pending(db, &r.id, "not started: the run halted", now).await?;
            status = "halted";
            reason = Some(why);
        }
        Some(w) => {
            if counts.installing + counts.rebooting == 0 {
                start_next_batch(state, w, r, now).await?;
            }
        }
    }
    let counts = recount(db, &r.id).await?;
    if status == "running" && counts.active() == 0 {
        status = "completed";
    }
    if status != "running" {
        let mut m: run::ActiveModel = r.clone().into();
        m.status = Set(status.into());
        m.finished_at = Set(Some(now));
        m.halted_reason = Set(reason);
        m.update(db).await?;
        tracing::info!(run = %r.id, status, "window run ended");
    }
    Ok(())
}

async fn start_next_batch(
    state: &AppState,
    w: &window::Model,
    r: &run::Model,
    now: i64,
) -> anyhow::Result<()> {
    let pending = run_host::Entity::find()
        .filter(run_host::Column::RunId.eq(r.id.clone()))
        .filter(run_host::Column::Status.eq("pending"))
        .order_by_asc(run_host::Column::Batch)
        .all(&state.db)
        .await?;
    let Some(batch) = pending.first().map(|h| h.batch) else {
        return Ok(());
    };
    for h in pending.into_iter().filter(|h| h.batch == batch) {
        if let Err(e) = start_host(state, w, r, h, now).await {
            tracing::warn!(run = %r.id, error = %e, "host not started");
        }
    }
    Ok(())
}

/// `name=version` (apt) or `name-version` (dnf).
pub fn package_spec(manager: &str, u: &ApprovedUpdate) -> String {
    if manager == "dnf" {
        format!("{}-{}", u.package, u.version)
    } else {
        format!("{}={}", u.package, u.version)
    }
}

/// What the runner asks of the agents: `window:<name>`, source `system`.
pub fn requester(w: &window::Model) -> String {
    format!("window:{}", w.name)
}

fn set_status(
    h: run_host::Model,
    status: &str,
    message: String,
    now: i64,
) -> run_host::ActiveModel {
    let mut m: run_host::ActiveModel = h.into();
    m.status = Set(status.into());
    m.message = Set(message.chars().take(1000).collect());
    m.updated_at = Set(now);
    m
}

/// A host's turn: deferred when offline, else its approved updates are
/// installed (or, with nothing to install, its reboot asked for).
async fn start_host(
    state: &AppState,
    w: &window::Model,
    r: &run::Model,
    h: run_host::Model,
    now: i64,
) -> anyhow::Result<()> {
    let db = &state.db;
    let a = agent::Entity::find_by_id(h.agent_id.clone())
        .one(db)
        .await?;
    let Some(a) = a.filter(|a| a.status == "online") else {
        set_status(
            h,
            "deferred",
            "offline when its turn came: waits for the next occurrence".into(),
            now,
        )
        .update(db)
        .await?;
        return Ok(());
    };
    if super::late::busy_elsewhere(db, &a.id, &r.id).await? {
        // Another window's run is installing on (or rebooting) this host:
        // its turn comes again next round, so nothing installs twice.
        if h.message != super::late::WAITING {
            set_status(h, "pending", super::late::WAITING.into(), now)
                .update(db)
                .await?;
        }
        return Ok(());
    }
    let updates = approved_for(db, &a, now).await?;
    if updates.is_empty() {
        if w.reboot == "if_required" && needs_reboot(db, &a.id).await? {
            reboots::start(state, w, h, &a, now).await?;
        } else {
            set_status(h, "installed", "nothing left to install".into(), now)
                .update(db)
                .await?;
        }
        return Ok(());
    }
    let manager = host_state::Entity::find_by_id(a.id.clone())
        .one(db)
        .await?
        .map(|s| s.manager)
        .unwrap_or_else(|| "apt".into());
    let updates: Vec<ApprovedUpdate> = updates.into_iter().take(MAX_PACKAGES).collect();
    let packages: Vec<String> = updates.iter().map(|u| package_spec(&manager, u)).collect();
    let ttl = ((r.occurrence_end - now) / 1000).max(60) as u64;
    let created = commands::create(
        state,
        NewCommand {
            agent_id: a.id.clone(),
            // Only upgrades of installed packages, never a new install;
            // rootd's apt also never removes a package to make room.
            action: INSTALL_ACTION.into(),
            params: json!({ "packages": packages }),
            timeout_secs: None,
            ttl_secs: Some(ttl),
            requested_by: requester(w),
            source: Source::System,
            job_id: None,
        },
    )
    .await;
    match created {
        Ok(c) => {
            history::started(db, &a, &updates, w, r, &c.id, now).await?;
            let n = packages.len();
            let mut m = set_status(h, "installing", format!("installing {n} package(s)"), now);
            m.install_command_id = Set(Some(c.id));
            m.update(db).await?;
        }
        Err(e) => {
            set_status(h, "failed", format!("install not issued: {e}"), now)
                .update(db)
                .await?;
        }
    }
    Ok(())
}

fn is_final(c: &command::Model) -> bool {
    CommandStatus::parse(&c.status).is_some_and(|s| s.is_final())
}

/// An installing host: when its install ended, complete the history and
/// ask for a scan; when that scan's result is in (or overdue), decide on a
/// reboot.
async fn progress_install(state: &AppState, h: &run_host::Model, now: i64) -> anyhow::Result<()> {
    let db = &state.db;
    let Some(install_id) = h.install_command_id.clone() else {
        return Ok(());
    };
    let r = run::Entity::find_by_id(h.run_id.clone()).one(db).await?;
    let w = match &r {
        Some(r) => {
            window::Entity::find_by_id(r.window_id.clone())
                .one(db)
                .await?
        }
        None => None,
    };
    match &h.scan_command_id {
        None => {
            let Some(c) = command::Entity::find_by_id(install_id).one(db).await? else {
                return Ok(());
            };
            if !is_final(&c) {
                return Ok(());
            }
            let ok = history::finished(db, &c, now).await?;
            let by = w
                .as_ref()
                .map(requester)
                .unwrap_or_else(|| "window:(deleted)".into());
            let scan = commands::create(
                state,
                NewCommand {
                    agent_id: h.agent_id.clone(),
                    action: "pkg.scan".into(),
                    params: json!({}),
                    timeout_secs: None,
                    ttl_secs: Some(3600),
                    requested_by: by,
                    source: Source::System,
                    job_id: None,
                },
            )
            .await;
            let (status, msg, scan_id) = match (ok, scan) {
                (false, s) => (
                    "failed",
                    format!("install {}: {}", c.status, c.summary),
                    s.ok().map(|s| s.id),
                ),
                (true, Ok(s)) => (
                    "installing",
                    "installed; waiting for the scan".to_string(),
                    Some(s.id),
                ),
                (true, Err(e)) => (
                    "installed",
                    format!("installed; scan not issued: {e}"),
                    None,
                ),
            };
            let mut m = set_status(h.clone(), status, msg, now);
            m.scan_command_id = Set(scan_id);
            m.update(db).await?;
        }
        Some(scan_id) => {
            let ps = host_state::Entity::find_by_id(h.agent_id.clone())
                .one(db)
                .await?;
            let ingested = ps
                .as_ref()
                .is_some_and(|s| s.last_scan_command.as_deref() == Some(scan_id.as_str()));
            if !ingested {
                let scan = command::Entity::find_by_id(scan_id.clone()).one(db).await?;
                let overdue = match &scan {
                    None => true,
                    Some(s) => {
                        is_final(s) && now - s.finished_at.unwrap_or(s.updated_at) > SCAN_GRACE_MS
                    }
                };
                if !overdue {
                    return Ok(());
                }
            }
            // Without the scan's result the last known state decides: a
            // reboot it asked for is still wanted (only a reboot clears it).
            let reboot = ps.is_some_and(|s| s.reboot_required)
                && w.as_ref().is_some_and(|w| w.reboot == "if_required");
            match (reboot, &w) {
                (true, Some(w)) => {
                    let a = agent::Entity::find_by_id(h.agent_id.clone())
                        .one(db)
                        .await?;
                    match a {
                        Some(a) => reboots::start(state, w, h.clone(), &a, now).await?,
                        None => {
                            set_status(
                                h.clone(),
                                "installed",
                                "installed; host gone before its reboot".into(),
                                now,
                            )
                            .update(db)
                            .await?;
                        }
                    }
                }
                _ => {
                    let msg = if ingested {
                        "installed"
                    } else {
                        "installed; the scan's result did not arrive (decided on the last known state)"
                    };
                    set_status(h.clone(), "installed", msg.into(), now)
                        .update(db)
                        .await?;
                }
            }
        }
    }
    if let Some(r) = r {
        recount(db, &r.id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(max_hosts: Option<i32>, max_percent: Option<i32>) -> window::Model {
        window::Model {
            id: "w".into(),
            name: "nightly".into(),
            selector: "{\"all\":true}".into(),
            days: "[\"mon\"]".into(),
            start_time: "02:00".into(),
            duration_minutes: 60,
            timezone: "UTC".into(),
            max_hosts,
            max_percent,
            max_failures: None,
            reboot: "never".into(),
            reboot_deadline_minutes: 15,
            enabled: true,
            created_by: "alice".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_size(&w(Some(2), None), 10), 2);
        assert_eq!(batch_size(&w(None, Some(25)), 10), 3, "rounded up");
        assert_eq!(batch_size(&w(None, Some(1)), 3), 1, "never zero");
        assert_eq!(batch_size(&w(None, None), 7), 7);
        assert_eq!(batch_size(&w(None, None), 0), 1);
    }

    #[test]
    fn package_specs_follow_the_manager() {
        let u = ApprovedUpdate {
            package: "openssl".into(),
            version: "3.0.15-1~deb12u1".into(),
            approved_by: "alice".into(),
            approval_id: None,
            rule_id: None,
        };
        assert_eq!(package_spec("apt", &u), "openssl=3.0.15-1~deb12u1");
        assert_eq!(package_spec("dnf", &u), "openssl-3.0.15-1~deb12u1");
    }
}
