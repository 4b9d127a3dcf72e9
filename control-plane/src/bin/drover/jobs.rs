//! Commands and jobs through the API: `drover send`, `run`, `jobs`,
//! `command`, `cancel`, `actions` and `logs`.
//!
//! Owns turning those arguments into requests and printing the answers
//! (with `print.rs`); it signs nothing and checks no parameters itself —
//! the control plane validates every request.

use control_plane::client;
use serde_json::Value;

use crate::exit::{HostsFailed, TimedOut};
use crate::follow::{follow_job, Follow};
use crate::print::{print_command, print_job, print_json};

/// The arguments of `drover run`, as clap parsed them.
pub struct Run {
    /// The selector text, e.g. `label:env=prod,host:web-*`.
    pub selector: String,
    /// `module.action`.
    pub action: String,
    /// Parameters as `key=value`.
    pub params: Vec<String>,
    /// Seconds to follow the job (0: submit and return).
    pub wait: u64,
    /// The idempotency key, if any.
    pub key: Option<String>,
    /// The action's timeout override, in seconds.
    pub timeout: Option<u32>,
    /// Seconds a command may wait for an offline host.
    pub ttl: Option<u64>,
    /// Print each host's result as it arrives.
    pub stream: bool,
    /// JSON output (NDJSON with `stream`).
    pub json: bool,
}

/// Prints one command (`GET /commands/<id>`), as JSON or text, and fails
/// with [`HostsFailed`] (exit 3) when it ended failed, rejected, expired or
/// cancelled, and with [`TimedOut`] (exit 6) when the caller waited
/// (`wait` > 0) and it has not ended yet.
fn show_command(v: &Value, json: bool, wait: u64) -> anyhow::Result<()> {
    if json {
        print_json(v)?;
    } else {
        print_command(v);
    }
    let status = v["status"].as_str().unwrap_or("");
    let id = v["id"].as_str().unwrap_or("");
    if matches!(status, "failed" | "rejected" | "expired" | "cancelled") {
        return Err(HostsFailed(format!("command {id} {status}")).into());
    }
    if wait > 0 && status != "succeeded" {
        return Err(TimedOut(format!(
            "command {id} is still {status} after waiting {wait} s; `drover command {id} --wait 60` follows it"
        ))
        .into());
    }
    Ok(())
}

/// `drover send <agent> <action> [key=value…]`: one command to one agent.
pub async fn send(
    api: &client::ApiClient,
    agent: &str,
    action: &str,
    params: &[String],
    wait: u64,
    timeout: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "action": action, "params": client::parse_params(params)? });
    if let Some(t) = timeout {
        body["timeout_secs"] = Value::from(t);
    }
    let v = api
        .post(&format!("/agents/{agent}/commands?wait={wait}"), &body)
        .await?;
    show_command(&v, json, wait)
}

/// `drover command <id> [--wait]`.
pub async fn command(
    api: &client::ApiClient,
    id: &str,
    wait: u64,
    json: bool,
) -> anyhow::Result<()> {
    let v = api.get(&format!("/commands/{id}?wait={wait}")).await?;
    show_command(&v, json, wait)
}

