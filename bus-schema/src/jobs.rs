//! Job submission on `drover.jobs.submit`, for automation: the submission is
//! signed with an Ed25519 key the control plane knows and has bound to a
//! role. The signing itself (`SignedJob`, `open_job`, `AutomationKey`) is
//! in the signing folder's `automation.rs`; this file holds only the plain
//! message.

use serde::{Deserialize, Serialize};

/// What automation asks for. The selector uses the same fields as the API's
/// (`all`, `agents`, `labels`, `hostname`, `facts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    pub selector: serde_json::Value,
    pub action: String,
    #[serde(default)]
    pub params: serde_json::Value,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Required on the bus: a redelivered or repeated submission is the same job.
    pub idempotency_key: String,
    pub issued_at: i64,
    pub expires_at: i64,
}
