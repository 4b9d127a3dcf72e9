//! The envelopes that travel on the bus. Field names are stable: they are
//! encoded by name (MessagePack maps), so a JSON publisher can write them too.

use serde::{Deserialize, Serialize};

/// Who started a command: an operator (or their automation), or Drover itself
/// (scheduled scans, sweeps). Shown in heartbeats and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    User,
    System,
}

/// What the control plane asks one agent to do. Signed as a whole: the exact
/// MessagePack bytes of this struct travel inside [`SignedCommand`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id (UUIDv7, hyphen-free), also the broker's dedupe id.
    pub id: String,
    /// The one agent allowed to run it.
    pub agent_id: String,
    /// `module.action`, e.g. `sys.ping`.
    pub action: String,
    /// Action parameters, validated against the catalogue before signing.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Milliseconds since the epoch.
    pub issued_at: i64,
    /// After this instant the command must not start.
    pub expires_at: i64,
    /// Wall-clock limit for the run itself.
    pub timeout_secs: u32,
    /// Operator, token or automation key that asked.
    pub requested_by: String,
    pub source: Source,
    #[serde(default)]
    pub job_id: Option<String>,
    /// The target host's clock skew (milliseconds, positive: ahead) as the
    /// control plane measured it from its heartbeats when it issued the
    /// command; `None` when not measured yet. Signed with the rest, so the
    /// agent and rootd can tell a skewed clock from an expired command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

/// A command as it travels: the signed bytes and the control plane's
/// signature over exactly those bytes (so re-encoding can never break it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedCommand {
    /// Protocol version ([`crate::signing::PROTOCOL_VERSION`]); checked
    /// before anything else.
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Fingerprint of the signing key, so a verifier can say which key it expected.
    pub key_id: String,
}

/// Where a command is in its life. `Queued` exists only in the database; the
/// rest are reported by the agent (or set by the control plane for
/// `Expired`/`Cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Queued,
    Accepted,
    Running,
    Succeeded,
    Failed,
    Rejected,
    Expired,
    Cancelled,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 8] = [
        Self::Queued,
        Self::Accepted,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Expired,
        Self::Cancelled,
    ];

    /// A final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Rejected | Self::Expired | Self::Cancelled
        )
    }

    /// Order used to apply results idempotently: a report never moves a
    /// command backwards.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Accepted => 1,
            Self::Running => 2,
            _ => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Accepted => "accepted",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// An agent's report about one command, on `drover.res.<agent>.<command>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command_id: String,
    pub agent_id: String,
    pub status: CommandStatus,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// One line for people.
    #[serde(default)]
    pub summary: String,
    /// Structured output of the action (e.g. the package list of `pkg.scan`).
    #[serde(default)]
    pub data: serde_json::Value,
    /// How many times the broker delivered the command (1 = first try).
    #[serde(default)]
    pub attempt: u32,
    pub at: i64,
}

/// Host metrics carried by every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub cpu_percent: f32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub uptime_secs: u64,
}

/// A command the agent is running right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveOperation {
    pub command_id: String,
    pub action: String,
    pub source: Source,
    pub started_at: i64,
}

/// `drover.hb.<agent>`: liveness, metrics, capabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_id: String,
    pub hostname: String,
    /// Increases by one per heartbeat since the agent started.
    pub seq: u64,
    pub sent_at: i64,
    /// When the next heartbeat is due, so the control plane can judge liveness.
    pub interval_secs: u32,
    #[serde(default)]
    pub agent_version: String,
    /// The release channel of the running agent (`stable`, `beta`; "" for
    /// a build not installed from a release).
    #[serde(default)]
    pub agent_channel: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub kernel: String,
    pub metrics: Metrics,
    /// Modules this host can run (`sys`, `pkg`, ...).
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub operations: Vec<ActiveOperation>,
    /// Why rootd did not answer the agent's last question, when it did not:
    /// its modules are then unknown, not absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootd_error: Option<String>,
    /// Random per agent process (32 hex digits), new at every start: two
    /// processes sending under one agent id at once are two machines using
    /// one identity (a cloned state directory). Empty from older agents.
    #[serde(default)]
    pub instance_id: String,
    /// The host's machine-id as the agent reads it (the one bound at
    /// enrolment on the original host). Empty from older agents.
    #[serde(default)]
    pub machine_id: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); empty when
    /// unreadable or from older agents.
    #[serde(default)]
    pub boot_id: String,
    /// The wire protocol version the agent speaks
    /// ([`crate::signing::PROTOCOL_VERSION`] of its build); absent = 1.
    /// The control plane marks an agent whose version it does not speak as
    /// incompatible and sends it no command but `agent.update`.
    #[serde(default = "crate::signing::protocol_version_absent")]
    pub protocol_version: u16,
    /// The revision of the watch list the agent holds
    /// ([`crate::catalogue::agent::watch_revision`] of its units; "" for
    /// none). The control plane sends `agent.watch` while it differs from
    /// the desired one.
    #[serde(default)]
    pub watch_revision: String,
    /// States of watched units: only those that changed since the last
    /// heartbeat, or every watched unit when `services_full`. At most
    /// [`MAX_WATCHED_UNITS`].
    #[serde(default)]
    pub services: Vec<ServiceState>,
    /// `services` is the complete list: units the host no longer reports are
    /// no longer watched there. Sent on start, after a watch change and
    /// every 10th heartbeat.
    #[serde(default)]
    pub services_full: bool,
    /// Fingerprints (`SHA256:<base64>`) of every signing key the host
    /// accepts now: command keys, then release keys (two of a kind during a
    /// rotation's overlap). `None` from agents before key rotation.
    #[serde(default)]
    pub key_fingerprints: Option<Vec<String>>,
    /// rootd's public box key (base64, [`crate::sealed`]) as rootd told the
    /// agent; `None` when rootd did not answer or is older. The control
    /// plane pins the first one and refuses a changed one.
    #[serde(default)]
    pub rootd_box_key: Option<String>,
}

