//! Jobs: one action for every approved agent a selector matches. A job is a
//! row plus one command per target; its progress is read from the commands.

use std::collections::{BTreeMap, HashMap};

use bus_schema::{now_ms, CommandStatus, Source};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::commands::{self, CreateError};
use crate::db::entities::{agent, command, job};
use crate::idempotency::{self, Requester};
use crate::state::AppState;

pub use crate::selector::{Selector, SelectorError};

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

/// The body of `POST /api/v1/jobs`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    /// The same key with the same request from the same requester, within
    /// [`crate::idempotency::KEY_TTL`], returns the first job; with another
    /// request it is refused ([`JobError::KeyReused`]).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What a submission did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A new job.
    Created,
    /// The key named an earlier job made from the same request: that job.
    Replayed,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error("the selector matches no approved agent")]
    NoTargets,
    #[error("idempotency_key must be 1..=128 characters, none of them control characters")]
    BadKey,
    /// The key is bound to another request of this requester.
    #[error(
        "idempotency key {key:?} was used for job {job_id} with a different request; \
             use a new key for a new request (a key is kept for 24 hours)"
    )]
    KeyReused { key: String, job_id: String },
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The request as its fingerprint sees it: what would be run, where.
fn canonical(spec: &commands::CommandSpec, req: &NewJob) -> Value {
    json!({
        "action": spec.action,
        "params": spec.params,
        "selector": req.selector,
        "timeout_secs": req.timeout_secs,
        "ttl_secs": req.ttl_secs,
    })
}

/// The job a live key is bound to: a replay when the request is the same,
/// [`JobError::KeyReused`] when it is not.
async fn bound_job(
    state: &AppState,
    bound: idempotency::entity::Model,
    fingerprint: &str,
) -> Result<(job::Model, Submitted), JobError> {
    if bound.fingerprint != fingerprint {
        return Err(JobError::KeyReused {
            key: bound.key,
            job_id: bound.job_id,
        });
    }
    let j = job::Entity::find_by_id(bound.job_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            sea_orm::DbErr::RecordNotFound(format!("job {} of an idempotency key", bound.job_id))
        })?;
    Ok((j, Submitted::Replayed))
}

/// Creates a job, or returns the one the requester's live idempotency key
/// already names when the request is the same.
pub async fn submit(
    state: &AppState,
    req: NewJob,
    who: &Requester,
    source: Source,
) -> Result<(job::Model, Submitted), JobError> {
    if let Some(k) = &req.idempotency_key {
        if !idempotency::check_key(k) {
            return Err(JobError::BadKey);
        }
    }
    req.selector.check()?;
    let spec = commands::validate(
        state,
        &req.action,
        req.params.clone(),
        req.timeout_secs,
        req.ttl_secs,
        &who.name,
        source,
    )
    .await?;
    let fingerprint = idempotency::fingerprint(state, &canonical(&spec, &req));
    if let Some(k) = &req.idempotency_key {
        if let Some(bound) = idempotency::find(&state.db, &who.scope, k, now_ms()).await? {
            return bound_job(state, bound, &fingerprint).await;
        }
    }
    let targets = targets(state, &req.selector).await?;
    if targets.is_empty() {
        return Err(JobError::NoTargets);
    }
    // Secrets go to every target sealed or to none: a target whose rootd
    // key is not pinned (or changed) refuses the whole job, before anything
    // is written, with what to do.
    let ids: Vec<String> = targets.iter().map(|a| a.id.clone()).collect();
    crate::sealing::require(state, &spec, &ids)
        .await?
        .map_err(CreateError::from)?;
    let now = now_ms();
    let row = job::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        // Keys live in `idempotency_keys`, scoped by requester.
        idempotency_key: Set(None),
        action: Set(spec.action.clone()),
        params: Set(spec.shown_params.to_string()),
        selector: Set(serde_json::to_string(&req.selector).unwrap_or_default()),
        target_count: Set(targets.len() as i32),
        requested_by: Set(who.name.clone()),
        source: Set(match source {
            Source::User => "user".into(),
            Source::System => "system".into(),
        }),
        created_at: Set(now),
    };
    let also = req.idempotency_key.as_ref().map(|k| {
        bind_key(
            idempotency::entity::ActiveModel {
                scope: Set(who.scope.clone()),
                key: Set(k.clone()),
                job_id: row.id.clone(),
                fingerprint: Set(fingerprint.clone()),
                created_at: Set(now),
                expires_at: Set(now + idempotency::KEY_TTL_MS),
            },
            now,
        )
    });
    let ids: Vec<String> = targets.into_iter().map(|a| a.id).collect();
    let rows = commands::JobRows {
        job: row.clone(),
        also,
    };
    match commands::issue(state, &spec, &ids, commands::InJob::New(Box::new(rows))).await {
        Ok(_) => {}
        Err(e) => {
            let written = job::Entity::find_by_id(row.id.clone().unwrap())
                .one(&state.db)
                .await?
                .is_some();
            if written {
                // The job and its commands were written and published; a
                // later write (stream sequences, rejections) failed. The job
                // exists and runs, so it is the answer: a client told
                // otherwise would submit it again.
                tracing::error!(job = ?row.id, error = %e, "job issued; recording its publish outcome failed");
            } else if let (CreateError::Db(_), Some(k)) = (&e, &req.idempotency_key) {
                // Two submissions with one key at once (another replica):
                // the other one won, and its job is the answer; nothing of
                // this one was written.
                return match idempotency::find(&state.db, &who.scope, k, now_ms()).await? {
                    Some(bound) => bound_job(state, bound, &fingerprint).await,
                    None => Err(e.into()),
                };
            } else {
                return Err(e.into());
            }
        }
    }
    let j = job::Entity::find_by_id(row.id.clone().unwrap())
        .one(&state.db)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the job just written".into()))?;
    tracing::info!(job = %j.id, action = %j.action, targets = j.target_count, by = %who.name, "job submitted");
    Ok((j, Submitted::Created))
}

/// Writes a submission's idempotency key (after sweeping expired ones) in
/// the transaction that writes its job.
fn bind_key(key: idempotency::entity::ActiveModel, now: i64) -> commands::AlsoWrite {
    Box::new(move |txn| {
        Box::pin(async move {
            idempotency::sweep(txn, now).await?;
            idempotency::entity::Entity::insert(key).exec(txn).await?;
            Ok(())
        })
    })
}

/// A job's commands counted per stored status, in SQL (one `GROUP BY`):
/// `(status, count)` pairs, only for statuses that occur. The job view's
/// counts; the same on SQLite and PostgreSQL (`tests/database.rs`).
pub async fn counts_by_status<C: sea_orm::ConnectionTrait>(
    db: &C,
    job_id: &str,
) -> Result<Vec<(String, i64)>, sea_orm::DbErr> {
    command::Entity::find()
        .select_only()
        .column(command::Column::Status)
        .column_as(command::Column::Id.count(), "n")
        .filter(command::Column::JobId.eq(job_id))
        .group_by(command::Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// A job with live counts and the hosts that have not answered.
pub async fn view(state: &AppState, j: &job::Model) -> Result<Value, sea_orm::DbErr> {
    // Counted in SQL, never loaded row by row: the jobs page and
    // `drover run` ask for this while 10,000 results stream in.
    let by_status = counts_by_status(&state.db, &j.id).await?;
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
        "idempotency_key": match &j.idempotency_key {
            Some(k) => Some(k.clone()),
            None => idempotency::key_of(&state.db, &j.id).await?,
        },
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
