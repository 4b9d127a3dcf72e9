//! `drover agents`: the fleet table (or its raw JSON), one agent's record,
//! approve / reject / revoke, and the inventory operators edit (rename,
//! label, notes, remove), all through the API.
//!
//! Owns the `agents` arguments and their output; registration tokens and the
//! security overview are in `trust.rs`, and the decisions themselves are the
//! control plane's (`trust.rs` and `inventory` in the library), not this
//! file's.

use clap::Subcommand;
use control_plane::client;

use crate::print::{fmt_bytes, print_json};

#[derive(Subcommand, Debug)]
pub enum AgentsCmd {
    /// Let a pending agent in: it receives its credentials at its next try.
    #[command(
        after_help = "Example:\n  drover agents approve UABC...\n  drover agents --json approve UABC..."
    )]
    Approve { id: String },
    /// Refuse a pending agent.
    #[command(after_help = "Example:\n  drover agents reject UABC...")]
    Reject { id: String },
    /// Cut an agent off: the broker closes its connection at once and refuses
    /// it from now on; its queued commands are cancelled.
    #[command(after_help = "Example:\n  drover agents revoke UABC...\n\n\
        To also drop it from the fleet (history kept), use `drover agents remove`.")]
    Revoke { id: String },
    /// Show one agent's record: facts, labels with the source of each
    /// (agent or operator), notes, and whether it is decommissioned.
    #[command(
        after_help = "Examples:\n  drover agents show UABC...\n  drover agents --json show UABC... | jq .label_sources"
    )]
    Show { id: String },
    /// Give a host the name pages and the CLI show (1..=64 characters, no
    /// control characters); it wins over the name the host enrolled with.
    /// `--clear` goes back to the enrolment name, or the host name.
    #[command(
        after_help = "Examples:\n  drover agents rename UABC... \"db primary\"\n  drover agents rename UABC... --clear"
    )]
    Rename {
        id: String,
        /// The new name.
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        name: Option<String>,
        /// Remove the operator's name.
        #[arg(long)]
        clear: bool,
    },
    /// Set or remove operator labels. They are merged with the agent's own
    /// labels and win on the same key; selectors (`label:env=prod`) see the
    /// change at once. Keys and values: 1..=64 of [A-Za-z0-9-_./].
    #[command(
        after_help = "Examples:\n  drover agents label UABC... env=prod role=web\n  \
        drover agents label UABC... --remove env\n  drover agents label UABC... tmp-    # same as --remove tmp"
    )]
    Label {
        id: String,
        /// `key=value` to set, or `key-` to remove.
        pairs: Vec<String>,
        /// A label key to remove (repeatable); an agent's own label is
        /// hidden, an operator's dropped.
        #[arg(long, value_name = "KEY")]
        remove: Vec<String>,
    },
    /// Set a host's notes (free text, at most 4000 characters; shown on
    /// the host page). `--file -` reads standard input; `--clear` empties.
    #[command(
        after_help = "Examples:\n  drover agents notes UABC... \"rack 4, owner: db team\"\n  \
        drover agents notes UABC... --file notes.txt\n  drover agents notes UABC... --clear"
    )]
    Notes {
        id: String,
        /// The text.
        #[arg(conflicts_with_all = ["file", "clear"], required_unless_present_any = ["file", "clear"])]
        text: Option<String>,
        /// Read the text from this file (`-`: standard input).
        #[arg(long, conflicts_with = "clear")]
        file: Option<std::path::PathBuf>,
        /// Empty the notes.
        #[arg(long)]
        clear: bool,
    },
    /// Decommission a host: revoke it (its credentials stop working, its
    /// queued commands are cancelled) and remove it from the fleet and from
    /// selectors. Its commands, jobs and audit trail stay readable. Needs
    /// `--yes`.
    #[command(after_help = "Example:\n  drover agents remove UABC... --yes")]
    Remove {
        id: String,
        /// Confirm: this cannot be undone (the host must enrol again).
        #[arg(long)]
        yes: bool,
    },
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
        Some(AgentsCmd::Show { id }) => show(api, &id, json).await,
        Some(AgentsCmd::Rename { id, name, clear: _ }) => {
            let v = crate::agents_edit::edit(api, &id, serde_json::json!({ "display_name": name }))
                .await?;
            report(&v, json, || match v["display_name"].as_str() {
                Some(n) => format!("agent {id} is now shown as {n:?}"),
                None => format!("agent {id} is shown by its host name again"),
            })
        }
        Some(AgentsCmd::Label { id, pairs, remove }) => {
            let body = crate::agents_edit::label_body(&pairs, &remove)?;
            let v = crate::agents_edit::edit(api, &id, body).await?;
            report(&v, json, || {
                format!("labels of {id}: {}", crate::agents_edit::labels_text(&v))
            })
        }
        Some(AgentsCmd::Notes {
            id,
            text,
            file,
            clear: _,
        }) => {
            let text = crate::agents_edit::notes_text(text, file.as_deref())?;
            let v =
                crate::agents_edit::edit(api, &id, serde_json::json!({ "notes": text })).await?;
            report(&v, json, || {
                format!("notes of {id}: {} characters", text.chars().count())
            })
        }
        Some(AgentsCmd::Remove { id, yes }) => {
            if !yes {
                // A usage error (exit 2), like a missing argument.
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    format!(
                        "removing {id} revokes it and drops it from the fleet; run again with --yes to confirm\n"
                    ),
                )
                .into());
            }
            let v = api
                .post(
                    &format!("/agents/{id}/decommission"),
                    &serde_json::json!({}),
                )
                .await?;
            report(&v, json, || {
                format!("agent {id} is decommissioned; its history is kept")
            })
        }
        Some(action) => decide(api, action, json).await,
        None => list(api, json).await,
    }
}

/// One JSON document with `--json`, else the line `text` makes.
fn report(v: &serde_json::Value, json: bool, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        return print_json(v);
    }
    println!("{}", text());
    Ok(())
}

async fn show(api: &client::ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    let v = api.get(&format!("/agents/{id}")).await?;
    if json {
        return print_json(&v);
    }
    crate::agents_edit::print_record(&v);
    Ok(())
}

async fn decide(api: &client::ApiClient, action: AgentsCmd, json: bool) -> anyhow::Result<()> {
    let (verb, id) = match &action {
        AgentsCmd::Approve { id } => ("approve", id),
        AgentsCmd::Reject { id } => ("reject", id),
        AgentsCmd::Revoke { id } => ("revoke", id),
        _ => unreachable!("handled in agents()"),
    };
    let v = api
        .post(&format!("/agents/{id}/{verb}"), &serde_json::json!({}))
        .await?;
    if json {
        return print_json(&v);
    }
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
