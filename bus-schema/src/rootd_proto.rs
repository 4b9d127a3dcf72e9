//! Frames between the agent and rootd on the Unix socket: length-delimited
//! (4-byte big-endian length), each a MessagePack map. One request per
//! connection; rootd answers with a stream of frames ending in `Done` or
//! `Refused`.

use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::{CommandStatus, OutputStream, SignedCommand};

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RootRequest {
    /// Run one signed command. rootd verifies it again.
    Run { command: SignedCommand },
    /// Which modules rootd can run on this host now (answered with one
    /// `Capabilities` frame). Needs no signature: it changes nothing.
    Capabilities,
    /// rootd's record of agent updates it started (answered with one
    /// `UpdateStatus` frame). Needs no signature: it changes nothing. The
    /// agent asks at start, to report an update's end.
    UpdateStatus,
    /// The states of these units (answered with one `ServiceStates` frame,
    /// in the same order). Needs no signature: it only reads. At most
    /// [`crate::MAX_WATCHED_UNITS`] valid unit names; anything else is
    /// refused.
    ServiceStates { units: Vec<String> },
}

/// Where one agent update stands on rootd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Installed and switched to; waiting for the new agent's self-test.
    Pending,
    /// The new agent proved itself (a signed `agent.selftest` reached rootd
    /// through it).
    Healthy,
    /// The previous binary runs again.
    RolledBack,
}

/// One agent update as rootd records it (its state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// The `agent.update` command that started it.
    pub command_id: String,
    pub from_version: String,
    pub to_version: String,
    pub state: UpdateState,
    /// Why it was rolled back ("" otherwise).
    #[serde(default)]
    pub reason: String,
    /// When the switch happened, ms since the epoch.
    pub started_at: i64,
    /// When rootd rolls back if no self-test came, ms since the epoch.
    pub deadline_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RootFrame {
    /// Verified; the action is starting.
    Started {
        command_id: String,
    },
    Output {
        stream: OutputStream,
        line: String,
    },
    Done {
        status: CommandStatus,
        exit_code: Option<i32>,
        summary: String,
        data: serde_json::Value,
    },
    /// The modules rootd can run here, and why each missing one is missing.
    Capabilities {
        modules: Vec<String>,
        missing: Vec<(String, String)>,
        /// rootd's public box key (base64, [`crate::sealed`]): what the
        /// control plane seals secrets for this host to. `None` from older
        /// rootd.
        #[serde(default)]
        box_key: Option<String>,
    },
    /// rootd's update records, newest first (answer to `UpdateStatus`).
    UpdateStatus {
        updates: Vec<UpdateRecord>,
    },
    /// The units' states (answer to `ServiceStates`), one per unit asked,
    /// in order.
    ServiceStates {
        states: Vec<crate::ServiceState>,
    },
    /// Not run, and why.
    Refused {
        reason: String,
        label: String,
    },
}

/// The framing codec both sides use, with the size limit set.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}
