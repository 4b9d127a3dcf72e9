//! Issuing commands: validate against the catalogue, write the rows, sign,
//! publish to each agent's queue on the broker. Rows are written first, so a
//! command the broker holds is always one the database knows.
//!
//! One path serves a single command and a job's fan-out: [`validate`] once,
//! then [`issue`] for any number of agents (rows inserted in one
//! transaction, publishes acknowledged in windows).

use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use bus_schema::{catalogue, now_ms, subjects, Command, CommandStatus, Source};
use sea_orm::EntityTrait;
use tracing::warn;

pub use crate::command_spec::{CommandSpec, NewCommand};
use crate::db::entities::{agent, command, job};
use crate::state::AppState;

/// Publishes awaited together: the broker stalls past ~5000 outstanding acks.
const PUBLISH_WINDOW: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("no agent {0}; list agents with `drover agents`")]
    UnknownAgent(String),
    #[error("unknown action {0}; list actions with `drover actions`")]
    UnknownAction(String),
    #[error("invalid params for {action}: {why}")]
    InvalidParams { action: String, why: String },
    #[error("agent {0} is {1}; commands go only to approved agents")]
    AgentNotActive(String, String),
    #[error("agent {agent} cannot run {module} actions ({why}); see the modules in `drover agents {agent}`")]
    ModuleUnavailable {
        agent: String,
        module: String,
        why: String,
    },
    #[error("timeout_secs must be between 1 and 86400")]
    BadTimeout,
    #[error("the queue of agent {0} is full ({1} commands waiting); wait for it to drain or cancel some")]
    QueueFull(String, i64),
    /// Two machines use the agent's identity; the message says what to do.
    #[error("{0}")]
    IdentityConflict(String),
    /// The agent is outdated or incompatible (`version_policy`); the message
    /// says why and what to do.
    #[error("refused by the version policy: {0}")]
    VersionPolicy(String),
    /// No pinned rootd box key (or a changed one); says what to do.
    #[error("{0}")]
    Sealing(#[from] crate::sealing::SealRefusal),
    #[error("the broker did not accept the command: {0}")]
    Broker(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

pub async fn ensure_consumer(state: &AppState, agent_id: &str) -> anyhow::Result<()> {
    if state.consumers.lock().await.contains(agent_id) {
        return Ok(());
    }
    crate::bus::ensure_agent_consumer(&state.js, agent_id, state.cfg.command_ack_wait()).await?;
    state.consumers.lock().await.insert(agent_id.to_string());
    Ok(())
}

/// Checks an action and its params against the catalogue and fills in the
/// defaults. An `agent.update` is also checked against the fleet's release
/// key and the yanked releases (`agent_releases::check_update`).
pub async fn validate(
    state: &AppState,
    action: &str,
    params: serde_json::Value,
    timeout_secs: Option<u32>,
    ttl_secs: Option<u64>,
    requested_by: &str,
    source: Source,
) -> Result<CommandSpec, CreateError> {
    let spec =
        catalogue::lookup(action).ok_or_else(|| CreateError::UnknownAction(action.into()))?;
    let mut params = if params.is_null() {
        serde_json::json!({})
    } else {
        params
    };
    spec.validate(&params)
        .map_err(|why| CreateError::InvalidParams {
            action: action.into(),
            why,
        })?;
    if action == "agent.selftest" && source != Source::System {
        return Err(CreateError::InvalidParams {
            action: action.into(),
            why: "agent.selftest is sent by the control plane itself once an updated agent \
                  heartbeats its new version; it cannot be requested"
                .into(),
        });
    }
    if action == crate::keys::ROTATE_ACTION && source != Source::System {
        return Err(CreateError::InvalidParams {
            action: action.into(),
            why: "agent.rotate_key is sent by the control plane itself: use `drover keys rotate`"
                .into(),
        });
    }
    if action == "agent.update" {
        let p: catalogue::agent::UpdateParams =
            catalogue::parse(&params).map_err(|why| CreateError::InvalidParams {
                action: action.into(),
                why,
            })?;
        crate::agent_releases::check_update(state, &p)
            .await
            .map_err(|why| CreateError::InvalidParams {
                action: action.into(),
                why,
            })?;
    }
    let mut default_timeout = spec.default_timeout_secs;
    let mut manifest = None;
    let shown_params = if action == "app.install" {
        // The manifest says which inputs are valid and which are secret.
        let p: catalogue::app::InstallParams =
            catalogue::parse(&params).map_err(|why| CreateError::InvalidParams {
                action: action.into(),
                why,
            })?;
        let (m, _) = bus_schema::manifest::load(&state.cfg.manifests_dir, &p.app).map_err(|e| {
            CreateError::InvalidParams {
                action: action.into(),
                why: e.to_string(),
            }
        })?;
        // Hidden inputs are neither passed on nor recorded.
        let resolved = m
            .resolve_inputs(&p.inputs)
            .map_err(|errs| CreateError::InvalidParams {
                action: action.into(),
                why: errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        default_timeout = m.timeout_secs;
        let shown = serde_json::json!({ "app": p.app, "inputs": m.mask(&resolved.kept) });
        params = serde_json::json!({ "app": p.app, "inputs": resolved.kept });
        manifest = Some(m);
        shown
    } else {
        spec.mask(&params)
    };
    let timeout = timeout_secs.unwrap_or(default_timeout);
    if !(1..=86_400).contains(&timeout) {
        return Err(CreateError::BadTimeout);
    }
    let sealed_paths = crate::sealing::paths_to_seal(spec, manifest.as_ref(), &params);
    Ok(CommandSpec {
        action: action.into(),
        params,
        shown_params,
        sealed_paths,
        timeout_secs: timeout,
        ttl_secs: ttl_secs
            .unwrap_or(state.cfg.command_ttl_secs)
            .clamp(1, 30 * 86_400),
        requested_by: requested_by.into(),
        source,
    })
}

/// One command to one agent.
pub async fn create(state: &AppState, req: NewCommand) -> Result<command::Model, CreateError> {
    let spec = validate(
        state,
        &req.action,
        req.params,
        req.timeout_secs,
        req.ttl_secs,
        &req.requested_by,
        req.source,
    )
    .await?;
    match agent::Entity::find_by_id(req.agent_id.clone())
        .one(&state.db)
        .await?
    {
        None => return Err(CreateError::UnknownAgent(req.agent_id)),
        // Pending, rejected and revoked agents get nothing.
        Some(a) if a.status != "online" && a.status != "offline" => {
            return Err(CreateError::AgentNotActive(a.id, a.status))
        }
        Some(a) => check_module(&a, &spec.action)?,
    }
    // Refused before anything is written: the request changes nothing.
    if let Some(c) = crate::clones::latest(&state.db, Some(std::slice::from_ref(&req.agent_id)))
        .await?
        .remove(&req.agent_id)
        .filter(|c| c.is_open())
    {
        return Err(CreateError::IdentityConflict(c.refusal()));
    }
    // Secrets go only to a host whose rootd key is pinned: refused here,
    // before anything is written, never sent in clear.
    crate::sealing::require(state, &spec, std::slice::from_ref(&req.agent_id)).await??;
    let mut issued = issue(
        state,
        &spec,
        std::slice::from_ref(&req.agent_id),
        match req.job_id {
            Some(id) => InJob::Existing(id),
            None => InJob::No,
        },
    )
    .await?;
    let (model, err) = issued.pop().expect("one agent, one command");
    match err {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

/// Refuses an action whose module the agent said it cannot run. An agent
/// that has not reported its modules yet (never seen) gets the command: it
/// waits in its queue and the agent or rootd refuses it if need be.
pub fn check_module(a: &agent::Model, action: &str) -> Result<(), CreateError> {
    let module = action.split('.').next().unwrap_or_default();
    // The agent runs these itself (`agent.watch`): no module report needed.
    // A key rotation needs no module either: every rootd applies it.
    if action == crate::keys::ROTATE_ACTION {
        return Ok(());
    }
    if catalogue::lookup(action).is_some_and(|s| s.runs_in == catalogue::RunsIn::Agent) {
        return Ok(());
    }
    let reported: Vec<String> = serde_json::from_str(&a.modules).unwrap_or_default();
    if reported.is_empty() || reported.iter().any(|m| m == module) {
        return Ok(());
    }
    // Not "absent" when rootd did not answer: say so, and what to do.
    let in_rootd = catalogue::lookup(action).is_some_and(|s| s.runs_in == catalogue::RunsIn::Rootd);
    let why = match (&a.rootd_error, in_rootd) {
        (Some(err), true) => format!(
            "drover-rootd on {} is not answering its agent ({err}); start it there \
             (systemctl start drover-rootd), then try again",
            a.hostname
        ),
        _ => format!("the host reports only: {}", reported.join(", ")),
    };
    Err(CreateError::ModuleUnavailable {
        agent: a.id.clone(),
        module: module.into(),
        why,
    })
}

fn source_str(s: Source) -> &'static str {
    match s {
        Source::User => "user",
        Source::System => "system",
    }
}

/// More rows [`issue`] writes in its transaction, after the job's: a
/// function of the transaction (the submission's idempotency key, whose
/// unique index makes a racing second submission fail the whole
/// transaction, so nothing of it is written).
pub type AlsoWrite = Box<
    dyn for<'t> FnOnce(
            &'t sea_orm::DatabaseTransaction,
        ) -> futures::future::BoxFuture<'t, Result<(), sea_orm::DbErr>>
        + Send,
>;

/// A job's own rows, written by [`issue`] in the transaction that writes
/// its commands' rows: a job is in the database with all its commands or
/// not at all, so no reader (the job view, `?wait=`, another replica) ever
/// sees a job with fewer commands than targets — which it would count as
/// done.
pub struct JobRows {
    /// The job; its id is the commands' `job_id`.
    pub job: job::ActiveModel,
    /// Written after the job, before the commands.
    pub also: Option<AlsoWrite>,
}

/// Which job the commands [`issue`] writes belong to.
pub enum InJob {
    /// None: single commands.
    No,
    /// A job already in the database (a maintenance window's later batch).
    Existing(String),
    /// A job written with them, in the same transaction.
    New(Box<JobRows>),
}

/// Issues `spec` to every agent in `agents` (already checked to be active),
/// as part of `job`. Each returned command carries the error
/// that ended it, if publishing failed (it is then stored `rejected`).
/// A database error before publishing writes nothing.
pub async fn issue(
    state: &AppState,
    spec: &CommandSpec,
    agents: &[String],
    job: InJob,
) -> Result<Vec<(command::Model, Option<CreateError>)>, CreateError> {
    let now = now_ms();
    let (job_id, new_job): (Option<String>, Option<Box<JobRows>>) = match job {
        InJob::No => (None, None),
        InJob::Existing(id) => (Some(id), None),
        InJob::New(rows) => match &rows.job.id {
            sea_orm::ActiveValue::Set(id) | sea_orm::ActiveValue::Unchanged(id) => {
                (Some(id.clone()), Some(rows))
            }
            sea_orm::ActiveValue::NotSet => {
                return Err(sea_orm::DbErr::Custom("a new job without an id".into()).into())
            }
        },
    };
    // Each host's measured clock skew travels signed in its command, so the
    // agent and rootd can tell a wrong clock from an expired command.
    let clocks = crate::skew::load(&state.db, agents).await?;
    let mut cmds: Vec<Command> = agents
        .iter()
        .map(|a| Command {
            id: uuid::Uuid::now_v7().simple().to_string(),
            agent_id: a.clone(),
            action: spec.action.clone(),
            params: spec.params.clone(),
            issued_at: now,
            expires_at: now + (spec.ttl_secs as i64) * 1000,
            timeout_secs: spec.timeout_secs,
            requested_by: spec.requested_by.clone(),
            source: spec.source,
            job_id: job_id.clone(),
            clock_skew_ms: clocks.get(a).map(|c| c.skew_ms),
        })
        .collect();
    // Each host's secrets sealed to its own rootd key, before signing; a
    // host that cannot get them ends rejected with what to do.
    let unsealable = crate::sealing::seal_all(state, spec, &mut cmds).await?;
    let models: Vec<command::Model> = cmds
        .iter()
        .map(|c| command::Model {
            id: c.id.clone(),
            agent_id: c.agent_id.clone(),
            job_id: c.job_id.clone(),
            action: c.action.clone(),
            params: spec.shown_params.to_string(),
            status: CommandStatus::Queued.as_str().into(),
            requested_by: c.requested_by.clone(),
            source: source_str(c.source).into(),
            created_at: now,
            updated_at: now,
            expires_at: c.expires_at,
            timeout_secs: c.timeout_secs as i32,
            exit_code: None,
            summary: String::new(),
            result: None,
            attempts: 0,
            finished_at: None,
            stream_seq: None,
            outcome_source: None,
            inferred_status: None,
            inferred_summary: None,
            inferred_at: None,
        })
        .collect();
    // Identity conflicts: open ones refuse (the command ends rejected with
    // what to do), decided ones route to the kept machine.
    let conflicts = crate::clones::latest(&state.db, Some(agents)).await?;
    // Outdated or incompatible agents get nothing but the update actions:
    // their commands end rejected with the reason, never published.
    let policy = crate::version_policy::Policy::of(&state.cfg);
    let refused = crate::version_policy::refusals(&state.db, &policy, &spec.action, agents).await?;
    let t0 = std::time::Instant::now();
    {
        let _turn = state.writer.lock().await;
        let txn = crate::db::begin_write(&state.db).await?;
        if let Some(rows) = new_job {
            let JobRows { job, also } = *rows;
            job::Entity::insert(job).exec(&txn).await?;
            if let Some(also) = also {
                also(&txn).await?;
            }
        }
        for chunk in models.chunks(500) {
            let rows: Vec<command::ActiveModel> = chunk.iter().cloned().map(Into::into).collect();
            command::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
    }

    let t_insert = t0.elapsed();
    // Publish in windows; remember each command's stream sequence.
    let mut outcomes: Vec<Result<u64, CreateError>> = Vec::with_capacity(cmds.len());
    for window in cmds.chunks(PUBLISH_WINDOW) {
        let mut pending: Vec<Result<PublishAckFuture, CreateError>> =
            Vec::with_capacity(window.len());
        for cmd in window {
            let sent = match (refused.get(&cmd.agent_id), conflicts.get(&cmd.agent_id)) {
                _ if unsealable.contains_key(&cmd.agent_id) => {
                    Err(CreateError::Sealing(unsealable[&cmd.agent_id].clone()))
                }
                (Some(why), _) => Err(CreateError::VersionPolicy(why.clone())),
                (_, Some(c)) if c.is_open() => Err(CreateError::IdentityConflict(c.refusal())),
                (_, c) => send(state, cmd, spec.ttl_secs, c.and_then(|c| c.headers())).await,
            };
            pending.push(sent);
        }
        for (cmd, p) in window.iter().zip(pending) {
            let r = match p {
                Ok(ack) => match ack.await {
                    Ok(a) => Ok(a.sequence),
                    Err(e) => Err(publish_error(state, &cmd.agent_id, e.to_string())),
                },
                Err(e) => Err(e),
            };
            outcomes.push(r);
        }
    }

    let t_publish = t0.elapsed() - t_insert;
    let mut out = Vec::with_capacity(models.len());
    let mut seqs: Vec<Vec<sea_orm::Value>> = Vec::with_capacity(models.len());
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    for (mut m, r) in models.into_iter().zip(outcomes) {
        match r {
            Ok(seq) => {
                seqs.push(vec![m.id.clone().into(), (seq as i64).into()]);
                m.stream_seq = Some(seq as i64);
                out.push((m, None));
            }
            Err(e) => {
                // The row exists; end it now in its one final state.
                let t = now_ms();
                let why = e.to_string();
                let ending = crate::ledger::Ending {
                    status: CommandStatus::Rejected,
                    summary: &why,
                    source: crate::ledger::Source::ControlPlane,
                    attempts: None,
                };
                let queued = [CommandStatus::Queued.as_str()];
                crate::ledger::end_one_unreported(&txn, &m.id, &queued, &ending, t).await?;
                warn!(command = %m.id, agent_id = %m.agent_id, error = %e, "command not queued");
                ending.mark(&mut m, t);
                out.push((m, Some(e)));
            }
        }
    }
    crate::db::bulk::update_by_key::<command::Entity, _>(
        &txn,
        command::Column::Id,
        &[command::Column::StreamSeq],
        seqs,
    )
    .await?;
    txn.commit().await?;
    if out.len() >= 100 {
        tracing::info!(
            commands = out.len(),
            insert_ms = t_insert.as_millis() as u64,
            publish_ms = t_publish.as_millis() as u64,
            seq_update_ms = (t0.elapsed() - t_insert - t_publish).as_millis() as u64,
            "issued"
        );
    }
    Ok(out)
}

fn publish_error(state: &AppState, agent: &str, text: String) -> CreateError {
    if text.contains("maximum messages per subject") {
        CreateError::QueueFull(agent.into(), state.cfg.max_pending_per_agent)
    } else {
        CreateError::Broker(text)
    }
}

/// Signs and sends one command; the returned future resolves to the
/// broker's acknowledgement.
async fn send(
    state: &AppState,
    cmd: &Command,
    ttl_secs: u64,
    route: Option<(&'static str, String)>,
) -> Result<PublishAckFuture, CreateError> {
    ensure_consumer(state, &cmd.agent_id)
        .await
        .map_err(|e| CreateError::Broker(format!("{e:#}")))?;
    // The current key generation, or the previous one during a rotation's
    // overlap for a host that has not adopted it yet.
    let signed = crate::keys::sign(state, cmd);
    let mut publish = async_nats::jetstream::message::PublishMessage::build();
    // After an identity conflict was decided: which machine must leave it.
    if let Some((name, value)) = route {
        publish = publish.header(name, value.as_str());
    }
    let publish = publish
        .payload(bus_schema::encode(&signed).into())
        // Broker-side dedupe if we ever send it twice.
        .message_id(&cmd.id)
        // The broker drops it at expiry if the agent never came back.
        .ttl(Duration::from_secs(ttl_secs));
    state
        .js
        .send_publish(subjects::command(&cmd.agent_id), publish)
        .await
        .map_err(|e| CreateError::Broker(e.to_string()))
}
