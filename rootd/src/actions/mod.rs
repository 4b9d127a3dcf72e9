//! The privileged actions rootd can run. Each takes typed, validated params
//! and returns an [`Outcome`]; none passes operator input through a shell.

use std::time::Duration;

use bus_schema::{Command, CommandStatus};
use serde_json::Value;

use crate::exec::LineSink;

pub mod pkg;

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
}

pub struct Limits {
    pub timeout: Duration,
    pub grace: Duration,
    /// Fired when the agent cancels the command or hangs up.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Runs one verified command. The caller has already checked signature,
/// addressee, expiry, replay, and that the catalogue puts it in rootd.
pub async fn run(cmd: &Command, limits: &Limits, sink: &LineSink) -> Outcome {
    match cmd.action.as_str() {
        "pkg.scan" => pkg::scan(limits, sink).await,
        other => Outcome::failed(format!("rootd has no implementation of {other}")),
    }
}
