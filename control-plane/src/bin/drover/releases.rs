//! `drover releases publish|list` (signed agent packages for `install.sh`)
//! and what `drover init` prints for onboarding hosts: the full
//! command-signing key and the first registration token with its install
//! line.
//!
//! Owns those arguments and their output. `publish` runs on the
//! control-plane host (it signs with the key in the data directory and
//! writes to the broker as the control plane); `list` goes through the
//! API. Signing, naming and storing are the library's (`releases`,
//! `install`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use control_plane::{client, config::Config, releases, serve};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum ReleasesCmd {
    /// Sign and store packages (.deb/.rpm, named as the packaging tools
    /// name them) in the release bucket. Runs on the control-plane host:
    /// it signs with <data_dir>/signing.key and connects to the broker with
    /// the control plane's credentials.
    Publish {
        /// Package files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the artifacts install.sh can fetch.
    List {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `drover releases publish`: local, with the control plane's own key and
/// broker credentials.
pub async fn publish(cfg: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let signer = serve::load_signer(cfg)?;
    let nats =
        control_plane::bus::connect(cfg, "drover releases publish", &cfg.nats_creds_path()).await?;
    control_plane::bus::wait_connected(&nats, std::time::Duration::from_secs(30)).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let mut failed = 0;
    for f in files {
        match releases::publish_file(&js, &signer, f).await {
            Ok((a, stored)) => println!(
                "{} {}  {} {} {}  sha256 {}",
                if stored { "published" } else { "unchanged" },
                a.name,
                a.format,
                a.arch,
                a.version,
                a.sha256
            ),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    let _ = nats.flush().await;
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files not published",
        files.len()
    );
    Ok(())
}

/// `drover releases list [--json]`, through the API.
pub async fn list(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/releases").await?;
    if json {
        return print_json(&v);
    }
    let list = v["releases"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No release artifacts. Publish packages with `drover releases publish FILE...` on the control-plane host.");
        return Ok(());
    }
    println!(
        "{:<44} {:<6} {:<8} {:<12} {:>10}  SHA256",
        "NAME", "FORMAT", "ARCH", "VERSION", "SIZE"
    );
    for a in list {
        println!(
            "{:<44} {:<6} {:<8} {:<12} {:>10}  {}",
            a["name"].as_str().unwrap_or(""),
            a["format"].as_str().unwrap_or(""),
            a["arch"].as_str().unwrap_or(""),
            a["version"].as_str().unwrap_or(""),
            a["size"].as_u64().unwrap_or(0),
            a["sha256"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// What `drover init` prints for onboarding: the command-signing key in
/// full (base64, as `agent.toml` and `rootd.toml` take it) and, when no
/// registration token exists yet, a first one (10 uses, 7 days, approved by
/// an operator) with its install line.
pub async fn print_onboarding(cfg: &Config) -> anyhow::Result<()> {
    let signer = serve::load_signer(cfg)?;
    let key = signer.public();
    println!("Command-signing public key (control_plane_key in agent.toml and rootd.toml):");
    println!("{}", key.to_base64());
    let db = control_plane::db::connect(&cfg.database_url()).await?;
    if !control_plane::tokens::list(&db).await?.is_empty() {
        println!("Registration tokens exist already (`drover tokens list`; `drover tokens create` makes another with its install line).");
        return Ok(());
    }
    let (t, secret) = control_plane::tokens::create(
        &db,
        control_plane::tokens::NewToken {
            uses: 10,
            expires_in_secs: 7 * 86_400,
            labels: Default::default(),
            auto_approve: false,
            created_by: "drover init".into(),
        },
    )
    .await
    .context("creating the first registration token")?;
    println!(
        "First registration token {} (10 hosts, 7 days, hosts wait for `drover agents approve`); shown once:",
        t.id
    );
    println!("{secret}");
    println!("Install a host with (publish the agent packages first: `drover releases publish`):");
    println!("  {}", control_plane::install::install_line(cfg, &secret));
    Ok(())
}
