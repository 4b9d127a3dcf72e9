//! `sys.disk` and `sys.processes`: what the agent reads about its host
//! without root. Owns reading `/proc/self/mounts` + `statvfs(3)` and
//! sampling processes with `sysinfo`, and the shape of both results; it
//! does not dispatch commands or fit results to the budget (`commands`,
//! `result_fit`). Nothing here runs a program.

use std::collections::BTreeMap;
use std::time::Duration;

use bus_schema::catalogue::sys::{DiskParams, ProcessSort, ProcessesParams, CMDLINE_MAX_BYTES};
use bus_schema::Outcome;
use serde::Serialize;
use serde_json::json;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

/// Filesystem types that hold no data of their own; `sys.disk` leaves them
/// out unless asked for `all`.
pub const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// One mounted filesystem. Bytes as `df -B1` counts them: `size` is the
/// total, `used` = total − free, `available` what an unprivileged user may
/// still write (root's reserve not counted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mount {
    pub mount: String,
    pub device: String,
    pub fs_type: String,
    pub read_only: bool,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_free: u64,
}

/// Undoes the octal escapes of `/proc/self/mounts` (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of `/proc/self/mounts` text as (device, mount point, type,
/// options), unescaped; a mount point mounted over keeps its last entry.
pub fn parse_mounts(text: &str) -> Vec<(String, String, String, String)> {
    let mut by_point: BTreeMap<String, (String, String, String, String)> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let point = unescape(f[1]);
        by_point.insert(
            point.clone(),
            (unescape(f[0]), point, f[2].to_string(), f[3].to_string()),
        );
    }
    by_point.into_values().collect()
}

/// How long one mount's `statvfs` may take: a hung network mount (a hard
/// NFS mount whose server is gone) blocks it in the kernel, uninterruptibly.
pub const STATVFS_TIMEOUT: Duration = Duration::from_secs(2);

/// `statvfs(2)` on a blocking thread, given up after [`STATVFS_TIMEOUT`]
/// (the thread may stay stuck in the kernel; the agent's runtime does not).
async fn statvfs_bounded(point: &str) -> Result<nix::sys::statvfs::Statvfs, String> {
    let path = point.to_string();
    match tokio::time::timeout(
        STATVFS_TIMEOUT,
        tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(path.as_str())),
    )
    .await
    {
        Ok(Ok(Ok(st))) => Ok(st),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("statvfs did not finish: {e}")),
        Err(_) => Err(format!(
            "no answer within {} s (a hung network mount?)",
            STATVFS_TIMEOUT.as_secs()
        )),
    }
}

/// `sys.disk`. Every `statvfs` runs off the runtime's threads, bounded in
/// time, so a hung mount is reported `unreadable` instead of stopping the
/// agent's heartbeats and commands.
pub async fn disk(p: &DiskParams) -> Outcome {
    let text = match std::fs::read_to_string("/proc/self/mounts") {
        Ok(t) => t,
        Err(e) => return Outcome::failed(format!("cannot read /proc/self/mounts: {e}")),
    };
    let mut mounts = Vec::new();
    let mut skipped = 0usize;
    let mut unreadable = Vec::new();
    for (device, point, fs_type, opts) in parse_mounts(&text) {
        if !p.all && PSEUDO_FS.contains(&fs_type.as_str()) {
            skipped += 1;
            continue;
        }
        let st = match statvfs_bounded(&point).await {
            Ok(st) => st,
            Err(e) => {
                unreadable.push(json!({"mount": point, "error": e}));
                continue;
            }
        };
        let frag = st.fragment_size() as u64;
        let size = st.blocks() as u64 * frag;
        let free = st.blocks_free() as u64 * frag;
        let files = st.files() as u64;
        let ffree = st.files_free() as u64;
        mounts.push(Mount {
            mount: point,
            device,
            fs_type,
            read_only: opts.split(',').any(|o| o == "ro"),
            size_bytes: size,
            used_bytes: size.saturating_sub(free),
            available_bytes: st.blocks_available() as u64 * frag,
            inodes_total: files,
            inodes_used: files.saturating_sub(ffree),
            inodes_free: ffree,
        });
    }
    let fullest = mounts
        .iter()
        .filter(|m| m.size_bytes > 0)
        .max_by_key(|m| m.used_bytes * 1000 / m.size_bytes)
        .map(|m| {
            format!(
                "; fullest {} at {}%",
                m.mount,
                m.used_bytes * 100 / m.size_bytes
            )
        })
        .unwrap_or_default();
    Outcome::succeeded(
        format!("{} filesystems{fullest}", mounts.len()),
        json!({
            "mounts": mounts,
            "pseudo_skipped": skipped,
            "unreadable": unreadable,
        }),
    )
}

