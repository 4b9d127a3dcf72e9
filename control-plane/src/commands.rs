//! Issuing commands: validate against the catalogue, write the row, sign,
//! publish to the agent's queue on the broker. The row is written first, so a
//! command the broker holds is always one the database knows.

use std::time::Duration;

use bus_schema::{catalogue, now_ms, subjects, Command, CommandStatus, Source};
use sea_orm::{ActiveValue::Set, EntityTrait};

use crate::db::entities::{agent, command};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("no agent {0}; list agents with `drover agents`")]
    UnknownAgent(String),
    #[error("unknown action {0}; list actions with GET /api/v1/actions")]
    UnknownAction(String),
    #[error("invalid params for {action}: {why}")]
    InvalidParams { action: String, why: String },
    #[error("agent {0} is {1}; commands go only to approved agents")]
    AgentNotActive(String, String),
    #[error("timeout_secs must be between 1 and 86400")]
    BadTimeout,
    #[error("the queue of agent {0} is full ({1} commands waiting); wait for it to drain or cancel some")]
    QueueFull(String, i64),
    #[error("the broker did not accept the command: {0}")]
    Broker(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

pub struct NewCommand {
    pub agent_id: String,
    pub action: String,
    pub params: serde_json::Value,
    pub timeout_secs: Option<u32>,
    pub ttl_secs: Option<u64>,
    pub requested_by: String,
    pub source: Source,
    pub job_id: Option<String>,
}

pub async fn ensure_consumer(state: &AppState, agent_id: &str) -> anyhow::Result<()> {
    if state.consumers.lock().await.contains(agent_id) {
        return Ok(());
    }
    crate::bus::ensure_agent_consumer(&state.js, agent_id).await?;
    state.consumers.lock().await.insert(agent_id.to_string());
    Ok(())
}

pub async fn create(state: &AppState, req: NewCommand) -> Result<command::Model, CreateError> {
    let spec = catalogue::lookup(&req.action)
        .ok_or_else(|| CreateError::UnknownAction(req.action.clone()))?;
    spec.validate(&req.params)
        .map_err(|why| CreateError::InvalidParams {
            action: req.action.clone(),
            why,
        })?;
    let timeout = req.timeout_secs.unwrap_or(spec.default_timeout_secs);
    if !(1..=86_400).contains(&timeout) {
        return Err(CreateError::BadTimeout);
    }
    match agent::Entity::find_by_id(req.agent_id.clone())
        .one(&state.db)
        .await?
    {
        None => return Err(CreateError::UnknownAgent(req.agent_id)),
        // Pending, rejected and revoked agents get nothing.
        Some(a) if a.status != "online" && a.status != "offline" => {
            return Err(CreateError::AgentNotActive(a.id, a.status))
        }
        Some(_) => {}
    }
    let now = now_ms();
    let ttl = req
        .ttl_secs
        .unwrap_or(state.cfg.command_ttl_secs)
        .clamp(1, 30 * 86_400);
    let cmd = Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
        agent_id: req.agent_id.clone(),
        action: req.action.clone(),
        params: if req.params.is_null() {
            serde_json::json!({})
        } else {
            req.params
        },
        issued_at: now,
        expires_at: now + (ttl as i64) * 1000,
        timeout_secs: timeout,
        requested_by: req.requested_by.clone(),
        source: req.source,
        job_id: req.job_id.clone(),
    };
    let row = command::ActiveModel {
        id: Set(cmd.id.clone()),
        agent_id: Set(cmd.agent_id.clone()),
        job_id: Set(cmd.job_id.clone()),
        action: Set(cmd.action.clone()),
        params: Set(cmd.params.to_string()),
        status: Set(CommandStatus::Queued.as_str().into()),
        requested_by: Set(cmd.requested_by.clone()),
        source: Set(match cmd.source {
            Source::User => "user".into(),
            Source::System => "system".into(),
        }),
        created_at: Set(now),
        updated_at: Set(now),
        expires_at: Set(cmd.expires_at),
        timeout_secs: Set(timeout as i32),
        exit_code: Set(None),
        summary: Set(String::new()),
        result: Set(None),
        attempts: Set(0),
        finished_at: Set(None),
    };
    let model = {
        let _turn = state.writer.lock().await;
        command::Entity::insert(row)
            .exec_with_returning(&state.db)
            .await?
    };

    if let Err(e) = publish(state, &cmd, ttl).await {
        // The row exists; end it now in its one final state.
        let summary = e.to_string();
        let mut am: command::ActiveModel = model.clone().into();
        am.status = Set(CommandStatus::Rejected.as_str().into());
        am.summary = Set(summary);
        am.finished_at = Set(Some(now_ms()));
        am.updated_at = Set(now_ms());
        let _turn = state.writer.lock().await;
        command::Entity::update(am).exec(&state.db).await?;
        return Err(e);
    }
    Ok(model)
}

async fn publish(state: &AppState, cmd: &Command, ttl_secs: u64) -> Result<(), CreateError> {
    ensure_consumer(state, &cmd.agent_id)
        .await
        .map_err(|e| CreateError::Broker(format!("{e:#}")))?;
    let signed = state.signer.sign(cmd);
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(bus_schema::encode(&signed).into())
        .message_id(&cmd.id)
        // The broker drops it at expiry if the agent never came back.
        .ttl(Duration::from_secs(ttl_secs));
    let ack = state
        .js
        .send_publish(subjects::command(&cmd.agent_id), publish)
        .await
        .map_err(|e| CreateError::Broker(e.to_string()))?;
    match ack.await {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            if text.contains("maximum messages per subject") {
                Err(CreateError::QueueFull(
                    cmd.agent_id.clone(),
                    state.cfg.max_pending_per_agent,
                ))
            } else {
                Err(CreateError::Broker(text))
            }
        }
    }
}
