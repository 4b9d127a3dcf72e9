//! Host metrics for the heartbeat: CPU and memory from sysinfo (only those
//! two are refreshed in the long-lived `System`, no process table), the root
//! filesystem from one `statvfs`, so a heartbeat costs a few reads of
//! `/proc`. Owns the samples, not when they are taken (`heartbeat`).

use bus_schema::Metrics;
use sysinfo::{Disks, System};

pub struct Collector {
    sys: System,
}

impl Collector {
    pub fn new() -> Self {
        let mut sys = System::new();
        // CPU usage is a difference between two samples; take the first now.
        sys.refresh_cpu_usage();
        Self { sys }
    }

    pub fn sample(&mut self) -> Metrics {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        let (disk_total, disk_avail) = root_disk();
        let load = System::load_average();
        Metrics {
            cpu_percent: self.sys.global_cpu_usage().clamp(0.0, 100.0),
            mem_used_bytes: self.sys.used_memory(),
            mem_total_bytes: self.sys.total_memory(),
            disk_used_bytes: disk_total.saturating_sub(disk_avail),
            disk_total_bytes: disk_total,
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            uptime_secs: System::uptime(),
        }
    }
}

/// Total and available bytes of the filesystem mounted at `/`: one
/// `statvfs("/")` per heartbeat (listing every mount is the fallback, the
/// largest one when `/` is not listed, as in some containers).
// `statvfs`'s field types are u64 on 64-bit Linux only: the casts stay.
#[allow(clippy::unnecessary_cast)]
fn root_disk() -> (u64, u64) {
    if let Ok(v) = nix::sys::statvfs::statvfs("/") {
        let unit = v.fragment_size() as u64;
        let total = v.blocks() as u64 * unit;
        if total > 0 {
            return (total, v.blocks_available() as u64 * unit);
        }
    }
    let disks = Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .find(|d| d.mount_point() == std::path::Path::new("/"))
        .or_else(|| disks.list().iter().max_by_key(|d| d.total_space()))
        .map(|d| (d.total_space(), d.available_space()))
        .unwrap_or((0, 0))
}

pub fn hostname() -> String {
    System::host_name().unwrap_or_else(|| "unknown".into())
}

pub fn os() -> String {
    System::long_os_version().unwrap_or_else(|| "Linux".into())
}

pub fn kernel() -> String {
    System::kernel_version().unwrap_or_default()
}
