//! `drover tokens` (registration tokens for enrolling hosts) and
//! `drover security` (signing key, broker trust, agent versions, refusals, conflicts,
//! revoked and pending agents), through the API.
//!
//! Owns those arguments and their output; approving or revoking an agent is
//! in `agents.rs`, and the rules behind enrolment live in the library.

use anyhow::Context;
use clap::Subcommand;
use control_plane::client;
use serde_json::Value;

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Make a token (shown once). Hosts enrol with it until it expires or is used up.
    Create {
        /// How many hosts may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: i32,
        /// Lifetime: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Labels given to hosts enrolled with it (key=value, repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Approve hosts at once instead of waiting for `drover agents approve`.
        #[arg(long)]
        auto_approve: bool,
        /// Print the raw JSON (with the token and its install line).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token so no more hosts can enrol with it.
    Revoke { id: String },
}

/// `drover tokens create|list|revoke`.
pub async fn tokens(api: &client::ApiClient, action: TokensCmd) -> anyhow::Result<()> {
    match action {
        TokensCmd::Create {
            uses,
            expires,
            labels,
            auto_approve,
            json,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .with_context(|| format!("label {l:?} is not key=value"))?;
                map.insert(k.into(), Value::String(v.into()));
            }
            let v = api
                .post(
                    "/tokens",
                    &serde_json::json!({"uses": uses, "expires": expires, "labels": map, "auto_approve": auto_approve}),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            println!("Registration token (shown once; put it in the agent's enroll_token):");
            println!("{}", v["token"].as_str().unwrap_or(""));
            println!("Install and enrol a host with it (run on the host):");
            println!("  {}", v["install_line"].as_str().unwrap_or(""));
            println!(
                "id {}  uses {}  expires {}  auto-approve {}",
                v["id"].as_str().unwrap_or(""),
                uses,
                expires,
                auto_approve
            );
            Ok(())
        }
        TokensCmd::List => {
            let v = api.get("/tokens").await?;
            println!(
                "{:<14} {:<9} {:>9}  {:<13} LABELS",
                "ID", "STATE", "USES", "AUTO-APPROVE"
            );
            for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<14} {:<9} {:>4}/{:<4}  {:<13} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["state"].as_str().unwrap_or(""),
                    t["uses"],
                    t["uses_allowed"],
                    t["auto_approve"],
                    t["labels"]
                );
            }
            Ok(())
        }
        TokensCmd::Revoke { id } => {
            api.delete(&format!("/tokens/{id}")).await?;
            println!("token {id} revoked");
            Ok(())
        }
    }
}

/// `drover security [--json]`.
pub async fn security(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/security").await?;
    if json {
        return print_json(&v);
    }
    println!(
        "Command-signing key   {}",
        v["signing_key"]["fingerprint"].as_str().unwrap_or("")
    );
    println!(
        "Broker                {} mode, {} resolver, account {}",
        v["broker"]["mode"].as_str().unwrap_or(""),
        v["broker"]["resolver"].as_str().unwrap_or(""),
        v["broker"]["account"].as_str().unwrap_or("")
    );
    println!(
        "Enrolment requests    {} dropped since start (reply subject not an enrolment inbox)",
        v["enrolment"]["dropped_requests"].as_u64().unwrap_or(0)
    );
    println!(
        "                      {} unreadable since start (not a signed claim)",
        v["enrolment"]["unreadable_requests"].as_u64().unwrap_or(0)
    );
    let av = &v["agent_versions"];
    println!(
        "\nAgent versions        minimum {} ({}), wire protocol {}: {} outdated, {} incompatible",
        av["min_agent_version"].as_str().unwrap_or(""),
        av["min_agent_version_from"].as_str().unwrap_or(""),
        av["protocol_version"],
        av["outdated"].as_u64().unwrap_or(0),
        av["incompatible"].as_u64().unwrap_or(0),
    );
    for a in av["agents"].as_array().into_iter().flatten() {
        println!(
            "  {:<13} {:<58} {:<24} {}",
            a["standing"].as_str().unwrap_or(""),
            a["id"].as_str().unwrap_or(""),
            a["hostname"].as_str().unwrap_or(""),
            a["reason"].as_str().unwrap_or("")
        );
    }
    println!("\nRefused commands and results:");
    let refused = v["refused"].as_array().cloned().unwrap_or_default();
    if refused.is_empty() {
        println!("  none");
    }
    for r in refused {
        println!(
            "  {:<14} {:<16} {}",
            r["source"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or(""),
            r["count"]
        );
    }
    for (title, key) in [
        (
            "Malformed messages (terminated, never redelivered)",
            "malformed_messages",
        ),
        ("Refusals dropped over the rate limit", "refusals_dropped"),
    ] {
        let rows = v[key].as_array().cloned().unwrap_or_default();
        println!("\n{title}:");
        if rows.is_empty() {
            println!("  none");
        }
        for d in rows {
            println!(
                "  {:<20} {:<58} {:>8}  {}",
                d["subject"].as_str().unwrap_or(""),
                d["agent_id"].as_str().unwrap_or(""),
                d["count"],
                d["last_detail"].as_str().unwrap_or("")
            );
        }
    }
    for (title, key) in [
        ("Machine-binding conflicts", "binding_conflicts"),
        ("Revoked agents", "revoked_agents"),
        (
            "Pending agents (drover agents approve <id>)",
            "pending_agents",
        ),
    ] {
        let list = v[key].as_array().cloned().unwrap_or_default();
        println!("\n{title}: {}", list.len());
        for item in list {
            println!("  {item}");
        }
    }
    Ok(())
}
