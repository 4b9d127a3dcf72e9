//! A private Docker engine for the compose test ([`Dockerd`]) and a compose
//! project on it that is taken down with its volumes when dropped
//! ([`Compose`]). The engine is Debian's `dockerd`, confined: its own data
//! root (kept in `<target>/compose-cache/docker`, so built images survive
//! between runs), its own exec root and socket in a temporary directory, no
//! default bridge (`--bridge none`), and no iptables, NAT or ip_forward
//! changes (published ports go through docker-proxy; builds use the host's
//! network), so the host's networking and the other tests are untouched.
//!
//! It knows nothing of Drover's services; `tests/compose.rs` drives them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

/// Debian's Docker client (`/usr/local/bin/docker` may be another one).
pub const DOCKER: &str = "/usr/bin/docker";

/// Where the compose test keeps what outlives one run: the engine's data
/// root (images) and the base image's root filesystem tarball.
pub fn compose_cache_dir() -> PathBuf {
    // <target>/debug/drover -> <target>/compose-cache
    let drover = PathBuf::from(env!("CARGO_BIN_EXE_drover"));
    drover
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join("compose-cache")
}

/// Pids of running processes named `name` (from /proc), other than ours.
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// A private `dockerd`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Dockerd {
    proc: Proc,
    /// `unix://<dir>/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    /// Exec root, socket, pid file and the engine's log (`dockerd.log`).
    pub dir: TempDir,
}

impl Dockerd {
    /// Starts the engine and waits (up to 60 s) until it answers. Fails the
    /// test with why when another `dockerd` runs on this machine (two
    /// engines would share the kernel's bridges and the cgroup tree).
    pub async fn start() -> Self {
        let others = pids_named("dockerd");
        assert!(
            others.is_empty(),
            "another dockerd runs here (pids {others:?}); the compose test starts its own \
             engine and will not run beside another one"
        );
        let dir = tempfile::Builder::new()
            .prefix("drover-dockerd-")
            .tempdir()
            .unwrap();
        let data_root = compose_cache_dir().join("docker");
        std::fs::create_dir_all(&data_root).unwrap();
        let sock = dir.path().join("docker.sock");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--default-address-pool",
                "base=10.213.0.0/16,size=24",
                "--shutdown-timeout",
                "5",
            ]);
        let proc = Proc::spawn("dockerd", cmd, dir.path().join("dockerd.log"));
        let d = Self {
            proc,
            host: format!("unix://{}", sock.display()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if sock.exists()
                && d.docker(&["version", "--format", "{{.Server.Version}}"])
                    .status
                    .success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s; its log:\n{}",
                d.proc.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        d
    }

    /// Runs Debian's `docker` client against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{DOCKER} {args:?}: {e}"))
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM: the engine stops its containers and its containerd.
        self.proc.stop();
        // It leaves its default network namespace mounted in the exec root,
        // which would keep the temporary directory from being removed.
        let _ = Command::new("umount")
            .arg(self.dir.path().join("exec/netns/default"))
            .output();
    }
}

/// A compose project on a [`Dockerd`]; `down -v` (containers, network and
/// volumes) when dropped, also when the test failed.
pub struct Compose {
    /// The compose file, then any override files (`-f` each, in order).
    pub files: Vec<PathBuf>,
    pub project: String,
    pub env: Vec<(String, String)>,
    pub docker_host: String,
}

impl Compose {
    pub fn new(dockerd: &Dockerd, files: &[&Path], env: &[(&str, String)]) -> Self {
        Self {
            files: files.iter().map(|f| f.to_path_buf()).collect(),
            project: format!(
                "drovertest{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            docker_host: dockerd.host.clone(),
        }
    }

    /// Runs `docker-compose -f <file>... -p <project> ARGS`, bounded by
    /// `timeout` (coreutils), with only this project's settings.
    pub fn run(&self, args: &[&str], max: Duration) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg(max.as_secs().to_string()).arg("docker-compose");
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd.args(["-p", &self.project, "--ansi", "never"])
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("DROVER_") || k.starts_with("COMPOSE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Like [`Compose::run`], failing the test with the output when the
    /// command fails; returns its stdout.
    pub fn ok(&self, args: &[&str], max: Duration) -> String {
        let out = self.run(args, max);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed ({}):\n{}{}\nthe services' logs:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cat PATH` in the running `service` container.
    pub fn read_file(&self, service: &str, path: &str) -> String {
        self.ok(
            &["exec", "-T", service, "cat", path],
            Duration::from_secs(60),
        )
    }

    /// The container id of `service`.
    pub fn container(&self, service: &str) -> String {
        self.ok(&["ps", "-q", service], Duration::from_secs(60))
            .trim()
            .to_string()
    }

    /// Every service's log, for failure messages.
    pub fn logs(&self) -> String {
        let out = self.run(
            &["logs", "--no-color", "--tail", "80"],
            Duration::from_secs(60),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let out = self.run(
            &["down", "-v", "--remove-orphans", "--timeout", "5"],
            Duration::from_secs(120),
        );
        if !out.status.success() {
            eprintln!(
                "docker-compose down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Lets containers on one of the engine's bridges reach each other when the
/// host would drop that traffic: with `br_netfilter` loaded
/// (`bridge-nf-call-iptables` = 1) bridged frames pass iptables' FORWARD
/// chain, and a Docker engine run here before may have left its policy at
/// DROP. Our engine runs without iptables, so it adds no rule itself; this
/// guard inserts one ACCEPT for the named bridge only (it need not exist
/// yet) and deletes it when dropped. Nothing is changed when the host
/// forwards bridged traffic anyway.
pub struct BridgeForward {
    bridge: Option<String>,
}

impl BridgeForward {
    pub fn allow(bridge: &str) -> Self {
        let filtered = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .is_ok_and(|v| v.trim() == "1");
        let policy = Command::new("iptables").args(["-S", "FORWARD"]).output();
        let drops = policy
            .as_ref()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("-P FORWARD DROP"));
        if !(filtered && drops) {
            return Self { bridge: None };
        }
        let out = Command::new("iptables")
            .args(["-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"])
            .output()
            .unwrap();
        assert!(out.status.success(), "iptables: {out:?}");
        Self {
            bridge: Some(bridge.to_string()),
        }
    }
}

impl Drop for BridgeForward {
    fn drop(&mut self) {
        if let Some(b) = self.bridge.take() {
            let _ = Command::new("iptables")
                .args(["-D", "FORWARD", "-i", &b, "-o", &b, "-j", "ACCEPT"])
                .output();
        }
    }
}
