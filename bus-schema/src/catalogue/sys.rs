//! `sys`: actions the unprivileged agent runs itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionSpec, NoParams, Params, RunsIn};

/// Params of `sys.cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelParams {
    /// The running command to stop.
    pub command_id: String,
}
impl Params for CancelParams {}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<NoParams>(
            "sys.ping",
            "Answer at once; proves the command path end to end.",
            RunsIn::Agent,
            10,
        ),
        ActionSpec::new::<NoParams>(
            "sys.info",
            "Host facts: OS, kernel, CPU, memory, disks, uptime.",
            RunsIn::Agent,
            30,
        ),
        ActionSpec::new::<CancelParams>(
            "sys.cancel",
            "Stop a command that is running on this agent (its process group in rootd too).",
            RunsIn::Agent,
            10,
        ),
    ]
}
