//! Restarting the agent after a release switch, both ways rootd knows:
//! `systemd` (`systemctl restart <agent_unit>`, argv only, no shell) where
//! systemd is PID 1, and `supervise`, where rootd runs
//! `<agent_releases_dir>/current/drover-agent <agent_args>` as its own child,
//! restarts it whenever it exits (with a growing pause), and keeps its pid
//! in `<state_dir>/agent.pid` so a restarted rootd stops an agent a crashed
//! one left running before it starts its own.
//!
//! Owns the agent process and counting its exits since the last switch (the
//! update watcher reads [`Supervisor::exits_since_restart`]). It does not
//! decide when to switch or roll back (`actions::agent_update`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{AgentRestart, RootdConfig};
use crate::update_state::{AGENT_BIN, CURRENT};

/// How long a stopped agent has between TERM and KILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pauses between restarts of an agent that exits: from the first to the
/// longest; a run longer than [`STEADY_AFTER`] resets it.
const FIRST_PAUSE: Duration = Duration::from_millis(300);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
const STEADY_AFTER: Duration = Duration::from_secs(30);

/// The agent's restarter.
pub struct Supervisor {
    mode: AgentRestart,
    systemctl: PathBuf,
    unit: String,
    restart_tx: Option<mpsc::UnboundedSender<tokio::sync::oneshot::Sender<()>>>,
    exits: Arc<AtomicU32>,
    last_exit: Arc<Mutex<String>>,
}

impl Supervisor {
    /// Starts supervising (in `supervise` mode: stops an orphan from the
    /// pid file, then spawns the agent); in `systemd` mode only remembers
    /// how to restart it.
    pub fn start(cfg: &RootdConfig, releases: &Path) -> Arc<Self> {
        let exits = Arc::new(AtomicU32::new(0));
        let last_exit = Arc::new(Mutex::new(String::new()));
        let restart_tx = match cfg.agent_restart {
            AgentRestart::Systemd => None,
            AgentRestart::Supervise => {
                let (tx, rx) = mpsc::unbounded_channel();
                let run = Run {
                    program: releases.join(CURRENT).join(AGENT_BIN),
                    args: cfg.agent_args.clone(),
                    env: cfg.agent_env.clone(),
                    // Never root by default: the agent's own user (the
                    // one allowed on the socket) and its primary group.
                    uid: Some(cfg.agent_run_uid.unwrap_or(cfg.agent_uid)),
                    gid: cfg.agent_run_gid.or_else(|| {
                        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(
                            cfg.agent_run_uid.unwrap_or(cfg.agent_uid),
                        ))
                        .ok()
                        .flatten()
                        .map(|u| u.gid.as_raw())
                    }),
                    pid_file: cfg.state_dir.join("agent.pid"),
                    die_with_rootd: cfg.agent_stop_with_rootd,
                    exits: exits.clone(),
                    last_exit: last_exit.clone(),
                };
                tokio::spawn(run.supervise(rx));
                Some(tx)
            }
        };
        Arc::new(Self {
            mode: cfg.agent_restart,
            systemctl: cfg
                .systemctl
                .clone()
                .unwrap_or_else(|| PathBuf::from("systemctl")),
            unit: cfg.agent_unit.clone(),
            restart_tx,
            exits,
            last_exit,
        })
    }

    /// Restarts the agent (it runs whatever `current` points to now) and
    /// resets the exit count. Returns once the old process is gone and the
    /// new one started (supervise) or systemctl answered (systemd).
    pub async fn restart(&self) -> Result<(), String> {
        self.exits.store(0, Ordering::SeqCst);
        self.last_exit.lock().unwrap().clear();
        match self.mode {
            AgentRestart::Supervise => {
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                self.restart_tx
                    .as_ref()
                    .expect("supervise mode has a restart channel")
                    .send(done_tx)
                    .map_err(|_| "the agent supervisor stopped".to_string())?;
                done_rx
                    .await
                    .map_err(|_| "the agent supervisor stopped".to_string())
            }
            AgentRestart::Systemd => {
                let out = tokio::process::Command::new(&self.systemctl)
                    .arg("restart")
                    .arg(&self.unit)
                    .output()
                    .await
                    .map_err(|e| format!("running {}: {e}", self.systemctl.display()))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "systemctl restart {} failed ({}): {}",
                        self.unit,
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            }
        }
    }

    /// Forgets earlier exits (an update starts counting afresh).
    pub fn reset_exits(&self) {
        self.exits.store(0, Ordering::SeqCst);
        self.last_exit.lock().unwrap().clear();
    }

    /// How often the agent exited since the last restart (supervise mode;
    /// always 0 under systemd, where only the deadline catches a bad
    /// release), and how the last exit ended.
    pub fn exits_since_restart(&self) -> (u32, String) {
        (
            self.exits.load(Ordering::SeqCst),
            self.last_exit.lock().unwrap().clone(),
        )
    }
}

