//! Resident memory of the host daemons (`drover-agent`, `drover-rootd`):
//! after start-up, the code and read-only data that start-up read in (the
//! configuration parser, argument parsing, the TLS handshake, and whatever
//! the kernel mapped around each page that was run) are let go, and from
//! then on only the pages a daemon actually runs are mapped, one at a time.
//! Owns that one step; not when a daemon calls it (each daemon's `run`).
//!
//! Linux maps a file page in by faulting, and on each fault it also maps the
//! pages already cached around it ("fault-around", 64 KiB) and reads ahead.
//! For a daemon that runs a little code and then sleeps, that made most of
//! its executable resident (issue 18 measured an idle agent at 9.7 MiB RSS,
//! 1 MiB of it its own data). [`settle`] asks the kernel:
//! - `MADV_RANDOM` on every file-backed mapping: no fault-around and no
//!   read-ahead from now on, so a fault maps the one page it needs;
//! - `MADV_DONTNEED` on the file-backed mappings that hold nothing but the
//!   file: not writable, and no private (copied) page, which `smaps` reports
//!   as `Anonymous: 0 kB`. Such a page is the file's content, so dropping it
//!   loses nothing: touched again, it is mapped again from the page cache
//!   (or read from disk). Writable mappings and the relocated read-only data
//!   (RELRO, which holds private pages) are never dropped.
//!
//! The pages leave the process, not memory: they stay in the page cache,
//! clean, for the kernel to keep or reclaim.

use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::mman::{madvise, MmapAdvise};

/// How long after start-up a daemon calls [`settle`]: start-up (connecting,
/// enrolment, the first heartbeat) is over by then on a healthy host.
pub const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`settle`] did: mappings advised and mappings dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// File-backed mappings told `MADV_RANDOM`.
    pub advised: usize,
    /// Read-only file-backed mappings without private pages, dropped with
    /// `MADV_DONTNEED`.
    pub dropped: usize,
}

/// One mapping of `/proc/self/smaps`: its range, whether it is writable,
/// whether it maps a file, and its private (anonymous) KiB.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    file_backed: bool,
    anonymous_kib: u64,
}

/// Parses `/proc/self/smaps` text into mappings. A header line is
/// `start-end perms offset dev inode [path]`; an inode of 0 is not a file
/// (heap, stack, `[vdso]`, anonymous memory). Lines it does not know are
/// skipped.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            out.push(Mapping {
                start,
                end,
                writable: perms.as_bytes().get(1) == Some(&b'w'),
                file_backed: inode != "0",
                // Unknown until the mapping's `Anonymous:` line says 0.
                anonymous_kib: u64::MAX,
            });
        } else if first == "Anonymous:" {
            if let (Some(m), Some(Ok(kib))) = (out.last_mut(), fields.next().map(str::parse)) {
                m.anonymous_kib = kib;
            }
        }
    }
    out
}

/// Lets go of the file pages start-up mapped and stops the kernel mapping
/// more than a fault needs (see the module). Call once, when the daemon is
/// up and idle. Best effort: a mapping the kernel refuses is left as it
/// was; without `/proc` nothing is done.
pub fn settle() -> Settled {
    let mut done = Settled::default();
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return done;
    };
    for m in parse_smaps(&text) {
        if !m.file_backed || m.end <= m.start {
            continue;
        }
        let Some(addr) = NonNull::new(m.start as *mut c_void) else {
            continue;
        };
        let len = m.end - m.start;
        // SAFETY: the range is a whole mapping of this process as the kernel
        // listed it. MADV_RANDOM changes only paging hints. MADV_DONTNEED is
        // given only for a mapping that cannot be written and has no private
        // page, so every page in it is the file's and is mapped again from
        // the file when touched: no content is lost.
        unsafe {
            if madvise(addr, len, MmapAdvise::MADV_RANDOM).is_ok() {
                done.advised += 1;
            }
            if !m.writable
                && m.anonymous_kib == 0
                && madvise(addr, len, MmapAdvise::MADV_DONTNEED).is_ok()
            {
                done.dropped += 1;
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 1234 /usr/bin/drover-agent
Size:               1024 kB
Anonymous:             0 kB
55d0c0100000-55d0c0500000 r-xp 00100000 fd:01 1234 /usr/bin/drover-agent
Anonymous:             0 kB
55d0c0500000-55d0c0540000 r--p 00500000 fd:01 1234 /usr/bin/drover-agent
Anonymous:           256 kB
55d0c0540000-55d0c0550000 rw-p 00540000 fd:01 1234 /usr/bin/drover-agent
Anonymous:            64 kB
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0 [heap]
Anonymous:           400 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_read_only_file_mappings_without_private_pages_may_be_dropped() {
        let maps = parse_smaps(SAMPLE);
        assert_eq!(maps.len(), 6);
        let droppable: Vec<bool> = maps
            .iter()
            .map(|m| m.file_backed && !m.writable && m.anonymous_kib == 0)
            .collect();
        // rodata, text: yes. RELRO (private pages), data, heap, vdso: no.
        assert_eq!(droppable, [true, true, false, false, false, false]);
        assert_eq!(maps[1].start, 0x55d0c0100000);
        assert_eq!(maps[1].end, 0x55d0c0500000);
    }

    #[test]
    fn a_mapping_without_an_anonymous_line_is_never_dropped() {
        let maps = parse_smaps("7f00-8f00 r-xp 00000000 fd:01 99 /lib/x.so\nSize: 4 kB\n");
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].anonymous_kib, u64::MAX);
    }

    /// `RssFile` of this process in KiB.
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn settling_this_process_drops_its_file_pages_and_keeps_it_working() {
        let before: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        let resident = rss_file_kib();
        let done = settle();
        assert!(done.advised > 0, "{done:?}");
        // At least this test binary's code and read-only data.
        assert!(done.dropped >= 2, "{done:?}");
        let after_settle = rss_file_kib();
        assert!(
            after_settle < resident,
            "file-backed RSS {resident} KiB before, {after_settle} KiB after"
        );
        // Code and read-only data come back from the file when touched.
        let after: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        assert_eq!(before, after);
        assert_eq!(format!("{:?}", Some(42)), "Some(42)");
    }
}
