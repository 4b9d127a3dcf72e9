//! `sys.*`: the actions the agent runs itself, without rootd (`sys.ping`,
//! `sys.info`, `sys.cancel`). Owns what each action does and returns; does
//! not know how commands are fetched, timed out or reported (`commands`,
//! `report`).

use bus_schema::CommandStatus;
use serde_json::json;
use sysinfo::{Disks, System};

use crate::state::Agent;
use bus_schema::Outcome;

/// How long a cancel for a command not yet seen is remembered: the longest
/// a command may wait in its queue.
const PRECANCEL_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

pub fn ping(agent_id: &str) -> Outcome {
    Outcome {
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: "pong".into(),
        data: json!({ "agent_id": agent_id, "at": bus_schema::now_ms() }),
    }
}

pub fn info() -> Outcome {
    let mut sys = System::new();
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let disks: Vec<_> = Disks::new_with_refreshed_list()
        .list()
        .iter()
        .map(|d| {
            json!({
                "mount": d.mount_point().display().to_string(),
                "fs": d.file_system().to_string_lossy(),
                "total_bytes": d.total_space(),
                "available_bytes": d.available_space(),
            })
        })
        .collect();
    let data = json!({
        "hostname": crate::metrics::hostname(),
        "os": crate::metrics::os(),
        "os_id": System::distribution_id(),
        "os_version": System::os_version(),
        "kernel": crate::metrics::kernel(),
        "arch": System::cpu_arch(),
        "cpus": sys.cpus().len(),
        "cpu_brand": sys.cpus().first().map(|c| c.brand().to_string()),
        "mem_total_bytes": sys.total_memory(),
        "uptime_secs": System::uptime(),
        "disks": disks,
        "agent_version": crate::version::running().version,
        "agent_channel": crate::version::running().channel,
        "agent_build_version": crate::version::BUILD_VERSION,
        "protocol_version": bus_schema::signing::PROTOCOL_VERSION,
    });
    Outcome {
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: format!(
            "{} — {} — {} CPUs",
            crate::metrics::hostname(),
            crate::metrics::os(),
            sys.cpus().len()
        ),
        data,
    }
}

/// `sys.cancel`: stops the command `target` if it is in hand here (waiting
/// for a slot or running). Otherwise the journal remembers the cancel (for
/// [`PRECANCEL_KEEP_MS`]), so the command, if it comes, ends `cancelled`
/// without running. Always succeeds; `data.was_running` says which case it
/// was.
pub async fn cancel(agent: &Agent, target: &str) -> Outcome {
    let target = target.to_string();
    let running = agent.running.lock().unwrap().get(&target).cloned();
    if let Some(t) = running {
        t.cancel();
        return Outcome {
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            summary: format!("stopped {target}"),
            data: json!({"command_id": target, "was_running": true}),
        };
    }
    // Not running: maybe not fetched yet. Remember it, so that if it comes
    // it ends `cancelled` without running.
    let remembered = {
        let mut j = agent.journal.lock().await;
        // Taken by an earlier run of the agent but never started: it will
        // not start.
        j.precancel_waiting(&target).unwrap_or(false)
            || j.precancel(&target, bus_schema::now_ms() + PRECANCEL_KEEP_MS)
                .unwrap_or(false)
    };
    Outcome {
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: if remembered {
            format!("{target} is not running here; it will not start")
        } else {
            format!("{target} already finished here")
        },
        data: json!({"command_id": target, "was_running": false}),
    }
}
