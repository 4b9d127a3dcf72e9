//! The REST API under `/api/v1` and the event stream. The HTTP shell
//! (`http/mod.rs`) mounts these routes behind the gate (`auth::guard`:
//! roles, CSRF, audit); this module knows no pages and no middleware.

use std::convert::Infallible;
use std::time::Duration;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{sse, IntoResponse, Response, Sse},
    routing::{get, post},
    Extension, Json, Router,
};
use bus_schema::{catalogue, subjects, CommandStatus, Source};
use futures::{Stream, StreamExt};
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{json, Value};

mod accounts;
mod agent_releases;
mod alerts;
mod apps;
mod body;
mod box_keys;
mod history;
mod host_actions;
mod install;
mod inventory;
mod jobs;
mod keys;
mod notify;
pub mod openapi;
mod operations;
mod rollouts;
mod schedules;
mod services;
mod trust;
mod updates;
mod windows;

pub use crate::http::error::ApiError;
pub use body::JsonBody;

use crate::auth::Principal;
use crate::commands::{self, CreateError, NewCommand};
use crate::db::entities::{agent, command};
use crate::fleet;
use crate::state::AppState;

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        let status = match &e {
            CreateError::UnknownAgent(_) => StatusCode::NOT_FOUND,
            CreateError::UnknownAction(_)
            | CreateError::InvalidParams { .. }
            | CreateError::BadTimeout => StatusCode::UNPROCESSABLE_ENTITY,
            // No Retry-After here, ever: the refusal is recorded (a
            // rejected command), and the CLI sends a 429 with Retry-After
            // again by itself (`client.rs`), which would record it twice.
            CreateError::QueueFull(..) => StatusCode::TOO_MANY_REQUESTS,
            CreateError::Sealing(_) => StatusCode::BAD_REQUEST,
            CreateError::AgentNotActive(..)
            | CreateError::ModuleUnavailable { .. }
            | CreateError::IdentityConflict(_)
            | CreateError::VersionPolicy(_) => StatusCode::CONFLICT,
            CreateError::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
            CreateError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

/// The routes under `/api/v1` (the HTTP shell nests them and puts the gate in
/// front of them).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list_agents))
        .route(
            "/agents/{id}",
            get(get_agent).patch(inventory::edit).post(inventory::edit),
        )
        .route("/agents/{id}/decommission", post(inventory::decommission))
        // Metric history across retention tiers (raw samples, rollups).
        .route("/agents/{id}/metrics", get(history::metrics))
        .route(
            "/agents/{id}/commands",
            post(create_command).get(agent_commands),
        )
        .route("/commands/{id}", get(get_command))
        .route("/commands/{id}/cancel", post(cancel_command))
        .route("/actions", get(list_actions))
        // The actions one host can run now, and the hidden ones with why.
        .route("/agents/{id}/actions", get(host_actions::list))
        .route("/tokens", post(trust::create_token).get(trust::list_tokens))
        .route("/tokens/{id}", axum::routing::delete(trust::revoke_token))
        .route("/agents/{id}/approve", post(trust::approve))
        .route("/agents/{id}/reject", post(trust::reject))
        .route("/agents/{id}/revoke", post(trust::revoke))
        .route(
            "/agents/{id}/conflict/resolve",
            post(trust::resolve_conflict),
        )
        // Secrets sealed to rootd: the pinned box key, accepting a new one.
        .route("/agents/{id}/box-key", get(box_keys::get))
        .route("/agents/{id}/box-key/accept", post(box_keys::accept))
        .route("/security", get(trust::security))
        .route("/keys", get(keys::overview))
        .route("/keys/rotate", post(keys::rotate))
        .route(
            "/automation-keys",
            post(trust::add_automation_key).get(trust::list_automation_keys),
        )
        .route(
            "/automation-keys/{id}",
            axum::routing::delete(trust::revoke_automation_key),
        )
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/preview", post(jobs::preview))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/hosts", get(jobs::hosts))
        .route("/operations", get(operations::list))
        .merge(apps::routes())
        .merge(install::routes())
        .merge(schedules::routes())
        .merge(windows::routes())
        .merge(updates::routes())
        .merge(agent_releases::routes())
        .merge(rollouts::routes())
        .merge(services::routes())
        .merge(notify::routes())
        .merge(alerts::routes())
        .route("/events", get(events))
        .route("/audit", get(accounts::audit_list))
        .route("/users", get(accounts::list_users).post(accounts::add_user))
        .route("/users/{id}", axum::routing::delete(accounts::remove_user))
        .route("/users/{id}/role", post(accounts::set_role))
        .route(
            "/api-tokens",
            get(accounts::list_api_tokens).post(accounts::create_api_token),
        )
        .route(
            "/api-tokens/{id}",
            axum::routing::delete(accounts::revoke_api_token),
        )
        .route("/account/password", post(accounts::change_password))
        .route(
            "/account/totp",
            post(accounts::totp_start).delete(accounts::totp_disable),
        )
        .route("/account/totp/confirm", post(accounts::totp_confirm))
        .route("/openapi.json", get(openapi::serve))
}

