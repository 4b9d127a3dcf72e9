//! The agent's configuration: a TOML file plus `DROVER_AGENT_*` variables,
//! and the TLS options every broker connection of the agent gets from it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bus_schema::VerifyingKey;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct AgentConfig {
    /// NATS server URL(s), comma-separated.
    #[serde(default = "default_nats")]
    pub nats_url: String,
    /// PEM file of the CA the broker's certificate is checked against
    /// (`/etc/drover/ca.pem`). When set, or when a URL is `tls://`, every
    /// broker connection (enrolment included) must be TLS.
    #[serde(default)]
    pub nats_ca: Option<PathBuf>,
    /// Identity, journal and other state (keep it across upgrades).
    pub state_dir: PathBuf,
    /// The control plane's command-signing public key (base64). Optional: when
    /// unset, the key the control plane sends at enrolment is pinned (trust
    /// on first use); when set, enrolment must return this key.
    #[serde(default)]
    pub control_plane_key: Option<String>,
    /// Registration token for the first start (`drover tokens create`).
    #[serde(default)]
    pub enroll_token: Option<String>,
    /// Credentials file of the enrolment-only NATS user (`enroll.creds`).
    #[serde(default)]
    pub enroll_creds: Option<PathBuf>,
    /// Where the machine-id is read (default `/etc/machine-id`, then
    /// `/var/lib/dbus/machine-id`).
    #[serde(default)]
    pub machine_id_file: Option<PathBuf>,
    /// Where the kernel's boot id is read (default
    /// `/proc/sys/kernel/random/boot_id`). Only tests point it elsewhere:
    /// a reboot's return is told by a new boot id, and a test that cannot
    /// reboot its machine stands in for one with a file it changes.
    #[serde(default)]
    pub boot_id_file: Option<PathBuf>,
    /// rootd's socket.
    #[serde(default = "default_socket")]
    pub rootd_socket: PathBuf,
    /// Seconds between heartbeats when idle.
    #[serde(default = "default_interval")]
    pub heartbeat_secs: u32,
    /// Seconds between heartbeats while an operation runs.
    #[serde(default = "default_busy_interval")]
    pub busy_heartbeat_secs: u32,
    /// The host name heartbeats report (default: the kernel's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Commands run at the same time.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    /// The name operators see for this host, sent in the enrolment claim
    /// (1..=64 printable characters; unset: the host name).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Labels asked for in the enrolment claim (`{ env = "prod" }`; keys and
    /// values 1..=64 of `[A-Za-z0-9-_./]`). The token's labels win on a
    /// conflicting key.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The pinned public release key (base64, or the path of the `.pub`
    /// file `drover releases keygen` writes): every agent release is
    /// checked against it before it is staged for rootd. Unset:
    /// `agent.update` is refused.
    #[serde(default)]
    pub release_key: Option<String>,
    /// rootd's `agent_releases_dir`. When set and `<dir>/current/drover-agent`
    /// exists, `drover-agent run` started as any other binary (the packaged
    /// `/usr/bin/drover-agent` of the systemd unit) re-executes that one, so
    /// the unit always runs the release rootd switched to.
    #[serde(default)]
    pub agent_releases_dir: Option<PathBuf>,
}

fn default_nats() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_socket() -> PathBuf {
    PathBuf::from("/run/drover/rootd.sock")
}
fn default_interval() -> u32 {
    30
}
fn default_busy_interval() -> u32 {
    2
}
fn default_concurrency() -> usize {
    4
}

impl AgentConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        if let Some(p) = path {
            b = b.add_source(config::File::from(p));
        }
        b = b.add_source(config::Environment::with_prefix("DROVER_AGENT").try_parsing(true));
        let cfg: Self = b
            .build()?
            .try_deserialize()
            .context("the agent needs at least state_dir")?;
        cfg.configured_key()?;
        cfg.release_key()?;
        if let Some(ca) = &cfg.nats_ca {
            anyhow::ensure!(
                ca.is_file(),
                "nats_ca {} does not exist (the CA the broker's certificate is checked against)",
                ca.display()
            );
        }
        Ok(cfg)
    }

    /// TLS options for a broker connection, see [`with_tls`].
    pub fn tls(&self, opts: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        with_tls(opts, &self.nats_url, self.nats_ca.as_deref())
    }

    /// The pinned release key, if configured (base64 or a file's path).
    pub fn release_key(&self) -> anyhow::Result<Option<bus_schema::signing::release::ReleaseKey>> {
        let Some(k) = self.release_key.as_deref().filter(|k| !k.trim().is_empty()) else {
            return Ok(None);
        };
        bus_schema::signing::release::ReleaseKey::from_setting(k)
            .map(Some)
            .context("release_key (base64, or the path of the .pub file)")
    }

    pub fn configured_key(&self) -> anyhow::Result<Option<VerifyingKey>> {
        self.control_plane_key
            .as_deref()
            .map(|k| VerifyingKey::parse(k).context("control_plane_key"))
            .transpose()
    }
}

/// Adds TLS to broker connection options: `ca` (a PEM file) as the only
/// trusted root and TLS required when given; TLS required (system roots)
/// when one of the comma-separated `urls` is `tls://`; unchanged otherwise.
/// The broker addresses in `urls`, a comma-separated list
/// (`nats://a:4222,nats://b:4222`): every node of a cluster, so the client
/// reconnects to a surviving one. Blank entries are skipped.
pub fn server_addrs(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

pub fn with_tls(
    opts: async_nats::ConnectOptions,
    urls: &str,
    ca: Option<&Path>,
) -> async_nats::ConnectOptions {
    let tls_url = urls
        .split(',')
        .any(|u| u.trim().to_ascii_lowercase().starts_with("tls://"));
    match ca {
        Some(ca) => opts
            .add_root_certificates(ca.to_path_buf())
            .require_tls(true),
        None if tls_url => opts.require_tls(true),
        None => opts,
    }
}

#[cfg(test)]
mod tests {
    use super::server_addrs;

    #[test]
    fn a_comma_separated_list_is_every_node() {
        assert_eq!(
            server_addrs(" nats://a:4222, nats://b:4222 ,,tls://c:4222"),
            ["nats://a:4222", "nats://b:4222", "tls://c:4222"]
        );
        assert_eq!(server_addrs("nats://a:4222"), ["nats://a:4222"]);
    }
}
