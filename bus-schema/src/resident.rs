//! Resident memory of the host daemons (`drover-agent`, `drover-rootd`):
//! after start-up, the daemon's own code and constant data that start-up
//! read in (the configuration parser, argument parsing, the TLS handshake,
//! and whatever the kernel mapped around each page that was run) are let
//! go, and from then on only the pages a daemon actually runs are mapped,
//! one at a time. Owns that one step and its delayed call
//! ([`settle_after_start`]); not when a daemon starts it (each daemon's
//! `run`).
//!
//! Linux maps a file page in by faulting, and on each fault it also maps the
//! pages already cached around it ("fault-around", 64 KiB) and reads ahead.
//! For a daemon that runs a little code and then sleeps, that made most of
//! its executable resident (issue 18 measured an idle agent at 9.7 MiB RSS,
//! 1 MiB of it its own data). [`settle`] asks the kernel:
//! - `MADV_RANDOM` on every file-backed mapping: no read-ahead from disk
//!   from now on (fault-around of pages already cached stays). A hint only:
//!   it changes no content, whatever the range holds by then;
//! - `MADV_DONTNEED` on the code (`r-xp`) of the libraries that were loaded
//!   with the program (recorded by [`note_start`] before any other thread
//!   exists; such a library is never unloaded, so its mapping is still the
//!   same when `madvise` runs, and a mapping not in that record, such as an
//!   NSS module `dlopen` may be mapping at that moment, is never dropped);
//! - `MADV_DONTNEED` on two mappings of the executable itself (matched by
//!   device and inode with `/proc/self/exe`): its code (`r-xp`) and its
//!   first read-only segment (`r--p` at file offset 0: headers, symbols,
//!   constants). The dynamic linker relocates neither (Rust binaries carry
//!   no text relocations; the relocated read-only data, RELRO, is a later
//!   segment at another offset), and neither can be written, so every page
//!   in them is the file's: dropped, it is mapped again from the page cache
//!   (or read from disk) when touched. As a second guard a mapping is only
//!   dropped when `smaps` shows no private page in memory or in swap
//!   (`Anonymous:` and `Swap:` both 0). The executable's mappings stay where
//!   exec put them for the life of the process, so the range read from
//!   `smaps` is still that mapping when `madvise` runs.
//!
//! Where `stat` and `smaps` name the file's device differently (btrfs
//! subvolumes, some overlay filesystems), nothing matches and nothing is
//! dropped: the daemon only gets the hint.
//!
//! The pages leave the process, not memory: they stay in the page cache,
//! clean, for the kernel to keep or reclaim (PSS does not change).

use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::mman::{madvise, MmapAdvise};

/// How long after start-up a daemon calls [`settle`]: start-up (connecting,
/// enrolment, the first heartbeat) is over by then on a healthy host.
pub const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Spawns, on the running tokio runtime, the daemon's one call to
/// [`settle`], [`SETTLE_AFTER`] from now, which logs what it did as
/// "start-up pages released" (`bench_real` waits for that line). What
/// `drover-agent` and `drover-rootd` call once start-up is done.
pub fn settle_after_start() {
    tokio::spawn(async {
        tokio::time::sleep(SETTLE_AFTER).await;
        let settled = settle();
        tracing::info!(
            advised = settled.advised,
            dropped = settled.dropped,
            "start-up pages released"
        );
    });
}

/// What [`settle`] did: mappings advised and mappings dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// File-backed mappings told `MADV_RANDOM`.
    pub advised: usize,
    /// The executable's mappings dropped with `MADV_DONTNEED`.
    pub dropped: usize,
}

/// One mapping of `/proc/self/smaps`: its range, permissions, file offset,
/// device (major, minor) and inode (0: not a file), and its private pages in
/// KiB, in memory (`Anonymous:`) and in swap (`Swap:`); `u64::MAX` until
/// the mapping's line says.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    offset: u64,
    dev: (u64, u64),
    inode: u64,
    anonymous_kib: u64,
    swap_kib: u64,
}

impl Mapping {
    /// Parses a header line `start-end perms offset major:minor inode
    /// [path]` (the path, which may hold spaces or end in " (deleted)", is
    /// not needed).
    fn parse_header(line: &str) -> Option<Mapping> {
        let mut f = line.split_whitespace();
        let (a, b) = f.next()?.split_once('-')?;
        let perms = f.next()?;
        let offset = u64::from_str_radix(f.next()?, 16).ok()?;
        let (major, minor) = f.next()?.split_once(':')?;
        let inode = f.next()?.parse().ok()?;
        Some(Mapping {
            start: usize::from_str_radix(a, 16).ok()?,
            end: usize::from_str_radix(b, 16).ok()?,
            perms: perms.to_string(),
            offset,
            dev: (
                u64::from_str_radix(major, 16).ok()?,
                u64::from_str_radix(minor, 16).ok()?,
            ),
            inode,
            anonymous_kib: u64::MAX,
            swap_kib: u64::MAX,
        })
    }

