//! `drover releases keygen|publish|list|show|yank`: the fleet's release
//! key, signed agent releases for self-update, and the signed agent
//! packages for `install.sh`; plus what `drover init` prints for
//! onboarding hosts (the full command-signing key and the first
//! registration token with its install line).
//!
//! Owns those arguments and their output. `keygen` and the signing of an
//! agent release run locally (the release key's private half never leaves
//! the operator's machine); the agent release's upload, `list`, `show` and
//! `yank` go through the API. `publish` of packages (without `--version`)
//! runs on the control-plane host: it signs with the key in the data
//! directory and writes to the broker as the control plane. Signing,
//! naming and storing are the libraries' (`bus_schema::signing::release`,
//! `releases`, `agent_releases`, `install`).

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::{engine::general_purpose::STANDARD, Engine};
use bus_schema::signing::release::{self, ReleaseSigner};
use clap::Subcommand;
use control_plane::{client, config::Config, releases, serve};
use serde_json::{json, Value};

use crate::print::print_json;

/// Chunk of the upload between two progress updates.
const UPLOAD_CHUNK: usize = 256 * 1024;

#[derive(Subcommand, Debug)]
pub enum ReleasesCmd {
    /// Make the fleet's release key pair (once, on your own machine): PATH
    /// holds the private seed (0600; keep it offline, with you), PATH.pub
    /// the public half that drover.toml's `release_key` names and
    /// install.sh pins on every host. Refuses to overwrite either file.
    Keygen {
        /// Where to write the private key (the public one goes to PATH.pub).
        #[arg(long, default_value = "release.key")]
        out: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// With --version: sign an agent binary with the release key (here,
    /// locally) and upload it for self-update (`drover rollout start`). The
    /// control plane checks the signature with its pinned `release_key`.
    ///
    /// Without --version: sign and store packages (.deb/.rpm, named as the
    /// packaging tools name them) for install.sh. That runs on the
    /// control-plane host: it signs with <data_dir>/signing.key and
    /// connects to the broker with the control plane's credentials.
    Publish {
        /// The agent binary (with --version), or package files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The agent release's version (MAJOR.MINOR.PATCH[-pre]); makes
        /// this an agent release.
        #[arg(long)]
        version: Option<String>,
        /// Release channel: stable or beta.
        #[arg(long, default_value = "stable", requires = "version")]
        channel: String,
        /// Release notes shown on the Releases page (at most 2000
        /// characters).
        #[arg(long, default_value = "", requires = "version")]
        notes: String,
        /// The oldest control-plane version this agent works with.
        #[arg(long, default_value = "", requires = "version")]
        min_control_plane: String,
        /// The release key's private half (`drover releases keygen`).
        #[arg(long, requires = "version")]
        key: Option<PathBuf>,
        /// The binary's platform, linux-<arch> (default: this machine's).
        #[arg(long, requires = "version")]
        platform: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List agent releases (with the release key's fingerprint) and the
    /// packages install.sh can fetch.
    List {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// One agent release: every platform's build, yank state, the signed
    /// manifest.
    Show {
        version: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Yank an agent release: it is never offered again (an `agent.update`
    /// naming it is refused, rollouts of it stop). Not undone.
    Yank {
        version: String,
        /// Why (required; shown to operators and in refusals).
        #[arg(long)]
        reason: String,
        /// Only this platform's build (default: every platform's).
        #[arg(long)]
        platform: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `drover releases keygen [--out PATH]`: writes PATH (seed, 0600) and
/// PATH.pub; refuses when either exists, leaving both untouched.
pub fn keygen(out: &Path, json: bool) -> anyhow::Result<()> {
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    for p in [out, pub_path.as_path()] {
        anyhow::ensure!(
            !p.exists() && p.symlink_metadata().is_err(),
            "{} exists already: a release key is never overwritten (every host pins its public \
             half); choose another --out",
            p.display()
        );
    }
    let signer = ReleaseSigner::generate();
    let key = signer.public();
    let write = |p: &Path, mode: u32, text: &str| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
            .with_context(|| format!("creating {}", p.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", p.display()))
    };
    write(out, 0o600, &format!("{}\n", signer.seed_base64()))?;
    if let Err(e) = write(&pub_path, 0o644, &format!("{}\n", key.to_base64())) {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    if json {
        return print_json(&json!({
            "key_file": out,
            "public_key_file": pub_path,
            "public_key": key.to_base64(),
            "fingerprint": key.fingerprint(),
        }));
    }
    println!(
        "Release key written: {} (private, 0600) and {} (public).",
        out.display(),
        pub_path.display()
    );
    println!("Public key:  {}", key.to_base64());
    println!("Fingerprint: {}", key.fingerprint());
    println!("Next:");
    println!(
        "  1. Keep {} offline, with you; it signs every agent release and cannot be recovered.",
        out.display()
    );
    println!("  2. Set it on the control plane (drover.toml or DROVER_RELEASE_KEY) and restart `drover serve`:");
    println!("       release_key = \"{}\"", key.to_base64());
    println!("  3. Hosts installed from now on pin it (install.sh writes release_key into agent.toml and rootd.toml);");
    println!("     add the same line to those files on hosts installed earlier.");
    println!(
        "  4. Publish: drover releases publish ./drover-agent --version X.Y.Z --key {}",
        out.display()
    );
    Ok(())
}

/// What `drover releases publish --version` signs and sends.
pub struct AgentPublish {
    pub binary: PathBuf,
    pub version: String,
    pub channel: String,
    pub notes: String,
    pub min_control_plane: String,
    pub key: Option<PathBuf>,
    pub platform: Option<String>,
    pub json: bool,
}

/// `drover releases publish BINARY --version X.Y.Z --key release.key`:
/// signs the manifest here and uploads binary + manifest + signature.
pub async fn publish_agent(api: &client::ApiClient, a: AgentPublish) -> anyhow::Result<()> {
    let key_path = a.key.context(
        "--key is required with --version: the release key's private half \
         (`drover releases keygen --out release.key` makes one)",
    )?;
    let signer = ReleaseSigner::load(&key_path)?;
    let meta =
        std::fs::metadata(&a.binary).with_context(|| format!("reading {}", a.binary.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a file", a.binary.display());
    let max = control_plane::agent_releases::store::MAX_BINARY_BYTES as u64;
    anyhow::ensure!(
        meta.len() <= max,
        "{} is {} bytes, more than the {max} a release may have",
        a.binary.display(),
        meta.len()
    );
    let bytes =
        std::fs::read(&a.binary).with_context(|| format!("reading {}", a.binary.display()))?;
    let platform = a.platform.unwrap_or_else(release::platform);
    let m = release::manifest_for(
        &bytes,
        &a.version,
        &platform,
        &a.channel,
        &a.min_control_plane,
        &a.notes,
        bus_schema::now_ms(),
    );
    let (text, sig) = signer.sign(&m)?;
    let total = bytes.len() as u64;
    let bar = (std::io::stderr().is_terminal() && !a.json).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "uploading {bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(bytes)
        .chunks(UPLOAD_CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let progress = bar.clone();
    let stream = futures::stream::iter(chunks.into_iter().map(move |c| {
        if let Some(b) = &progress {
            b.inc(c.len() as u64);
        }
        Ok::<_, std::io::Error>(c)
    }));
    let headers = [
        (
            "x-drover-release-manifest",
            STANDARD.encode(text.as_bytes()),
        ),
        ("x-drover-release-signature", sig),
    ];
    let res = api
        .post_raw("/releases", &headers, reqwest::Body::wrap_stream(stream))
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let v = res.with_context(|| {
        format!(
            "publishing {} {} (signed by release key {})",
            m.version,
            m.platform,
            signer.public().fingerprint()
        )
    })?;
    if a.json {
        return print_json(&v);
    }
    let r = &v["release"];
    println!(
        "{} drover-agent {} ({}, {})  {} bytes  sha256 {}",
        if v["created"] == true {
            "published"
        } else {
            "unchanged"
        },
        r["version"].as_str().unwrap_or(""),
        r["platform"].as_str().unwrap_or(""),
        r["channel"].as_str().unwrap_or(""),
        r["size"],
        r["sha256"].as_str().unwrap_or(""),
    );
    println!(
        "Roll it out with: drover rollout start {} --selector all",
        r["version"].as_str().unwrap_or("")
    );
    Ok(())
}

/// `drover releases publish FILES` (packages): local, with the control
/// plane's own key and broker credentials.
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

fn short_sha(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

fn when(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// `drover releases list [--json]`, through the API.
pub async fn list(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/releases").await?;
    if json {
        return print_json(&v);
    }
    println!("Agent releases (self-update)");
    let key = &v["release_key"];
    match key["fingerprint"].as_str() {
        Some(f) => println!("  release key {f}"),
        None => println!(
            "  no release key configured{}: `drover releases keygen`, then release_key in drover.toml",
            key["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default()
        ),
    }
    let agents = v["agent_releases"].as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        println!("  none. Publish one with `drover releases publish ./drover-agent --version X.Y.Z --key release.key`.");
    } else {
        println!(
            "  {:<14} {:<8} {:<14} {:>10}  {:<12} {:<16} STATE",
            "VERSION", "CHANNEL", "PLATFORM", "SIZE", "SHA256", "PUBLISHED"
        );
        for r in &agents {
            let state = if r["yanked"] == true {
                format!("yanked: {}", r["yank_reason"].as_str().unwrap_or(""))
            } else {
                "available".into()
            };
            println!(
                "  {:<14} {:<8} {:<14} {:>10}  {:<12} {:<16} {}",
                r["version"].as_str().unwrap_or(""),
                r["channel"].as_str().unwrap_or(""),
                r["platform"].as_str().unwrap_or(""),
                r["size"].as_i64().unwrap_or(0),
                short_sha(r["sha256"].as_str().unwrap_or("")),
                when(&r["published_at"]),
                state
            );
        }
    }
    println!();
    println!("Packages (install.sh)");
    let list = v["releases"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("  none. Publish packages with `drover releases publish FILE...` on the control-plane host.");
        return Ok(());
    }
    println!(
        "  {:<44} {:<6} {:<8} {:<12} {:>10}  SHA256",
        "NAME", "FORMAT", "ARCH", "VERSION", "SIZE"
    );
    for a in list {
        println!(
            "  {:<44} {:<6} {:<8} {:<12} {:>10}  {}",
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

/// `drover releases show VERSION [--json]`.
pub async fn show(api: &client::ApiClient, version: &str, json: bool) -> anyhow::Result<()> {
    let v = api
        .get(&format!(
            "/releases/{}",
            control_plane::auth::urlencode(version)
        ))
        .await?;
    if json {
        return print_json(&v);
    }
    for r in v["releases"].as_array().into_iter().flatten() {
        println!(
            "drover-agent {} ({})",
            r["version"].as_str().unwrap_or(""),
            r["platform"].as_str().unwrap_or("")
        );
        println!("  channel        {}", r["channel"].as_str().unwrap_or(""));
        println!("  size           {} bytes", r["size"]);
        println!("  sha256         {}", r["sha256"].as_str().unwrap_or(""));
        println!(
            "  object         {}",
            r["object_name"].as_str().unwrap_or("")
        );
        println!(
            "  published      {} by {}",
            when(&r["published_at"]),
            r["published_by"].as_str().unwrap_or("")
        );
        if !r["min_control_plane"].as_str().unwrap_or("").is_empty() {
            println!(
                "  min control plane {}",
                r["min_control_plane"].as_str().unwrap_or("")
            );
        }
        if r["yanked"] == true {
            println!(
                "  YANKED         {} by {}: {}",
                when(&r["yanked_at"]),
                r["yanked_by"].as_str().unwrap_or(""),
                r["yank_reason"].as_str().unwrap_or("")
            );
        } else {
            println!("  state          available");
        }
        if !r["notes"].as_str().unwrap_or("").is_empty() {
            println!("  notes          {}", r["notes"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

/// `drover releases yank VERSION --reason TEXT [--platform P] [--json]`.
pub async fn yank(
    api: &client::ApiClient,
    version: &str,
    reason: &str,
    platform: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let v = api
        .post(
            &format!("/releases/{}/yank", control_plane::auth::urlencode(version)),
            &json!({ "reason": reason, "platform": platform }),
        )
        .await?;
    if json {
        return print_json(&v);
    }
    for r in v["yanked"].as_array().into_iter().flatten() {
        println!(
            "yanked drover-agent {} ({}): it is never offered again",
            r["version"].as_str().unwrap_or(""),
            r["platform"].as_str().unwrap_or("")
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
    let db = control_plane::db::open(cfg).await?;
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
