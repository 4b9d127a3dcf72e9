//! Helpers of the host-install test (`tests/host_install.rs`), beside the
//! real packages of `packages::build()`: publishing them with
//! `drover releases publish`, fetching
//! `/install.sh` with curl and running it with `sh`, tampering with an
//! artifact in the bucket, and snapshots of a directory to prove a refused
//! run left it unchanged. Nothing here is a mock: the packages are the
//! real ones, the script the one the control plane serves.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::*;

impl Stack {
    /// `drover releases publish FILE...` on the control-plane host (this
    /// stack's data directory and broker).
    pub fn publish_releases(&self, files: &[&Path]) -> Output {
        let out = Command::new(bin("drover"))
            .args(["releases", "publish"])
            .args(files)
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_NATS_URL", self.nats.url())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drover releases publish: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `curl -fsSL <base>/install.sh -o <dir>/install.sh`, as an operator's
    /// line fetches it.
    pub fn fetch_install_script(&self, dir: &Path) -> PathBuf {
        let path = dir.join("install.sh");
        let out = Command::new("curl")
            .args(["-fsSL", "-o"])
            .arg(&path)
            .arg(format!("{}/install.sh", self.base))
            .output()
            .expect("curl (scripts/test-deps/host-install.sh installs it)");
        assert!(
            out.status.success(),
            "curl install.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// Replaces artifact `name`'s bytes in the release bucket with
    /// `bytes`, keeping its metadata (and so its old signature and sha256).
    pub async fn tamper_artifact(&self, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
        use tokio::io::AsyncReadExt;
        let js = async_nats::jetstream::new(self.client().await);
        let store = js
            .get_object_store(control_plane::releases::BUCKET)
            .await
            .unwrap();
        let info = store.info(name).await.unwrap();
        let mut bytes = vec![];
        store
            .get(name)
            .await
            .unwrap()
            .read_to_end(&mut bytes)
            .await
            .unwrap();
        change(&mut bytes);
        let meta = async_nats::jetstream::object_store::ObjectMetadata {
            name: name.into(),
            description: info.description.clone(),
            metadata: info.metadata.clone(),
            ..Default::default()
        };
        store.put(meta, &mut bytes.as_slice()).await.unwrap();
    }
}

/// `sh <script> <args>` with a clean environment plus `env` (PATH and HOME
/// kept), `TMPDIR` set to `tmpdir`.
pub fn run_install(script: &Path, args: &[&str], tmpdir: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("TMPDIR", tmpdir)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every path under `dir` with its mode and contents (links as their
/// target): equal snapshots mean nothing was added, removed or changed.
pub fn tree_snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            seen += 1;
            assert!(seen < 100_000, "too many files under {}", dir.display());
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(rel, (mode, vec![]));
                todo.push(p);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, (mode, target.into_os_string().into_encoded_bytes()));
            } else {
                out.insert(rel, (mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Starts the `drover-rootd` and `drover-agent` that `install.sh --root`
/// put in `root`, with the configs it wrote there (logs in `logs`), and
/// waits for the agent's id. Returns (rootd, agent, id).
pub async fn start_installed(root: &Path, logs: &Path) -> (Proc, Proc, String) {
    let etc = root.join("etc/drover");
    let mut rootd_cmd = Command::new(root.join("usr/bin/drover-rootd"));
    rootd_cmd.arg("--config").arg(etc.join("rootd.toml"));
    let rootd = Proc::spawn("installed drover-rootd", rootd_cmd, logs.join("rootd.log"));
    let mut agent_cmd = Command::new(root.join("usr/bin/drover-agent"));
    agent_cmd
        .arg("--config")
        .arg(etc.join("agent.toml"))
        .arg("run");
    let agent = Proc::spawn("installed drover-agent", agent_cmd, logs.join("agent.log"));
    let id = wait_id_file(
        "the installed agent to write its id",
        &root.join("var/lib/drover-agent/agent.id"),
    )
    .await;
    (rootd, agent, id)
}
