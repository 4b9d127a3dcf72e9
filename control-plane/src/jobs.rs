//! Jobs: one action for every approved agent a selector matches. A job is a
//! row plus one command per target; its progress is read from the commands.

use std::collections::{BTreeMap, HashMap};

use bus_schema::{now_ms, CommandStatus, Source};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::commands::{self, CreateError};
use crate::db::entities::{agent, command, job};
use crate::state::AppState;

/// Which agents a job targets. Ids are alternatives; every other condition
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Every approved agent.
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Glob over the hostname (`web-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Facts that must contain the value, case-insensitively (`os=debian`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("an empty selector would match every agent; say `all` to mean that")]
    Empty,
    #[error("selector term {0:?} is not understood; use all, id:<id>, label:<k>=<v>, host:<glob>, os:<name> or fact:<k>=<v>")]
    Term(String),
    #[error("hostname pattern {0:?} is not a valid glob")]
    Glob(String),
}

impl Selector {
    /// The CLI form: `all`, or comma-separated terms `id:…`, `label:k=v`,
    /// `host:glob`, `os:name`, `fact:k=v`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut s = Selector::default();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let kv = |v: &str| {
                v.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            };
            match term.split_once(':') {
                None if term == "all" || term == "*" => s.all = true,
                Some(("id", v)) => s.agents.push(v.to_string()),
                Some(("host", v)) => s.hostname = Some(v.to_string()),
                Some(("os", v)) => {
                    s.facts.insert("os".into(), v.to_string());
                }
                Some(("label", v)) => {
                    let (k, v) = kv(v).ok_or_else(|| SelectorError::Term(term.into()))?;
                    s.labels.insert(k, v);
                }
                Some(("fact", v)) => {
                    let (k, v) = kv(v).ok_or_else(|| SelectorError::Term(term.into()))?;
                    s.facts.insert(k, v);
                }
                _ => return Err(SelectorError::Term(term.into())),
            }
        }
        s.check()?;
        Ok(s)
    }

    pub fn check(&self) -> Result<(), SelectorError> {
        if !self.all
            && self.agents.is_empty()
            && self.labels.is_empty()
            && self.hostname.is_none()
            && self.facts.is_empty()
        {
            return Err(SelectorError::Empty);
        }
        if let Some(h) = &self.hostname {
            glob::Pattern::new(h).map_err(|_| SelectorError::Glob(h.clone()))?;
        }
        Ok(())
    }

    pub fn matches(&self, a: &agent::Model) -> bool {
        if !self.agents.is_empty() && !self.agents.iter().any(|id| id == &a.id) {
            return false;
        }
        if let Some(h) = &self.hostname {
            match glob::Pattern::new(h) {
                Ok(p) if p.matches(&a.hostname) => {}
                _ => return false,
            }
        }
        if !self.labels.is_empty() {
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&a.labels).unwrap_or_default();
            if !self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return false;
            }
        }
        if !self.facts.is_empty() {
            let facts: Value = serde_json::from_str(&a.facts).unwrap_or(Value::Null);
            let ok = self.facts.iter().all(|(k, v)| {
                let v = v.to_lowercase();
                let fact = facts.get(k).map(|f| {
                    f.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| f.to_string())
                });
                let os = (k == "os").then(|| a.os.clone());
                fact.into_iter()
                    .chain(os)
                    .any(|f| f.to_lowercase().contains(&v))
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

/// Approved agents the selector matches, by id.
pub async fn targets(
    state: &AppState,
    sel: &Selector,
) -> Result<Vec<agent::Model>, sea_orm::DbErr> {
    let mut q = agent::Entity::find().filter(agent::Column::Status.is_in(["online", "offline"]));
    if !sel.agents.is_empty() {
        q = q.filter(agent::Column::Id.is_in(sel.agents.clone()));
    }
    let all = q.order_by_asc(agent::Column::Id).all(&state.db).await?;
    Ok(all.into_iter().filter(|a| sel.matches(a)).collect())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    pub selector: Selector,
    pub action: String,
    #[serde(default)]
    pub params: Value,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Submitting twice with the same key returns the first job.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error("the selector matches no approved agent")]
    NoTargets,
    #[error("idempotency_key must be 1..=128 printable characters")]
    BadKey,
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// Creates a job, or returns the existing one with the same key (`false`).
pub async fn submit(
    state: &AppState,
    req: NewJob,
    requested_by: &str,
    source: Source,
) -> Result<(job::Model, bool), JobError> {
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() || k.len() > 128 || k.chars().any(|c| c.is_control()) {
            return Err(JobError::BadKey);
        }
        if let Some(j) = job::Entity::find()
            .filter(job::Column::IdempotencyKey.eq(k.clone()))
            .one(&state.db)
            .await?
        {
            return Ok((j, false));
        }
    }
    req.selector.check()?;
    let spec = commands::validate(
        state,
        &req.action,
        req.params,
        req.timeout_secs,
        req.ttl_secs,
        requested_by,
        source,
    )?;
    let targets = targets(state, &req.selector).await?;
    if targets.is_empty() {
        return Err(JobError::NoTargets);
    }
    let row = job::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        idempotency_key: Set(req.idempotency_key.clone()),
        action: Set(spec.action.clone()),
        params: Set(spec.shown_params.to_string()),
        selector: Set(serde_json::to_string(&req.selector).unwrap_or_default()),
        target_count: Set(targets.len() as i32),
        requested_by: Set(requested_by.into()),
        source: Set(match source {
            Source::User => "user".into(),
            Source::System => "system".into(),
        }),
        created_at: Set(now_ms()),
    };
    let inserted = {
        let _turn = state.writer.lock().await;
        job::Entity::insert(row)
            .exec_with_returning(&state.db)
            .await
    };
    let j = match inserted {
        Ok(j) => j,
        // Two submissions with one key at once: the other one won.
        Err(e) => match &req.idempotency_key {
            Some(k) => match job::Entity::find()
                .filter(job::Column::IdempotencyKey.eq(k.clone()))
                .one(&state.db)
                .await?
            {
                Some(j) => return Ok((j, false)),
                None => return Err(e.into()),
            },
            None => return Err(e.into()),
        },
    };
    let ids: Vec<String> = targets.into_iter().map(|a| a.id).collect();
    commands::issue(state, &spec, &ids, Some(j.id.clone())).await?;
    tracing::info!(job = %j.id, action = %j.action, targets = j.target_count, by = requested_by, "job submitted");
    Ok((j, true))
}

/// A job with live counts and the hosts that have not answered.
pub async fn view(state: &AppState, j: &job::Model) -> Result<Value, sea_orm::DbErr> {
    // Counted in SQL, never loaded row by row: the jobs page and
    // `drover run` ask for this while 10,000 results stream in.
    let by_status: Vec<(String, i64)> = command::Entity::find()
        .select_only()
        .column(command::Column::Status)
        .column_as(command::Column::Id.count(), "n")
        .filter(command::Column::JobId.eq(j.id.clone()))
        .group_by(command::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut counts: BTreeMap<&'static str, i64> =
        CommandStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut open_count = 0i64;
    let mut total = 0i64;
    for (status, n) in &by_status {
        let s = CommandStatus::parse(status).unwrap_or(CommandStatus::Queued);
        *counts.entry(s.as_str()).or_default() += n;
        total += n;
        if !s.is_final() {
            open_count += n;
        }
    }
    let finals: Vec<&'static str> = CommandStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let open_of_job = || {
        sea_orm::sea_query::Query::select()
            .column(command::Column::AgentId)
            .from(command::Entity)
            .and_where(command::Column::JobId.eq(j.id.clone()))
            .and_where(command::Column::Status.is_not_in(finals.clone()))
            .to_owned()
    };
    // Hosts of unfinished commands that are not online right now.
    let offline = if open_count == 0 {
        0
    } else {
        agent::Entity::find()
            .filter(agent::Column::Status.ne("online"))
            .filter(agent::Column::Id.in_subquery(open_of_job()))
            .count(&state.db)
            .await? as i64
    };
    // The first 1,000 hosts that have not answered, with their names.
    let open: Vec<(String, String)> = if open_count == 0 {
        Vec::new()
    } else {
        command::Entity::find()
            .select_only()
            .column(command::Column::AgentId)
            .column(command::Column::Id)
            .filter(command::Column::JobId.eq(j.id.clone()))
            .filter(command::Column::Status.is_not_in(finals.clone()))
            .order_by_asc(command::Column::AgentId)
            .limit(1000)
            .into_tuple()
            .all(&state.db)
            .await?
    };
    let mut hosts: HashMap<String, (String, String)> = HashMap::new();
    for chunk in open.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|(a, _)| a.clone()).collect();
        for (id, hostname, status) in agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::Hostname)
            .column(agent::Column::Status)
            .filter(agent::Column::Id.is_in(ids))
            .into_tuple::<(String, String, String)>()
            .all(&state.db)
            .await?
        {
            hosts.insert(id, (hostname, status));
        }
    }
    let not_answered: Vec<Value> = open
        .iter()
        .map(|(a, c)| {
            let (hostname, status) = hosts.get(a).cloned().unwrap_or_default();
            json!({"agent_id": a, "hostname": hostname, "agent_status": status, "command_id": c})
        })
        .collect();
    let finished = total - open_count;
    Ok(json!({
        "id": j.id,
        "action": j.action,
        "params": serde_json::from_str::<Value>(&j.params).unwrap_or(Value::Null),
        "selector": serde_json::from_str::<Value>(&j.selector).unwrap_or(Value::Null),
        "idempotency_key": j.idempotency_key,
        "requested_by": j.requested_by,
        "source": j.source,
        "created_at": j.created_at,
        "target_count": j.target_count,
        "counts": {
            "pending": counts["queued"],
            "running": counts["accepted"] + counts["running"],
            "succeeded": counts["succeeded"],
            "failed": counts["failed"] + counts["rejected"],
            "expired": counts["expired"],
            "cancelled": counts["cancelled"],
            "offline": offline,
            "finished": finished,
        },
        "done": open_count == 0,
        "not_answered": not_answered,
    }))
}

/// How many of a job's commands have not reached a final state, counted
/// from the (job_id, status) index alone.
pub async fn open_count(state: &AppState, job_id: &str) -> Result<u64, sea_orm::DbErr> {
    let open: Vec<&'static str> = CommandStatus::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| s.as_str())
        .collect();
    command::Entity::find()
        .filter(command::Column::JobId.eq(job_id))
        .filter(command::Column::Status.is_in(open))
        .count(&state.db)
        .await
}

/// Waits until every command of the job is final, or `max` passes. Re-counts
/// when this replica stores results, and at least every second for what it
/// does not see (another replica's results, expiry, cancel).
pub async fn wait_done(
    state: &AppState,
    job_id: &str,
    max: std::time::Duration,
) -> Result<(), sea_orm::DbErr> {
    let deadline = tokio::time::Instant::now() + max;
    let mut stored = state.results_stored.subscribe();
    for _ in 0..1_000_000 {
        if open_count(state, job_id).await? == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        let next = deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
        let _ = tokio::time::timeout_at(next, stored.changed()).await;
    }
    Ok(())
}

/// Per-host results of a job.
pub async fn hosts(state: &AppState, job_id: &str) -> Result<Value, sea_orm::DbErr> {
    let cmds = command::Entity::find()
        .filter(command::Column::JobId.eq(job_id))
        .order_by_asc(command::Column::AgentId)
        .all(&state.db)
        .await?;
    let ids: Vec<String> = cmds.iter().map(|c| c.agent_id.clone()).collect();
    let mut names: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(500) {
        for (id, host) in agent::Entity::find()
            .select_only()
            .column(agent::Column::Id)
            .column(agent::Column::Hostname)
            .filter(agent::Column::Id.is_in(chunk.to_vec()))
            .into_tuple::<(String, String)>()
            .all(&state.db)
            .await?
        {
            names.insert(id, host);
        }
    }
    Ok(json!({ "hosts": cmds.iter().map(|c| json!({
        "agent_id": c.agent_id,
        "hostname": names.get(&c.agent_id),
        "command_id": c.id,
        "status": c.status,
        "exit_code": c.exit_code,
        "summary": c.summary,
        "attempts": c.attempts,
        "finished_at": c.finished_at,
        "outcome_source": c.outcome_source,
        "replaced_inferred": crate::ledger::outcome_json(c)["replaced_inferred"],
    })).collect::<Vec<_>>() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, host: &str, labels: &str, facts: &str) -> agent::Model {
        agent::Model {
            id: id.into(),
            hostname: host.into(),
            status: "online".into(),
            machine_id: "m".into(),
            facts: facts.into(),
            token_id: None,
            approved_by: None,
            revoked_at: None,
            first_seen: 0,
            last_seen: 0,
            last_seq: 0,
            heartbeat_secs: 30,
            os: "Linux (Debian GNU/Linux 12)".into(),
            kernel: String::new(),
            agent_version: String::new(),
            metrics: "{}".into(),
            modules: "[]".into(),
            operations: "[]".into(),
            labels: labels.into(),
            rootd_error: None,
        }
    }

    #[test]
    fn parse_and_match() {
        let web = agent("U1", "web-1", r#"{"env":"prod"}"#, r#"{"os":"Debian"}"#);
        let db = agent("U2", "db-1", r#"{"env":"prod"}"#, r#"{"os":"Debian"}"#);
        let s = Selector::parse("label:env=prod,host:web-*").unwrap();
        assert!(s.matches(&web) && !s.matches(&db));
        let s = Selector::parse("os:debian").unwrap();
        assert!(s.matches(&web) && s.matches(&db));
        let s = Selector::parse("id:U2").unwrap();
        assert!(!s.matches(&web) && s.matches(&db));
        assert!(Selector::parse("all").unwrap().matches(&web));
        assert_eq!(Selector::parse(""), Err(SelectorError::Empty));
        assert!(matches!(
            Selector::parse("color:red"),
            Err(SelectorError::Term(_))
        ));
        assert!(matches!(
            Selector::parse("host:[x"),
            Err(SelectorError::Glob(_))
        ));
    }
}
