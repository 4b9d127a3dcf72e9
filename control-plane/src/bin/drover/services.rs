//! `drover services [--unit U] [--state S] [--host ID] [--json]` (the fleet
//! view of watched units) and `drover services watch add|list|remove` (the
//! watched-service lists), through the API. Owns these arguments and their
//! output; the checks and what a list does are the library's (`services`).

use clap::{Args, Subcommand};
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

/// Filters of the fleet view.
#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Only this unit (`php-fpm` means `php-fpm.service`).
    #[arg(long)]
    pub unit: Option<String>,
    /// Only units in this state: down (not active), active, inactive,
    /// failed, activating, deactivating, reloading.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this host (agent id).
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ServicesCmd {
    /// Watched-service lists: which units to watch on which hosts.
    Watch {
        #[command(subcommand)]
        action: WatchCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum WatchCmd {
    /// Add a list: watch these units on the hosts the selector matches.
    ///
    /// Example: drover services watch add --name web --selector label:role=web nginx php8.2-fpm
    Add {
        /// A unique name.
        #[arg(long)]
        name: String,
        /// Which hosts: all, id:<id>, label:<k>=<v>, host:<glob>, os:<name>, fact:<k>=<v>.
        #[arg(long)]
        selector: String,
        /// systemd units (nginx, php8.2-fpm.service, getty@tty1); at most 64.
        #[arg(required = true)]
        units: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the watched-service lists.
    ///
    /// Example: drover services watch list --json
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a list (its hosts stop watching its units within seconds).
    ///
    /// Example: drover services watch remove web
    Remove {
        /// The list's name or id.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn ago(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `drover services …`.
pub async fn services(
    api: &client::ApiClient,
    args: ServicesArgs,
    cmd: Option<ServicesCmd>,
) -> anyhow::Result<()> {
    match cmd {
        None => fleet(api, args).await,
        Some(ServicesCmd::Watch { action }) => watch(api, action).await,
    }
}

async fn fleet(api: &client::ApiClient, a: ServicesArgs) -> anyhow::Result<()> {
    let mut q: Vec<String> = Vec::new();
    for (k, v) in [("unit", &a.unit), ("state", &a.state), ("agent", &a.host)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    let path = if q.is_empty() {
        "/services".to_string()
    } else {
        format!("/services?{}", q.join("&"))
    };
    let v = api.get(&path).await?;
    if a.json {
        return print_json(&v);
    }
    let rows = v["services"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no watched unit matches; add a list with `drover services watch add`");
        return Ok(());
    }
    println!(
        "{:<28} {:<24} {:<12} {:<10} {:<22} AGENT",
        "UNIT", "HOST", "STATE", "SUB", "SINCE"
    );
    for r in &rows {
        println!(
            "{:<28} {:<24} {:<12} {:<10} {:<22} {}",
            r["unit"].as_str().unwrap_or(""),
            r["hostname"].as_str().unwrap_or(""),
            r["active_state"].as_str().unwrap_or(""),
            r["sub_state"].as_str().unwrap_or(""),
            ago(r["since"].as_i64().unwrap_or_default()),
            r["agent_id"].as_str().unwrap_or(""),
        );
    }
    if v["truncated"] == true {
        println!("(more matched; narrow with --unit, --state or --host)");
    }
    Ok(())
}

async fn watch(api: &client::ApiClient, cmd: WatchCmd) -> anyhow::Result<()> {
    match cmd {
        WatchCmd::List { json } => {
            let v = api.get("/services/watches").await?;
            if json {
                return print_json(&v);
            }
            println!("{:<34} {:<16} {:<24} UNITS", "ID", "NAME", "SELECTOR");
            for w in v["watches"].as_array().into_iter().flatten() {
                let units: Vec<&str> = w["units"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<34} {:<16} {:<24} {}",
                    w["id"].as_str().unwrap_or(""),
                    w["name"].as_str().unwrap_or(""),
                    w["selector_text"].as_str().unwrap_or(""),
                    units.join(" "),
                );
            }
            Ok(())
        }
        WatchCmd::Add {
            name,
            selector,
            units,
            json,
        } => {
            let v = api
                .post(
                    "/services/watches",
                    &json!({"name": name, "selector": selector, "units": units}),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            println!(
                "watched-service list {} ({}) added: {}",
                v["name"].as_str().unwrap_or(""),
                v["id"].as_str().unwrap_or(""),
                v["units"]
            );
            Ok(())
        }
        WatchCmd::Remove { id, json } => {
            let v = api
                .delete(&format!("/services/watches/{}", enc(&id)))
                .await?;
            if json {
                return print_json(&v);
            }
            println!(
                "watched-service list {} removed",
                v["name"].as_str().unwrap_or("")
            );
            Ok(())
        }
    }
}
