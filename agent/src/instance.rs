//! Which process on which machine is speaking for this agent id: a random
//! instance id per start, the machine-id and the boot id, sent in every
//! heartbeat so the control plane can tell two machines sharing one copied
//! state directory apart, and the routing headers that leave a command to one
//! of them. It decides nothing about conflicts (the control plane does).

use bus_schema::codec::{NOT_INSTANCE_HEADER, NOT_MACHINE_HEADER};

use crate::config::AgentConfig;

pub struct Instance {
    /// 32 hex digits, new at every start.
    pub instance_id: String,
    /// The machine-id, or empty when unreadable or not a plain token.
    pub machine_id: String,
    /// The boot id, or empty when unreadable.
    pub boot_id: String,
}

/// Keeps a value only when it is a plain token the heartbeat accepts.
fn token(s: &str) -> String {
    let s = s.trim();
    if s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        s.to_string()
    } else {
        String::new()
    }
}

impl Instance {
    pub fn detect(cfg: &AgentConfig) -> Self {
        let machine_id = crate::enroll::machine_id(cfg)
            .map(|m| token(&m))
            .unwrap_or_default();
        let boot_id_file = cfg
            .boot_id_file
            .as_deref()
            .unwrap_or(std::path::Path::new("/proc/sys/kernel/random/boot_id"));
        let boot_id = std::fs::read_to_string(boot_id_file)
            .map(|b| token(&b))
            .unwrap_or_default();
        Self {
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            machine_id,
            boot_id,
        }
    }

    /// Whether a command message's routing headers leave it to this
    /// process: `Err` says which of this process's ids an operator refused.
    pub fn allowed(&self, headers: Option<&async_nats::HeaderMap>) -> Result<(), String> {
        let Some(h) = headers else { return Ok(()) };
        if let Some(m) = h.get(NOT_MACHINE_HEADER) {
            if !self.machine_id.is_empty() && m.as_str() == self.machine_id {
                return Err(format!("machine-id {}", self.machine_id));
            }
        }
        if let Some(i) = h.get(NOT_INSTANCE_HEADER) {
            if i.as_str() == self.instance_id {
                return Err(format!("agent process {}", self.instance_id));
            }
        }
        Ok(())
    }
}
