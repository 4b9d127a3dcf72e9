//! Running a program for an action: argv only (never a shell), its own process
//! group, output streamed line by line, a deadline enforced with TERM and then
//! KILL to the whole group.

use std::process::Stdio;
use std::time::Duration;

use bus_schema::OutputStream;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
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
    /// Every stdout line, for actions that parse their output.
    pub stdout: Vec<String>,
}

/// Lines of output as they come, for the agent's live stream.
pub type LineSink = mpsc::Sender<(OutputStream, String)>;

pub struct Program<'a> {
    pub argv: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
    pub grace: Duration,
    pub cancel: &'a tokio_util::sync::CancellationToken,
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
    let out_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = out_sink.send((OutputStream::Stdout, line.clone())).await;
            all.push(line);
        }
        all
    });
    let err_sink = sink.clone();
    let err_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = err_sink.send((OutputStream::Stderr, line)).await;
        }
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
    let _ = tokio::time::timeout(Duration::from_secs(2), err_task).await;
    Ok(Finished {
        exit_code: status.code(),
        timed_out,
        cancelled,
        stdout,
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
            },
            &tx,
        )
        .await
        .unwrap();
        assert!(f.cancelled && !f.timed_out);
    }
}
