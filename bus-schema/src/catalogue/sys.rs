//! `sys`: host-wide actions. The unprivileged agent runs `sys.ping`,
//! `sys.info`, `sys.cancel`, `sys.disk` and `sys.processes` itself; `sys.reboot` and `sys.reboot_cancel`
//! run in rootd (they need root), which runs its `shutdown_program`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::listing::check_limit;
use super::{ActionSpec, NoParams, Params, RunsIn};

/// Params of `sys.cancel`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelParams {
    /// The running command to stop.
    pub command_id: String,
}
impl Params for CancelParams {}

/// Longest wall message `sys.reboot` accepts, in characters.
pub const REBOOT_MESSAGE_MAX: usize = 200;
/// Longest delay `sys.reboot` accepts, in minutes (a day).
pub const REBOOT_DELAY_MAX: u32 = 1440;
/// The wall message when none is given.
pub const REBOOT_MESSAGE_DEFAULT: &str = "Drover: reboot for updates";

/// Params of `sys.reboot`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebootParams {
    /// Minutes from now until the reboot, 0 (at once) to 1440; default 1,
    /// which gives logged-in users a warning.
    #[serde(default = "default_delay")]
    pub delay_minutes: u32,
    /// The message shown to logged-in users: at most 200 printable
    /// characters, no control characters (no newline), not starting with
    /// `-`; default "Drover: reboot for updates". Empty: no message.
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_delay() -> u32 {
    1
}
fn default_message() -> String {
    REBOOT_MESSAGE_DEFAULT.to_string()
}

impl Params for RebootParams {
    fn check(&self) -> Result<(), String> {
        if self.delay_minutes > REBOOT_DELAY_MAX {
            return Err(format!(
                "delay_minutes: {} is out of range; give 0 (at once) to {REBOOT_DELAY_MAX} minutes",
                self.delay_minutes
            ));
        }
        let n = self.message.chars().count();
        if n > REBOOT_MESSAGE_MAX {
            return Err(format!(
                "message: {n} characters is too long; at most {REBOOT_MESSAGE_MAX}"
            ));
        }
        if self.message.chars().any(char::is_control) {
            return Err(
                "message: control characters (newline, tab, escape...) are not allowed; \
                 give one line of printable text"
                    .into(),
            );
        }
        if self.message.starts_with('-') {
            return Err("message: must not start with '-' (it would read as an option)".into());
        }
        Ok(())
    }
}

/// Params of `sys.disk`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskParams {
    /// Also list pseudo filesystems (proc, sysfs, tmpfs, cgroup, overlay...).
    /// Default false: only filesystems that hold data.
    #[serde(default)]
    pub all: bool,
}
impl Params for DiskParams {}

/// What `sys.processes` sorts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessSort {
    /// CPU use, in percent of one core, over a short sample.
    #[default]
    Cpu,
    /// Resident memory (RSS).
    Memory,
}

/// Most processes `sys.processes` returns.
pub const PROCESSES_MAX: u32 = 100;
/// Longest command line `sys.processes` returns per process, in bytes (cut
/// at a character boundary, marked with `…`).
pub const CMDLINE_MAX_BYTES: usize = 512;

/// Params of `sys.processes`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessesParams {
    /// `cpu` (default) or `memory`.
    #[serde(default)]
    pub sort: ProcessSort,
    /// How many processes, 1 to 100 (default 20).
    #[serde(default = "default_processes")]
    pub limit: u32,
}
fn default_processes() -> u32 {
    20
}
impl Params for ProcessesParams {
    fn check(&self) -> Result<(), String> {
        check_limit(self.limit, PROCESSES_MAX)
    }
}

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
        ActionSpec::new::<RebootParams>(
            "sys.reboot",
            "Reboot the host after delay_minutes (default 1), warning logged-in users with message.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<NoParams>(
            "sys.reboot_cancel",
            "Cancel a pending reboot (or shutdown) of the host.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<DiskParams>(
            "sys.disk",
            "Mounted filesystems with size, used and available bytes and inodes; `all` adds pseudo filesystems.",
            RunsIn::Agent,
            30,
        ),
        ActionSpec::new::<ProcessesParams>(
            "sys.processes",
            "The top processes by CPU or memory: pid, user, name, command line (cut), CPU %, RSS bytes.",
            RunsIn::Agent,
            30,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{lookup, parse};
    use serde_json::json;

    #[test]
    fn reboot_params_are_checked() {
        let p: RebootParams = parse(&json!({})).unwrap();
        assert_eq!(p.delay_minutes, 1);
        assert_eq!(p.message, REBOOT_MESSAGE_DEFAULT);
        let p: RebootParams =
            parse(&json!({"delay_minutes": 1440, "message": "a; $(rm -rf /) `x` | y"})).unwrap();
        assert_eq!(p.delay_minutes, 1440);
        let bad = |v| parse::<RebootParams>(&v).unwrap_err();
        assert!(bad(json!({"delay_minutes": 1441})).contains("0 (at once) to 1440"));
        assert!(bad(json!({"delay_minutes": -1})).contains("invalid value"));
        assert!(bad(json!({"message": "two\nlines"})).contains("control characters"));
        assert!(bad(json!({"message": "x".repeat(201)})).contains("at most 200"));
        assert!(bad(json!({"message": "-k"})).contains("option"));
        assert!(bad(json!({"reason": "x"})).contains("unknown field"));
        parse::<RebootParams>(&json!({"message": "é".repeat(200)})).unwrap();
        assert_eq!(lookup("sys.reboot").unwrap().runs_in, RunsIn::Rootd);
        assert_eq!(lookup("sys.reboot_cancel").unwrap().runs_in, RunsIn::Rootd);
        assert_eq!(lookup("sys.ping").unwrap().runs_in, RunsIn::Agent);
    }

    #[test]
    fn disk_and_processes_params_are_checked() {
        assert!(!parse::<DiskParams>(&json!({})).unwrap().all);
        assert!(parse::<DiskParams>(&json!({"all": true})).unwrap().all);
        assert!(parse::<DiskParams>(&json!({"mount": "/"}))
            .unwrap_err()
            .contains("unknown field"));
        let p: ProcessesParams = parse(&json!({})).unwrap();
        assert_eq!((p.sort, p.limit), (ProcessSort::Cpu, 20));
        let p: ProcessesParams = parse(&json!({"sort": "memory", "limit": 100})).unwrap();
        assert_eq!(p.sort, ProcessSort::Memory);
        let bad = |v| parse::<ProcessesParams>(&v).unwrap_err();
        assert!(bad(json!({"limit": 101})).contains("1 to 100"));
        assert!(bad(json!({"limit": 0})).contains("1 to 100"));
        assert!(bad(json!({"sort": "pid"})).contains("unknown variant"));
        assert!(bad(json!({"user": "root"})).contains("unknown field"));
        assert_eq!(lookup("sys.disk").unwrap().runs_in, RunsIn::Agent);
        assert_eq!(lookup("sys.processes").unwrap().runs_in, RunsIn::Agent);
    }
}
