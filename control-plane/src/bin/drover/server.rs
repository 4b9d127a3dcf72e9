//! The commands that run on the control-plane host without the API:
//! `drover init`, `drover dev` and `drover decode` (`drover serve` is one
//! call into the library, made from `main.rs`).
//!
//! Owns their output; creating keys, tokens and the first admin, and
//! running the dev stack, are the library's (`serve`, `dev`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use control_plane::{config::Config, dev, serve};

use crate::accounts::read_password_file;

/// `drover init [--admin-password-file]`: the signing key, the admin API
/// token and the first web UI admin, once; prints what it made.
pub async fn init(cfg: &Config, admin_password_file: Option<PathBuf>) -> anyhow::Result<()> {
    let given = match admin_password_file {
        Some(p) => Some(read_password_file(&p)?),
        None => None,
    };
    match serve::init(cfg).await? {
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
    crate::releases::print_onboarding(cfg).await
}

/// The options of `drover dev`, as clap parsed them.
pub struct Dev {
    /// Port of the dev nats-server.
    pub nats_port: u16,
    /// Address of the API and web UI, if not the configured one.
    pub listen: Option<String>,
    /// Data directory, if not the configured one.
    pub data_dir: Option<PathBuf>,
    /// Heartbeat interval of the local agent, in seconds.
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
