//! Reading the inventory for people: pending updates by package and by
//! host, one host's updates with the decision on each, and the fleet page's
//! counts. The API, the pages and (through the API) the CLI show these same
//! shapes. Writes nothing; what is approved is `super::approvals::decide`'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};

use super::approvals::{self, Decision};
use super::entities::{approval, approval_rule, host_state, inventory};
use crate::db::entities::agent;
use crate::selector::Selector;

/// Which hosts and updates a listing shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only security updates (by package) / hosts with one (by host).
    pub security: bool,
    /// Only the hosts this selector matches.
    pub selector: Option<Selector>,
}

/// Severity's rank for sorting: higher first; none is 0.
pub fn severity_rank(s: Option<&str>) -> u8 {
    match s {
        Some("Critical") => 4,
        Some("Important") => 3,
        Some("Moderate") => 2,
        Some("Low") => 1,
        _ => 0,
    }
}

/// Everything a listing reads, loaded once.
struct Loaded {
    hosts: HashMap<String, agent::Model>,
    rows: Vec<inventory::Model>,
    approvals: Vec<approval::Model>,
    rules: Vec<approval_rule::Model>,
}

/// Approved hosts (online or offline) the filter's selector matches.
async fn hosts<C: ConnectionTrait>(
    db: &C,
    f: &Filter,
) -> Result<HashMap<String, agent::Model>, DbErr> {
    Ok(agent::Entity::find()
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .all(db)
        .await?
        .into_iter()
        .filter(|a| f.selector.as_ref().is_none_or(|s| s.matches(a)))
        .map(|a| (a.id.clone(), a))
        .collect())
}

async fn load<C: ConnectionTrait>(db: &C, f: &Filter, now: i64) -> Result<Loaded, DbErr> {
    let hosts = hosts(db, f).await?;
    let rows = inventory::Entity::find()
        .order_by_asc(inventory::Column::Package)
        .all(db)
        .await?
        .into_iter()
        .filter(|r| hosts.contains_key(&r.agent_id))
        .collect();
    Ok(Loaded {
        hosts,
        rows,
        approvals: approvals::load_in_force(db, now).await?,
        rules: approvals::load_rules(db).await?,
    })
}

impl Loaded {
    fn decide(&self, r: &inventory::Model, now: i64) -> Decision {
        approvals::decide(
            &self.hosts[&r.agent_id],
            r,
            &self.approvals,
            &self.rules,
            now,
        )
    }
}

fn list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Pending updates by package: `{"package", "candidates", "hosts",
/// "security", "severity", "advisories", "first_seen", "approval": {"state":
/// approved|declined|pending|partial|held, "approved", "declined",
/// "pending", "held"}}`, security first, then severity, then hosts
/// affected, then name.
pub async fn by_package<C: ConnectionTrait>(
    db: &C,
    f: &Filter,
    now: i64,
) -> Result<Vec<Value>, DbErr> {
    let l = load(db, f, now).await?;
    #[derive(Default)]
    struct Acc {
        candidates: BTreeSet<String>,
        hosts: usize,
        security: bool,
        severity: Option<String>,
        advisories: BTreeSet<String>,
        first_seen: i64,
        counts: BTreeMap<&'static str, usize>,
    }
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    for r in &l.rows {
        let a = by.entry(r.package.clone()).or_insert_with(|| Acc {
            first_seen: r.first_seen,
            ..Default::default()
        });
        a.candidates.insert(r.candidate_version.clone());
        a.hosts += 1;
        a.security |= r.security;
        if severity_rank(r.severity.as_deref()) > severity_rank(a.severity.as_deref()) {
            a.severity = r.severity.clone();
        }
        a.advisories.extend(list(&r.advisories));
        a.first_seen = a.first_seen.min(r.first_seen);
        *a.counts.entry(l.decide(r, now).as_str()).or_default() += 1;
    }
    let mut out: Vec<(bool, u8, usize, Value)> = by
        .into_iter()
        .filter(|(_, a)| !f.security || a.security)
        .map(|(name, a)| {
            let n = |k: &str| a.counts.get(k).copied().unwrap_or(0);
            let state = match (n("approved"), n("declined"), n("pending")) {
                (0, 0, 0) => "held",
                (_, 0, 0) => "approved",
                (0, _, 0) => "declined",
                (0, 0, _) => "pending",
                _ => "partial",
            };
            let v = json!({
                "package": name,
                "candidates": a.candidates,
                "hosts": a.hosts,
                "security": a.security,
                "severity": a.severity,
                "advisories": a.advisories,
                "first_seen": a.first_seen,
                "approval": {
                    "state": state,
                    "approved": n("approved"),
                    "declined": n("declined"),
                    "pending": n("pending"),
                    "held": n("held"),
                },
            });
            (a.security, severity_rank(a.severity.as_deref()), a.hosts, v)
        })
        .collect();
    out.sort_by(|a, b| {
        (b.0, b.1, b.2)
            .cmp(&(a.0, a.1, a.2))
            .then_with(|| a.3["package"].as_str().cmp(&b.3["package"].as_str()))
    });
    Ok(out.into_iter().map(|(_, _, _, v)| v).collect())
}

