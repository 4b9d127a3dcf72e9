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
    ///
    /// Example: `drover api-tokens create ci-deploy --role operator --expires 30d`
    Create {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Life of the token: `90m`, `24h`, `30d` or seconds (default:
        /// never expires). An expired token is refused with 401.
        #[arg(long)]
        expires: Option<String>,
        /// Print the answer as JSON (the secret included).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets), with expiry and last use.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
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
        ApiTokensCmd::Create {
            name,
            role,
            expires,
            json,
        } => {
            let mut body = serde_json::json!({"name": name, "role": role});
            if let Some(e) = expires {
                let secs = control_plane::tokens::parse_duration_secs(&e)
                    .map_err(|m| anyhow::anyhow!("--expires: {m}"))?;
                body["expires_in_secs"] = secs.into();
            }
            let v = api.post("/api-tokens", &body).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("API token {name} ({role}), shown once:");
            println!("{}", v["token"].as_str().unwrap_or(""));
            println!("id {}", v["id"].as_str().unwrap_or(""));
            match v["expires_at"].as_i64() {
                Some(at) => println!("expires {}", when(Some(at))),
                None => println!("never expires"),
            }
            Ok(())
        }
        ApiTokensCmd::List { json } => {
            let v = api.get("/api-tokens").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{:<34} {:<24} {:<9} {:<22} LAST USED",
                "ID", "NAME", "ROLE", "EXPIRES"
            );
            for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                let expires = match (t["expires_at"].as_i64(), t["expired"].as_bool()) {
                    (None, _) => "never".to_string(),
                    (Some(at), Some(true)) => format!("expired {}", when(Some(at))),
                    (Some(at), _) => when(Some(at)),
                };
                println!(
                    "{:<34} {:<24} {:<9} {:<22} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    t["role"].as_str().unwrap_or(""),
                    expires,
                    when(t["last_used_at"].as_i64()),
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

/// A time (ms since the epoch) as UTC `YYYY-MM-DD HH:MM`, or `never`.
fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%MZ").to_string())
        .unwrap_or_else(|| "never".into())
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