struct Run {
    program: PathBuf,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    uid: Option<u32>,
    gid: Option<u32>,
    pid_file: PathBuf,
    die_with_rootd: bool,
    exits: Arc<AtomicU32>,
    last_exit: Arc<Mutex<String>>,
}

impl Run {
    async fn supervise(
        self,
        mut restarts: mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<()>>,
    ) {
        stop_orphan(&self.pid_file).await;
        let mut pause = FIRST_PAUSE;
        let mut done: Option<tokio::sync::oneshot::Sender<()>> = None;
        loop {
            let started = Instant::now();
            let mut child = match self.spawn() {
                Ok(c) => c,
                Err(e) => {
                    warn!(program = %self.program.display(), error = %e, "cannot start the agent");
                    self.exits.fetch_add(1, Ordering::SeqCst);
                    *self.last_exit.lock().unwrap() = format!("could not start: {e}");
                    if let Some(d) = done.take() {
                        let _ = d.send(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        r = restarts.recv() => match r { Some(d) => done = Some(d), None => return },
                    }
                    pause = (pause * 2).min(LONGEST_PAUSE);
                    continue;
                }
            };
            if let Some(pid) = child.id() {
                let _ = std::fs::write(&self.pid_file, format!("{pid}\n"));
                info!(pid, program = %self.program.display(), "agent started");
            }
            if let Some(d) = done.take() {
                let _ = d.send(());
            }
            tokio::select! {
                status = child.wait() => {
                    let what = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    };
                    self.exits.fetch_add(1, Ordering::SeqCst);
                    *self.last_exit.lock().unwrap() = what.clone();
                    if started.elapsed() > STEADY_AFTER {
                        pause = FIRST_PAUSE;
                    }
                    warn!(status = %what, pause_ms = pause.as_millis() as u64, "the agent exited; starting it again");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        r = restarts.recv() => match r { Some(d) => done = Some(d), None => return },
                    }
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                r = restarts.recv() => {
                    stop_child(&mut child).await;
                    pause = FIRST_PAUSE;
                    match r { Some(d) => done = Some(d), None => return }
                }
            }
        }
    }

    fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(&self.env)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        if let Some(g) = self.gid {
            cmd.gid(g);
        }
        if let Some(u) = self.uid {
            cmd.uid(u);
        }
        if self.die_with_rootd {
            // SAFETY: only an async-signal-safe prctl between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
                        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
                });
            }
        }
        cmd.spawn()
    }
}

/// TERM, then KILL after [`STOP_GRACE`].
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Stops an agent a previous rootd started and left behind (it crashed):
/// the pid in the pid file, if that process is still a drover agent.
async fn stop_orphan(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let is_agent = std::fs::read(proc_dir.join("cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(AGENT_BIN))
        .unwrap_or(false);
    if !is_agent {
        return;
    }
    warn!(pid, "stopping the agent a previous rootd left running");
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while proc_dir.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if proc_dir.exists() {
        let _ = kill(pid, Signal::SIGKILL);
    }
}