/// Most units one host watches (and one heartbeat reports).
pub const MAX_WATCHED_UNITS: usize = 64;

/// One watched systemd unit's state as `systemctl show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The full unit name, `nginx.service`.
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active_state: String,
    /// `running`, `dead`, `exited`, ...
    pub sub_state: String,
}

impl ServiceState {
    /// Checks a reported state: a valid unit name, and short states of
    /// letters, digits and '-' (at most 32 characters each).
    pub fn validate(&self) -> Result<(), String> {
        let name = crate::catalogue::parse_unit(&self.unit)?;
        if name.full() != self.unit || name.is_template() {
            return Err(format!(
                "unit {:?} must be a full unit name such as nginx.service",
                self.unit
            ));
        }
        for (field, v) in [
            ("load_state", &self.load_state),
            ("active_state", &self.active_state),
            ("sub_state", &self.sub_state),
        ] {
            if v.len() > 32 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!(
                    "{field} of {}: at most 32 letters, digits or '-'",
                    self.unit
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One line of a command's output, on `drover.out.<agent>.<command>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    pub command_id: String,
    pub seq: u64,
    pub stream: OutputStream,
    pub line: String,
    pub at: i64,
}

/// Core-NATS events on `drover.evt.>` for UI replicas and automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Agent {
        agent_id: String,
        hostname: String,
        status: String,
        last_seen: i64,
        #[serde(default)]
        metrics: Option<Metrics>,
        #[serde(default)]
        operations: Vec<ActiveOperation>,
    },
    Command {
        command_id: String,
        agent_id: String,
        action: String,
        status: CommandStatus,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        summary: String,
    },
    /// A staged agent rollout changed: its state, its current wave, or a
    /// host's state in it (the page re-reads the rollout).
    Rollout {
        rollout_id: String,
        /// `running`, `paused`, `halted`, `aborted`, `done`.
        state: String,
        /// 0 is the canary, 1.. the waves.
        current_wave: i32,
    },
    /// An agent release was published or yanked (the Releases page
    /// re-reads the list).
    Release {
        version: String,
        platform: String,
        yanked: bool,
    },
    /// An alert changed state (`pending`, `firing`, `resolved`, or was
    /// acknowledged): the live feed of the Alerts page and of automation, on
    /// `drover.evt.alert.<rule>`. Best effort like every event; the
    /// transition itself is durable (the control plane's `alert_transitions`
    /// table and the notification stream).
    Alert {
        alert_id: String,
        rule_id: String,
        rule_name: String,
        /// `pending`, `firing`, `resolved`.
        state: String,
        /// `info`, `warning`, `critical`.
        severity: String,
        /// The host the alert is about, when it is about one.
        #[serde(default)]
        agent_id: Option<String>,
        /// What the alert is about: an agent id, a unit on a host
        /// (`<agent>/<unit>`), a job id, or `fleet`.
        target: String,
        summary: String,
        /// When the state changed, ms since the epoch.
        at: i64,
    },
    /// A watched service's state changed on a host (the Services page and
    /// the host page re-read it).
    Service {
        agent_id: String,
        unit: String,
        /// systemd's `ActiveState`: `active`, `inactive`, `failed`, ...
        active_state: String,
        sub_state: String,
    },
}

/// Why a message was refused. Also the label operators see counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("agent id {0:?} is not a valid subject token")]
    BadAgentId(String),
    #[error("message names agent {inner:?} but arrived on the subject of {subject:?}")]
    SubjectMismatch { subject: String, inner: String },
    #[error("field {field} is invalid: {why}")]
    Field { field: &'static str, why: String },
}

fn check_token(id: &str) -> Result<(), EnvelopeError> {
    if crate::subjects::is_valid_token(id) {
        Ok(())
    } else {
        Err(EnvelopeError::BadAgentId(id.to_string()))
    }
}

fn check_subject(subject_agent: &str, inner: &str) -> Result<(), EnvelopeError> {
    if subject_agent == inner {
        Ok(())
    } else {
        Err(EnvelopeError::SubjectMismatch {
            subject: subject_agent.to_string(),
            inner: inner.to_string(),
        })
    }
}

/// Checks a host name as hosts send it (heartbeats, enrolment claims): 1 to
/// 253 bytes and no control character. A newline or an escape sequence in a
/// host name would forge lines in notifications and drive terminals that
/// print `drover agents`; everything else is escaped where it is shown.
pub fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1..=253 bytes".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters (newlines, escapes)".into());
    }
    Ok(())
}

