//! `drover keys` (the overview) and `drover keys rotate` (a new command-
//! signing or release key generation). A release rotation is signed here,
//! on the machine that holds the old release key's seed, and only the
//! signed message goes to the control plane; the seed never leaves.

use anyhow::Context;
use bus_schema::signing::release::{ReleaseKey, ReleaseSigner};
use bus_schema::signing::rotation::{KeyKind, KeyRotation};
use clap::Subcommand;
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Rotate a key: hosts get a rotation signed by the old key and accept
    /// both until the overlap ends, then only the new one.
    ///
    /// Examples:
    ///   drover keys rotate --which command --overlap 24h
    ///   drover releases keygen --out release-2.key
    ///   drover keys rotate --which release --old-key release.key \
    ///       --new-key release-2.key.pub --overlap 7d
    Rotate {
        /// `command` (the control plane's command-signing key) or
        /// `release` (the key that signs agent releases).
        #[arg(long)]
        which: String,
        /// How long hosts still accept the old key: `24h`, `90m`, `7d`.
        #[arg(long, default_value = "24h")]
        overlap: String,
        /// Release only: the old release key's seed file (signs the rotation).
        #[arg(long)]
        old_key: Option<std::path::PathBuf>,
        /// Release only: the new public release key (base64 or its .pub file).
        #[arg(long)]
        new_key: Option<String>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    api: &client::ApiClient,
    action: Option<KeysCmd>,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        None => overview(api, json).await,
        Some(KeysCmd::Rotate {
            which,
            overlap,
            old_key,
            new_key,
            json,
        }) => rotate(api, &which, &overlap, old_key, new_key, json).await,
    }
}

async fn overview(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/keys").await?;
    if json {
        return print_json(&v);
    }
    for kind in ["command", "release"] {
        let k = &v[kind];
        if k.is_null() {
            println!("{kind} key: none configured (release_key in drover.toml)\n");
            continue;
        }
        println!(
            "{kind} key: generation {} {}",
            k["generation"],
            k["fingerprint"].as_str().unwrap_or("")
        );
        if k["overlap_active"].as_bool() == Some(true) {
            println!(
                "  overlap: hosts accept the previous key until {} (ms since the epoch)",
                k["overlap_end_ms"]
            );
        }
        println!(
            "  hosts holding it: {} of {}",
            k["hosts_with_current"], k["hosts_total"]
        );
        for h in k["hosts"].as_array().into_iter().flatten() {
            if h["holds_current"].as_bool() != Some(true) {
                println!(
                    "    not yet: {} ({})",
                    h["hostname"].as_str().unwrap_or(""),
                    h["id"].as_str().unwrap_or("")
                );
            }
        }
        println!("  generations:");
        for g in k["generations"].as_array().into_iter().flatten() {
            println!(
                "    {:>3}  {}  held by {}",
                g["generation"],
                g["fingerprint"].as_str().unwrap_or(""),
                g["hosts_holding"]
            );
        }
        println!();
    }
    Ok(())
}

async fn rotate(
    api: &client::ApiClient,
    which: &str,
    overlap: &str,
    old_key: Option<std::path::PathBuf>,
    new_key: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let kind = KeyKind::parse(which)?;
    let body = match kind {
        KeyKind::Command => {
            anyhow::ensure!(
                old_key.is_none() && new_key.is_none(),
                "--old-key and --new-key are for --which release; the control plane makes and holds command keys"
            );
            json!({ "which": "command", "overlap": overlap })
        }
        KeyKind::Release => {
            let (Some(old), Some(new)) = (old_key, new_key) else {
                anyhow::bail!("--which release needs --old-key (the current release key's seed file) and --new-key (the new public key; make one with `drover releases keygen --out NEW.key`)");
            };
            let old = ReleaseSigner::load(&old).context("--old-key")?;
            let new = ReleaseKey::from_setting(&new).context("--new-key")?;
            let current = api.get("/keys").await?;
            let release = &current["release"];
            anyhow::ensure!(
                !release.is_null(),
                "the control plane has no release key configured (release_key in drover.toml)"
            );
            anyhow::ensure!(
                release["fingerprint"].as_str() == Some(old.public().fingerprint().as_str()),
                "--old-key is {}, but the control plane trusts release key {}: sign with that one",
                old.public().fingerprint(),
                release["fingerprint"].as_str().unwrap_or("")
            );
            let secs = control_plane::tokens::parse_duration_secs(overlap)
                .map_err(|e| anyhow::anyhow!("--overlap: {e}"))?;
            let now = bus_schema::now_ms();
            let rotation = KeyRotation {
                which: KeyKind::Release,
                generation: release["generation"].as_u64().unwrap_or(0) as u32 + 1,
                new_key: new.to_base64(),
                overlap_end_ms: now + secs.saturating_mul(1000),
                at_ms: now,
            };
            let (text, signature) = rotation.sign_release(&old)?;
            json!({ "which": "release", "rotation": text, "signature": signature })
        }
    };
    let v: Value = api.post("/keys/rotate", &body).await?;
    if json {
        return print_json(&v);
    }
    println!(
        "{} key rotated to generation {} ({}); sent to {} hosts; the old key is accepted until {} (ms since the epoch)",
        v["which"].as_str().unwrap_or(which),
        v["generation"],
        v["fingerprint"].as_str().unwrap_or(""),
        v["sent"],
        v["overlap_end_ms"]
    );
    for f in v["failed"].as_array().into_iter().flatten() {
        println!(
            "  not sent to {}: {}",
            f[0].as_str().unwrap_or(""),
            f[1].as_str().unwrap_or("")
        );
    }
    println!("Follow the adoption with `drover keys`.");
    Ok(())
}
