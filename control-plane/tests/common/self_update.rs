//! Self-update under test: a host whose rootd runs the agent
//! ([`SupervisedHost`], rootd's `supervise` mode standing in for systemd as
//! PID 1, which cannot run here), and signed agent releases put into the
//! stack's releases bucket ([`Releases`]: one release key per stack,
//! `manifest_for`, the object store over the stack's JetStream) with the
//! `agent.update` params built from them. A new version of the agent is the
//! same bytes published with another version string (the agent reports the
//! version of the `release.json` beside it); a broken release is a small
//! shell script that exits 3.
//!
//! It asserts nothing about updates itself (the tests do).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bus_schema::signing::release::{manifest_for, platform, ReleaseSigner};
use serde_json::{json, Value};

use super::*;

/// A host whose rootd supervises the agent (no agent process of the test's).
pub struct SupervisedHost {
    pub id: String,
    pub rootd: Proc,
    pub rootd_toml: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub dir: PathBuf,
    /// `agent_releases_dir`: `<version>/drover-agent`, `current`.
    pub releases: PathBuf,
}

impl HostSpec {
    /// Writes the configuration (with `supervise_agent` set), starts rootd
    /// (which adopts the test's `drover-agent` as the first release and
    /// starts it), and returns once the agent wrote its id and rootd's
    /// socket exists.
    pub async fn launch_supervised(mut self) -> SupervisedHost {
        self.supervise_agent = true;
        let dir = self.dir.clone();
        let (rootd_toml, _) = self.write_files();
        let rootd = spawn_rootd(&rootd_toml, &dir);
        let state_dir = dir.join("agent");
        let id = wait_id_file(
            "the supervised agent to write its id",
            &state_dir.join("agent.id"),
        )
        .await;
        let socket = dir.join("rootd.sock");
        let sock = socket.clone();
        wait_for("rootd's socket", Duration::from_secs(20), || {
            let s = sock.clone();
            async move { s.exists().then_some(()) }
        })
        .await;
        SupervisedHost {
            id,
            rootd,
            rootd_toml,
            state_dir,
            socket,
            releases: dir.join("releases"),
            dir,
        }
    }
}

/// Starts `drover-rootd` with `rootd_toml`, logging to `dir/rootd.log`
/// (the supervised agent logs there too).
pub fn spawn_rootd(rootd_toml: &std::path::Path, dir: &std::path::Path) -> Proc {
    let mut rc = Command::new(bin("drover-rootd"));
    rc.arg("--config").arg(rootd_toml);
    Proc::spawn("drover-rootd", rc, dir.join("rootd.log"))
}

impl SupervisedHost {
    /// The release directory `current` points to.
    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.releases.join("current"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// rootd's update records, asked on its socket as the agent asks.
    pub async fn update_records(&self) -> Vec<bus_schema::rootd_proto::UpdateRecord> {
        use bus_schema::rootd_proto::{RootFrame, RootRequest};
        use futures::{SinkExt, StreamExt};
        let stream = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
        let mut framed = tokio_util::codec::Framed::new(stream, bus_schema::rootd_proto::codec());
        framed
            .send(bytes::Bytes::from(bus_schema::encode(
                &RootRequest::UpdateStatus,
            )))
            .await
            .unwrap();
        let f = tokio::time::timeout(Duration::from_secs(20), framed.next())
            .await
            .expect("rootd answers UpdateStatus within 20 s")
            .expect("rootd answers")
            .unwrap();
        match bus_schema::codec::decode_limited(&f, None, usize::MAX).unwrap() {
            RootFrame::UpdateStatus { updates } => updates,
            other => panic!("rootd answered UpdateStatus with {other:?}"),
        }
    }
}

impl Stack {
    /// A host whose rootd runs the agent, pinning `release_key`, enrolled
    /// with an auto-approved token; returns once the API shows it online
    /// with rootd's `agent` module. `rootd_extra` adds rootd.toml lines.
    pub async fn start_supervised_host(
        &self,
        name: &str,
        release_key: &str,
        rootd_extra: &str,
    ) -> SupervisedHost {
        let token = self.token(1, "1h", true).await;
        let mut spec = HostSpec::new(
            self.tmp.path().join(name),
            self.nats.url(),
            self.control_plane_key(),
            &token,
            self.data_dir.join("enroll.creds"),
        );
        spec.release_key = Some(release_key.to_string());
        spec.rootd_extra = rootd_extra.to_string();
        let host = spec.launch_supervised().await;
        self.wait_online(&host.id).await;
        wait_for(
            &format!("agent {} to report rootd's agent module", host.id),
            Duration::from_secs(90),
            || async {
                let (_, v) = self.get(&format!("/agents/{}", host.id)).await;
                let m = v["modules"].as_array().cloned().unwrap_or_default();
                m.iter().any(|x| x == "agent").then_some(())
            },
        )
        .await;
        host
    }

