//! Live operations: the fleet-wide view of the commands that are not final
//! yet (`queued`, `accepted`, `running`), with counts by action, by source
//! (`user` / `system`), by origin (what in the system, or whether a person
//! or an automation key asked) and by status, and the newest of them as a
//! bounded list.
//!
//! Owns the query and its filter checks only; not the HTTP shape
//! (`api/operations.rs`), the page (`ui/operations.rs`) nor the CLI. Reads
//! only: nothing is written. The query starts from `commands.status` (the
//! `idx_commands_status_expires` index), so it touches open commands only,
//! however long the history is.

use std::collections::{BTreeMap, HashMap};

use bus_schema::{now_ms, CommandStatus};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

use crate::db::entities::{agent, command};

/// The list's default length.
pub const DEFAULT_LIMIT: u64 = 100;
/// The list's longest allowed length.
pub const MAX_LIMIT: u64 = 500;
/// Agents a host pattern (`web-*`) may match before it is refused as too
/// wide for a filter (the list would not be cheap any more).
pub const MAX_PATTERN_HOSTS: usize = 1000;

/// The statuses of a command that is not final yet.
pub fn open_statuses() -> Vec<&'static str> {
    CommandStatus::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| s.as_str())
        .collect()
}

/// A filter input that cannot be used; the text says what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What to show. Every field narrows the view; `None` lets all through.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    /// An exact action name (`sys.ping`), checked against the catalogue.
    pub action: Option<String>,
    /// `user` or `system`.
    pub source: Option<String>,
    /// One of [`open_statuses`].
    pub status: Option<String>,
    /// An agent id, or a hostname / display name (exact, or a glob with
    /// `*` and `?`).
    pub agent: Option<String>,
    /// How many operations the list holds, 1..=[`MAX_LIMIT`].
    pub limit: u64,
}

impl Filter {
    /// The filter in a query string (`action`, `source`, `status`, `agent`,
    /// `limit`); see [`Filter::parse`].
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, OpsError> {
        let g = |k: &str| q.get(k).map(String::as_str);
        Self::parse(
            g("action"),
            g("source"),
            g("status"),
            g("agent"),
            g("limit"),
        )
    }

    /// Checks raw query values (empty strings mean "not given"); each
    /// refusal names the value and what is allowed.
    pub fn parse(
        action: Option<&str>,
        source: Option<&str>,
        status: Option<&str>,
        agent: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, OpsError> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|s| !s.is_empty())
        }
        let action = given(action).map(str::to_string);
        if let Some(a) = &action {
            if bus_schema::catalogue::lookup(a).is_none() {
                return Err(OpsError::Bad(format!(
                    "`action` {a:?} is not an action Drover knows; `drover actions` or GET /api/v1/actions lists them"
                )));
            }
        }
        let source = given(source).map(str::to_string);
        if let Some(s) = &source {
            if s != "user" && s != "system" {
                return Err(OpsError::Bad(format!(
                    "`source` {s:?} must be `user` (people and automation keys) or `system` (schedules, windows, rollouts, duties)"
                )));
            }
        }
        let status = given(status).map(str::to_string);
        if let Some(s) = &status {
            let open = open_statuses();
            if !open.contains(&s.as_str()) {
                return Err(OpsError::Bad(format!(
                    "`status` {s:?} must be one of {} (live operations are the commands not finished yet; finished ones are in GET /api/v1/agents/{{id}}/commands)",
                    open.join(", ")
                )));
            }
        }
        let agent = given(agent).map(str::to_string);
        if agent.as_ref().is_some_and(|a| a.len() > 253) {
            return Err(OpsError::Bad(
                "`agent` is longer than a hostname can be (253 characters)".into(),
            ));
        }
        let limit = match given(limit) {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(OpsError::Bad(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}"
                    )))
                }
            },
        };
        Ok(Self {
            action,
            source,
            status,
            agent,
            limit,
        })
    }
}

