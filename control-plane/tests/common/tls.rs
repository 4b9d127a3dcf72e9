//! The control side with TLS on every hop ([`TlsStack`]): `drover init`
//! (with TLS) → nats-server from the configuration it wrote (`tls {}`
//! block) → `drover serve` over `tls://` with HTTPS; plus the probes the TLS
//! test asks with (a plaintext NATS client speaking the wire protocol by
//! hand, HTTPS clients trusting a given CA). Hosts come from `stack.rs`'s
//! files and processes; the plaintext [`Stack`] does not change here.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// nats-server with TLS and `drover serve` with HTTPS, in their own
/// temporary directory.
pub struct TlsStack {
    pub nats: Nats,
    pub cp: Proc,
    pub token: String,
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    pub data_dir: PathBuf,
    /// What `drover init` printed.
    pub init_stdout: String,
    /// Trusts only the CA `drover init` made.
    pub http: reqwest::Client,
    /// Last: dropped after the processes.
    pub tmp: TempDir,
}

/// An HTTPS client trusting only the CA in `ca` (PEM).
pub fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    let mut b = reqwest::Client::builder().tls_built_in_root_certs(false);
    for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
        b = b.add_root_certificate(c);
    }
    b.build().unwrap()
}

impl TlsStack {
    pub async fn start() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("drover-tls-test-")
            .disable_cleanup(std::env::var_os("DROVER_TEST_KEEP").is_some())
            .tempdir()
            .unwrap();
        let data_dir = tmp.path().join("cp");
        let init = Command::new(bin("drover"))
            .arg("init")
            .env("DROVER_DATA_DIR", &data_dir)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "drover init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        std::os::unix::fs::symlink(repo_manifests(), data_dir.join("manifests")).unwrap();
        let nats = Nats::start(
            &tmp.path().join("nats"),
            &data_dir.join("nats-config").join("nats.conf"),
        )
        .await;
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        let port = free_port();
        // No nats_ca / http_tls_* set: `drover serve` finds init's files.
        let mut cmd = Command::new(bin("drover"));
        cmd.arg("serve")
            .env("DROVER_DATA_DIR", &data_dir)
            .env("DROVER_NATS_URL", format!("tls://127.0.0.1:{}", nats.port))
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_MANIFESTS_DIR", data_dir.join("manifests"));
        let cp = Proc::spawn("drover serve", cmd, data_dir.join("control-plane.log"));
        let stack = Self {
            http: https_client(&data_dir.join("tls").join("ca.pem")),
            nats,
            cp,
            token,
            base: format!("https://127.0.0.1:{port}"),
            data_dir,
            init_stdout: String::from_utf8_lossy(&init.stdout).into_owned(),
            tmp,
        };
        stack.wait_healthy().await;
        stack
    }

    pub fn ca(&self) -> PathBuf {
        self.data_dir.join("tls").join("ca.pem")
    }

    /// `tls://127.0.0.1:<broker port>`.
    pub fn nats_tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.nats.port)
    }

    async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Healthy, and its own log says it listens: a server that
            // lost its port to another test's would leave that one to
            // answer.
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() && self.cp.own_log_text().contains("control plane ready")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the control plane did not become healthy over HTTPS within 30s; its log:\n{}",
                self.cp.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::GET,
            path,
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::POST,
            path,
            Some(body),
        )
        .await
    }

    /// A host (rootd + agent, as the current user) whose agent reaches the
    /// broker at `tls://` with a copy of the CA as `nats_ca`, enrolling with
    /// `token`. Returns it once the agent wrote its id and rootd's socket
    /// exists.
    pub async fn spawn_host(&self, name: &str, token: &str) -> Host {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // What a host gets as /etc/drover/ca.pem.
        let ca = dir.join("ca.pem");
        std::fs::copy(self.ca(), &ca).unwrap();
        let key = bus_schema::CommandSigner::load(&self.data_dir.join("signing.key"))
            .unwrap()
            .public()
            .to_base64();
        let mut spec = HostSpec::new(
            dir,
            self.nats_tls_url(),
            key,
            token,
            self.data_dir.join("enroll.creds"),
        );
        spec.nats_ca = Some(ca);
        spec.launch().await
    }
}

/// What a client that never starts TLS gets from the broker at `port`: the
/// INFO line it sent, and every byte after our plaintext `CONNECT` + `PING`
/// until the broker closes the connection (bounded: 10 s, 64 KiB).
pub fn plaintext_nats_exchange(port: u16) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut info = Vec::new();
    let mut byte = [0u8; 1];
    while !info.ends_with(b"\r\n") && info.len() < 64 * 1024 {
        match s.read(&mut byte) {
            Ok(1) => info.push(byte[0]),
            _ => break,
        }
    }
    let _ = s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
    let mut rest = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && rest.len() < 64 * 1024 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&info).into_owned(),
        String::from_utf8_lossy(&rest).into_owned(),
    )
}
