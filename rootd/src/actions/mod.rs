//! The privileged actions rootd can run, one module per file. Each takes
//! params already checked by the catalogue (parsed again into its typed
//! struct here) and returns an [`Outcome`]; none passes operator input
//! through a shell.

use std::time::Duration;

use bus_schema::catalogue::Params;
use bus_schema::{Command, CommandStatus};
use serde_json::Value;

use crate::config::RootdConfig;
use crate::exec::{self as program, LineSink};

pub mod app;
pub mod firewall;
pub mod mariadb;
pub mod pkg;
pub mod pkg_parse;
pub mod service;

/// What an action reports back.
#[derive(Debug)]
pub struct Outcome {
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub summary: String,
    pub data: Value,
}

impl Outcome {
    pub fn failed(summary: impl Into<String>) -> Self {
        Self {
            status: CommandStatus::Failed,
            exit_code: None,
            summary: summary.into(),
            data: Value::Null,
        }
    }

    pub fn rejected(summary: impl Into<String>) -> Self {
        Self {
            status: CommandStatus::Rejected,
            exit_code: None,
            summary: summary.into(),
            data: Value::Null,
        }
    }

    pub fn succeeded(summary: impl Into<String>, data: Value) -> Self {
        Self {
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            summary: summary.into(),
            data,
        }
    }
}

pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
    /// Fired when the agent cancels the command or hangs up.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Everything an action may use.
pub struct Ctx<'a> {
    pub cfg: &'a RootdConfig,
    pub limits: &'a Limits,
    pub sink: &'a LineSink,
}

/// The typed params of a command, checked again (the catalogue's rules).
pub fn params<P: Params>(cmd: &Command) -> Result<P, Outcome> {
    bus_schema::catalogue::parse::<P>(&cmd.params)
        .map_err(|e| Outcome::rejected(format!("invalid params: {e}")))
}

/// Runs one verified command. The caller has already checked signature,
/// addressee, expiry, replay, and that the catalogue puts it in rootd.
pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let module = cmd.action.split('.').next().unwrap_or_default();
    if let Err(why) = available(module, ctx.cfg) {
        return Outcome::rejected(format!(
            "module {module} is not available on this host: {why}"
        ));
    }
    match module {
        "pkg" => pkg::run(cmd, ctx).await,
        "service" => service::run(cmd, ctx).await,
        "firewall" => firewall::run(cmd, ctx).await,
        "mariadb" => mariadb::run(cmd, ctx).await,
        "app" => app::run(cmd, ctx).await,
        _ => Outcome::failed(format!("rootd has no implementation of {}", cmd.action)),
    }
}

/// Whether a module can run on this host, and if not, why (shown to the
/// operator as is).
pub fn available(module: &str, cfg: &RootdConfig) -> Result<(), String> {
    match module {
        "pkg" => pkg::available(cfg),
        "service" => service::available(cfg),
        "firewall" => firewall::available(cfg),
        "mariadb" => mariadb::available(cfg),
        "app" => app::available(cfg),
        other => Err(format!("rootd does not know module {other}")),
    }
}

/// The rootd modules of the catalogue that can run here, and the reasons
/// the others cannot.
pub fn capabilities(cfg: &RootdConfig) -> (Vec<String>, Vec<(String, String)>) {
    let mut ok = Vec::new();
    let mut missing = Vec::new();
    for m in bus_schema::catalogue::modules() {
        let in_rootd = bus_schema::catalogue::all()
            .iter()
            .any(|a| a.module() == m && a.runs_in == bus_schema::catalogue::RunsIn::Rootd);
        if !in_rootd {
            continue;
        }
        match available(m, cfg) {
            Ok(()) => ok.push(m.to_string()),
            Err(why) => missing.push((m.to_string(), why)),
        }
    }
    (ok, missing)
}

/// A program by name in the usual system directories.
pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| std::path::Path::new(d).join(prog))
    .find(|p| p.exists())
}

/// What one program run by an action printed, and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub exit_code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The last few stderr lines, for a summary.
    pub fn error_tail(&self) -> String {
        let n = self.stderr.len();
        let tail = self.stderr[n.saturating_sub(3)..].join(" / ");
        if tail.is_empty() {
            format!("exit code {:?}, no error output", self.exit_code)
        } else {
            tail
        }
    }
}

/// Runs the programs of one action under one deadline (the command's
/// timeout counts from the start of the action, not from each program).
pub struct Runner<'a> {
    ctx: &'a Ctx<'a>,
    deadline: tokio::time::Instant,
}

impl<'a> Runner<'a> {
    pub fn new(ctx: &'a Ctx<'a>) -> Self {
        Self {
            ctx,
            deadline: tokio::time::Instant::now() + ctx.limits.timeout,
        }
    }

    /// Runs argv (never a shell). stderr always goes live to the operator,
    /// stdout only when `show_stdout` (machine-readable listings stay out of
    /// the live tail); both are kept for parsing. A program that cannot
    /// start, overruns the deadline or is cancelled ends the action.
    pub async fn run(
        &self,
        argv: &[&str],
        env: &[(&str, &str)],
        show_stdout: bool,
    ) -> Result<Ran, Outcome> {
        let name = argv.first().copied().unwrap_or("?");
        let left = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(Outcome::failed(format!(
                "the action ran out of time ({:?}) before {name}",
                self.ctx.limits.timeout
            )));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(bus_schema::OutputStream, String)>(256);
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (live, kept) = (self.ctx.sink.clone(), stderr.clone());
        let forward = tokio::spawn(async move {
            while let Some((stream, line)) = rx.recv().await {
                let is_err = stream == bus_schema::OutputStream::Stderr;
                if is_err {
                    kept.lock().expect("stderr lines").push(line.clone());
                }
                if is_err || show_stdout {
                    let _ = live.send((stream, line)).await;
                }
            }
        });
        let finished = program::run(
            program::Program {
                argv,
                env,
                timeout: left,
                grace: self.ctx.limits.grace,
                cancel: &self.ctx.limits.cancel,
                secrets: &[],
            },
            &tx,
        )
        .await;
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), forward).await;
        let stderr = std::mem::take(&mut *stderr.lock().expect("stderr lines"));
        let finished =
            finished.map_err(|e| Outcome::failed(format!("could not start {name}: {e}")))?;
        if finished.cancelled {
            return Err(Outcome {
                status: CommandStatus::Cancelled,
                exit_code: finished.exit_code,
                summary: format!("cancelled while {name} ran; its process group was stopped"),
                data: Value::Null,
            });
        }
        if finished.timed_out {
            return Err(Outcome::failed(format!(
                "{name} did not finish within the action's {:?}; its process group was stopped",
                self.ctx.limits.timeout
            )));
        }
        Ok(Ran {
            exit_code: finished.exit_code,
            stdout: finished.stdout,
            stderr,
        })
    }
}
