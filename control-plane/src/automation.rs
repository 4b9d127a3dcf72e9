//! Automation: Ed25519 keys bound to a role, and the consumer of
//! `drover.jobs.submit` that turns their signed submissions into jobs.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use base64::Engine;
use bus_schema::signing::automation::{open_job, SignedJob};
use bus_schema::{codec, now_ms, subjects, RefusalReason, Source};
use futures::StreamExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::db::entities::automation_key;
use crate::idempotency::Requester;
use crate::jobs::{self, NewJob, Selector, Submitted};
use crate::poison::{self, Drops};
use crate::state::AppState;

/// Roles that may submit jobs.
const SUBMITTING_ROLES: [&str; 2] = ["operator", "admin"];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("role must be one of viewer, operator, admin")]
    Role,
    #[error("name must be 1..=64 of [A-Za-z0-9-_.]")]
    Name,
    #[error("public_key must be base64 of a 32-byte Ed25519 key (see `drover automation keygen`)")]
    Key,
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

pub async fn add(
    state: &AppState,
    name: &str,
    role: &str,
    public_key: &str,
) -> Result<automation_key::Model, KeyError> {
    if !["viewer", "operator", "admin"].contains(&role) {
        return Err(KeyError::Role);
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(KeyError::Name);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(public_key.trim())
        .map_err(|_| KeyError::Key)?;
    if raw.len() != 32 {
        return Err(KeyError::Key);
    }
    let _turn = state.writer.lock().await;
    Ok(automation_key::Entity::insert(automation_key::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()[..12].to_string()),
        name: Set(name.into()),
        role: Set(role.into()),
        public_key: Set(public_key.trim().into()),
        fingerprint: Set(bus_schema::signing::fingerprint(&raw)),
        revoked: Set(false),
        created_at: Set(now_ms()),
    })
    .exec_with_returning(&state.db)
    .await?)
}

pub fn key_json(k: &automation_key::Model) -> Value {
    json!({"id": k.id, "name": k.name, "role": k.role, "fingerprint": k.fingerprint, "revoked": k.revoked, "created_at": k.created_at})
}

pub async fn list(state: &AppState) -> Result<Vec<automation_key::Model>, sea_orm::DbErr> {
    automation_key::Entity::find()
        .order_by_asc(automation_key::Column::Name)
        .all(&state.db)
        .await
}

