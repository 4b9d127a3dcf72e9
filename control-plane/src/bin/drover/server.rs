//! The commands that run on the control-plane host without the API:
//! `drover init`, `drover dev`, `drover broker-config` and `drover decode` (`drover serve` is one
//! call into the library, made from `main.rs`).
//!
//! Owns their output; creating keys, tokens and the first admin, and
//! running the dev stack, are the library's (`serve`, `dev`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use control_plane::{config::Config, dev, serve};

use crate::accounts::read_password_file;

/// `drover init [--admin-password-file] [--no-tls] [--tls-name N]...`: the
/// signing key, the admin API token, the first web UI admin and the TLS
/// files, once; prints what it made.
pub async fn init(
    cfg: &Config,
    admin_password_file: Option<PathBuf>,
    tls: &serve::InitTls,
) -> anyhow::Result<()> {
    let given = match admin_password_file {
        Some(p) => Some(read_password_file(&p)?),
        None => None,
    };
    match serve::init_with(cfg, tls).await? {
        Some(token) => {
            println!(
                "Admin API token (shown once; also saved 0600 in {}):",
                cfg.admin_token_path().display()
            );
            println!("{token}");
        }
        None => println!(
            "Already initialised; the admin token is in {}",
            cfg.admin_token_path().display()
        ),
    }
    match serve::init_admin_user(cfg, given).await? {
        Some(pw) => {
            println!("Web UI user `admin` created; its password (shown once):");
            println!("{pw}");
        }
        None => println!("Web UI users exist already (`drover users list`)."),
    }
    println!("The admin API token is for set-up; give automation its own token: `drover api-tokens create <name> --role operator`.");
    let signer = serve::load_signer(cfg)?;
    println!(
        "Command-signing key fingerprint: {}",
        signer.public().fingerprint()
    );
    print_tls(cfg, tls);
    crate::releases::print_onboarding(cfg).await
}

/// Where the TLS files are and who needs which.
fn print_tls(cfg: &Config, tls: &serve::InitTls) {
    let files = cfg.tls_files();
    if !tls.enabled {
        println!("TLS: off (--no-tls): the broker and the API speak plaintext.");
        if files.ca_pem().exists() {
            println!(
                "  Note: {} exists, so `drover serve` would still use TLS; remove {} for plaintext.",
                files.ca_pem().display(),
                files.dir.display()
            );
        }
        return;
    }
    println!(
        "TLS: CA {} (hosts need a copy: /etc/drover/ca.pem, `nats_ca` in agent.toml)",
        files.ca_pem().display()
    );
    println!(
        "  Broker certificate {} (its tls {{}} block: {}); API certificate {}; names for new certificates: {}",
        files.nats_pem().display(),
        cfg.nats_conf_path().with_file_name("tls.conf").display(),
        files.http_pem().display(),
        cfg.cert_names(&tls.extra_names).join(", ")
    );
    println!(
        "  The API now listens with HTTPS only: use --api https://<host>:<port> (the CLI trusts {} by default).",
        files.ca_pem().display()
    );
}