/// What asked for a command, finer than `source`: for the system, the
/// requester's kind (`schedule:nightly` → `schedule`, `window:…`,
/// `rollout:…`, `service_watch`, …); for users, `automation` for an
/// automation key and `user` for a person or API token.
pub fn origin(source: &str, requested_by: &str) -> String {
    if source == "system" {
        requested_by
            .split(':')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("system")
            .to_string()
    } else if requested_by.starts_with("automation:") {
        "automation".into()
    } else {
        "user".into()
    }
}

/// One open command as the view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub command_id: String,
    pub agent_id: String,
    /// The host's hostname (empty when the agent row is gone).
    pub hostname: String,
    /// The operator-set or enrolment display name, if any.
    pub display_name: Option<String>,
    pub action: String,
    /// `user` or `system`.
    pub source: String,
    /// See [`origin`].
    pub origin: String,
    pub requested_by: String,
    /// `queued`, `accepted` or `running`.
    pub status: String,
    pub job_id: Option<String>,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since `created_at`, at the time of the answer.
    pub age_ms: i64,
}

/// Counts of the open commands the filter lets through (all of them, not
/// only the listed ones).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub total: u64,
    pub by_action: BTreeMap<String, u64>,
    /// Always has `user` and `system` (0 when none).
    pub by_source: BTreeMap<String, u64>,
    pub by_origin: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub counts: Counts,
    /// Newest first, at most `filter.limit`.
    pub operations: Vec<Operation>,
    /// Whether `counts.total` is more than the list holds.
    pub truncated: bool,
    /// ms since the epoch when this view was read.
    pub at: i64,
    pub filter: Filter,
}

/// The agent ids a filter's `agent` stands for: an id, or hosts by
/// hostname / display name (exact, or a glob). `None`: no agent filter.
async fn agent_ids(db: &DatabaseConnection, f: &Filter) -> Result<Option<Vec<String>>, OpsError> {
    let Some(want) = &f.agent else {
        return Ok(None);
    };
    if want.contains('*') || want.contains('?') {
        let rows: Vec<(String, String, Option<String>)> = agent::Entity::find()
            .select_only()
            .columns([
                agent::Column::Id,
                agent::Column::Hostname,
                agent::Column::DisplayName,
            ])
            .into_tuple()
            .all(db)
            .await?;
        let ids: Vec<String> = rows
            .into_iter()
            .filter(|(_, h, d)| {
                bus_schema::selector::wildcard_match(want, h, true)
                    || d.as_deref()
                        .is_some_and(|d| bus_schema::selector::wildcard_match(want, d, true))
            })
            .map(|(id, ..)| id)
            .collect();
        if ids.len() > MAX_PATTERN_HOSTS {
            return Err(OpsError::Bad(format!(
                "`agent` pattern {want:?} matches {} hosts; narrow it to at most {MAX_PATTERN_HOSTS}",
                ids.len()
            )));
        }
        return Ok(Some(ids));
    }
    let ids: Vec<String> = agent::Entity::find()
        .select_only()
        .column(agent::Column::Id)
        .filter(
            agent::Column::Id
                .eq(want.as_str())
                .or(agent::Column::Hostname.eq(want.as_str()))
                .or(agent::Column::DisplayName.eq(want.as_str())),
        )
        .into_tuple()
        .all(db)
        .await?;
    Ok(Some(ids))
}

/// The open commands `f` lets through, as a query (no order, no limit).
fn open_query(f: &Filter, ids: Option<&[String]>) -> sea_orm::Select<command::Entity> {
    let mut q = command::Entity::find().filter(command::Column::Status.is_in(match &f.status {
        Some(s) => vec![s.clone()],
        None => open_statuses().into_iter().map(String::from).collect(),
    }));
    if let Some(a) = &f.action {
        q = q.filter(command::Column::Action.eq(a.as_str()));
    }
    if let Some(s) = &f.source {
        q = q.filter(command::Column::Source.eq(s.as_str()));
    }
    if let Some(ids) = ids {
        q = q.filter(command::Column::AgentId.is_in(ids.iter().cloned()));
    }
    q
}

