//! The simulator's fake install for `agent.update` and its answer to
//! `agent.selftest`, for rollout tests and the bench. Nothing is fetched,
//! checked or run: the virtual agent reports `running`, starts
//! heartbeating the new version, optionally waits for the control plane's
//! self-test, and reports the `UpdateReport` (healthy, or rolled_back for a
//! version named by `--fail-update` or when no self-test came in time).
//! Owns the virtual agent's version; not the commands loop
//! (`simulate.rs`), not the real install (rootd).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_schema::catalogue::agent::{SelftestParams, UpdateOutcome, UpdateParams, UpdateReport};
use bus_schema::{catalogue, now_ms, Command, CommandResult, CommandStatus};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::{publish_confirmed, SimulateArgs, Virtual};

/// One virtual agent's update state.
pub struct Updates {
    version: Mutex<String>,
    fail: Vec<String>,
    wait: Duration,
    /// `<state-dir>/<i>/version`, when the state is kept.
    file: Option<PathBuf>,
    /// Woken when the version changed (the heartbeat goes out at once).
    pub changed: Notify,
    /// The version the last passed self-test confirmed.
    proved: watch::Sender<Option<String>>,
}

impl Updates {
    pub fn new(args: &SimulateArgs, dir: Option<&Path>) -> Self {
        let file = dir.map(|d| d.join("version"));
        let saved = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Self {
            version: Mutex::new(saved.unwrap_or_else(|| args.agent_version.clone())),
            fail: args.fail_update.clone(),
            wait: Duration::from_secs(args.selftest_wait_secs),
            file,
            changed: Notify::new(),
            proved: watch::channel(None).0,
        }
    }

    /// The version heartbeats report.
    pub fn version(&self) -> String {
        self.version.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn set_version(&self, v: &str) {
        if let Ok(mut g) = self.version.lock() {
            *g = v.to_string();
        }
        if let Some(f) = &self.file {
            let _ = std::fs::write(f, v);
        }
        self.changed.notify_one();
    }

    /// `agent.selftest {version}`: passes when this agent runs `version`.
    pub fn selftest(&self, params: &Value) -> (CommandStatus, String, Value) {
        let p: SelftestParams = match catalogue::parse(params) {
            Ok(p) => p,
            Err(e) => return (CommandStatus::Rejected, e, Value::Null),
        };
        let running = self.version();
        if running != p.version {
            return (
                CommandStatus::Failed,
                format!("runs {running}, not {}", p.version),
                Value::Null,
            );
        }
        self.proved.send_replace(Some(p.version.clone()));
        (
            CommandStatus::Succeeded,
            format!("self-test passed on {running} (simulated)"),
            serde_json::json!({"version": running}),
        )
    }
}

/// Runs the fake install of `cmd` (an `agent.update`) in its own task.
pub fn start(a: Arc<Virtual>, cmd: Command, attempt: u32) {
    tokio::spawn(async move {
        let (status, summary, data) = install(&a, &cmd, attempt).await;
        let result = CommandResult {
            command_id: cmd.id.clone(),
            agent_id: a.id.clone(),
            status,
            exit_code: Some(if status == CommandStatus::Succeeded {
                0
            } else {
                1
            }),
            summary,
            data,
            attempt,
            at: now_ms(),
        };
        if let Some(j) = &a.journal {
            let _ = j.lock().await.record_result(cmd.expires_at, &result);
        }
        publish_confirmed(&a, &result).await;
    });
}

async fn install(a: &Virtual, cmd: &Command, attempt: u32) -> (CommandStatus, String, Value) {
    let p: UpdateParams = match catalogue::parse(&cmd.params) {
        Ok(p) => p,
        Err(e) => return (CommandStatus::Rejected, e, Value::Null),
    };
    let from = a.update.version();
    let running = CommandResult {
        command_id: cmd.id.clone(),
        agent_id: a.id.clone(),
        status: CommandStatus::Running,
        exit_code: None,
        summary: format!("installing {} (simulated)", p.version),
        data: Value::Null,
        attempt,
        at: now_ms(),
    };
    publish_confirmed(a, &running).await;
    let report = |outcome, running: &str, reason: String| {
        serde_json::to_value(UpdateReport {
            outcome,
            from_version: from.clone(),
            to_version: p.version.clone(),
            running_version: running.to_string(),
            reason,
        })
        .unwrap_or(Value::Null)
    };
    if a.update.fail.contains(&p.version) {
        let why = format!(
            "simulated: {} did not prove itself; {from} runs again",
            p.version
        );
        return (
            CommandStatus::Failed,
            format!("rolled back: {why}"),
            report(UpdateOutcome::RolledBack, &from, why),
        );
    }
    let mut proved = a.update.proved.subscribe();
    a.update.set_version(&p.version);
    if !a.update.wait.is_zero() {
        let ok = tokio::time::timeout(
            a.update.wait,
            proved.wait_for(|v| v.as_deref() == Some(p.version.as_str())),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !ok {
            a.update.set_version(&from);
            let why = format!(
                "no self-test within {} s; {from} runs again",
                a.update.wait.as_secs()
            );
            return (
                CommandStatus::Failed,
                format!("rolled back: {why}"),
                report(UpdateOutcome::RolledBack, &from, why),
            );
        }
    }
    (
        CommandStatus::Succeeded,
        format!("updated from {from} to {} (simulated)", p.version),
        report(UpdateOutcome::Healthy, &p.version, String::new()),
    )
}
