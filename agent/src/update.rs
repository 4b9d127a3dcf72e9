//! The agent's side of self-update. Owns: the version this process reports
//! (from `release.json` beside its executable, else the build's own),
//! fetching and checking a release before rootd sees it (`agent.update`),
//! the updates held at start until their self-test, and publishing an
//! update's result from the process that runs after it.
//!
//! `agent.update`: the manifest is verified with the pinned `release_key`
//! (none: refused), its platform checked, the object
//! `drover-agent-<version>-<platform>` read from the releases bucket (its
//! size must be the signed one, a larger object is refused) into
//! `<state_dir>/updates/<sha256>` while hashing, and size and SHA-256
//! checked; then the signed command goes to rootd as any other. rootd
//! answers "installed, restarting" ([`is_restarting`]): this process then
//! publishes nothing and is replaced.
//!
//! At start ([`resume`], before the interrupted commands are reported) rootd
//! is asked for its update records; for one whose command the journal saw
//! start and not end: `pending` to this very version is held (its
//! redelivery acked, not reported) until `agent.selftest` confirms it, then
//! published `succeeded` / healthy; `rolled_back` is published `failed`
//! with the reason; `healthy` is published `succeeded`.
//!
//! It does not run commands (`commands`), or install anything (rootd).

use std::path::PathBuf;

use bus_schema::catalogue::agent::{UpdateOutcome, UpdateParams, UpdateReport};
use bus_schema::rootd_proto::{self, RootFrame, RootRequest, UpdateRecord, UpdateState};
use bus_schema::signing::release::ReleaseManifest;
use bus_schema::{now_ms, subjects, Command, CommandResult, CommandStatus, Outcome};
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::report::publish_confirmed;
use crate::state::Agent;

use crate::state::Held;

/// Where checked releases wait for rootd: `<state_dir>/updates`.
pub fn staging_dir(agent: &Agent) -> PathBuf {
    agent.cfg.state_dir.join("updates")
}

fn report(outcome: UpdateOutcome, to: &str, reason: &str) -> serde_json::Value {
    let running = crate::version::running().version.clone();
    serde_json::to_value(UpdateReport {
        outcome,
        from_version: running.clone(),
        to_version: to.into(),
        running_version: running,
        reason: reason.into(),
    })
    .expect("a report serialises")
}

fn refused(to: &str, reason: String) -> Outcome {
    let mut o = Outcome::rejected(reason.clone());
    o.data = report(UpdateOutcome::Failed, to, &reason);
    o
}

fn failed(to: &str, reason: String) -> Outcome {
    let mut o = Outcome::failed(reason.clone());
    o.data = report(UpdateOutcome::Failed, to, &reason);
    o
}

/// rootd's answer "installed, restarting": no result is published for it.
pub fn is_restarting(o: &Outcome) -> bool {
    o.status == CommandStatus::Running && o.data["restarting"] == true
}

/// A final outcome of `agent.update` that lacks a report (a rootd refusal
/// or a broken connection) gets one.
pub fn with_report(cmd: &Command, mut o: Outcome) -> Outcome {
    if o.data.get("outcome").is_none() && !is_restarting(&o) {
        let to = cmd.params["version"].as_str().unwrap_or_default();
        o.data = report(UpdateOutcome::Failed, to, &o.summary);
    }
    o
}

/// Checks and stages the release of an `agent.update` before it goes to
/// rootd. `Err` is the command's outcome (nothing was staged).
pub async fn prepare(agent: &Agent, cmd: &Command) -> Result<(), Outcome> {
    let p: UpdateParams = serde_json::from_value(cmd.params.clone())
        .map_err(|e| refused("", format!("invalid params: {e}")))?;
    // The pinned release key, or the keys a verified rotation moved it to.
    let Some(opened) = agent
        .keys
        .open_release(&p.manifest, &p.signature, bus_schema::now_ms())
    else {
        return Err(refused(&p.version, "this agent has no release key pinned: set release_key in agent.toml to the public half of `drover releases keygen` (install.sh does)".into()));
    };
    let m =
        opened.map_err(|e| refused(&p.version, format!("the agent refused the release: {e}")))?;
    if m.version != p.version {
        return Err(refused(
            &p.version,
            format!(
                "version {} does not match the signed manifest's {}",
                p.version, m.version
            ),
        ));
    }
    m.check_platform()
        .map_err(|e| refused(&m.version, format!("the agent refused the release: {e}")))?;
    fetch(agent, &m).await.map_err(|e| match e {
        Fetch::Refused(r) => refused(&m.version, format!("the agent refused the release: {r}")),
        Fetch::Failed(r) => failed(&m.version, r),
    })?;
    info!(command = %cmd.id, version = %m.version, sha256 = %m.sha256, "release fetched and checked; handing it to rootd");
    Ok(())
}

