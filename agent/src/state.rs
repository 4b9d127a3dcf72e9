//! The agent's shared state: the one [`Agent`] value that the heartbeat loop,
//! the command loop and the reports hold for the whole run. Owns the shape
//! only; it does not know how the parts start (`run`), how commands are
//! handled (`commands`) or how results travel (`report`).

use async_nats::jetstream;
use bus_schema::{ActiveOperation, VerifyingKey};
use tokio::sync::{Mutex, Notify};

use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::instance::Instance;
use crate::journal::Journal;

/// Everything the loops share.
pub struct Agent {
    /// This agent's id (its nkey's public key).
    pub id: String,
    /// The host's nkey: signs results and refusal reports.
    pub identity: Identity,
    pub cfg: AgentConfig,
    /// The control plane's command-signing key.
    pub key: VerifyingKey,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub journal: Mutex<Journal>,
    /// The operations running now, as heartbeats report them.
    pub ops: Mutex<Vec<ActiveOperation>>,
    /// Woken when `ops` changes, so a heartbeat goes out at once.
    pub ops_changed: Notify,
    /// Commands in hand (accepted and waiting for a slot, or running), by
    /// id, with the switch that stops each.
    pub running:
        std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
    /// This process's instance id, machine-id and boot id.
    pub instance: Instance,
}