    /// Whether this is the executable's code or first read-only segment,
    /// with no private page anywhere: the only mappings [`settle`] drops.
    fn droppable(&self, exe: (u64, u64), exe_inode: u64) -> bool {
        let own = self.inode != 0 && self.inode == exe_inode && self.dev == exe;
        let pure = self.perms == "r-xp" || (self.perms == "r--p" && self.offset == 0);
        own && pure && self.anonymous_kib == 0 && self.swap_kib == 0
    }
}

/// Parses `/proc/self/smaps` text into mappings. A line that starts like a
/// header but does not parse ends the mapping before it, so its counters
/// never land on a neighbour.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.ends_with(':') {
            let value = line.split_whitespace().nth(1).and_then(|v| v.parse().ok());
            if let (Some(m), Some(kib)) = (current.as_mut(), value) {
                match first {
                    "Anonymous:" => m.anonymous_kib = kib,
                    "Swap:" => m.swap_kib = kib,
                    _ => {}
                }
            }
        } else if first.contains('-') {
            out.extend(current.take());
            current = Mapping::parse_header(line);
        }
    }
    out.extend(current);
    out
}

/// The code mappings (`r-xp`, file-backed) present when [`note_start`] ran:
/// the program's and the libraries loaded with it.
static AT_START: std::sync::OnceLock<Vec<Mapping>> = std::sync::OnceLock::new();

/// Records the code mappings the process starts with. Call first thing in
/// `main`, before any thread is started (later calls change nothing).
/// Without it, [`settle`] drops only the executable's own mappings.
pub fn note_start() {
    let code = std::fs::read_to_string("/proc/self/smaps")
        .map(|t| {
            parse_smaps(&t)
                .into_iter()
                .filter(|m| m.inode != 0 && m.perms == "r-xp")
                .collect()
        })
        .unwrap_or_default();
    let _ = AT_START.set(code);
}

impl Mapping {
    /// Whether this is library code recorded at start (same range, file
    /// and offset), with no private page anywhere.
    fn started_with(&self, at_start: &[Mapping]) -> bool {
        self.perms == "r-xp"
            && self.anonymous_kib == 0
            && self.swap_kib == 0
            && at_start.iter().any(|s| {
                (s.start, s.end, s.offset, s.dev, s.inode)
                    == (self.start, self.end, self.offset, self.dev, self.inode)
            })
    }
}

/// The executable's device (major, minor) and inode, from `/proc/self/exe`
/// (which still answers after the file was replaced on disk).
fn executable_identity() -> Option<((u64, u64), u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe").ok()?;
    let dev = meta.dev();
    Some((
        (nix::sys::stat::major(dev), nix::sys::stat::minor(dev)),
        meta.ino(),
    ))
}

