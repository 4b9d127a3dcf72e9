//! rootd's configuration: a TOML file plus `DROVER_ROOTD_*` variables.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bus_schema::VerifyingKey;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct RootdConfig {
    /// Where the socket lives (created 0660).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// The only uid allowed to connect (the agent's user).
    pub agent_uid: u32,
    /// Group that owns the socket (the agent's group); unset leaves the
    /// creating process's group.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// The control plane's command-signing public key (base64), pinned.
    pub control_plane_key: String,
    /// File holding the local agent's id (written by the agent at first
    /// start); commands for any other agent are refused.
    pub agent_id_file: PathBuf,
    /// rootd's own state: the replay memory.
    pub state_dir: PathBuf,
    /// Largest request frame accepted.
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// Seconds between TERM and KILL when an action overruns its timeout.
    #[serde(default = "default_grace")]
    pub kill_grace_secs: u64,
    /// systemd units the `service` module may touch, named as systemd does
    /// (`nginx` means `nginx.service`; a template `getty@.service` or
    /// `getty@` covers all its instances; `\xNN` escapes as
    /// `systemd-escape` writes them). Empty: none. An entry that is not a
    /// unit name covers nothing and is warned about at start.
    #[serde(default)]
    pub service_allow_list: Vec<String>,
    /// The `systemctl` program; found in the usual system directories when
    /// unset. Tests point it at a test double.
    #[serde(default)]
    pub systemctl: Option<PathBuf>,
    /// The directory whose existence says systemd runs as PID 1 (what
    /// `sd_booted()` checks). Only tests change it.
    #[serde(default = "default_systemd_run_dir")]
    pub systemd_run_dir: PathBuf,
    /// Where the app manifests live (`<dir>/<id>/manifest.yml`).
    #[serde(default = "default_manifests")]
    pub manifests_dir: PathBuf,
    /// Where the apps' state is kept (what was installed, with which inputs
    /// minus secrets).
    #[serde(default)]
    pub apps_state_dir: Option<PathBuf>,
    /// The local MariaDB server's Unix socket.
    #[serde(default = "default_mariadb_socket")]
    pub mariadb_socket: PathBuf,
    /// The nftables table Drover keeps its rules in (family inet).
    #[serde(default = "default_nft_table")]
    pub nft_table: String,
    /// Run `nft` inside this network namespace (`ip netns exec <ns> nft ...`);
    /// for tests, which must not touch the host's firewall.
    #[serde(default)]
    pub nft_netns: Option<String>,
    /// Seconds apt-get waits for the dpkg lock another package manager holds
    /// before it gives up (`-o DPkg::Lock::Timeout=`).
    #[serde(default = "default_apt_lock_timeout")]
    pub apt_lock_timeout_secs: u32,
    /// Where the `pkg` module finds apt-get, dpkg-query, dnf and rpm (only
    /// there) instead of the system directories. Only tests set it, to use
    /// test doubles.
    #[serde(default)]
    pub pkg_programs_dir: Option<PathBuf>,
    /// An apt configuration file given to apt-get as `APT_CONFIG=<path>`
    /// (its own sources, lists and caches, for instance). Unset: apt's
    /// usual configuration. Tests point it at a local repository.
    #[serde(default)]
    pub apt_config: Option<PathBuf>,
    /// The file whose existence says a reboot is required (apt hosts); its
    /// sibling `<file>.pkgs` lists the packages that asked for it.
    #[serde(default = "default_reboot_required_file")]
    pub reboot_required_file: PathBuf,
    /// The program `sys.reboot` and `sys.reboot_cancel` run
    /// (`<program> -r +MINUTES MESSAGE`, `<program> -c`). Tests point it at
    /// a test double.
    #[serde(default = "default_shutdown_program")]
    pub shutdown_program: PathBuf,
    /// The program that says whether a reboot is required on dnf hosts
    /// (`<program> -r`: exit 1 required, 0 not). A bare name is looked for
    /// in the system directories; when absent, the scan says the reboot
    /// need is unknown.
    #[serde(default = "default_needs_restarting")]
    pub needs_restarting: PathBuf,
    /// The pinned public release key (base64, or a path to the `.pub` file
    /// `drover releases keygen` writes). Unset: `agent.update` is refused.
    #[serde(default)]
    pub release_key: Option<String>,
    /// Where installed agent releases live: `<dir>/<version>/drover-agent`
    /// and `release.json`, and `<dir>/current` (a symlink to the running
    /// one). Unset: self-update is off (`agent.update` is refused and rootd
    /// starts no agent).
    #[serde(default)]
    pub agent_releases_dir: Option<PathBuf>,
    /// Where the agent stages a checked release (`<agent state_dir>/updates`);
    /// rootd reads `<dir>/<sha256>` from there, a name it derives from the
    /// signed manifest, never a path from the params.
    #[serde(default)]
    pub agent_staging_dir: Option<PathBuf>,
    /// The packaged agent binary adopted as the first release when
    /// `<agent_releases_dir>/current` does not exist yet.
    #[serde(default = "default_agent_program")]
    pub agent_program: PathBuf,
    /// How the agent is restarted after a switch: `systemd` (`systemctl
    /// restart <agent_unit>`) or `supervise` (rootd runs the agent as its
    /// child and restarts it when it exits).
    #[serde(default)]
    pub agent_restart: AgentRestart,
    /// The agent's unit, for `agent_restart = "systemd"`.
    #[serde(default = "default_agent_unit")]
    pub agent_unit: String,
    /// Arguments of the supervised agent (`["--config", "/etc/drover/agent.toml", "run"]`).
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// Environment variables of the supervised agent (only these are added).
    #[serde(default)]
    pub agent_env: std::collections::BTreeMap<String, String>,
    /// The supervised agent's uid and gid (default: `agent_uid`, the user
    /// allowed on the socket, and its primary group; never root unless
    /// set so).
    #[serde(default)]
    pub agent_run_uid: Option<u32>,
    #[serde(default)]
    pub agent_run_gid: Option<u32>,
    /// Supervise mode: the agent gets TERM when rootd dies (`prctl`
    /// parent-death signal). Default false: an agent outlives a rootd crash
    /// and the next rootd stops it (pid file) before starting its own.
    #[serde(default)]
    pub agent_stop_with_rootd: bool,
    /// Seconds a new agent has to pass its self-test before rootd rolls it
    /// back.
    #[serde(default = "default_update_health_secs")]
    pub update_health_secs: u64,
}