/// Reads the view for `f`: two indexed queries on open commands (the
/// grouped counts and the newest `limit`) and one for the listed hosts'
/// names.
pub async fn view(db: &DatabaseConnection, f: &Filter) -> Result<View, OpsError> {
    let at = now_ms();
    let ids = agent_ids(db, f).await?;
    let mut counts = Counts::default();
    counts.by_source.insert("user".into(), 0);
    counts.by_source.insert("system".into(), 0);
    if ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(View {
            counts,
            operations: vec![],
            truncated: false,
            at,
            filter: f.clone(),
        });
    }
    let groups: Vec<(String, String, String, String, i64)> = open_query(f, ids.as_deref())
        .select_only()
        .columns([
            command::Column::Action,
            command::Column::Source,
            command::Column::RequestedBy,
            command::Column::Status,
        ])
        .column_as(command::Column::Id.count(), "n")
        .group_by(command::Column::Action)
        .group_by(command::Column::Source)
        .group_by(command::Column::RequestedBy)
        .group_by(command::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    for (action, source, by, status, n) in groups {
        let n = u64::try_from(n).unwrap_or(0);
        counts.total += n;
        *counts.by_action.entry(action).or_default() += n;
        *counts.by_origin.entry(origin(&source, &by)).or_default() += n;
        *counts.by_source.entry(source).or_default() += n;
        *counts.by_status.entry(status).or_default() += n;
    }
    let rows = open_query(f, ids.as_deref())
        .order_by_desc(command::Column::CreatedAt)
        .order_by_desc(command::Column::Id)
        .limit(f.limit)
        .all(db)
        .await?;
    let mut wanted: Vec<String> = rows.iter().map(|c| c.agent_id.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let names: HashMap<String, (String, Option<String>)> = agent::Entity::find()
        .select_only()
        .columns([
            agent::Column::Id,
            agent::Column::Hostname,
            agent::Column::DisplayName,
        ])
        .filter(agent::Column::Id.is_in(wanted))
        .into_tuple::<(String, String, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, h, d)| (id, (h, d)))
        .collect();
    let operations: Vec<Operation> = rows
        .into_iter()
        .map(|c| {
            let (hostname, display_name) = names.get(&c.agent_id).cloned().unwrap_or_default();
            Operation {
                origin: origin(&c.source, &c.requested_by),
                age_ms: Ord::max(at - c.created_at, 0),
                command_id: c.id,
                agent_id: c.agent_id,
                hostname,
                display_name,
                action: c.action,
                source: c.source,
                requested_by: c.requested_by,
                status: c.status,
                job_id: c.job_id,
                created_at: c.created_at,
            }
        })
        .collect();
    Ok(View {
        truncated: counts.total > operations.len() as u64,
        counts,
        operations,
        at,
        filter: f.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_group_requesters() {
        assert_eq!(origin("system", "schedule:nightly"), "schedule");
        assert_eq!(origin("system", "service_watch"), "service_watch");
        assert_eq!(origin("system", ""), "system");
        assert_eq!(origin("user", "automation:ci"), "automation");
        assert_eq!(origin("user", "alice"), "user");
    }

    #[test]
    fn filters_refuse_bad_values_by_name() {
        let bad = |r: Result<Filter, OpsError>, says: &str| {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        };
        bad(
            Filter::parse(Some("no.such"), None, None, None, None),
            "`action`",
        );
        bad(
            Filter::parse(None, Some("robot"), None, None, None),
            "`source`",
        );
        bad(
            Filter::parse(None, None, Some("succeeded"), None, None),
            "queued",
        );
        bad(Filter::parse(None, None, None, None, Some("0")), "`limit`");
        bad(
            Filter::parse(None, None, None, None, Some("501")),
            "`limit`",
        );
        let f = Filter::parse(Some("sys.ping"), Some("user"), Some(""), None, Some("5")).unwrap();
        assert_eq!(f.action.as_deref(), Some("sys.ping"));
        assert_eq!(f.status, None);
        assert_eq!(f.limit, 5);
    }
}
