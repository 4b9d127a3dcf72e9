//! What a benchmark reads about a process from `/proc`: resident memory and
//! CPU time used so far, the open-files limit, and percentiles of a sorted
//! sample. Owns reading and summarising numbers; not what is measured nor
//! the verdict (each bench prints its own "met"/"NOT met").

/// Resident set size of `pid` in KiB (`VmRSS`); 0 when unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) `pid` has used so far; 0 when unreadable.
pub fn cpu_secs(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0)
}

/// The `p` quantile (0..=1, nearest rank) of an ascending sample; NaN
/// when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Open files a simulator or nats-server needs beside one per agent
/// connection (stream files, the control plane's and a real agent's
/// connections, listeners), rounded up.
pub const OPEN_FILES_MARGIN: u64 = 1_000;

/// This process's soft limit of open files (`Max open files` in
/// `/proc/self/limits`), which the processes a test starts inherit; `None`
/// when unreadable or unlimited.
pub fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