/// `drover run <selector> <action>`: submits a job, then follows it unless
/// `wait` is 0 (then prints only its id).
pub async fn run(api: &client::ApiClient, run: Run) -> anyhow::Result<()> {
    let Run {
        selector,
        action,
        params,
        wait,
        key,
        timeout,
        ttl,
        stream,
        json,
    } = run;
    let sel = control_plane::jobs::Selector::parse(&selector)?;
    let body = serde_json::json!({
        "selector": sel, "action": action, "params": client::parse_params(&params)?,
        "timeout_secs": timeout, "ttl_secs": ttl, "idempotency_key": key,
    });
    let job = api.post("/jobs", &body).await?;
    let id = job["id"].as_str().unwrap_or("").to_string();
    // With --json, stderr carries only an error document; the job's JSON
    // says `replayed` and `target_count`.
    if job["replayed"] == true && !json {
        eprintln!("idempotency key already used for this request: job {id}, made earlier, nothing new was started");
    }
    if !json {
        eprintln!(
            "job {id}: {} on {} hosts",
            job["action"].as_str().unwrap_or(""),
            job["target_count"]
        );
    }
    if wait == 0 {
        if json {
            print_json(&job)?;
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    let f = Follow {
        id,
        max: std::time::Duration::from_secs(wait),
        stream,
        json,
    };
    follow_job(api, f).await
}

/// `drover jobs [id]`: recent jobs, or one with its per-host results.
pub async fn jobs(api: &client::ApiClient, id: Option<String>, json: bool) -> anyhow::Result<()> {
    let Some(id) = id else {
        return list_jobs(api, json).await;
    };
    let mut v = api.get(&format!("/jobs/{id}")).await?;
    if json {
        v["hosts"] = api.get(&format!("/jobs/{id}/hosts")).await?["hosts"].clone();
        return print_json(&v);
    }
    print_job(api, &v).await
}

async fn list_jobs(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/jobs").await?;
    if json {
        return print_json(&v);
    }
    println!(
        "{:<34} {:<14} {:<28} {:>7} {:>9} {:>7}  DONE",
        "ID", "ACTION", "BY", "TARGETS", "SUCCEEDED", "FAILED"
    );
    for j in v["jobs"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<34} {:<14} {:<28} {:>7} {:>9} {:>7}  {}",
            j["id"].as_str().unwrap_or(""),
            j["action"].as_str().unwrap_or(""),
            crate::print::by_text(&j),
            j["target_count"],
            j["counts"]["succeeded"],
            j["counts"]["failed"],
            j["done"]
        );
    }
    Ok(())
}

/// `drover cancel <id>`: cancels a command still waiting in its queue.
pub async fn cancel(api: &client::ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    let v = api
        .post(&format!("/commands/{id}/cancel"), &serde_json::json!({}))
        .await?;
    if json {
        return print_json(&v);
    }
    print_command(&v);
    Ok(())
}

/// `drover actions [name]`: the action table, or one action as JSON.
pub async fn actions(
    api: &client::ApiClient,
    name: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let v = api.get("/actions").await?;
    let Some(name) = name else {
        if json {
            return print_json(&v);
        }
        for a in v["actions"].as_array().cloned().unwrap_or_default() {
            println!(
                "{:<22} {:<6} {:>5}s  {}",
                a["name"].as_str().unwrap_or(""),
                a["runs_in"].as_str().unwrap_or(""),
                a["default_timeout_secs"],
                a["description"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    };
    let a = v["actions"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["name"] == name.as_str()).cloned())
        .ok_or_else(|| client::ClientError::Status {
            status: reqwest::StatusCode::NOT_FOUND,
            message: format!("no action {name}; `drover actions` lists them"),
        })?;
    print_json(&a)
}

/// Prints a command's output; with `follow`, polls for new lines until the
/// command is final (or `max_wait` passes).
pub async fn follow_logs(
    api: &client::ApiClient,
    id: &str,
    follow: bool,
    max_wait: u64,
    json: bool,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(max_wait);
    let mut after = 0u64;
    loop {
        let v = api
            .get(&format!("/commands/{id}/output?after={after}"))
            .await?;
        for l in v["lines"].as_array().cloned().unwrap_or_default() {
            after = after.max(l["seq"].as_u64().unwrap_or(after));
            let line = l["line"].as_str().unwrap_or("");
            if json {
                println!("{}", serde_json::to_string(&l)?);
            } else if l["stream"] == "stderr" {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
        let done = v["final"].as_bool().unwrap_or(false);
        if done || !follow {
            if follow && !json {
                let c = api.get(&format!("/commands/{id}")).await?;
                eprintln!(
                    "-- {}: {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["summary"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(crate::exit::TimedOut(format!(
                "command {id} still running after {max_wait}s; run `drover logs {id} --follow` again"
            ))
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
