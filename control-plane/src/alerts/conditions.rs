//! What each rule kind finds true right now: the [`Snapshot`] of the fleet
//! one evaluation round reads (each table once per round, never once per
//! host), and [`findings`], the targets a rule's condition holds for.
//!
//! Owns reading the state alerts are judged on; not the alerts' lifecycle
//! (`evaluate`) nor the rules' checks (`rules`).

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::ExprTrait as _;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::rules::Condition;
use crate::db::entities::{agent, binding_conflict, command, input_drop, refusal};
use crate::selector::Selector;
use crate::services::state::service_state;
use crate::updates::entities::inventory;
use crate::version_policy::{Policy, Standing};

const DAY_MS: i64 = 86_400_000;

/// A host's latest metrics, as the rules compare them.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostMetrics {
    pub disk_used_percent: f64,
    pub mem_used_percent: f64,
    pub cpu_percent: f64,
    pub load1: f64,
}

impl HostMetrics {
    fn parse(json: &str) -> Option<Self> {
        let m: bus_schema::Metrics = serde_json::from_str(json).ok()?;
        let pct = |used: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                used as f64 * 100.0 / total as f64
            }
        };
        Some(Self {
            disk_used_percent: pct(m.disk_used_bytes, m.disk_total_bytes),
            mem_used_percent: pct(m.mem_used_bytes, m.mem_total_bytes),
            cpu_percent: m.cpu_percent as f64,
            load1: m.load1,
        })
    }

    fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "disk_used_percent" => self.disk_used_percent,
            "mem_used_percent" => self.mem_used_percent,
            "cpu_percent" => self.cpu_percent,
            "load1" => self.load1,
            _ => return None,
        })
    }
}

/// One approved host as a round sees it.
pub struct Host {
    pub agent: agent::Model,
    pub metrics: Option<HostMetrics>,
}

impl Host {
    /// The name people know the host by.
    pub fn name(&self) -> &str {
        self.agent
            .display_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.agent.hostname)
    }
}

/// The state one round reads: approved hosts (with parsed metrics) and the
/// watched services, loaded once.
pub struct Snapshot {
    pub hosts: HashMap<String, Host>,
    pub services: Vec<service_state::Model>,
    pub policy: Policy,
}

impl Snapshot {
    /// Loads hosts always (every kind needs names or selectors) and service
    /// states when `need_services`.
    pub async fn load(
        db: &DatabaseConnection,
        policy: Policy,
        need_services: bool,
    ) -> Result<Self, DbErr> {
        let agents = agent::Entity::find()
            .filter(agent::Column::Status.is_in(["online", "offline"]))
            .all(db)
            .await?;
        let hosts = agents
            .into_iter()
            .map(|a| {
                let metrics = HostMetrics::parse(&a.metrics);
                (a.id.clone(), Host { agent: a, metrics })
            })
            .collect();
        let services = if need_services {
            service_state::Entity::find().all(db).await?
        } else {
            vec![]
        };
        Ok(Self {
            hosts,
            services,
            policy,
        })
    }

    fn covered<'a>(&'a self, id: &str, sel: &Selector) -> Option<&'a Host> {
        self.hosts.get(id).filter(|h| sel.matches(&h.agent))
    }
}

/// A target the condition holds for.
#[derive(Debug, Clone)]
pub struct Finding {
    pub target: String,
    pub agent_id: Option<String>,
    pub value: Option<f64>,
    pub summary: String,
    /// Added to the rule's labels (`host`, `unit`, `job`...).
    pub labels: BTreeMap<String, String>,
}

/// What a rule finds: where it holds, and targets that cannot be judged
/// now (an offline host's metrics), whose open alerts stay as they are.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub unknown: HashSet<String>,
}

