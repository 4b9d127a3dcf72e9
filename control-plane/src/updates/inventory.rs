//! Scan results into the update inventory: when a `pkg.scan` command's
//! final result is stored, the host's inventory rows and its patch state are
//! replaced in the same write transaction as the command row. Owns reading
//! a scan's result JSON (with defaults for fields older rootd versions do
//! not send) and the replacement rule; does not own when scans run
//! (`crate::schedules`), the ledger's rule of which report may change a
//! command (`crate::ledger`), or what approvals cover (`super::approvals`).
//!
//! The rule:
//! - The ledger hands over a scan's final state once (a redelivered result
//!   changes no command, so it never gets here), and a scan older than the
//!   one already applied (by the command's `created_at`, then id) changes
//!   nothing: results may arrive out of order.
//! - A successful scan replaces the host's rows: each listed package is
//!   upserted, rows it no longer lists are deleted, counts and the reboot
//!   state are written to `host_patch_state`.
//! - `first_seen` is kept while the candidate version stays the same and
//!   reset when a new candidate appears: auto-approval delays count from when
//!   *that* candidate appeared, so a rule's "3 days" is never satisfied by an
//!   older, different candidate that sat in the inventory for weeks.
//! - A failed scan records `last_scan_status = failed` with its summary and
//!   leaves the inventory and the reboot state as they were.
//!
//! - A result too large for the bus (`bus_schema::result_budget`: the
//!   result is a marker, the data is in the command's output) is read back
//!   from the output stream after the transaction, then applied by the same
//!   rule in a transaction of its own ([`apply_moved`]).
//!
//! Live pages learn of the change from the command event the result loop
//! publishes for the `pkg.scan` command after the transaction commits
//! (`app.js` refreshes on a `pkg.scan` event); a moved result publishes
//! that event again once applied.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::entities::{host_state, inventory};
use crate::db::entities::command;
use crate::state::AppState;

/// The action whose results fill the inventory.
pub const SCAN_ACTION: &str = "pkg.scan";

/// Longest package name, version or origin kept; longer entries from a host
/// are skipped (names) or cut (origin).
const MAX_FIELD: usize = 256;

/// Most upgradable packages one host's inventory holds (a whole release
/// upgrade of a large Debian host lists a few thousand). A scan listing
/// more is recorded as failed, so no host can flood the pages.
pub const MAX_ROWS: usize = 5_000;

/// `pkg.scan`'s result shape, shared with rootd (the wire crate owns it).
pub use bus_schema::catalogue::pkg::{RebootNeed, ScanReport, Upgradable};

/// Reads a scan's result JSON (the command's `result` column).
pub fn parse_report(result: &str) -> Result<ScanReport, serde_json::Error> {
    serde_json::from_str(result)
}

/// What applying a scan's final state did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The inventory was replaced: this many rows, this many security ones.
    Replaced { upgradable: usize, security: usize },
    /// A failed scan: recorded as the last scan, inventory untouched.
    Failed,
    /// A scan older than (or the same as) the one already applied: nothing
    /// changed.
    Stale,
    /// Not a finished `pkg.scan`: nothing to do.
    Ignored,
    /// A successful scan whose data is in the command's output (the result
    /// is the budget's marker): nothing written yet, see [`apply_moved`].
    Moved,
}

