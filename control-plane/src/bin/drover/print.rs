//! Printing helpers shared by the subcommands: sizes, one command, one job's
//! per-host table and `--json` output (following a job is `follow.rs`).
//!
//! Owns how things look on the terminal; it parses no arguments and decides
//! nothing about which request to send.

use control_plane::client;
use serde_json::Value;

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records the global `--json` flag (set once, by `main`).
pub fn set_json(on: bool) {
    JSON.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the global `--json` flag is set: commands without a `json`
/// argument of their own print their answer as JSON then.
pub fn json_mode() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// `b` bytes as GiB with one decimal, e.g. `1.5G`.
pub fn fmt_bytes(b: f64) -> String {
    let gib = b / (1024.0 * 1024.0 * 1024.0);
    format!("{gib:.1}G")
}

/// Prints a JSON value pretty (the `--json` flags).
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Who asked for a job or command (`requested_by` and `source` of its
/// JSON): `alice (user)`, or `system (schedule:nightly)` for the control
/// plane's own work.
pub fn by_text(v: &Value) -> String {
    let by = v["requested_by"].as_str().unwrap_or("?");
    match v["source"].as_str().unwrap_or("user") {
        "system" => format!("system ({by})"),
        other => format!("{by} ({other})"),
    }
}

/// Prints a job's per-host table (first 50 hosts), its counts and the hosts
/// that have not answered yet; `v` is `GET /jobs/<id>`.
pub async fn print_job(api: &client::ApiClient, v: &Value) -> anyhow::Result<()> {
    let id = v["id"].as_str().unwrap_or("");
    let hosts = api.get(&format!("/jobs/{id}/hosts")).await?;
    let list = hosts["hosts"].as_array().cloned().unwrap_or_default();
    println!("{:<24} {:<10} {:>4}  SUMMARY", "HOST", "STATUS", "EXIT");
    for h in list.iter().take(50) {
        println!(
            "{:<24} {:<10} {:>4}  {}",
            h["hostname"].as_str().unwrap_or("?"),
            h["status"].as_str().unwrap_or(""),
            h["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            h["summary"].as_str().unwrap_or("")
        );
    }
    if list.len() > 50 {
        println!(
            "… and {} more (`drover jobs {id}` with --api JSON: GET /api/v1/jobs/{id}/hosts)",
            list.len() - 50
        );
    }
    let c = &v["counts"];
    println!("\njob {id} by {}", by_text(v));
    println!(
        "job {id}: {} targets — {} succeeded, {} failed, {} running, {} pending, {} offline, {} expired",
        v["target_count"], c["succeeded"], c["failed"], c["running"], c["pending"], c["offline"], c["expired"]
    );
    let silent = v["not_answered"].as_array().cloned().unwrap_or_default();
    if !silent.is_empty() {
        println!("not answered yet ({}):", silent.len());
        for s in silent.iter().take(20) {
            println!(
                "  {} ({}, {})",
                s["hostname"].as_str().unwrap_or("?"),
                s["agent_id"].as_str().unwrap_or(""),
                s["agent_status"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// Prints one command (`GET /commands/<id>`): status, exit, summary, how the
/// outcome was decided, and the result.
pub fn print_command(v: &Value) {
    println!("command  {}", v["id"].as_str().unwrap_or(""));
    println!("agent    {}", v["agent_id"].as_str().unwrap_or(""));
    println!("action   {}", v["action"].as_str().unwrap_or(""));
    println!("by       {}", by_text(v));
    println!("status   {}", v["status"].as_str().unwrap_or(""));
    if let Some(code) = v["exit_code"].as_i64() {
        println!("exit     {code}");
    }
    if let Some(s) = v["summary"].as_str().filter(|s| !s.is_empty()) {
        println!("summary  {s}");
    }
    match (v["outcome_source"].as_str(), &v["replaced_inferred"]) {
        (Some("inferred"), _) => {
            println!("decided  inferred by the control plane (no report from the host yet)")
        }
        (_, Value::Object(r)) => println!(
            "replaced the host's report replaced the inferred {} ({})",
            r.get("status").and_then(Value::as_str).unwrap_or(""),
            r.get("summary").and_then(Value::as_str).unwrap_or("")
        ),
        _ => {}
    }
    if !v["result"].is_null() {
        println!(
            "result   {}",
            serde_json::to_string_pretty(&v["result"]).unwrap_or_default()
        );
    }
}