/// One process of `sys.processes`.
#[derive(Debug, Clone, Serialize)]
pub struct Proc {
    pub pid: u32,
    /// The owner's user name, or the uid as text when it has none.
    pub user: String,
    pub name: String,
    /// The command line, arguments joined by spaces, at most
    /// [`CMDLINE_MAX_BYTES`] (cut ones end in `…`).
    pub command: String,
    /// Percent of one core over the sample (may exceed 100).
    pub cpu_percent: f32,
    pub rss_bytes: u64,
}

/// `s` cut to at most `max` bytes at a character boundary, `…` marking a cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// `sys.processes`: two samples `sysinfo`'s minimum interval apart (CPU use
/// is a difference), then the top `limit`. Sampled on a blocking thread:
/// reading `/proc` and resolving user names (NSS: LDAP, SSSD) can block, and
/// must not stop the agent's runtime; the command's timeout still applies.
pub async fn processes(p: &ProcessesParams) -> Outcome {
    let p = p.clone();
    tokio::task::spawn_blocking(move || processes_blocking(&p))
        .await
        .unwrap_or_else(|e| Outcome::failed(format!("sampling processes did not finish: {e}")))
}

fn processes_blocking(p: &ProcessesParams) -> Outcome {
    let kind = ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .with_cmd(UpdateKind::OnlyIfNotSet)
        .with_user(UpdateKind::OnlyIfNotSet);
    let mut sys = System::new();
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(200)));
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    let mut all: Vec<Proc> = sys
        .processes()
        .iter()
        .filter(|(_, pr)| pr.thread_kind().is_none())
        .map(|(pid, pr)| {
            let cmd: Vec<String> = pr
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            Proc {
                pid: pid.as_u32(),
                user: pr.user_id().map(|u| user_name(**u)).unwrap_or_default(),
                name: cut(&pr.name().to_string_lossy(), 64),
                command: cut(&cmd.join(" "), CMDLINE_MAX_BYTES),
                cpu_percent: pr.cpu_usage(),
                rss_bytes: pr.memory(),
            }
        })
        .collect();
    let total = all.len();
    match p.sort {
        ProcessSort::Cpu => all.sort_by(|a, b| {
            b.cpu_percent
                .total_cmp(&a.cpu_percent)
                .then(b.rss_bytes.cmp(&a.rss_bytes))
        }),
        ProcessSort::Memory => all.sort_by(|a, b| {
            b.rss_bytes
                .cmp(&a.rss_bytes)
                .then(b.cpu_percent.total_cmp(&a.cpu_percent))
        }),
    }
    all.truncate(p.limit as usize);
    let sort = match p.sort {
        ProcessSort::Cpu => "cpu",
        ProcessSort::Memory => "memory",
    };
    Outcome::succeeded(
        format!("top {} of {total} processes by {sort}", all.len()),
        json!({ "sort": sort, "total": total, "processes": all }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_parsed_and_unescaped() {
        let text = "/dev/vda1 / ext4 rw,relatime 0 0\n\
                    proc /proc proc rw 0 0\n\
                    /dev/vdb /mnt/my\\040disk xfs ro,noatime 0 0\n\
                    tmpfs / tmpfs rw 0 0\n\
                    short line\n";
        let m = parse_mounts(text);
        assert_eq!(m.len(), 3);
        let root = m.iter().find(|x| x.1 == "/").unwrap();
        assert_eq!(root.2, "tmpfs", "the last mount over a point wins");
        assert!(m.iter().any(|x| x.1 == "/mnt/my disk" && x.2 == "xfs"));
    }

    #[test]
    fn command_lines_are_cut_at_a_boundary() {
        assert_eq!(cut("abc", 10), "abc");
        let long = "é".repeat(400);
        let c = cut(&long, 512);
        assert!(c.len() <= 512 && c.ends_with('…'));
    }
}