pub async fn revoke(state: &AppState, id: &str) -> Result<bool, sea_orm::DbErr> {
    let _turn = state.writer.lock().await;
    let r = automation_key::Entity::update_many()
        .col_expr(
            automation_key::Column::Revoked,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(automation_key::Column::Id.eq(id))
        .exec(&state.db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Declares the job stream (`replicas` copies:
/// [`crate::config::Config::stream_replicas`]) and its consumer
/// (idempotent).
pub async fn consumer(
    js: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    let stream = js
        .create_or_update_stream(jetstream::stream::Config {
            name: subjects::JOBS_STREAM.into(),
            description: Some("job submissions from automation".into()),
            subjects: vec![subjects::JOBS_SUBMIT.into()],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(86_400),
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await?;
    let _ = stream;
    Ok(js
        .get_stream(subjects::JOBS_STREAM)
        .await?
        .get_or_create_consumer(
            subjects::CP_JOBS_CONSUMER,
            pull::Config {
                durable_name: Some(subjects::CP_JOBS_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await?)
}

/// Why a submission was refused (logged, and counted in the security
/// overview, within the sender's rate).
async fn refuse(state: &AppState, key: &str, reason: RefusalReason, why: String) {
    warn!(key, reason = reason.as_str(), detail = %why, "refused job submission");
    let mut drops = Drops::default();
    crate::ingest::record_refusal(
        state,
        key,
        "control-plane",
        reason,
        &why,
        subjects::JOBS_SUBMIT,
        &mut drops,
    )
    .await;
    poison::flush(state, drops).await;
}

pub async fn submit_loop(state: AppState, consumer: jetstream::consumer::PullConsumer) {
    loop {
        let mut msgs = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot pull job submissions; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(Ok(m)) = msgs.next().await {
            let ct = m
                .headers
                .as_ref()
                .and_then(|h| h.get(codec::CONTENT_TYPE_HEADER))
                .map(|v| v.as_str().to_string());
            let signed: SignedJob = match codec::decode(&m.payload, ct.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    // Undecodable: terminated and counted, never redelivered.
                    warn!(bytes = m.payload.len(), error = %e, "malformed job submission");
                    let mut drops = Drops::default();
                    drops.add(
                        poison::MALFORMED,
                        subjects::JOBS_SUBMIT,
                        "-",
                        &e.to_string(),
                    );
                    poison::terminate(&m).await;
                    poison::flush(&state, drops).await;
                    continue;
                }
            };
            handle(&state, signed).await;
            // Accepted or refused, it is dealt with: never redelivered.
            let _ = m.ack_with(AckKind::Ack).await;
        }
    }
}

async fn handle(state: &AppState, signed: SignedJob) {
    let key = match automation_key::Entity::find()
        .filter(automation_key::Column::Fingerprint.eq(signed.key_id.clone()))
        .one(&state.db)
        .await
    {
        Ok(Some(k)) if !k.revoked => k,
        Ok(_) => {
            // The key id is the sender's to choose: detail only, never a
            // group of its own.
            return refuse(
                state,
                "-",
                RefusalReason::UnknownKey,
                format!("no active automation key {}", signed.key_id),
            )
            .await;
        }
        Err(e) => return warn!(error = %e, "job submission not handled"),
    };
    let job = match open_job(&key.public_key, &signed) {
        Ok(j) => j,
        Err(r) => return refuse(state, &key.name, r.reason(), r.to_string()).await,
    };
    if job.expires_at <= now_ms() {
        return refuse(
            state,
            &key.name,
            RefusalReason::Expired,
            format!("submission expired at {}", job.expires_at),
        )
        .await;
    }
    if !SUBMITTING_ROLES.contains(&key.role.as_str()) {
        return refuse(
            state,
            &key.name,
            RefusalReason::Forbidden,
            format!("role {} may not submit jobs", key.role),
        )
        .await;
    }
    let selector: Selector = match serde_json::from_value(job.selector.clone()) {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                state,
                &key.name,
                RefusalReason::InvalidParams,
                format!("selector: {e}"),
            )
            .await
        }
    };
    let req = NewJob {
        selector,
        action: job.action,
        params: job.params,
        timeout_secs: job.timeout_secs,
        ttl_secs: job.ttl_secs,
        idempotency_key: Some(job.idempotency_key.clone()),
    };
    let idempotency_key = job.idempotency_key;
    let who = Requester::automation(&key.id, &key.name);
    // Secrets never ride the bus in clear: the job stream is on disk. A
    // submission carrying one is refused (what is wrong is checked again,
    // with its own message, by `jobs::submit`); the detail names fields only.
    if let Ok(spec) = crate::commands::validate(
        state,
        &req.action,
        req.params.clone(),
        req.timeout_secs,
        req.ttl_secs,
        &who.name,
        Source::User,
    )
    .await
    {
        if !spec.sealed_paths.is_empty() {
            return refuse(
                state,
                &key.name,
                RefusalReason::InvalidParams,
                format!(
                    "{} carries secrets ({}); secrets cannot be submitted on the bus, where the broker stores them in clear: submit this job through the API (POST /api/v1/jobs), which seals them to each host",
                    req.action,
                    spec.sealed_paths.join(", ")
                ),
            )
            .await;
        }
    }
    match jobs::submit(state, req, &who, Source::User).await {
        Ok((j, how)) => {
            info!(job = %j.id, key = %key.name, ?how, "job submitted on the bus");
            // The trail, as for jobs created over the API (params masked):
            // a replay is recorded as one, never as a second creation.
            let params = serde_json::from_str(&j.params).unwrap_or_default();
            let masked = bus_schema::catalogue::lookup(&j.action)
                .map(|a| a.mask(&params))
                .unwrap_or_else(|| serde_json::Value::String("***".into()));
            let action = match how {
                Submitted::Created => "job.create",
                Submitted::Replayed => "job.replay",
            };
            let _ = crate::audit::record(
                &state.db,
                crate::audit::Entry::new(
                    &who.name,
                    action,
                    &j.id,
                    "bus",
                    serde_json::json!({"action": j.action, "selector": serde_json::from_str::<serde_json::Value>(&j.selector).unwrap_or_default(), "params": masked, "target_count": j.target_count, "idempotency_key": idempotency_key}),
                ),
            )
            .await;
        }
        Err(e @ jobs::JobError::KeyReused { .. }) => {
            refuse(
                state,
                &key.name,
                RefusalReason::IdempotencyConflict,
                e.to_string(),
            )
            .await
        }
        Err(e) => {
            refuse(
                state,
                &key.name,
                RefusalReason::InvalidParams,
                e.to_string(),
            )
            .await
        }
    }
}
