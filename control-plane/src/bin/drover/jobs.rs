//! Commands and jobs through the API: `drover send`, `run`, `jobs`,
//! `command`, `cancel`, `actions` and `logs`.
//!
//! Owns turning those arguments into requests and printing the answers
//! (with `print.rs`); it signs nothing and checks no parameters itself —
//! the control plane validates every request.

use anyhow::Context;
use control_plane::client;
use serde_json::Value;

use crate::print::{follow_job, print_command, print_job, print_json};

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
}

/// `drover send <agent> <action> [key=value…]`: one command to one agent.
pub async fn send(
    api: &client::ApiClient,
    agent: &str,
    action: &str,
    params: &[String],
    wait: u64,
    timeout: Option<u32>,
) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "action": action, "params": client::parse_params(params)? });
    if let Some(t) = timeout {
        body["timeout_secs"] = Value::from(t);
    }
    let v = api
        .post(&format!("/agents/{agent}/commands?wait={wait}"), &body)
        .await?;
    print_command(&v);
    Ok(())
}

/// `drover command <id> [--wait]`.
pub async fn command(api: &client::ApiClient, id: &str, wait: u64) -> anyhow::Result<()> {
    let v = api.get(&format!("/commands/{id}?wait={wait}")).await?;
    print_command(&v);
    Ok(())
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
    } = run;
    let sel = control_plane::jobs::Selector::parse(&selector)?;
    let body = serde_json::json!({
        "selector": sel, "action": action, "params": client::parse_params(&params)?,
        "timeout_secs": timeout, "ttl_secs": ttl, "idempotency_key": key,
    });
    let job = api.post("/jobs", &body).await?;
    let id = job["id"].as_str().unwrap_or("").to_string();
    if job["replayed"] == true {
        eprintln!("idempotency key already used for this request: job {id}, made earlier, nothing new was started");
    }
    eprintln!(
        "job {id}: {} on {} hosts",
        job["action"].as_str().unwrap_or(""),
        job["target_count"]
    );
    if wait == 0 {
        println!("{id}");
        return Ok(());
    }
    follow_job(api, &id, std::time::Duration::from_secs(wait)).await
}

/// `drover jobs [id]`: recent jobs, or one with its per-host results.
pub async fn jobs(api: &client::ApiClient, id: Option<String>) -> anyhow::Result<()> {
    let Some(id) = id else {
        return list_jobs(api).await;
    };
    let v = api.get(&format!("/jobs/{id}")).await?;
    print_job(api, &v).await
}

async fn list_jobs(api: &client::ApiClient) -> anyhow::Result<()> {
    let v = api.get("/jobs").await?;
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
pub async fn cancel(api: &client::ApiClient, id: &str) -> anyhow::Result<()> {
    let v = api
        .post(&format!("/commands/{id}/cancel"), &serde_json::json!({}))
        .await?;
    print_command(&v);
    Ok(())
}

/// `drover actions [name]`: the action table, or one action as JSON.
pub async fn actions(api: &client::ApiClient, name: Option<String>) -> anyhow::Result<()> {
    let v = api.get("/actions").await?;
    let Some(name) = name else {
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
        .with_context(|| format!("no action {name}; `drover actions` lists them"))?;
    print_json(&a)
}

/// Prints a command's output; with `follow`, polls for new lines until the
/// command is final (or `max_wait` passes).
pub async fn follow_logs(
    api: &client::ApiClient,
    id: &str,
    follow: bool,
    max_wait: u64,
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
            if l["stream"] == "stderr" {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
        let done = v["final"].as_bool().unwrap_or(false);
        if done || !follow {
            if follow {
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
            anyhow::bail!("command {id} still running after {max_wait}s; run `drover logs {id} --follow` again");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
