//! Running a program for an action: argv only (never a shell), its own process
//! group, output streamed line by line, a deadline enforced with TERM and then
//! KILL to the whole group.
//!
//! Output is bytes, not text: [`LineReader`] splits it at `\n` and decodes
//! each line lossily, so a Latin-1 or otherwise invalid line shows U+FFFD
//! where it is invalid and never stops the reader (a stopped reader closes
//! the pipe, and the child dies of SIGPIPE halfway through). The live
//! stream gets lines scrubbed of the action's secrets and then cut to at
//! most [`MAX_LINE_BYTES`] (longer ones in pieces, so a secret is never
//! split before it is masked); [`Finished::stdout`] keeps whole lines for
//! the actions' parsers.

use std::process::Stdio;
use std::time::Duration;

use bus_schema::OutputStream;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// How a program ended.
#[derive(Debug)]
pub struct Finished {
    /// `None` when it was killed by a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Stopped because the agent cancelled the command or hung up.
    pub cancelled: bool,
    /// Every stdout line, whole however long, for actions that parse their
    /// output.
    pub stdout: Vec<String>,
    /// The last [`STDERR_TAIL`] non-blank stderr lines (as sent to the sink:
    /// scrubbed, at most [`MAX_LINE_BYTES`] each), for a summary.
    pub stderr_tail: Vec<String>,
}

/// Longest line passed on to the live stream, in bytes; a longer one comes
/// in pieces of at most this size (nothing is dropped). Keeps every frame
/// to the agent and every message on the bus far below their limits.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Longest line held whole, in bytes: secrets are scrubbed from lines this
/// long before they are cut for the live stream (a longer line is read in
/// parts of this size, so memory stays bounded per stream).
pub const MAX_HELD_LINE_BYTES: usize = 1024 * 1024;

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
pub fn pieces(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    out.push(rest.to_string());
    out
}

/// How many stderr lines [`Finished::stderr_tail`] keeps.
pub const STDERR_TAIL: usize = 3;

/// Lines of a child's output, read as bytes and decoded lossily.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    /// The start of a UTF-8 sequence cut by a split, for the next piece.
    carry: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Lines of at most `max` bytes (at least 4).
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::new(inner),
            max: max.max(4),
            carry: Vec::new(),
        }
    }

    /// The next piece of output: a line without its `\n` (or `\r\n`), or
    /// part of a line longer than the maximum, cut before a UTF-8 sequence
    /// that straddles the cut; the flag says whether it ends its line.
    /// Invalid UTF-8 becomes U+FFFD. `None` at the end of the output or on
    /// a read error (the reader cannot go on either way).
    pub async fn next_piece(&mut self) -> Option<(String, bool)> {
        let mut buf = std::mem::take(&mut self.carry);
        while let Ok(avail) = self.inner.fill_buf().await {
            if avail.is_empty() {
                break;
            }
            let room = self.max.saturating_sub(buf.len());
            let window = &avail[..avail.len().min(room)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                buf.extend_from_slice(&window[..i]);
                self.inner.consume(i + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Some((String::from_utf8_lossy(&buf).into_owned(), true));
            }
            let n = window.len();
            buf.extend_from_slice(window);
            self.inner.consume(n);
            if buf.len() >= self.max {
                let keep = cut_sequence_len(&buf);
                if keep < buf.len() {
                    self.carry = buf.split_off(buf.len() - keep);
                }
                return Some((String::from_utf8_lossy(&buf).into_owned(), false));
            }
        }
        // End of output: what is left is the last line (without `\n`).
        (!buf.is_empty()).then(|| (String::from_utf8_lossy(&buf).into_owned(), true))
    }

    /// [`Self::next_piece`] without the flag.
    pub async fn next_line(&mut self) -> Option<String> {
        self.next_piece().await.map(|(text, _)| text)
    }
}

