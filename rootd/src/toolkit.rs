//! The toolkit rootd's actions share: the [`Ctx`] an action gets (config,
//! limits, the live output sink), the [`Limits`] the server sets, typed
//! [`params`] parsing, [`which`] for system programs, and the [`Runner`]
//! that runs an action's programs under one deadline. The [`Outcome`] every
//! action returns is the wire crate's.
//!
//! It knows no module and no action (that is `actions/`), and nothing of the
//! socket, the signature or replay (that is `server.rs`).

use std::time::Duration;

use bus_schema::catalogue::Params;
use bus_schema::{Command, CommandStatus};
use serde_json::Value;

use crate::config::RootdConfig;
use crate::exec::{self as program, LineSink};

pub use bus_schema::Outcome;

/// The bounds of one action, set by the server from the command.
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
