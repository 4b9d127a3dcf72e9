//! The control plane's configuration: `drover.toml` (or `--config`) plus
//! `DROVER_*` environment variables, which win.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Signing key, admin token, SQLite file, dev-stack state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address of the API and web UI.
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_nats")]
    pub nats_url: String,
    /// `sqlite://...` (default: `<data_dir>/drover.db`) or `postgres://...`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// An agent is offline after this many missed heartbeats.
    #[serde(default = "default_missed")]
    pub offline_after_missed: u32,
    /// Lifetime of a command that names no expiry.
    #[serde(default = "default_ttl")]
    pub command_ttl_secs: u64,
    /// Commands waiting for one agent before new ones are refused.
    #[serde(default = "default_pending")]
    pub max_pending_per_agent: i64,
    /// Largest number of agents (durable consumers) on the command stream.
    #[serde(default = "default_max_agents")]
    pub max_agents: i32,
    /// The app manifests (`<dir>/<id>/manifest.yml`): the catalogue the
    /// API and UI show, and what `app.install` params are checked against.
    #[serde(default = "default_manifests")]
    pub manifests_dir: PathBuf,
    /// Seconds after a taken command's expiry plus timeout before, with no
    /// result, it is inferred `failed` (its host's report still replaces it).
    #[serde(default = "default_silent_grace")]
    pub silent_grace_secs: u64,
    /// The command consumers' ack wait, seconds: a fetched command not
    /// acked (or kept alive by progress acks) within it is redelivered.
    /// Redelivery backs off from it (1, 2, 4, 10 times).
    #[serde(default = "default_ack_wait")]
    pub command_ack_wait_secs: u64,
    /// The base URL hosts reach the API at (`https://cp.example:8443`), baked
    /// into `install.sh` and the install lines; default derived from
    /// `listen` ([`Config::public_url`]).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The broker URL(s) written into hosts' `agent.toml` by `install.sh`,
    /// comma-separated; default `nats_url` ([`Config::agent_nats_url`]).
    #[serde(default)]
    pub agent_nats_url: Option<String>,
    /// Packages `drover serve` publishes at start to the release bucket
    /// (those not there yet with the same name and sha256).
    #[serde(default = "default_releases_dir")]
    pub releases_dir: PathBuf,
}

fn default_releases_dir() -> PathBuf {
    PathBuf::from("/usr/share/drover/releases")
}

fn default_silent_grace() -> u64 {
    60
}
fn default_ack_wait() -> u64 {
    30
}

fn default_manifests() -> PathBuf {
    PathBuf::from("./manifests")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./drover-data")
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_nats() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_missed() -> u32 {
    3
}
fn default_ttl() -> u64 {
    3600
}
fn default_pending() -> i64 {
    100
}
fn default_max_agents() -> i32 {
    20_000
}

impl Config {
    /// File first (if given, or `./drover.toml` if present), then `DROVER_*`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        match path {
            Some(p) => b = b.add_source(config::File::from(p)),
            None => b = b.add_source(config::File::with_name("drover").required(false)),
        }
        b = b.add_source(
            config::Environment::with_prefix("DROVER")
                .try_parsing(true)
                // Variables of the CLI and of the other binaries are not ours.
                .ignore_empty(true),
        );
        b.build()?
            .try_deserialize()
            .context("invalid control-plane configuration")
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("drover.db").display()
            )
        })
    }

    /// [`Config::command_ack_wait_secs`], at least 1 s.
    pub fn command_ack_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.command_ack_wait_secs.max(1))
    }

    /// [`Config::public_url`] without a trailing slash, or
    /// `http://<listen>` (an unspecified address replaced by this machine's
    /// host name).
    pub fn public_url(&self) -> String {
        if let Some(u) = self.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return u.trim().trim_end_matches('/').to_string();
        }
        let listen = self.listen.trim();
        let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "80"));
        let host = match host {
            "0.0.0.0" | "[::]" | "" => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            h => h.to_string(),
        };
        format!("http://{host}:{port}")
    }

    /// [`Config::agent_nats_url`], or `nats_url`.
    pub fn agent_nats_url(&self) -> String {
        self.agent_nats_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(&self.nats_url)
            .trim()
            .to_string()
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("signing.key")
    }

    /// The control plane's NATS credentials (written by `drover init`).
    pub fn nats_creds_path(&self) -> PathBuf {
        self.data_dir.join("control-plane.creds")
    }

    /// A system-account user, for pushing account updates (revocations).
    pub fn sys_creds_path(&self) -> PathBuf {
        self.data_dir.join("sys.creds")
    }

    /// The enrolment-only user's credentials, handed to new agents.
    pub fn enroll_creds_path(&self) -> PathBuf {
        self.data_dir.join("enroll.creds")
    }

    /// The enrolment responder's credentials: it may publish only on
    /// enrolment inboxes (written by `drover init`, or by `drover serve` when
    /// missing).
    pub fn enroll_responder_creds_path(&self) -> PathBuf {
        self.data_dir.join("enroll-responder.creds")
    }

    /// The nats-server configuration `drover init` writes (operator mode).
    pub fn nats_conf_path(&self) -> PathBuf {
        self.data_dir.join("nats-config").join("nats.conf")
    }

    /// The admin token in clear, for the local CLI only (0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}