impl Heartbeat {
    /// Checks what serde cannot: the heartbeat belongs to the subject's agent
    /// and its values are plausible.
    pub fn validate(&self, subject_agent: &str) -> Result<(), EnvelopeError> {
        check_token(&self.agent_id)?;
        check_subject(subject_agent, &self.agent_id)?;
        check_hostname(&self.hostname).map_err(|why| EnvelopeError::Field {
            field: "hostname",
            why,
        })?;
        if !(0.0..=100.0 * 1024.0).contains(&self.metrics.cpu_percent) {
            return Err(EnvelopeError::Field {
                field: "metrics.cpu_percent",
                why: format!("{} is out of range", self.metrics.cpu_percent),
            });
        }
        for (field, v) in [
            ("instance_id", &self.instance_id),
            ("machine_id", &self.machine_id),
            ("boot_id", &self.boot_id),
        ] {
            if v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(EnvelopeError::Field {
                    field,
                    why: "must be at most 64 letters, digits or '-'".into(),
                });
            }
        }
        for (field, v, max) in [
            ("agent_version", &self.agent_version, 64),
            ("agent_channel", &self.agent_channel, 64),
            // Stored and shown as sent; a NUL would also fail PostgreSQL's
            // write of the whole heartbeat batch.
            ("os", &self.os, 256),
            ("kernel", &self.kernel, 256),
        ] {
            if v.chars().count() > max || v.chars().any(char::is_control) {
                return Err(EnvelopeError::Field {
                    field,
                    why: format!("must be at most {max} characters, none a control character"),
                });
            }
        }
        if self.interval_secs == 0 || self.interval_secs > 3600 {
            return Err(EnvelopeError::Field {
                field: "interval_secs",
                why: "must be 1..=3600".into(),
            });
        }
        if self.watch_revision.len() > 64
            || !self.watch_revision.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(EnvelopeError::Field {
                field: "watch_revision",
                why: "must be at most 64 hex digits".into(),
            });
        }
        if self.services.len() > MAX_WATCHED_UNITS {
            return Err(EnvelopeError::Field {
                field: "services",
                why: format!("at most {MAX_WATCHED_UNITS} units"),
            });
        }
        // Full names, each once: `nginx` and `nginx.service` twice in one
        // report would be two writes of one row.
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            s.validate().map_err(|why| EnvelopeError::Field {
                field: "services",
                why,
            })?;
            if !seen.insert(s.unit.as_str()) {
                return Err(EnvelopeError::Field {
                    field: "services",
                    why: format!("{} is reported twice", s.unit),
                });
            }
        }
        Ok(())
    }
}

impl CommandResult {
    pub fn validate(
        &self,
        subject_agent: &str,
        subject_command: &str,
    ) -> Result<(), EnvelopeError> {
        check_token(&self.agent_id)?;
        check_subject(subject_agent, &self.agent_id)?;
        if self.command_id != subject_command {
            return Err(EnvelopeError::Field {
                field: "command_id",
                why: format!("{:?} does not match the subject", self.command_id),
            });
        }
        if self.status == CommandStatus::Queued {
            return Err(EnvelopeError::Field {
                field: "status",
                why: "an agent cannot report `queued`".into(),
            });
        }
        if self.summary.len() > 4096 {
            return Err(EnvelopeError::Field {
                field: "summary",
                why: "longer than 4096 bytes".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod service_tests;
