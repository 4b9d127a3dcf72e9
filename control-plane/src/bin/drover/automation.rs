//! `drover api-tokens` and `drover automation`: the credentials automation
//! uses — API tokens bound to a role, and the keys it signs
//! `drover.jobs.submit` messages with.
//!
//! Owns those arguments and their output; `automation keygen` runs here
//! without the API, everything else goes through it. Which role may do what
//! is the library's (`auth`, `automation`), not this file's.

use clap::Subcommand;
use control_plane::client;

#[derive(Subcommand, Debug)]
pub enum ApiTokensCmd {
    /// Make a token bound to a role (shown once).
    Create {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum AutomationCmd {
    /// Make a new key pair here and print it (the seed is shown once; keep it
    /// with the automation, give the control plane only the public key).
    Keygen,
    /// Register a public key under a name and a role (operator or admin may submit jobs).
    Add {
        name: String,
        #[arg(long, default_value = "operator")]
        role: String,
        #[arg(long)]
        public_key: String,
    },
    /// List registered keys.
    List,
    /// Revoke a key: its submissions are refused from now on.
    Revoke { id: String },
}

/// `drover api-tokens create|list|revoke`.
pub async fn api_tokens(api: &client::ApiClient, action: ApiTokensCmd) -> anyhow::Result<()> {
    match action {
        ApiTokensCmd::Create { name, role } => {
            let v = api
                .post(
                    "/api-tokens",
                    &serde_json::json!({"name": name, "role": role}),
                )
                .await?;
            println!("API token {name} ({role}), shown once:");
            println!("{}", v["token"].as_str().unwrap_or(""));
            println!("id {}", v["id"].as_str().unwrap_or(""));
            Ok(())
        }
        ApiTokensCmd::List => {
            let v = api.get("/api-tokens").await?;
            println!("{:<34} {:<24} ROLE", "ID", "NAME");
            for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<34} {:<24} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    t["role"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        ApiTokensCmd::Revoke { id } => {
            api.delete(&format!("/api-tokens/{id}")).await?;
            println!("API token {id} revoked");
            Ok(())
        }
    }
}

/// `drover automation keygen`: a new key pair, printed here (no API).
pub fn keygen() -> anyhow::Result<()> {
    let k = bus_schema::signing::automation::AutomationKey::generate();
    println!("seed (secret, shown once): {}", k.seed_base64());
    println!("public key:                {}", k.public_base64());
    println!(
        "register it: drover automation add <name> --role operator --public-key {}",
        k.public_base64()
    );
    Ok(())
}

/// `drover automation add|list|revoke` (`keygen` is [`keygen`]).
pub async fn automation(api: &client::ApiClient, action: AutomationCmd) -> anyhow::Result<()> {
    match action {
        AutomationCmd::Add {
            name,
            role,
            public_key,
        } => {
            let v = api
                .post(
                    "/automation-keys",
                    &serde_json::json!({"name": name, "role": role, "public_key": public_key}),
                )
                .await?;
            println!(
                "automation key {} ({}) registered as {}",
                v["name"].as_str().unwrap_or(""),
                v["fingerprint"].as_str().unwrap_or(""),
                v["role"].as_str().unwrap_or("")
            );
            Ok(())
        }
        AutomationCmd::List => {
            let v = api.get("/automation-keys").await?;
            for k in v["keys"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<14} {:<20} {:<9} {} {}",
                    k["id"].as_str().unwrap_or(""),
                    k["name"].as_str().unwrap_or(""),
                    k["role"].as_str().unwrap_or(""),
                    k["fingerprint"].as_str().unwrap_or(""),
                    if k["revoked"] == true { "revoked" } else { "" }
                );
            }
            Ok(())
        }
        AutomationCmd::Revoke { id } => {
            api.delete(&format!("/automation-keys/{id}")).await?;
            println!("automation key {id} revoked");
            Ok(())
        }
        AutomationCmd::Keygen => keygen(),
    }
}
