//! Routes for jobs: submit (idempotent), preview a selector, live status,
//! per-host results.

use super::JsonBody;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Extension, Json,
};
use bus_schema::catalogue::app::InstallParams;
use bus_schema::manifest::{self, IgnoredInput};
use bus_schema::Source;
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::Principal;
use crate::db::entities::job;
use crate::idempotency::Requester;
use crate::jobs::{self, JobError, NewJob, Selector, Submitted};
use crate::state::AppState;

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Create(c) => c.into(),
            JobError::Db(d) => ApiError::internal(d),
            e @ JobError::KeyReused { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
        }
    }
}

pub async fn submit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: JsonBody<NewJob>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let JsonBody(req) = body;
    let ignored = ignored_inputs(&state, &req);
    let r = jobs::submit(&state, req, &Requester::of(&who), Source::User).await;
    let (code, Json(mut v)) = answer(&state, r).await?;
    if let (true, Some(ignored)) = (code.is_success(), ignored) {
        v["ignored_inputs"] = json!(ignored);
    }
    Ok((code, Json(v)))
}

/// For `app.install`, the given inputs its manifest hides (they are dropped
/// from the job, as in `POST /apps/{id}/install`); `None` for other actions
/// or a request that will be refused anyway.
fn ignored_inputs(state: &AppState, req: &NewJob) -> Option<Vec<IgnoredInput>> {
    if req.action != "app.install" {
        return None;
    }
    let p: InstallParams = serde_json::from_value(req.params.clone()).ok()?;
    let (m, _) = manifest::load(&state.cfg.manifests_dir, &p.app).ok()?;
    m.resolve_inputs(&p.inputs).ok().map(|r| r.ignored)
}

/// The answer to a job submission: 201 and the job when it was created,
/// 200 and the job with `"replayed": true` when an idempotency key named it,
/// 409 naming the first job (`job_id`) when the key was used for another
/// request, and the error otherwise.
pub async fn answer(
    state: &AppState,
    r: Result<(job::Model, Submitted), JobError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (j, how) = match r {
        Ok(x) => x,
        Err(JobError::KeyReused { key, job_id }) => {
            let error = JobError::KeyReused {
                key: key.clone(),
                job_id: job_id.clone(),
            }
            .to_string();
            return Ok((
                StatusCode::CONFLICT,
                Json(json!({ "error": error, "idempotency_key": key, "job_id": job_id })),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut view = jobs::view(state, &j).await.map_err(ApiError::internal)?;
    view["job_id"] = json!(j.id);
    view["replayed"] = json!(how == Submitted::Replayed);
    Ok((
        match how {
            Submitted::Created => StatusCode::CREATED,
            Submitted::Replayed => StatusCode::OK,
        },
        Json(view),
    ))
}

pub async fn preview(
    State(state): State<AppState>,
    JsonBody(sel): JsonBody<Selector>,
) -> Result<Json<Value>, ApiError> {
    sel.check()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let t = jobs::targets(&state, &sel)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({ "count": t.len(), "sample": t.iter().take(20).map(|a| json!({"id": a.id, "hostname": a.hostname, "status": a.status})).collect::<Vec<_>>() }),
    ))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let js = job::Entity::find()
        .order_by_desc(job::Column::CreatedAt)
        .limit(100)
        .all(&state.db)
        .await
        .map_err(ApiError::internal)?;
    let mut out = Vec::with_capacity(js.len());
    for j in &js {
        out.push(jobs::view(&state, j).await.map_err(ApiError::internal)?);
    }
    Ok(Json(json!({ "jobs": out })))
}

async fn find(state: &AppState, id: &str) -> Result<job::Model, ApiError> {
    job::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

#[derive(serde::Deserialize)]
pub struct JobWait {
    /// Answer once every host has answered, or after this many seconds
    /// (at most 300), whichever comes first.
    #[serde(default)]
    wait: Option<u64>,
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<JobWait>,
) -> Result<Json<Value>, ApiError> {
    let j = find(&state, &id).await?;
    if let Some(secs) = q.wait.filter(|s| *s > 0) {
        jobs::wait_done(&state, &id, std::time::Duration::from_secs(secs.min(300)))
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(Json(
        jobs::view(&state, &j).await.map_err(ApiError::internal)?,
    ))
}

pub async fn hosts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &id).await?;
    Ok(Json(
        jobs::hosts(&state, &id).await.map_err(ApiError::internal)?,
    ))
}