fn host_finding(h: &Host, value: Option<f64>, summary: String) -> Finding {
    Finding {
        target: h.agent.id.clone(),
        agent_id: Some(h.agent.id.clone()),
        value,
        summary,
        labels: BTreeMap::from([("host".to_string(), h.name().to_string())]),
    }
}

fn fmt_secs(s: i64) -> String {
    match s {
        0 => String::new(),
        s if s % 3600 == 0 => format!(" for {}h", s / 3600),
        s if s % 60 == 0 => format!(" for {}m", s / 60),
        s => format!(" for {s}s"),
    }
}

/// Where `cond` holds among the hosts `sel` covers, at `now` (ms).
pub async fn findings(
    db: &DatabaseConnection,
    snap: &Snapshot,
    sel: &Selector,
    cond: &Condition,
    for_secs: i64,
    now: i64,
) -> Result<Outcome, DbErr> {
    let mut out = Outcome::default();
    let covered = || snap.hosts.values().filter(|h| sel.matches(&h.agent));
    match cond {
        Condition::Metric {
            metric,
            op,
            threshold,
        } => {
            for h in covered() {
                if h.agent.status != "online" {
                    out.unknown.insert(h.agent.id.clone());
                    continue;
                }
                let Some(v) = h.metrics.and_then(|m| m.get(metric)) else {
                    continue;
                };
                if op.holds(v, *threshold) {
                    let unit = if metric.ends_with("_percent") {
                        " %"
                    } else {
                        ""
                    };
                    let summary = format!(
                        "{metric} at {v:.1}{unit} on {} ({} {threshold}{})",
                        h.name(),
                        op.as_str(),
                        fmt_secs(for_secs)
                    );
                    out.findings.push(host_finding(h, Some(v), summary));
                }
            }
        }
        Condition::HostOffline => {
            for h in covered().filter(|h| h.agent.status == "offline") {
                let mins = Ord::max(now - h.agent.last_seen, 0) / 60_000;
                let summary = format!("{} is offline (last heartbeat {mins} min ago)", h.name());
                out.findings
                    .push(host_finding(h, Some(h.agent.last_seen as f64), summary));
            }
        }
        Condition::ServiceNotActive { unit } => {
            for s in &snap.services {
                if unit.as_ref().is_some_and(|u| u != &s.unit) {
                    continue;
                }
                let Some(h) = snap.covered(&s.agent_id, sel) else {
                    continue;
                };
                let target = format!("{}/{}", s.agent_id, s.unit);
                if h.agent.status != "online" {
                    out.unknown.insert(target);
                    continue;
                }
                if s.active_state == "active" {
                    continue;
                }
                let mut f = host_finding(
                    h,
                    None,
                    format!(
                        "{} is {} ({}) on {}",
                        s.unit,
                        s.active_state,
                        s.sub_state,
                        h.name()
                    ),
                );
                f.target = target;
                f.labels.insert("unit".into(), s.unit.clone());
                out.findings.push(f);
            }
        }
        Condition::JobFailed {
            min_hosts,
            within_hours,
        } => {
            let since = now - within_hours * 3_600_000;
            let rows: Vec<(Option<String>, i64)> = command::Entity::find()
                .select_only()
                .column(command::Column::JobId)
                .column_as(command::Column::Id.count(), "n")
                .filter(command::Column::JobId.is_not_null())
                .filter(command::Column::Status.eq("failed"))
                .filter(command::Column::CreatedAt.gte(since))
                .group_by(command::Column::JobId)
                .having(command::Column::Id.count().gte(*min_hosts))
                .into_tuple()
                .all(db)
                .await?;
            for (job, n) in rows {
                let Some(job) = job else { continue };
                out.findings.push(Finding {
                    target: job.clone(),
                    agent_id: None,
                    value: Some(n as f64),
                    summary: format!("job {job} failed on {n} hosts"),
                    labels: BTreeMap::from([("job".to_string(), job)]),
                });
            }
        }
        Condition::UpdatesPending {
            days,
            security_only,
        } => {
            let mut q = inventory::Entity::find()
                .select_only()
                .column(inventory::Column::AgentId)
                .column_as(inventory::Column::Package.count(), "n")
                .column_as(inventory::Column::FirstSeen.min(), "oldest")
                .filter(inventory::Column::FirstSeen.lte(now - days * DAY_MS))
                .filter(inventory::Column::Held.eq(false));
            if *security_only {
                q = q.filter(inventory::Column::Security.eq(true));
            }
            let rows: Vec<(String, i64, i64)> = q
                .group_by(inventory::Column::AgentId)
                .into_tuple()
                .all(db)
                .await?;
            let what = if *security_only {
                "security updates"
            } else {
                "updates"
            };
            for (id, n, oldest) in rows {
                let Some(h) = snap.covered(&id, sel) else {
                    continue;
                };
                let age = (now - oldest) / DAY_MS;
                let summary = format!(
                    "{n} {what} pending on {} (oldest {age} days, over {days})",
                    h.name()
                );
                out.findings.push(host_finding(h, Some(n as f64), summary));
            }
        }
        Condition::SecurityRefusal { within_minutes } => {
            let since = now - within_minutes * 60_000;
            let refused: Vec<(String, i64)> = refusal::Entity::find()
                .select_only()
                .column(refusal::Column::AgentId)
                .column_as(refusal::Column::Id.count(), "n")
                .filter(refusal::Column::At.gte(since))
                .filter(refusal::Column::Reason.ne("clock_skew"))
                .group_by(refusal::Column::AgentId)
                .into_tuple()
                .all(db)
                .await?;
            let dropped: Vec<input_drop::Model> = input_drop::Entity::find()
                .filter(input_drop::Column::LastAt.gte(since))
                .all(db)
                .await?;
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for (id, n) in refused {
                *counts.entry(id).or_default() += n;
            }
            for d in dropped {
                *counts.entry(d.agent_id).or_default() += Ord::max(d.count, 1);
            }
            for (id, n) in counts {
                let what =
                    format!("{n} refused or dropped inputs in the last {within_minutes} min");
                match snap.hosts.get(&id) {
                    Some(h) if sel.matches(&h.agent) => {
                        let summary = format!("{what} from {}", h.name());
                        out.findings.push(host_finding(h, Some(n as f64), summary));
                    }
                    Some(_) => {}
                    None => out.findings.push(Finding {
                        target: format!("sender:{id}"),
                        agent_id: None,
                        value: Some(n as f64),
                        summary: format!("{what} from unknown sender {id}"),
                        labels: BTreeMap::from([("sender".to_string(), id)]),
                    }),
                }
            }
        }
        Condition::IdentityConflict => {
            let open = binding_conflict::Entity::find()
                .filter(binding_conflict::Column::Kind.eq("duplicate_identity"))
                .filter(binding_conflict::Column::ResolvedAt.is_null())
                .all(db)
                .await?;
            let mut seen = HashSet::new();
            for c in open {
                if !seen.insert(c.existing_agent_id.clone()) {
                    continue;
                }
                let Some(h) = snap.covered(&c.existing_agent_id, sel) else {
                    continue;
                };
                let summary = format!(
                    "{} is claimed by two machines (cloned host?); resolve it on the host page",
                    h.name()
                );
                out.findings.push(host_finding(h, None, summary));
            }
        }
        Condition::AgentOutdated => {
            for h in covered() {
                match snap.policy.of_agent(&h.agent) {
                    s @ (Standing::Outdated(_) | Standing::Incompatible(_)) => {
                        let summary = format!(
                            "{} runs agent {}: {}",
                            h.name(),
                            h.agent.agent_version,
                            s.reason().unwrap_or_default()
                        );
                        out.findings.push(host_finding(h, None, summary));
                    }
                    Standing::Current | Standing::Unknown => {}
                }
            }
        }
    }
    Ok(out)
}