/// Applies a `pkg.scan` command's final state `c` (as just written by the
/// ledger, in the caller's write transaction `db`) to the host's inventory
/// and patch state. `now` is milliseconds since the epoch.
pub async fn apply_scan<C: ConnectionTrait>(
    db: &C,
    c: &command::Model,
    now: i64,
) -> Result<Applied, DbErr> {
    let finished = bus_schema::CommandStatus::parse(&c.status).is_some_and(|s| s.is_final());
    if c.action != SCAN_ACTION || !finished {
        return Ok(Applied::Ignored);
    }
    let prev = host_state::Entity::find_by_id(c.agent_id.clone())
        .one(db)
        .await?;
    if let Some(last) = prev.as_ref().and_then(|p| p.last_scan_command.clone()) {
        if last == c.id {
            return Ok(Applied::Stale);
        }
        let last_created = command::Entity::find_by_id(last.clone())
            .one(db)
            .await?
            .map(|l| l.created_at);
        if let Some(at) = last_created {
            if (at, last.as_str()) > (c.created_at, c.id.as_str()) {
                return Ok(Applied::Stale);
            }
        }
    }
    let at = c.finished_at.unwrap_or(now);
    if c.status == "succeeded" {
        let data: serde_json::Value =
            serde_json::from_str(c.result.as_deref().unwrap_or("null")).unwrap_or_default();
        if bus_schema::result_budget::is_cut(&data) {
            return Ok(Applied::Moved);
        }
    }
    let report = if c.status == "succeeded" {
        match parse_report(c.result.as_deref().unwrap_or("null")) {
            Ok(r) if r.upgradable.len() > MAX_ROWS => Err(format!(
                "the scan listed {} packages, more than the {MAX_ROWS} a host's inventory holds; \
                 the previous inventory is kept",
                r.upgradable.len()
            )),
            Ok(r) => Ok(r),
            Err(e) => Err(format!("the scan's result was not understood: {e}")),
        }
    } else {
        Err(if c.summary.is_empty() {
            format!("scan {}", c.status)
        } else {
            c.summary.clone()
        })
    };
    let report = match report {
        Ok(r) => r,
        Err(why) => {
            write_failed(db, c, prev, at, now, why).await?;
            return Ok(Applied::Failed);
        }
    };
    replace(db, c, prev, report, at, now).await
}

/// Applies every finished `pkg.scan` among `changed` (commands the ledger
/// just moved, in the caller's write transaction, under the writer's turn),
/// oldest first, so a batch holding two scans of one host ends with the
/// newer one. A scan whose data is in its output is handed to
/// [`apply_moved`], which waits for the writer's turn, so it runs after
/// this transaction.
pub async fn apply_scans<'a, C: ConnectionTrait>(
    state: &AppState,
    db: &C,
    changed: impl Iterator<Item = &'a command::Model>,
    now: i64,
) -> Result<(), DbErr> {
    let mut scans: Vec<&command::Model> = changed.filter(|c| c.action == SCAN_ACTION).collect();
    scans.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    for c in scans {
        let applied = apply_scan(db, c, now).await?;
        tracing::debug!(command = %c.id, agent_id = %c.agent_id, ?applied, "scan result applied");
        if applied == Applied::Moved {
            tokio::spawn(apply_moved(state.clone(), c.clone()));
        }
    }
    Ok(())
}