/// Lets go of the executable's code and constant pages start-up mapped and
/// stops the kernel mapping more than a fault needs (see the module). Call
/// once, when the daemon is up and idle. Best effort: a mapping the kernel
/// refuses is left as it was; without `/proc` nothing is done.
pub fn settle() -> Settled {
    let mut done = Settled::default();
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return done;
    };
    let exe = executable_identity();
    for m in parse_smaps(&text) {
        if m.inode == 0 || m.end <= m.start {
            continue;
        }
        let Some(addr) = NonNull::new(m.start as *mut c_void) else {
            continue;
        };
        let len = m.end - m.start;
        // SAFETY: MADV_RANDOM is a paging hint; it changes no content of
        // whatever the range holds. MADV_DONTNEED is given only for the
        // executable's own code or first read-only segment, or the code of
        // a library loaded with the program (the module says why that range
        // is still that mapping, and why every page in it is the file's),
        // with no private page in memory or swap: each dropped page is
        // mapped again, identical, from the file when touched.
        unsafe {
            if madvise(addr, len, MmapAdvise::MADV_RANDOM).is_ok() {
                done.advised += 1;
            }
            let own = exe.is_some_and(|(dev, inode)| m.droppable(dev, inode));
            let library = m.started_with(AT_START.get().map_or(&[], Vec::as_slice));
            if (own || library) && madvise(addr, len, MmapAdvise::MADV_DONTNEED).is_ok() {
                done.dropped += 1;
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: ((u64, u64), u64) = ((0xfd, 0x01), 1234);

    const SAMPLE: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 1234 /usr/bin/drover agent (deleted)
Size:               1024 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c0100000-55d0c0500000 r-xp 00100000 fd:01 1234 /usr/bin/drover agent (deleted)
Anonymous:             0 kB
Swap:                  0 kB
55d0c0500000-55d0c0540000 r--p 00500000 fd:01 1234 /usr/bin/drover agent (deleted)
Anonymous:             0 kB
Swap:                256 kB
55d0c0540000-55d0c0550000 rw-p 00540000 fd:01 1234 /usr/bin/drover agent (deleted)
Anonymous:            64 kB
Swap:                  0 kB
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0 [heap]
Anonymous:           400 kB
Swap:                  0 kB
7f0000000000-7f0000100000 r-xp 00028000 fd:01 777 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
7f0000200000-7f0000300000 r--p 00000000 fd:02 1234 /mnt/other/file
Anonymous:             0 kB
Swap:                  0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
Swap:                  0 kB
";

    #[test]
    fn only_the_executables_pure_file_mappings_may_be_dropped() {
        let maps = parse_smaps(SAMPLE);
        assert_eq!(maps.len(), 8);
        let droppable: Vec<bool> = maps.iter().map(|m| m.droppable(EXE.0, EXE.1)).collect();
        // First read-only segment and code: yes. RELRO (swapped private
        // pages), data, heap, a library, another device's file with the
        // same inode, vdso: no.
        assert_eq!(
            droppable,
            [true, true, false, false, false, false, false, false]
        );
        assert_eq!(maps[1].start, 0x55d0c0100000);
        assert_eq!(maps[1].end, 0x55d0c0500000);
        assert_eq!(maps[1].offset, 0x100000);
    }

    #[test]
    fn library_code_is_dropped_only_when_it_is_the_mapping_recorded_at_start() {
        let maps = parse_smaps(SAMPLE);
        let libc = &maps[5];
        let at_start = parse_smaps(
            "7f0000000000-7f0000100000 r-xp 00028000 fd:01 777 /usr/lib/x86_64-linux-gnu/libc.so.6\n",
        );
        assert!(libc.started_with(&at_start));
        // Not recorded (a library `dlopen` mapped later): kept.
        assert!(!libc.started_with(&[]));
        // Same file at another range: kept.
        let moved = parse_smaps("7f0000000000-7f0000200000 r-xp 00028000 fd:01 777 /x\n");
        assert!(!libc.started_with(&moved));
        // The executable's read-only data is never library code.
        assert!(!maps[0].started_with(&maps));
    }

    #[test]
    fn a_mapping_without_its_counters_is_never_dropped() {
        let maps = parse_smaps("7f00-8f00 r-xp 00000000 fd:01 1234 /x\nSize: 4 kB\n");
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].anonymous_kib, u64::MAX);
        assert!(!maps[0].droppable(EXE.0, EXE.1));
        // Only `Anonymous:` known: swap unknown, still kept.
        let maps = parse_smaps("7f00-8f00 r-xp 00000000 fd:01 1234 /x\nAnonymous: 0 kB\n");
        assert!(!maps[0].droppable(EXE.0, EXE.1));
    }

    #[test]
    fn counters_after_a_header_that_does_not_parse_land_nowhere() {
        let text = "\
7f00-8f00 r--p 00500000 fd:01 1234 /x
Anonymous:            64 kB
Swap:                  0 kB
zz-yy r--p 00000000 fd:01 1234 /x
Anonymous:             0 kB
";
        let maps = parse_smaps(text);
        assert_eq!(maps.len(), 1);
        assert_eq!(
            maps[0].anonymous_kib, 64,
            "not overwritten by the next mapping's 0"
        );
    }

    /// `RssFile` of this process in KiB.
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn settling_this_process_drops_its_own_code_and_keeps_it_working() {
        let before: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        // Not first thing in main here (the test harness runs threads):
        // nothing `dlopen`s in these tests.
        note_start();
        let resident = rss_file_kib();
        let done = settle();
        assert!(done.advised > 0, "{done:?}");
        // This test binary's code and first read-only segment, and the
        // code of libc at least.
        assert!(done.dropped >= 3, "{done:?}");
        let after_settle = rss_file_kib();
        assert!(
            after_settle < resident,
            "file-backed RSS {resident} KiB before, {after_settle} KiB after"
        );
        // Code and constants come back from the file when touched.
        let after: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        assert_eq!(before, after);
        assert_eq!(format!("{:?}", Some(42)), "Some(42)");
    }
}