/// How rootd restarts the agent after installing a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRestart {
    /// `systemctl restart <agent_unit>` (systemd is PID 1).
    #[default]
    Systemd,
    /// rootd spawns and watches the agent itself.
    Supervise,
}

fn default_agent_program() -> PathBuf {
    PathBuf::from("/usr/bin/drover-agent")
}
fn default_agent_unit() -> String {
    "drover-agent.service".into()
}
fn default_update_health_secs() -> u64 {
    300
}

fn default_reboot_required_file() -> PathBuf {
    PathBuf::from("/run/reboot-required")
}
fn default_shutdown_program() -> PathBuf {
    PathBuf::from("/usr/sbin/shutdown")
}
fn default_needs_restarting() -> PathBuf {
    PathBuf::from("needs-restarting")
}

fn default_systemd_run_dir() -> PathBuf {
    PathBuf::from("/run/systemd/system")
}
fn default_manifests() -> PathBuf {
    PathBuf::from("/usr/share/drover/manifests")
}
fn default_mariadb_socket() -> PathBuf {
    PathBuf::from("/run/mysqld/mysqld.sock")
}
fn default_apt_lock_timeout() -> u32 {
    60
}
fn default_nft_table() -> String {
    "drover".into()
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/drover/rootd.sock")
}
fn default_max_request() -> usize {
    64 * 1024
}
fn default_grace() -> u64 {
    5
}

impl RootdConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        if let Some(p) = path {
            b = b.add_source(config::File::from(p));
        }
        b = b.add_source(config::Environment::with_prefix("DROVER_ROOTD").try_parsing(true));
        let cfg: Self = b
            .build()?
            .try_deserialize()
            .context("rootd needs agent_uid, control_plane_key, agent_id_file and state_dir")?;
        cfg.key()?;
        cfg.release_key()?;
        for entry in &cfg.service_allow_list {
            if let Err(e) = bus_schema::catalogue::parse_unit(entry.trim()) {
                tracing::warn!(%entry, error = %e, "service_allow_list entry covers nothing");
            }
        }
        Ok(cfg)
    }

    pub fn key(&self) -> anyhow::Result<VerifyingKey> {
        VerifyingKey::parse(&self.control_plane_key).context("control_plane_key")
    }

    /// The pinned release key, if configured: base64, or a path to a file
    /// holding it.
    pub fn release_key(&self) -> anyhow::Result<Option<bus_schema::signing::release::ReleaseKey>> {
        let Some(k) = self.release_key.as_deref().filter(|k| !k.trim().is_empty()) else {
            return Ok(None);
        };
        bus_schema::signing::release::ReleaseKey::from_setting(k)
            .map(Some)
            .context("release_key (base64, or the path of the .pub file)")
    }
}
