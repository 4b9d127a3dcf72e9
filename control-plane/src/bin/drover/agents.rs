//! `drover agents`: the fleet table (or its raw JSON) and approve / reject /
//! revoke one agent, all through the API.
//!
//! Owns the `agents` arguments and their output; registration tokens and the
//! security overview are in `trust.rs`, and the decisions themselves are the
//! control plane's (`trust.rs` in the library), not this file's.

use clap::Subcommand;
use control_plane::client;

use crate::print::{fmt_bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum AgentsCmd {
    /// Let a pending agent in: it receives its credentials at its next try.
    Approve { id: String },
    /// Refuse a pending agent.
    Reject { id: String },
    /// Cut an agent off: the broker closes its connection at once and refuses
    /// it from now on; its queued commands are cancelled.
    Revoke { id: String },
    /// Show the rootd box key this host's secrets are sealed to, and a
    /// different one it reported since (refused until accepted).
    ///
    /// Example: `drover agents --json box-key UABC...`
    BoxKey { id: String },
    /// Trust the different rootd box key a host reported (check the host
    /// first: rootd reinstalled or its state directory lost). Until then,
    /// commands carrying secrets to it are refused.
    ///
    /// Example: `drover agents accept-box-key UABC...`
    AcceptBoxKey { id: String },
}

/// `drover agents [--json] [approve|reject|revoke <id>]`.
pub async fn agents(
    api: &client::ApiClient,
    json: bool,
    action: Option<AgentsCmd>,
) -> anyhow::Result<()> {
    match action {
        Some(AgentsCmd::BoxKey { id }) => crate::box_key::show(api, &id, json).await,
        Some(AgentsCmd::AcceptBoxKey { id }) => crate::box_key::accept(api, &id, json).await,
        Some(action) => decide(api, action).await,
        None => list(api, json).await,
    }
}

async fn decide(api: &client::ApiClient, action: AgentsCmd) -> anyhow::Result<()> {
    let (verb, id) = match &action {
        AgentsCmd::Approve { id } => ("approve", id),
        AgentsCmd::Reject { id } => ("reject", id),
        AgentsCmd::Revoke { id } => ("revoke", id),
        AgentsCmd::BoxKey { .. } | AgentsCmd::AcceptBoxKey { .. } => {
            unreachable!("handled by box_key")
        }
    };
    let v = api
        .post(&format!("/agents/{id}/{verb}"), &serde_json::json!({}))
        .await?;
    println!(
        "agent {} is now {}",
        id,
        v["status"].as_str().unwrap_or("?")
    );
    Ok(())
}

async fn list(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/agents").await?;
    if json {
        return print_json(&v);
    }
    let agents = v["agents"].as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        println!(
            "No agents yet. Start one with `drover dev`, or see the README on enrolling a host."
        );
        return Ok(());
    }
    println!(
        "{:<58} {:<20} {:<20} {:<8} {:>6} {:>12} {:>12}  {:<10} LABELS",
        "ID", "NAME", "HOSTNAME", "STATUS", "CPU%", "MEM", "DISK", "LAST SEEN"
    );
    let now = bus_schema::now_ms();
    for a in agents {
        let m = &a["metrics"];
        let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<58} {:<20} {:<20} {:<8} {:>6.1} {:>12} {:>12}  {:<10} {}",
            a["id"].as_str().unwrap_or(""),
            // The display name the host asked for, else its host name.
            a["display_name"]
                .as_str()
                .or(a["hostname"].as_str())
                .unwrap_or(""),
            a["hostname"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            f("cpu_percent"),
            format!(
                "{}/{}",
                fmt_bytes(f("mem_used_bytes")),
                fmt_bytes(f("mem_total_bytes"))
            ),
            format!(
                "{}/{}",
                fmt_bytes(f("disk_used_bytes")),
                fmt_bytes(f("disk_total_bytes"))
            ),
            format!(
                "{}s ago",
                (now - a["last_seen"].as_i64().unwrap_or(now)) / 1000
            ),
            a["labels"]
                .as_object()
                .map(|m| m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