/// A host's patch state as the API shows it (`null` fields before its
/// first scan).
pub fn state_json(s: Option<&host_state::Model>) -> Value {
    match s {
        None => json!({
            "manager": null, "last_scan_at": null, "last_scan_status": null,
            "last_scan_error": null, "reboot_required": false,
            "reboot_packages": [], "reboot_since": null,
        }),
        Some(s) => json!({
            "manager": s.manager,
            "last_scan_at": s.last_scan_at,
            "last_scan_command": s.last_scan_command,
            "last_scan_status": s.last_scan_status,
            "last_scan_error": s.last_scan_error,
            "reboot_required": s.reboot_required,
            "reboot_packages": list(&s.reboot_packages),
            "reboot_since": s.reboot_since,
        }),
    }
}

/// Pending updates by host: `{"agent_id", "hostname", "display_name",
/// "status", "pending", "security", "approved", "held", ...state_json}`,
/// hosts with security updates first, then most pending, then name.
pub async fn by_host<C: ConnectionTrait>(
    db: &C,
    f: &Filter,
    now: i64,
) -> Result<Vec<Value>, DbErr> {
    let l = load(db, f, now).await?;
    let states: HashMap<String, host_state::Model> = host_state::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.agent_id.clone(), s))
        .collect();
    let mut counts: HashMap<&str, [usize; 4]> = HashMap::new();
    for r in &l.rows {
        let c = counts.entry(r.agent_id.as_str()).or_default();
        c[0] += 1;
        c[1] += usize::from(r.security);
        match l.decide(r, now) {
            Decision::Approved(_) => c[2] += 1,
            Decision::Held => c[3] += 1,
            _ => {}
        }
    }
    let mut out: Vec<(usize, usize, String, Value)> = l
        .hosts
        .values()
        .filter_map(|a| {
            let c = counts.get(a.id.as_str()).copied().unwrap_or_default();
            if f.security && c[1] == 0 {
                return None;
            }
            let mut v = state_json(states.get(&a.id));
            v["agent_id"] = json!(a.id);
            v["hostname"] = json!(a.hostname);
            v["display_name"] = json!(a.display_name);
            v["status"] = json!(a.status);
            v["pending"] = json!(c[0]);
            v["security"] = json!(c[1]);
            v["approved"] = json!(c[2]);
            v["held"] = json!(c[3]);
            Some((c[1], c[0], a.hostname.clone(), v))
        })
        .collect();
    out.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then_with(|| a.2.cmp(&b.2)));
    Ok(out.into_iter().map(|(_, _, _, v)| v).collect())
}

/// One inventory row with the decision on it.
pub fn row_json(r: &inventory::Model, d: &Decision) -> Value {
    let mut v = json!({
        "package": r.package,
        "arch": r.arch,
        "current": r.current_version,
        "candidate": r.candidate_version,
        "origin": r.origin,
        "security": r.security,
        "severity": r.severity,
        "advisories": list(&r.advisories),
        "held": r.held,
        "first_seen": r.first_seen,
        "last_seen": r.last_seen,
        "decision": d.as_str(),
        "approved_by": null,
        "auto_approve_at": null,
    });
    match d {
        Decision::Approved(a) => {
            v["approved_by"] = json!(a.approved_by);
            v["approval_id"] = json!(a.approval_id);
            v["rule_id"] = json!(a.rule_id);
        }
        Decision::Declined { by, approval_id } => {
            v["declined_by"] = json!(by);
            v["approval_id"] = json!(approval_id);
        }
        Decision::Pending { auto_at } => v["auto_approve_at"] = json!(auto_at),
        Decision::Held => {}
    }
    v
}

/// One host's updates (security first, then by name) and patch state:
/// `{"agent_id", "hostname", "state": state_json, "updates": [row_json]}`.
/// `None` when there is no such agent.
pub async fn for_host<C: ConnectionTrait>(
    db: &C,
    id: &str,
    now: i64,
) -> Result<Option<Value>, DbErr> {
    let Some(a) = agent::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Ok(None);
    };
    let state = host_state::Entity::find_by_id(id.to_string())
        .one(db)
        .await?;
    let mut rows = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(id))
        .all(db)
        .await?;
    rows.sort_by(|x, y| {
        (y.security, severity_rank(y.severity.as_deref()))
            .cmp(&(x.security, severity_rank(x.severity.as_deref())))
            .then_with(|| x.package.cmp(&y.package))
    });
    let approvals = approvals::load_in_force(db, now).await?;
    let rules = approvals::load_rules(db).await?;
    let updates: Vec<Value> = rows
        .iter()
        .map(|r| row_json(r, &approvals::decide(&a, r, &approvals, &rules, now)))
        .collect();
    Ok(Some(json!({
        "agent_id": a.id,
        "hostname": a.hostname,
        "display_name": a.display_name,
        "state": state_json(state.as_ref()),
        "updates": updates,
    })))
}

/// The fleet page's counts: approved hosts with security updates pending,
/// and hosts whose last scan said a reboot is required.
pub async fn fleet_counts<C: ConnectionTrait>(db: &C) -> Result<(usize, usize), DbErr> {
    use sea_orm::QuerySelect;
    let hosts: BTreeSet<String> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(agent::Column::Status.is_in(["online", "offline"]))
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let states = host_state::Entity::find().all(db).await?;
    let mine = || states.iter().filter(|s| hosts.contains(&s.agent_id));
    Ok((
        mine().filter(|s| s.security > 0).count(),
        mine().filter(|s| s.reboot_required).count(),
    ))
}

/// A stored selector (JSON) in the CLI form people type: `all`,
/// `label:env=prod,host:web-*`...; the JSON itself when it does not parse.
pub fn selector_text(json: &str) -> String {
    Selector::text_of(&serde_json::Value::String(json.to_string()))
}