pub fn agent_json(a: &agent::Model) -> Value {
    json!({
        "id": a.id,
        "hostname": a.hostname,
        // The name the host asked for at enrolment (null: show hostname).
        "display_name": a.display_name,
        "status": a.status,
        "machine_id": a.machine_id,
        "facts": crate::selector::facts_of(a),
        "approved_by": a.approved_by,
        "revoked_at": a.revoked_at,
        "first_seen": a.first_seen,
        "last_seen": a.last_seen,
        "heartbeat_secs": a.heartbeat_secs,
        "os": a.os,
        "kernel": a.kernel,
        "agent_version": a.agent_version,
        "metrics": serde_json::from_str::<Value>(&a.metrics).unwrap_or(Value::Null),
        "modules": serde_json::from_str::<Value>(&a.modules).unwrap_or(Value::Null),
        "rootd_error": a.rootd_error,
        "operations": serde_json::from_str::<Value>(&a.operations).unwrap_or(Value::Null),
        "labels": serde_json::from_str::<Value>(&a.labels).unwrap_or(Value::Null),
    })
}

pub fn command_json(c: &command::Model) -> Value {
    json!({
        "id": c.id,
        "agent_id": c.agent_id,
        "job_id": c.job_id,
        "action": c.action,
        "params": serde_json::from_str::<Value>(&c.params).unwrap_or(Value::Null),
        "status": c.status,
        "requested_by": c.requested_by,
        "source": c.source,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "expires_at": c.expires_at,
        "timeout_secs": c.timeout_secs,
        "attempts": c.attempts,
        "exit_code": c.exit_code,
        "summary": c.summary,
        "result": c.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "finished_at": c.finished_at,
        "stream_seq": c.stream_seq,
        // Who decided the final state, and what a host's report replaced.
        "outcome_source": c.outcome_source,
        "replaced_inferred": crate::ledger::outcome_json(c)["replaced_inferred"],
    })
}

/// `GET /api/v1/agents`: the same query as the fleet page.
///
/// Query parameters (all optional): `q` (text in hostname / label, or id
/// prefix), `status` (one of [`fleet::STATUSES`]), `sort` (`hostname`,
/// `status`, `last_seen`, `os`), `dir` (`asc`, `desc`), `page` (1-based) and
/// `per_page` (1..=[`fleet::MAX_PER_PAGE`], default [`fleet::PER_PAGE`] when
/// `page` is given). Without `page` and `per_page` every matching agent is
/// returned. Each agent carries its version standing too (`agent_channel`,
/// `protocol_version`, `version_standing`, `outdated`, `incompatible`,
/// `outdated_reason`: `version_policy::Policy::decorate`).
/// The answer is `{"agents": [...], "total": n}`, plus `page`,
/// `pages` and `per_page` when paged. A value out of range is a 400 that
/// names it.
async fn list_agents(
    State(state): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (filter, paging) = agents_query(&q)?;
    let l = fleet::list(&state.db, &filter, paging)
        .await
        .map_err(ApiError::internal)?;
    let ids: Vec<String> = l.rows.iter().map(|a| a.id.clone()).collect();
    let clocks = crate::skew::load(&state.db, &ids)
        .await
        .map_err(ApiError::internal)?;
    let policy = crate::version_policy::Policy::of(&state.cfg);
    let inv = crate::inventory::store::many(&state.db, &ids)
        .await
        .map_err(ApiError::internal)?;
    let views: Vec<Value> = l
        .rows
        .iter()
        .map(|a| {
            let mut v = agent_json(a);
            crate::inventory::decorate(&mut v, &a.labels, inv.get(&a.id));
            crate::skew::decorate(&mut v, &clocks);
            policy.decorate(&mut v, a);
            v
        })
        .collect();
    let mut v = json!({
        "agents": views,
        "total": l.total,
    });
    if let Some((_, per_page)) = paging {
        v["page"] = json!(l.page);
        v["pages"] = json!(l.pages);
        v["per_page"] = json!(per_page);
    }
    Ok(Json(v))
}