/// How many bytes at the end of `buf` are the start of a UTF-8 sequence
/// that is not complete yet (0 when none).
fn cut_sequence_len(buf: &[u8]) -> usize {
    for back in 1..=3.min(buf.len()) {
        let b = buf[buf.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// Lines of output as they come, for the agent's live stream.
pub type LineSink = mpsc::Sender<(OutputStream, String)>;

pub struct Program<'a> {
    pub argv: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
    pub grace: Duration,
    pub cancel: &'a tokio_util::sync::CancellationToken,
    /// Values masked (`********`) in every line sent to the sink, before
    /// lines are cut for the live stream. Not applied to
    /// [`Finished::stdout`].
    pub secrets: &'a [String],
}

pub async fn run(p: Program<'_>, sink: &LineSink) -> std::io::Result<Finished> {
    let (prog, args) = p.argv.split_first().expect("argv has a program");
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in p.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    let out_sink = sink.clone();
    let secrets = p.secrets.to_vec();
    let out_task = tokio::spawn(async move {
        // The live stream gets scrubbed, bounded pieces; the actions parse
        // whole lines (`nft -j` prints its JSON as one line of any length).
        let mut lines = LineReader::new(stdout, MAX_HELD_LINE_BYTES);
        let mut all = Vec::new();
        let mut whole = String::new();
        while let Some((piece, ends)) = lines.next_piece().await {
            whole.push_str(&piece);
            if ends {
                all.push(std::mem::take(&mut whole));
            }
            let shown = bus_schema::manifest::scrub(&piece, &secrets);
            for part in pieces(&shown, MAX_LINE_BYTES) {
                let _ = out_sink.send((OutputStream::Stdout, part)).await;
            }
        }
        if !whole.is_empty() {
            all.push(whole);
        }
        all
    });
    let err_sink = sink.clone();
    let secrets = p.secrets.to_vec();
    let err_task = tokio::spawn(async move {
        let mut lines = LineReader::new(stderr, MAX_HELD_LINE_BYTES);
        let mut tail = std::collections::VecDeque::with_capacity(STDERR_TAIL + 1);
        while let Some(line) = lines.next_line().await {
            let shown = bus_schema::manifest::scrub(&line, &secrets);
            for part in pieces(&shown, MAX_LINE_BYTES) {
                if !part.trim().is_empty() {
                    tail.push_back(part.clone());
                    if tail.len() > STDERR_TAIL {
                        tail.pop_front();
                    }
                }
                let _ = err_sink.send((OutputStream::Stderr, part)).await;
            }
        }
        Vec::from(tail)
    });

    // Ends at exit, at the deadline, or when the agent cancels (or goes away).
    let stopped = tokio::select! {
        status = child.wait() => Ok(status?),
        _ = tokio::time::sleep(p.timeout) => Err(false),
        _ = p.cancel.cancelled() => Err(true),
    };
    let mut cancelled = false;
    let (status, timed_out) = match stopped {
        Ok(status) => (status, false),
        Err(by_cancel) => {
            cancelled = by_cancel;
            if let Some(pg) = pgid {
                let _ = killpg(pg, Signal::SIGTERM);
            }
            match tokio::time::timeout(p.grace, child.wait()).await {
                Ok(status) => (status?, !by_cancel),
                Err(_) => {
                    if let Some(pg) = pgid {
                        let _ = killpg(pg, Signal::SIGKILL);
                    }
                    (child.wait().await?, !by_cancel)
                }
            }
        }
    };
    // The readers end when every holder of the pipes is gone; a grandchild
    // that escaped the group could hold them open, so bound the wait.
    let stdout = tokio::time::timeout(Duration::from_secs(2), out_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let stderr_tail = tokio::time::timeout(Duration::from_secs(2), err_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    Ok(Finished {
        exit_code: status.code(),
        timed_out,
        cancelled,
        stdout,
        stderr_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_lines_and_exit_code() {
        let (tx, mut rx) = mpsc::channel(16);
        let f = run(
            Program {
                argv: &["/bin/sh", "-c", "echo one; echo two >&2; exit 3"],
                env: &[],
                timeout: Duration::from_secs(10),
                grace: Duration::from_secs(1),
                cancel: &Default::default(),
                secrets: &[],
            },
            &tx,
        )
        .await
        .unwrap();
        drop(tx);
        assert_eq!(f.exit_code, Some(3));
        assert!(!f.timed_out);
        assert_eq!(f.stdout, vec!["one"]);
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push(l);
        }
        assert!(got.contains(&(OutputStream::Stderr, "two".to_string())));
    }

    #[tokio::test]
    async fn invalid_utf8_never_stops_the_reader() {
        let (tx, mut rx) = mpsc::channel(4096);
        // Latin-1 and bytes that are never UTF-8, on both streams, then
        // more output: a reader that stopped would leave the child to die
        // of SIGPIPE on its next write.
        let f = run(
            Program {
                argv: &[
                    "/bin/sh",
                    "-c",
                    "printf 'caf\\351 \\377\\376\\n'; printf 'caf\\351 err\\n' >&2; \
                     i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done; \
                     echo done >&2",
                ],
                env: &[],
                timeout: Duration::from_secs(20),
                grace: Duration::from_secs(1),
                cancel: &Default::default(),
                secrets: &[],
            },
            &tx,
        )
        .await
        .unwrap();
        drop(tx);
        assert_eq!(f.exit_code, Some(0));
        assert_eq!(f.stdout.len(), 2001);
        assert_eq!(f.stdout[0], "caf\u{fffd} \u{fffd}\u{fffd}");
        assert_eq!(f.stdout[2000], "line 1999");
        assert_eq!(f.stderr_tail, vec!["caf\u{fffd} err", "done"]);
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 2003);
    }

    #[tokio::test]
    async fn long_lines_come_in_bounded_pieces() {
        // 10 bytes, then "é" (2 bytes) straddling the cut at 11, then a
        // line without a final newline.
        let input: &[u8] = b"0123456789\xc3\xa9abc\r\nlast";
        let mut r = LineReader::new(input, 11);
        assert_eq!(r.next_line().await.as_deref(), Some("0123456789"));
        assert_eq!(r.next_line().await.as_deref(), Some("\u{e9}abc"));
        assert_eq!(r.next_line().await.as_deref(), Some("last"));
        assert_eq!(r.next_line().await, None);
        let big = vec![b'x'; 3 * MAX_LINE_BYTES + 5];
        let mut r = LineReader::new(&big[..], MAX_LINE_BYTES);
        let mut sizes = Vec::new();
        while let Some(l) = r.next_line().await {
            sizes.push(l.len());
        }
        assert_eq!(
            sizes,
            vec![MAX_LINE_BYTES, MAX_LINE_BYTES, MAX_LINE_BYTES, 5]
        );
    }

    #[tokio::test]
    async fn a_long_stdout_line_is_kept_whole_for_parsing() {
        let (tx, mut rx) = mpsc::channel(64);
        let f = run(
            Program {
                argv: &[
                    "/bin/sh",
                    "-c",
                    "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
                ],
                env: &[],
                timeout: Duration::from_secs(20),
                grace: Duration::from_secs(1),
                cancel: &Default::default(),
                secrets: &[],
            },
            &tx,
        )
        .await
        .unwrap();
        drop(tx);
        assert_eq!(f.exit_code, Some(0));
        assert_eq!(f.stdout.len(), 2);
        assert_eq!(f.stdout[0], "x".repeat(100_000));
        let mut pieces = Vec::new();
        while let Some((_, l)) = rx.recv().await {
            pieces.push(l.len());
        }
        assert!(pieces.iter().all(|&n| n <= MAX_LINE_BYTES), "{pieces:?}");
        assert_eq!(pieces.iter().sum::<usize>(), 100_000 + "after".len());
    }

    #[tokio::test]
    async fn a_secret_across_a_cut_is_masked_before_the_cut() {
        let (tx, mut rx) = mpsc::channel(64);
        let secret = "s3cret-Value".to_string();
        // The secret straddles the first 16 KiB cut of the live stream.
        let script = format!(
            "head -c {} /dev/zero | tr '\\0' x; printf '%s tail\\n' \"$S\"; printf '%s\\n' \"$S\" >&2",
            MAX_LINE_BYTES - 4
        );
        let f = run(
            Program {
                argv: &["/bin/sh", "-c", &script],
                env: &[("S", &secret)],
                timeout: Duration::from_secs(20),
                grace: Duration::from_secs(1),
                cancel: &Default::default(),
                secrets: std::slice::from_ref(&secret),
            },
            &tx,
        )
        .await
        .unwrap();
        drop(tx);
        let mut live = Vec::new();
        while let Some((_, l)) = rx.recv().await {
            live.push(l);
        }
        assert!(live.iter().all(|l| l.len() <= MAX_LINE_BYTES));
        let text = live.concat();
        assert!(!live
            .iter()
            .any(|l| l.contains("s3cr") || l.contains("t-Value")));
        assert!(text.contains("******** tail"));
        assert_eq!(f.stderr_tail, vec!["********"]);
        // What the action parses is the program's own output.
        assert!(f.stdout[0].ends_with("s3cret-Value tail"));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let (tx, _rx) = mpsc::channel(16);
        // The child ignores TERM, and a grandchild sleeps on: both must die.
        let f = run(
            Program {
                argv: &["/bin/sh", "-c", "trap '' TERM; sleep 30 & sleep 30"],
                env: &[],
                timeout: Duration::from_millis(200),
                grace: Duration::from_millis(200),
                cancel: &Default::default(),
                secrets: &[],
            },
            &tx,
        )
        .await
        .unwrap();
        assert!(f.timed_out);
        assert_eq!(f.exit_code, None);
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_group() {
        let (tx, _rx) = mpsc::channel(16);
        let cancel = tokio_util::sync::CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let f = run(
            Program {
                argv: &["/bin/sh", "-c", "sleep 30 & sleep 30"],
                env: &[],
                timeout: Duration::from_secs(60),
                grace: Duration::from_millis(200),
                cancel: &cancel,
                secrets: &[],
            },
            &tx,
        )
        .await
        .unwrap();
        assert!(f.cancelled && !f.timed_out);
    }
}