/// Reads a moved scan result back from the command's output and applies
/// it in a write transaction of its own (the rule of [`apply_scan`]: an
/// older scan changes nothing). When the output cannot be read back, the
/// scan is recorded as failed with the reason; the inventory stays.
pub async fn apply_moved(state: AppState, c: command::Model) {
    let full = match crate::output::read(&state.js, &c.agent_id, &c.id, 0).await {
        Ok(lines) => {
            let lines: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
            let marker: serde_json::Value =
                serde_json::from_str(c.result.as_deref().unwrap_or("null")).unwrap_or_default();
            bus_schema::result_budget::reassemble(&marker, &lines).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{e:#}")),
    };
    let mut whole = c.clone();
    match full {
        Ok(data) => whole.result = Some(data.to_string()),
        Err(why) => {
            whole.status = "failed".into();
            whole.summary =
                format!("the scan's result is in its output but could not be read back: {why}");
        }
    }
    let now = bus_schema::now_ms();
    let applied = async {
        let _turn = state.writer.lock().await;
        let txn = crate::db::begin_write(&state.db).await?;
        let a = apply_scan(&txn, &whole, now).await?;
        txn.commit().await?;
        Ok::<_, DbErr>(a)
    }
    .await;
    match applied {
        Ok(a) => {
            tracing::debug!(command = %c.id, ?a, "moved scan result applied");
            crate::events::publish(&state, &crate::events::of_command(&c)).await;
        }
        Err(e) => {
            tracing::warn!(command = %c.id, error = %e, "a moved scan result was not applied")
        }
    }
}

/// Records a failed scan; the inventory, counts and reboot state stay.
async fn write_failed<C: ConnectionTrait>(
    db: &C,
    c: &command::Model,
    prev: Option<host_state::Model>,
    at: i64,
    now: i64,
    why: String,
) -> Result<(), DbErr> {
    let why = bus_schema::text::storable(&why, 1000);
    let row = match prev {
        Some(p) => host_state::Model {
            last_scan_at: Some(at),
            last_scan_command: Some(c.id.clone()),
            last_scan_status: Some("failed".into()),
            last_scan_error: Some(why),
            updated_at: now,
            ..p
        },
        None => host_state::Model {
            agent_id: c.agent_id.clone(),
            manager: String::new(),
            last_scan_at: Some(at),
            last_scan_command: Some(c.id.clone()),
            last_scan_status: Some("failed".into()),
            last_scan_error: Some(why),
            upgradable: 0,
            security: 0,
            reboot_required: false,
            reboot_packages: "[]".into(),
            reboot_since: None,
            updated_at: now,
        },
    };
    save_state(db, row).await
}

async fn save_state<C: ConnectionTrait>(db: &C, row: host_state::Model) -> Result<(), DbErr> {
    host_state::Entity::delete_by_id(row.agent_id.clone())
        .exec(db)
        .await?;
    let am: host_state::ActiveModel = row.into();
    host_state::Entity::insert(am).exec(db).await?;
    Ok(())
}

/// Whether a name from a host can be kept as an inventory key.
fn usable(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_FIELD && !name.chars().any(char::is_control)
}

/// A field of a host's package report as stored: control characters as
/// spaces, at most `MAX_FIELD` characters.
fn cut(s: &str) -> String {
    bus_schema::text::storable(s, MAX_FIELD)
}

async fn replace<C: ConnectionTrait>(
    db: &C,
    c: &command::Model,
    prev: Option<host_state::Model>,
    report: ScanReport,
    at: i64,
    now: i64,
) -> Result<Applied, DbErr> {
    let old: HashMap<String, inventory::Model> = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(c.agent_id.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.package.clone(), r))
        .collect();
    let held: BTreeSet<&str> = report.held.iter().map(String::as_str).collect();
    // One row per package name: a name listed twice (two architectures)
    // keeps its first entry.
    let mut seen = BTreeSet::new();
    let mut rows = Vec::new();
    for p in &report.upgradable {
        if !usable(&p.name) || !seen.insert(p.name.clone()) {
            continue;
        }
        let candidate = cut(&p.candidate);
        let first_seen = match old.get(&p.name) {
            Some(o) if o.candidate_version == candidate => o.first_seen,
            _ => at,
        };
        rows.push(inventory::ActiveModel {
            agent_id: Set(c.agent_id.clone()),
            package: Set(p.name.clone()),
            arch: Set(cut(&p.arch)),
            current_version: Set(cut(&p.current)),
            candidate_version: Set(candidate),
            origin: Set(bus_schema::text::storable(&p.origin, 1000)),
            security: Set(p.security),
            severity: Set(p.severity.as_deref().map(cut)),
            advisories: Set(serde_json::to_string(
                &p.advisories
                    .iter()
                    .take(100)
                    .map(|a| cut(a))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|_| "[]".into())),
            held: Set(p.held || held.contains(p.name.as_str())),
            first_seen: Set(first_seen),
            last_seen: Set(at),
            scan_command_id: Set(c.id.clone()),
        });
    }
    let upgradable = rows.len();
    let security = rows
        .iter()
        .filter(|r| matches!(r.security, Set(true)))
        .count();
    inventory::Entity::delete_many()
        .filter(inventory::Column::AgentId.eq(c.agent_id.clone()))
        .exec(db)
        .await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        inventory::Entity::insert_many(chunk).exec(db).await?;
    }
    let reboot_since = match (&prev, report.reboot.required) {
        (_, false) => None,
        (Some(p), true) if p.reboot_required => p.reboot_since.or(Some(at)),
        (_, true) => Some(at),
    };
    let manager = if report.manager.is_empty() {
        prev.as_ref().map(|p| p.manager.clone()).unwrap_or_default()
    } else {
        cut(&report.manager)
    };
    let reboot_packages: Vec<String> = report
        .reboot
        .packages
        .iter()
        .filter(|p| usable(p))
        .take(500)
        .cloned()
        .collect();
    save_state(
        db,
        host_state::Model {
            agent_id: c.agent_id.clone(),
            manager,
            last_scan_at: Some(at),
            last_scan_command: Some(c.id.clone()),
            last_scan_status: Some("succeeded".into()),
            last_scan_error: None,
            upgradable: upgradable as i32,
            security: security as i32,
            reboot_required: report.reboot.required,
            reboot_packages: serde_json::to_string(&reboot_packages)
                .unwrap_or_else(|_| "[]".into()),
            reboot_since,
            updated_at: now,
        },
    )
    .await?;
    Ok(Applied::Replaced {
        upgradable,
        security,
    })
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