/// The filter and paging `GET /api/v1/agents` asks for, or a 400 naming the
/// first bad parameter.
fn agents_query(
    q: &std::collections::HashMap<String, String>,
) -> Result<(fleet::Filter, Option<(u64, u64)>), ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let number = |k: &str, lo: u64, hi: u64| -> Result<Option<u64>, ApiError> {
        match q.get(k) {
            None => Ok(None),
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(bad(format!(
                    "`{k}` must be a whole number from {lo} to {hi}"
                ))),
            },
        }
    };
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) if fleet::STATUSES.contains(&s) => Some(s.to_string()),
        Some(_) => {
            return Err(bad(format!(
                "`status` must be one of {}",
                fleet::STATUSES.join(", ")
            )))
        }
    };
    let sort = match q.get("sort").map(String::as_str) {
        None | Some("") => fleet::Sort::default(),
        Some(s) => fleet::Sort::parse(s)
            .ok_or_else(|| bad("`sort` must be one of hostname, status, last_seen, os".into()))?,
    };
    let desc = match q.get("dir").map(String::as_str) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(bad("`dir` must be asc or desc".into())),
    };
    let page = number("page", 1, u64::MAX)?;
    let per_page = number("per_page", 1, fleet::MAX_PER_PAGE)?;
    let paging = match (page, per_page) {
        (None, None) => None,
        (p, n) => Some((p.unwrap_or(1), n.unwrap_or(fleet::PER_PAGE))),
    };
    let filter = fleet::Filter {
        text: q.get("q").cloned().unwrap_or_default(),
        status,
        sort,
        desc,
    };
    Ok((filter, paging))
}

async fn get_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = agent::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    let clocks = crate::skew::load(&state.db, std::slice::from_ref(&a.id))
        .await
        .map_err(ApiError::internal)?;
    let mut v = agent_json(&a);
    let inv = crate::inventory::store::get(&state.db, &id)
        .await
        .map_err(ApiError::internal)?;
    crate::inventory::decorate(&mut v, &a.labels, inv.as_ref());
    crate::skew::decorate(&mut v, &clocks);
    crate::version_policy::Policy::of(&state.cfg).decorate(&mut v, &a);
    v["identity_conflict"] = crate::clones::view(&state.db, &id)
        .await
        .map_err(ApiError::internal)?;
    v["credentials"] = crate::credentials::view(&state.db, &id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(v))
}

async fn agent_commands(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let cmds = command::Entity::find()
        .filter(command::Column::AgentId.eq(id))
        .order_by_desc(command::Column::CreatedAt)
        .limit(100)
        .all(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "commands": cmds.iter().map(command_json).collect::<Vec<_>>() }),
    ))
}

/// The body of `POST /api/v1/agents/{id}/commands`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateCommand {
    /// An action of the catalogue (`GET /api/v1/actions`), e.g. `sys.ping`.
    action: String,
    /// The action's parameters, checked against its schema.
    #[serde(default)]
    params: Value,
    /// Seconds the host may run it (default: the action's).
    #[serde(default)]
    timeout_secs: Option<u32>,
    /// Seconds the command may wait for an offline agent.
    #[serde(default)]
    ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    /// Wait up to this many seconds for a final state before answering.
    #[serde(default)]
    wait: Option<u64>,
}