enum Fetch {
    /// The bytes are not the signed ones.
    Refused(String),
    /// Could not get them (try again later).
    Failed(String),
}

/// Reads the release's object into `<staging>/<sha256>`, bounded by the
/// signed size, checking size and SHA-256.
async fn fetch(agent: &Agent, m: &ReleaseManifest) -> Result<(), Fetch> {
    let dir = staging_dir(agent);
    let io = |e: std::io::Error| Fetch::Failed(format!("staging in {}: {e}", dir.display()));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let name = m.object_name();
    let store = agent
        .js
        .get_object_store(subjects::RELEASES_BUCKET)
        .await
        .map_err(|e| Fetch::Failed(format!("cannot open the releases bucket {}: {e}; check the broker and that this agent may read it", subjects::RELEASES_BUCKET)))?;
    let mut obj = store.get(&name).await.map_err(|e| {
        Fetch::Failed(format!("cannot get {name} from the releases bucket: {e}; publish the release (drover releases publish) or check its name"))
    })?;
    if obj.info.size as u64 != m.size {
        return Err(Fetch::Refused(format!(
            "the object {name} is {} bytes, the signed manifest says {}: it was altered or replaced",
            obj.info.size, m.size
        )));
    }
    let part = dir.join(format!("{}.part", m.sha256));
    let mut out = tokio::fs::File::create(&part).await.map_err(io)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let read = async {
        loop {
            let n = obj
                .read(&mut buf)
                .await
                .map_err(|e| Fetch::Refused(format!("reading {name}: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            total += n as u64;
            if total > m.size {
                return Err(Fetch::Refused(format!(
                    "the object {name} is larger than the signed size {}",
                    m.size
                )));
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n]).await.map_err(io)?;
        }
    };
    let done = read.await;
    let done = done.and_then(|()| {
        let got = hex::encode(hash.finalize_reset());
        if total != m.size {
            Err(Fetch::Refused(format!(
                "the object {name} is {total} bytes, the signed manifest says {}",
                m.size
            )))
        } else if got != m.sha256 {
            Err(Fetch::Refused(format!(
                "the object {name} has SHA-256 {got}, the signed manifest says {}: it was altered",
                m.sha256
            )))
        } else {
            Ok(())
        }
    });
    if let Err(e) = done {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    out.sync_all().await.map_err(io)?;
    drop(out);
    tokio::fs::rename(&part, dir.join(&m.sha256))
        .await
        .map_err(io)?;
    Ok(())
}

/// The one turn to run an `agent.update` in this process, or `None` while
/// another one has it.
pub fn turn() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.try_lock().ok()
}

/// Removes staged releases (rootd has copied what it installs).
pub async fn clear_staging(agent: &Agent) {
    let _ = tokio::fs::remove_dir_all(staging_dir(agent)).await;
}

/// Asks rootd for its update records (empty when it cannot answer).
pub async fn update_status(agent: &Agent) -> Result<Vec<UpdateRecord>, String> {
    let stream = tokio::net::UnixStream::connect(&agent.cfg.rootd_socket)
        .await
        .map_err(|e| format!("connecting to rootd: {e}"))?;
    let mut framed = tokio_util::codec::Framed::new(stream, rootd_proto::codec());
    framed
        .send(bytes::Bytes::from(bus_schema::encode(
            &RootRequest::UpdateStatus,
        )))
        .await
        .map_err(|e| e.to_string())?;
    let f = tokio::time::timeout(std::time::Duration::from_secs(10), framed.next())
        .await
        .map_err(|_| "rootd did not answer within 10 s".to_string())?
        .ok_or("rootd closed the connection")?
        .map_err(|e| e.to_string())?;
    match bus_schema::codec::decode_limited(&f, None, rootd_proto::MAX_FRAME_BYTES)
        .map_err(|e| e.to_string())?
    {
        RootFrame::UpdateStatus { updates } => Ok(updates),
        other => Err(format!("rootd answered with {other:?}")),
    }
}

/// At start: settles the updates rootd switched to while an earlier process
/// ran the command (see the module doc).
pub async fn resume(agent: &Agent) {
    let open = agent.journal.lock().await.interrupted();
    if !open.is_empty() {
        // rootd may still be starting (it supervises this process).
        let mut records = None;
        for _ in 0..20 {
            match update_status(agent).await {
                Ok(r) => {
                    records = Some(r);
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "cannot ask rootd for its update records yet");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        let me = crate::version::running().version.clone();
        for rec in records.unwrap_or_default() {
            let Some(e) = open.iter().find(|e| e.id == rec.command_id) else {
                continue;
            };
            match rec.state {
                UpdateState::Pending if rec.to_version == me => {
                    info!(command = %rec.command_id, version = %me, "this process is the update rootd switched to; its result waits for the self-test");
                    agent.held.lock().unwrap().insert(
                        rec.command_id.clone(),
                        Held {
                            record: rec.clone(),
                            expires_at: e.expires_at,
                            delivered: e.delivered,
                        },
                    );
                }
                // Not this version: rootd rolls it back; the next process
                // reports it.
                UpdateState::Pending => {
                    agent.held.lock().unwrap().insert(
                        rec.command_id.clone(),
                        Held {
                            record: rec.clone(),
                            expires_at: e.expires_at,
                            delivered: e.delivered,
                        },
                    );
                }
                UpdateState::Healthy => {
                    publish_update(
                        agent,
                        &rec,
                        e.expires_at,
                        e.delivered,
                        UpdateOutcome::Healthy,
                    )
                    .await
                }
                UpdateState::RolledBack => {
                    publish_update(
                        agent,
                        &rec,
                        e.expires_at,
                        e.delivered,
                        UpdateOutcome::RolledBack,
                    )
                    .await
                }
            }
        }
    }
    if agent.held.lock().unwrap().is_empty() {
        clear_staging(agent).await;
    }
}

/// Publishes an update's result from its record (journaled first).
async fn publish_update(
    agent: &Agent,
    rec: &UpdateRecord,
    expires_at: i64,
    delivered: u32,
    outcome: UpdateOutcome,
) {
    let running = crate::version::running().version.clone();
    let (status, summary) = match outcome {
        UpdateOutcome::Healthy => (
            CommandStatus::Succeeded,
            format!(
                "updated from {} to {}; the new agent passed its self-test",
                rec.from_version, rec.to_version
            ),
        ),
        _ => (
            CommandStatus::Failed,
            format!("rolled back to {}: {}", rec.from_version, rec.reason),
        ),
    };
    let result = CommandResult {
        command_id: rec.command_id.clone(),
        agent_id: agent.id.clone(),
        status,
        exit_code: (status == CommandStatus::Succeeded).then_some(0),
        summary,
        data: serde_json::to_value(UpdateReport {
            outcome,
            from_version: rec.from_version.clone(),
            to_version: rec.to_version.clone(),
            running_version: running,
            reason: rec.reason.clone(),
        })
        .expect("a report serialises"),
        attempt: delivered.max(1),
        at: now_ms(),
    };
    info!(command = %rec.command_id, status = status.as_str(), "publishing the update's result");
    if let Err(err) = agent
        .journal
        .lock()
        .await
        .record_result(expires_at, &result)
    {
        warn!(command = %rec.command_id, error = %err, "journal write failed; publishing anyway");
    }
    publish_confirmed(agent, &result).await;
}

/// After `agent.selftest` ran in rootd: when rootd confirmed a held update,
/// its result goes out now.
pub async fn after_selftest(agent: &Agent, outcome: &Outcome) {
    let Some(id) = outcome.data["confirmed_command_id"].as_str() else {
        return;
    };
    let held = agent.held.lock().unwrap().remove(id);
    if let Some(h) = held {
        let mut rec = h.record;
        rec.state = UpdateState::Healthy;
        publish_update(
            agent,
            &rec,
            h.expires_at,
            h.delivered,
            UpdateOutcome::Healthy,
        )
        .await;
        clear_staging(agent).await;
    }
}

/// Re-executes `<dir>/current/drover-agent` with this process's arguments
/// and environment when that is not already this executable (and exists);
/// returns when there is nothing to do or the exec failed (logged: the
/// running binary carries on).
pub fn exec_current_release(dir: &std::path::Path) {
    use std::os::unix::process::CommandExt;
    let target = dir
        .join("current")
        .join(bus_schema::signing::release::AGENT_BINARY);
    let Ok(target) = std::fs::canonicalize(&target) else {
        return;
    };
    let me = std::env::current_exe().and_then(std::fs::canonicalize);
    if me.as_ref().is_ok_and(|m| *m == target) {
        return;
    }
    info!(release = %target.display(), "running the installed release rootd switched to");
    let err = std::process::Command::new(&target)
        .args(std::env::args_os().skip(1))
        .exec();
    warn!(release = %target.display(), error = %err, "could not run the installed release; running this binary");
}
