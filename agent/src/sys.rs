//! `sys.*`: the actions the agent runs itself, without rootd.

use bus_schema::CommandStatus;
use serde_json::json;
use sysinfo::{Disks, System};

use crate::rootd_client::Outcome;

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
        "agent_version": env!("CARGO_PKG_VERSION"),
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