async fn create_command(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(agent_id): Path<String>,
    Query(q): Query<WaitQuery>,
    body: JsonBody<CreateCommand>,
) -> Result<Response, ApiError> {
    let JsonBody(body) = body;
    let wait = q.wait.unwrap_or(0).min(300);
    let created = commands::create(
        &state,
        NewCommand {
            agent_id,
            action: body.action,
            params: body.params,
            timeout_secs: body.timeout_secs,
            ttl_secs: body.ttl_secs,
            requested_by: who.name.clone(),
            source: Source::User,
            job_id: None,
        },
    )
    .await?;
    let model = if wait > 0 {
        wait_final(&state, &created.id, Duration::from_secs(wait)).await?
    } else {
        created
    };
    Ok((StatusCode::CREATED, Json(command_json(&model))).into_response())
}

/// Waits for a command's final state (or the deadline), driven by its events.
/// An unknown id is a 404 before anything else: an id from the path is not
/// put into a bus subject unless a command has it (ids a subject cannot hold
/// were a 500).
async fn wait_final(state: &AppState, id: &str, max: Duration) -> Result<command::Model, ApiError> {
    let first = command::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no command {id}")))?;
    let is_final = |c: &command::Model| {
        CommandStatus::parse(&c.status)
            .map(|s| s.is_final())
            .unwrap_or(false)
    };
    if max.is_zero() || is_final(&first) {
        return Ok(first);
    }
    let mut sub = state
        .nats
        .subscribe(subjects::command_event(id))
        .await
        .map_err(ApiError::internal)?;
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let c = command::Entity::find_by_id(id.to_string())
            .one(&state.db)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no command {id}")))?;
        if is_final(&c) || tokio::time::Instant::now() >= deadline {
            return Ok(c);
        }
        // Any event for it (or the deadline) triggers a re-read.
        let _ = tokio::time::timeout_at(deadline, sub.next()).await;
    }
}

async fn get_command(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = wait_final(
        &state,
        &id,
        Duration::from_secs(q.wait.unwrap_or(0).min(300)),
    )
    .await?;
    Ok(Json(command_json(&c)))
}

async fn cancel_command(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::cancel::{CancelError, Cancelled};
    match crate::cancel::cancel(&state, &id, &who.name).await {
        Ok(Cancelled::Queued(c)) => Ok((StatusCode::OK, Json(command_json(&c)))),
        Ok(Cancelled::Signalled {
            command,
            cancel_command,
        }) => {
            let mut v = command_json(&command);
            v["cancel_command"] = Value::String(cancel_command.id);
            Ok((StatusCode::ACCEPTED, Json(v)))
        }
        Err(CancelError::Create(e)) => Err(e.into()),
        Err(e @ CancelError::Unknown(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ CancelError::Final(..)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ CancelError::Broker(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
        Err(CancelError::Db(e)) => Err(ApiError::internal(e)),
    }
}

async fn list_actions() -> Json<Value> {
    Json(json!({ "actions": catalogue::all().iter().map(|a| a.view()).collect::<Vec<_>>() }))
}

/// Server-sent events: every agent and command change, as JSON.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let sub = state
        .nats
        .subscribe(bus_schema::subjects::EVT_ALL)
        .await
        .map_err(ApiError::internal)?;
    let stream = sub.filter_map(|m| async move {
        let ev: bus_schema::Event = bus_schema::decode(&m.payload, None).ok()?;
        let name = match &ev {
            bus_schema::Event::Agent { .. } => "agent",
            bus_schema::Event::Command { .. } => "command",
            bus_schema::Event::Rollout { .. } => "rollout",
            bus_schema::Event::Release { .. } => "release",
            bus_schema::Event::Alert { .. } => "alert",
            bus_schema::Event::Service { .. } => "service",
        };
        Some(Ok(sse::Event::default().event(name).json_data(&ev).ok()?))
    });
    Ok(Sse::new(stream).keep_alive(sse::KeepAlive::new().interval(Duration::from_secs(15))))
}
