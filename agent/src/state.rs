//! The agent's shared state: the one [`Agent`] value that the heartbeat loop,
//! the command loop and the reports hold for the whole run. Owns the shape
//! only; it does not know how the parts start (`run`), how commands are
//! handled (`commands`) or how results travel (`report`).

use async_nats::jetstream;
use bus_schema::ActiveOperation;
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
    /// The configuration the agent started with.
    pub cfg: AgentConfig,
    /// The command-signing and release keys this host accepts (pinned at
    /// enrolment, moved on by verified rotations).
    pub keys: bus_schema::signing::host_keys::HostKeys,
    /// The broker connection (core publishes: heartbeats).
    pub client: async_nats::Client,
    /// JetStream over `client`: commands, results, output, refusals.
    pub js: jetstream::Context,
    /// The on-disk record of every command seen, so none runs twice.
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
    /// `agent.update` commands whose result waits for the self-test (this
    /// process is the new version rootd switched to), by command id.
    pub held: std::sync::Mutex<std::collections::HashMap<String, Held>>,
    /// The watched units (`agent.watch`), reported in heartbeats.
    pub watch: std::sync::Mutex<crate::watch::Watch>,
}

/// An `agent.update` whose result waits for its self-test (the update
/// module holds them; the command loop acks their redeliveries).
#[derive(Debug, Clone)]
pub struct Held {
    /// rootd's record of the update.
    pub record: bus_schema::rootd_proto::UpdateRecord,
    /// The command's expiry, ms since the epoch (for the journal).
    pub expires_at: i64,
    /// The broker's delivery count of the delivery that ran it.
    pub delivered: u32,
}
