//! The plain shapes of a command about to be issued: [`CommandSpec`] (what
//! to run, validated, independent of the host) and [`NewCommand`] (one
//! command for one agent, as the API receives it). Data only: validating,
//! sealing, signing and publishing are in `commands` and `sealing`.

use bus_schema::Source;

/// What to run, independent of where.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub action: String,
    /// What the agent gets (signed): secrets in clear.
    pub params: serde_json::Value,
    /// What is stored, logged and shown: secrets masked.
    pub shown_params: serde_json::Value,
    /// Paths in `params` holding secrets (`password`, `inputs/token`):
    /// sealed per host before signing. Empty: nothing to seal.
    pub sealed_paths: Vec<String>,
    pub timeout_secs: u32,
    pub ttl_secs: u64,
    pub requested_by: String,
    pub source: Source,
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