    /// Waits until the API shows the agent heartbeating `version`.
    pub async fn wait_agent_version(&self, agent: &str, version: &str) -> Value {
        wait_for(
            &format!("agent {agent} to heartbeat version {version}"),
            Duration::from_secs(90),
            || async {
                let (_, v) = self.get(&format!("/agents/{agent}")).await;
                (v["agent_version"] == version && v["status"] == "online").then_some(v)
            },
        )
        .await
    }

    /// Submits a command to one agent; returns its id.
    /// A 429 (the per-token rate limit, shared with the test's polls) is
    /// waited out as its Retry-After says (1 s), at most 10 times.
    pub async fn submit(&self, agent: &str, action: &str, params: Value) -> String {
        for _ in 0..10 {
            let (code, c) = self
                .post(
                    &format!("/agents/{agent}/commands"),
                    &json!({"action": action, "params": params}),
                )
                .await;
            if code == 429 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(code, 201, "submitting {action}: {c}");
            return c["id"].as_str().unwrap().to_string();
        }
        panic!("submitting {action}: rate-limited 10 times in a row");
    }
}

/// A release signed for a test: the manifest text and signature.
#[derive(Debug, Clone)]
pub struct SignedRelease {
    pub version: String,
    pub manifest: String,
    pub signature: String,
    pub sha256: String,
}

impl SignedRelease {
    /// `agent.update` params for it.
    pub fn update_params(&self, allow_downgrade: bool) -> Value {
        json!({
            "version": self.version,
            "manifest": self.manifest,
            "signature": self.signature,
            "allow_downgrade": allow_downgrade,
        })
    }
}

/// The stack's release key and its releases bucket.
pub struct Releases {
    pub signer: ReleaseSigner,
    pub js: async_nats::jetstream::Context,
}

impl Releases {
    /// A new release key for this stack, pinned by its control plane (which
    /// is restarted with it, as an operator sets `release_key`), and the
    /// bucket (created if the control plane has not yet).
    pub async fn new(stack: &mut Stack) -> Self {
        let signer = ReleaseSigner::generate();
        stack
            .restart_cp_with(&[("DROVER_RELEASE_KEY", &signer.public().to_base64())])
            .await;
        let js = async_nats::jetstream::new(stack.client().await);
        control_plane::releases::bucket(&js).await.unwrap();
        Self { signer, js }
    }

    /// The public half, as `release_key` is configured (base64).
    pub fn public_key(&self) -> String {
        self.signer.public().to_base64()
    }

    /// Signs `bytes` as `version` (this platform, channel stable) with
    /// `signer` and returns the release, without storing anything.
    pub fn sign_with(signer: &ReleaseSigner, bytes: &[u8], version: &str) -> SignedRelease {
        let m = manifest_for(
            bytes,
            version,
            &platform(),
            "stable",
            "",
            "test release",
            bus_schema::now_ms(),
        );
        let (manifest, signature) = signer.sign(&m).unwrap();
        SignedRelease {
            version: version.into(),
            manifest,
            signature,
            sha256: m.sha256,
        }
    }

    /// Puts `bytes` into the bucket under the object name of `version`.
    pub async fn put_object(&self, version: &str, bytes: &[u8]) {
        let name = format!("drover-agent-{version}-{}", platform());
        let store = control_plane::releases::bucket(&self.js).await.unwrap();
        let mut reader = bytes;
        store.put(name.as_str(), &mut reader).await.unwrap();
    }

    /// Signs `bytes` as `version` with the stack's key and stores them.
    pub async fn publish(&self, bytes: &[u8], version: &str) -> SignedRelease {
        let r = Self::sign_with(&self.signer, bytes, version);
        self.put_object(version, bytes).await;
        r
    }
}

/// The agent binary under test: a new "version" is these bytes released
/// under another version string.
pub fn agent_bytes() -> Vec<u8> {
    std::fs::read(bin("drover-agent")).unwrap()
}

/// A release that cannot run: a shell script that exits 3 at once.
pub fn broken_agent_bytes() -> Vec<u8> {
    b"#!/bin/sh\necho 'broken release: exiting' >&2\nexit 3\n".to_vec()
}

/// The version the test's agent binary reports (`drover-agent --version`).
pub fn built_agent_version() -> String {
    let out = Command::new(bin("drover-agent"))
        .arg("--version")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string()
}

impl SupervisedHost {
    /// A broker client with this agent's own credentials and inbox prefix
    /// (what a compromised host holds).
    pub async fn agent_client(&self, stack: &Stack) -> async_nats::Client {
        let jwt = std::fs::read_to_string(self.state_dir.join("agent.jwt")).unwrap();
        let seed = std::fs::read_to_string(self.state_dir.join("agent.seed")).unwrap();
        let kp = std::sync::Arc::new(nkeys::KeyPair::from_seed(seed.trim()).unwrap());
        async_nats::ConnectOptions::with_jwt(jwt.trim().to_string(), move |nonce| {
            let kp = kp.clone();
            async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
        })
        .custom_inbox_prefix(bus_schema::subjects::inbox_prefix(&self.id))
        .connect(stack.nats.url())
        .await
        .unwrap()
    }
}