/// The options of `drover broker-config` (`docs/cluster.md`).
#[derive(clap::Args, Debug)]
pub struct BrokerConfig {
    /// This node's unique server name (`drover-1`).
    #[arg(long)]
    pub name: String,
    /// The cluster's name, the same on every node.
    #[arg(long, default_value = "drover")]
    pub cluster: String,
    /// Client address, host:port.
    #[arg(long, default_value = "0.0.0.0:4222")]
    pub listen: String,
    /// Route address the other nodes connect to, host:port.
    #[arg(long, default_value = "0.0.0.0:6222")]
    pub cluster_listen: String,
    /// A node's route address, host:port; repeat for every node.
    #[arg(long = "route", required = true)]
    pub routes: Vec<String>,
    /// This node's JetStream store directory.
    #[arg(long, default_value = "/var/lib/nats/jetstream")]
    pub store_dir: PathBuf,
    /// This node's account resolver directory.
    #[arg(long, default_value = "/var/lib/nats/resolver")]
    pub resolver_dir: PathBuf,
    /// HTTP monitoring address, host:port (`/healthz`, `/jsz`; no
    /// credentials: keep it private). None when absent.
    #[arg(long)]
    pub monitor: Option<String>,
    /// TLS on client connections (includes the `tls.conf` `drover init`
    /// wrote) and on the routes between nodes (each node's broker
    /// certificate, checked against the installation's CA both ways; it
    /// must name every node and allow client authentication, which a
    /// certificate of an earlier `drover init` lacks: run `drover init`
    /// again first). The certificate, its key and the CA are checked
    /// before anything is written.
    #[arg(long)]
    pub tls: bool,
    /// Write here (owner-only) instead of standard output; says on stderr
    /// what it wrote. An existing file is replaced only if it is a regular
    /// file holding a node configuration written before.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `drover broker-config`: one cluster node's configuration, made from this
/// installation's broker trust chain (`<data_dir>/nats-auth`). Refuses an
/// uninitialised data directory (it never makes keys: run `drover init`).
pub fn broker_config(cfg: &Config, o: BrokerConfig) -> anyhow::Result<()> {
    let auth = control_plane::nats_auth::NatsAuth::load_existing(&cfg.data_dir)?;
    let node = control_plane::broker_cluster::ClusterNode {
        server_name: o.name,
        cluster_name: o.cluster,
        listen: o.listen,
        cluster_listen: o.cluster_listen,
        routes: o.routes,
        store_dir: o.store_dir,
        monitor: o.monitor,
    };
    let tls = o.tls.then(|| cfg.tls_files());
    let conf = auth.cluster_conf(&node, &o.resolver_dir, tls.as_ref())?;
    match o.out {
        // It holds the routes' password: owner-only, like the key files
        // (an existing file is replaced, and made owner-only too).
        Some(p) => {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            // Only an earlier node configuration is replaced: a mistyped
            // --out must not overwrite a key or anything else.
            match std::fs::symlink_metadata(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("looking at {}", p.display())),
                Ok(meta) => {
                    let header = control_plane::broker_cluster::CONF_HEADER.as_bytes();
                    let mut start = vec![0u8; header.len()];
                    let ours = meta.is_file()
                        && std::fs::File::open(&p)
                            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut start))
                            .is_ok()
                        && start == header;
                    anyhow::ensure!(
                        ours,
                        "refusing to replace {}: it is not a node configuration `drover \
                         broker-config` wrote; choose another --out, or remove the file first \
                         if it is one",
                        p.display()
                    );
                }
            }
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&p)?;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                std::io::Write::write_all(&mut f, conf.as_bytes())
            };
            write().with_context(|| format!("writing {}", p.display()))?;
            // Standard output stays empty: scripts may redirect it.
            let beside = if tls.is_some() {
                " (with the tls.conf drover init wrote beside it, and the certificates at the \
                 paths it names)"
            } else {
                ""
            };
            eprintln!(
                "wrote {} (node {}, owner-only: it holds the routes' password); start the node \
                 with: nats-server -c {}{beside}",
                p.display(),
                node.server_name,
                p.display()
            );
            Ok(())
        }
        None => {
            print!("{conf}");
            Ok(())
        }
    }
}

/// The options of `drover dev`.
#[derive(clap::Args, Debug)]
pub struct Dev {
    /// Port of the dev nats-server.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
    /// Address of the API and web UI (default: the configured one).
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory: database, keys, broker storage (default: the
    /// configured one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Heartbeat interval of the local agent, in seconds.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_secs: u32,
}

/// `drover dev`: the whole stack on this machine until Ctrl-C.
pub async fn run_dev(mut cfg: Config, opts: Dev) -> anyhow::Result<()> {
    let Dev {
        nats_port,
        listen,
        data_dir,
        heartbeat_secs,
    } = opts;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    dev::run(
        cfg,
        dev::DevOptions {
            nats_port,
            agent_heartbeat_secs: heartbeat_secs,
        },
    )
    .await
}

/// `drover decode`: one message body on stdin, printed as JSON.
pub fn decode() -> anyhow::Result<()> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf)?;
    // nats sub gives no headers to a translator: JSON is recognised by shape
    // (a MessagePack envelope never starts with `{`).
    let trimmed = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &buf[i..])
        .unwrap_or(&buf[..]);
    let ct = trimmed
        .first()
        .filter(|b| **b == b'{')
        .map(|_| bus_schema::CONTENT_TYPE_JSON);
    let v = bus_schema::codec::to_json(&buf, ct)
        .context("stdin is not a Drover message (MessagePack or JSON)")?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// Logs of the server commands (`init`, `serve`, `dev`) on stderr, filtered
/// by `RUST_LOG` (default `info`, quieter for the broker and SQL clients).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Warnings (and errors) only, on stderr, without timestamps: for local
/// commands whose output is a file or standard output (`broker-config`).
pub fn init_warnings() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}
