//! `drover ops [--action A] [--source user|system] [--status S] [--host H]
//! [--limit N] [--json] [--watch]`: the live operations view (what the
//! fleet runs now) through `GET /api/v1/operations`. Owns these arguments
//! and the terminal output; the filter checks and the query are the
//! server's (`operations`).

use std::time::Duration;

use clap::Args;
use control_plane::client;
use serde_json::Value;

use crate::print::print_json;

/// Filters and output of `drover ops`.
#[derive(Args, Debug)]
pub struct OpsArgs {
    /// Only this action (exact name, e.g. `sys.ping`).
    #[arg(long)]
    pub action: Option<String>,
    /// Only `user` (people, API tokens, automation keys) or `system`
    /// (schedules, windows, rollouts, duties).
    #[arg(long, value_parser = ["user", "system"])]
    pub source: Option<String>,
    /// Only this status: queued, accepted or running.
    #[arg(long, value_parser = ["queued", "accepted", "running"])]
    pub status: Option<String>,
    /// Only these hosts: an agent id, a hostname or display name, or a glob
    /// (`web-*`).
    #[arg(long)]
    pub host: Option<String>,
    /// List at most this many operations (1..=500; counts cover them all).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// One JSON document (with `--watch`: one per line, each a full view).
    #[arg(long)]
    pub json: bool,
    /// Print the view again every `--every` seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two views with `--watch` (1..=3600).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub every: u64,
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The API path for `a`'s filters.
fn path(a: &OpsArgs) -> String {
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [
        ("action", &a.action),
        ("source", &a.source),
        ("status", &a.status),
        ("agent", &a.host),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    format!("/operations?{}", q.join("&"))
}

/// `3s`, `4m10s`, `2h5m`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// `k n, k n` of a count object.
fn counts_line(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(", ")
    }
}

fn print_table(v: &Value) {
    let c = &v["counts"];
    println!(
        "{} running now: user {}, system {}",
        c["total"],
        c["by_source"]["user"].as_u64().unwrap_or(0),
        c["by_source"]["system"].as_u64().unwrap_or(0)
    );
    println!("  by action: {}", counts_line(&c["by_action"]));
    println!("  by origin: {}", counts_line(&c["by_origin"]));
    println!("  by status: {}", counts_line(&c["by_status"]));
    let ops = v["operations"].as_array().cloned().unwrap_or_default();
    if ops.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<8} {:<22} {:<16} {:<9} {:<24} {:<34} JOB",
        "AGE", "HOST", "ACTION", "STATUS", "BY", "COMMAND"
    );
    for o in &ops {
        let host = o["display_name"]
            .as_str()
            .filter(|d| !d.is_empty())
            .or_else(|| o["hostname"].as_str())
            .unwrap_or("");
        let by = if o["source"] == "system" {
            format!("system ({})", o["requested_by"].as_str().unwrap_or(""))
        } else {
            o["requested_by"].as_str().unwrap_or("").to_string()
        };
        println!(
            "{:<8} {:<22} {:<16} {:<9} {:<24} {:<34} {}",
            age(o["age_ms"].as_i64().unwrap_or(0)),
            host,
            o["action"].as_str().unwrap_or(""),
            o["status"].as_str().unwrap_or(""),
            by,
            o["command_id"].as_str().unwrap_or(""),
            o["job_id"].as_str().unwrap_or("—"),
        );
    }
    if v["truncated"] == true {
        println!(
            "(showing the newest {} of {}; narrow with --action, --source, --status or --host)",
            ops.len(),
            c["total"]
        );
    }
}

/// `drover ops …`.
pub async fn ops(api: &client::ApiClient, a: OpsArgs) -> anyhow::Result<()> {
    let path = path(&a);
    loop {
        let v = api.get(&path).await?;
        if a.json && a.watch {
            println!("{}", serde_json::to_string(&v)?);
        } else if a.json {
            print_json(&v)?;
        } else {
            if a.watch {
                println!("--- {}", chrono::Utc::now().format("%H:%M:%S"));
            }
            print_table(&v);
        }
        if !a.watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(a.every)).await;
    }
}
