//! One managed host under test: the agent and rootd configuration files a
//! host gets ([`HostSpec`]), and [`HostSpec::launch`], which writes them,
//! starts a real `drover-rootd` and `drover-agent` and waits for the
//! agent's id and rootd's socket. The stacks (`Stack`, `TlsStack`) and the
//! compose test describe their hosts with it; it knows no stack.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;

/// A real agent and rootd, started by [`HostSpec::launch`].
pub struct Host {
    pub id: String,
    pub agent: Proc,
    pub rootd: Proc,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub agent_toml: PathBuf,
    pub dir: PathBuf,
}

/// What a host is configured with. Files go in `dir`: `agent/` (the
/// agent's state), `rootd/`, `rootd.sock`, `agent.toml`, `rootd.toml`,
/// `machine-id`, and the processes' logs.
pub struct HostSpec {
    pub dir: PathBuf,
    /// The broker URL(s) the agent connects to.
    pub nats_url: String,
    /// The broker's CA (`nats_ca`), for a `tls://` broker.
    pub nats_ca: Option<PathBuf>,
    /// The control plane's command-signing key (base64).
    pub control_plane_key: String,
    pub enroll_token: String,
    pub enroll_creds: PathBuf,
    pub machine_id: String,
    /// Extra lines for rootd.toml (allow-lists, test doubles).
    pub rootd_extra: String,
    /// The release key (base64) pinned in agent.toml and rootd.toml
    /// (`release_key`); `None` pins none.
    pub release_key: Option<String>,
    /// rootd runs the agent itself (`agent_restart = "supervise"`, releases
    /// in `dir/releases`, the test binary adopted as the first release)
    /// instead of the test spawning it: start such a host with
    /// `HostSpec::launch_supervised` (`common/self_update.rs`). Here
    /// rootd's supervision stands in for systemd as PID 1.
    pub supervise_agent: bool,
}

impl HostSpec {
    /// A host in `dir` with a random machine-id and nothing extra.
    pub fn new(
        dir: PathBuf,
        nats_url: String,
        control_plane_key: String,
        enroll_token: &str,
        enroll_creds: PathBuf,
    ) -> Self {
        Self {
            dir,
            nats_url,
            nats_ca: None,
            control_plane_key,
            enroll_token: enroll_token.to_string(),
            enroll_creds,
            machine_id: random_machine_id(),
            rootd_extra: String::new(),
            release_key: None,
            supervise_agent: false,
        }
    }

    /// Writes the configuration, starts rootd and the agent, and returns
    /// once the agent wrote its id (enrolment asked, not necessarily
    /// approved) and rootd's socket exists.
    pub async fn launch(self) -> Host {
        assert!(
            !self.supervise_agent,
            "a host whose rootd runs the agent starts with HostSpec::launch_supervised"
        );
        let dir = self.dir.clone();
        let state_dir = dir.join("agent");
        let socket = dir.join("rootd.sock");
        let (rootd_toml, agent_toml) = self.write_files();
        let mut rc = Command::new(bin("drover-rootd"));
        rc.arg("--config").arg(&rootd_toml);
        let rootd = Proc::spawn("drover-rootd", rc, dir.join("rootd.log"));
        let agent = spawn_agent(&agent_toml, &dir);
        let id = wait_id_file("the agent to write its id", &state_dir.join("agent.id")).await;
        let sock = socket.clone();
        wait_for("rootd's socket", Duration::from_secs(20), || {
            let s = sock.clone();
            async move { s.exists().then_some(()) }
        })
        .await;
        Host {
            id,
            agent,
            rootd,
            state_dir,
            socket,
            agent_toml,
            dir,
        }
    }
}

/// Starts `drover-agent run` with `agent_toml`, logging to `dir/agent.log`.
pub fn spawn_agent(agent_toml: &Path, dir: &Path) -> Proc {
    let mut ac = Command::new(bin("drover-agent"));
    ac.arg("--config").arg(agent_toml).arg("run");
    Proc::spawn("drover-agent", ac, dir.join("agent.log"))
}

/// Waits (up to 60 s) until `file` holds a non-empty line — an agent's id
/// file, or the ids file of `drover-agent simulate` — and returns it
/// trimmed.
pub async fn wait_id_file(what: &str, file: &Path) -> String {
    wait_for(what, Duration::from_secs(60), || {
        let f = file.to_path_buf();
        async move {
            std::fs::read_to_string(&f)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        }
    })
    .await
}

impl HostSpec {
    /// Writes `rootd.toml`, `agent.toml` and `machine-id` into `dir`;
    /// returns the two configuration files' paths.
    pub fn write_files(&self) -> (PathBuf, PathBuf) {
        let dir = &self.dir;
        let state_dir = dir.join("agent");
        let socket = dir.join("rootd.sock");
        std::fs::create_dir_all(dir).unwrap();
        let agent_toml = dir.join("agent.toml");
        let rootd_toml = dir.join("rootd.toml");
        let key_line = self
            .release_key
            .as_ref()
            .map(|k| format!("release_key = {k:?}\n"))
            .unwrap_or_default();
        let supervise = if self.supervise_agent {
            format!(
                "agent_releases_dir = {:?}\nagent_staging_dir = {:?}\nagent_program = {:?}\nagent_restart = \"supervise\"\nagent_stop_with_rootd = true\nagent_args = [\"--config\", {:?}, \"run\"]\n[agent_env]\nRUST_LOG = \"info,async_nats=warn\"\nNO_COLOR = \"1\"\n",
                dir.join("releases"),
                state_dir.join("updates"),
                bin("drover-agent"),
                agent_toml,
            )
        } else {
            String::new()
        };
        std::fs::write(
            &rootd_toml,
            format!(
                "socket = {:?}\nagent_uid = {}\ncontrol_plane_key = {:?}\nagent_id_file = {:?}\nstate_dir = {:?}\nkill_grace_secs = 1\n{key_line}{}\n{supervise}",
                socket,
                nix::unistd::getuid().as_raw(),
                self.control_plane_key,
                state_dir.join("agent.id"),
                dir.join("rootd"),
                self.rootd_extra,
            ),
        )
        .unwrap();
        let ca_line = self
            .nats_ca
            .as_ref()
            .map(|ca| format!("nats_ca = {ca:?}\n"))
            .unwrap_or_default();
        std::fs::write(
            &agent_toml,
            format!(
                "nats_url = {:?}\n{ca_line}{key_line}state_dir = {:?}\ncontrol_plane_key = {:?}\nrootd_socket = {:?}\nheartbeat_secs = 1\nenroll_token = {:?}\nenroll_creds = {:?}\nmachine_id_file = {:?}\n",
                self.nats_url,
                state_dir,
                self.control_plane_key,
                socket,
                self.enroll_token,
                self.enroll_creds,
                dir.join("machine-id"),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("machine-id"), format!("{}\n", self.machine_id)).unwrap();
        (rootd_toml, agent_toml)
    }
}
