//! `drover rollout start|list|status|pause|resume|abort`: staged rollouts
//! of an agent release, through the API. Owns these arguments and their
//! output (the progress bars of `status --follow`); the plan, the engine
//! and the checks are the library's (`rollouts`).

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use control_plane::client;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::print::print_json;

/// `status --follow`'s exit code when the rollout halted by itself.
pub const EXIT_HALTED: i32 = 2;
/// `status --follow`'s exit code when an operator aborted it.
pub const EXIT_ABORTED: i32 = 3;

#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Start rolling a published release out: canary hosts first, then
    /// waves; each wave waits for the one before to be through and for the
    /// pause. Hosts already at the version are skipped; offline hosts get
    /// it when they come back.
    ///
    /// Example: drover rollout start 1.4.0 --selector label:env=prod
    ///   --canary 5% --waves 10%,50%,100% --pause 10m --max-failures 2%
    Start {
        /// The release's version (see drover releases list).
        version: String,
        /// Which hosts: all, id:<id>, label:<k>=<v>, host:<glob>, os:<name>, fact:<k>=<v>.
        #[arg(long)]
        selector: String,
        /// Hosts updated first, alone: a count (3) or a share (5%, rounded
        /// up, at least 1). Any canary failure halts the rollout.
        #[arg(long)]
        canary: Option<String>,
        /// Cumulative shares of the other hosts, rising, ending at 100%.
        #[arg(long, default_value = "100%")]
        waves: String,
        /// Wait after each wave is through: 30s, 10m, 2h (0 = none).
        #[arg(long, default_value = "0")]
        pause: String,
        /// Failures (failed + rolled back) allowed before it halts: a count
        /// or a share of the rollout's hosts. Default 0: the first halts.
        #[arg(long, default_value = "0")]
        max_failures: String,
        /// Let hosts install a version older than the newest they ran.
        #[arg(long)]
        allow_downgrade: bool,
        /// The release's platform (default: the control plane's, linux-x86_64).
        #[arg(long)]
        platform: Option<String>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rollouts, newest first, with their hosts by state.
    ///
    /// Example: drover rollout list --json
    List {
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One rollout: per-wave counts and every host's state.
    ///
    /// With --follow it redraws a progress bar per wave (plain lines when
    /// not on a terminal) until the rollout ends, and exits 0 when it is
    /// done, 2 when it halted (failures, canary failure, yank) and 3 when
    /// it was aborted. Without --follow it exits 0.
    ///
    /// Example: drover rollout status 0193f0e1... --follow
    #[command(after_help = "Exit codes with --follow: 0 done, 2 halted, 3 aborted, 1 error.")]
    Status {
        /// The rollout's id (see drover rollout list).
        id: String,
        /// Keep watching until it ends; the exit code says how it ended.
        #[arg(long)]
        follow: bool,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop sending to more hosts; hosts already sent go on.
    ///
    /// Example: drover rollout pause 0193f0e1...
    Pause {
        /// The rollout's id (see drover rollout list).
        id: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Continue a paused rollout.
    ///
    /// Example: drover rollout resume 0193f0e1...
    Resume {
        /// The rollout's id (see drover rollout list).
        id: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// End a rollout for good (updates already sent are not undone).
    ///
    /// Example: drover rollout abort 0193f0e1...
    Abort {
        /// The rollout's id (see drover rollout list).
        id: String,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn counts_line(c: &Value) -> String {
    control_plane::rollouts::HOST_STATES
        .iter()
        .filter_map(|s| {
            let n = c[*s].as_i64().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", s.replace('_', " ")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn head_line(r: &Value) -> String {
    format!(
        "rollout {}  {}  version {}  wave {}  {}{}",
        r["id"].as_str().unwrap_or(""),
        r["state"].as_str().unwrap_or(""),
        r["version"].as_str().unwrap_or(""),
        r["current_wave"],
        counts_line(&r["counts"]),
        r["halted_reason"]
            .as_str()
            .map(|s| format!("  ({s})"))
            .unwrap_or_default(),
    )
}

fn print_detail(r: &Value) {
    println!("{}", head_line(r));
    for w in r["waves_detail"].as_array().into_iter().flatten() {
        println!(
            "  {:<8} {:>5} {:>4} hosts: {}",
            w["name"].as_str().unwrap_or(""),
            w["share"].as_str().unwrap_or(""),
            w["total"],
            counts_line(&w["counts"])
        );
    }
    println!(
        "  {:<5} {:<24} {:<14} {:<12} {:<10} {:<10} REASON",
        "WAVE", "HOST", "AGENT", "STATE", "FROM", "RUNNING"
    );
    for h in r["hosts"].as_array().into_iter().flatten() {
        // Host names need not be unique: the id's start tells them apart.
        let id = h["agent_id"].as_str().unwrap_or("");
        println!(
            "  {:<5} {:<24} {:<14} {:<12} {:<10} {:<10} {}",
            h["wave"],
            h["hostname"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("-"),
            format!("{}…", id.chars().take(12).collect::<String>()),
            h["state"].as_str().unwrap_or(""),
            h["from_version"].as_str().unwrap_or(""),
            h["running_version"].as_str().unwrap_or(""),
            h["reason"].as_str().unwrap_or(""),
        );
    }
}

fn finished(w: &Value) -> u64 {
    ["healthy", "rolled_back", "failed"]
        .iter()
        .map(|s| w["counts"][*s].as_u64().unwrap_or(0))
        .sum()
}

/// Follows a rollout until it ends; returns the exit code.
async fn follow(api: &client::ApiClient, id: &str) -> anyhow::Result<i32> {
    let tty = std::io::stdout().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg}")?
        .progress_chars("=> ");
    let mut bars: Vec<ProgressBar> = Vec::new();
    let mut last = String::new();
    loop {
        let r = api.get(&format!("/rollouts/{id}")).await?;
        let waves = r["waves_detail"].as_array().cloned().unwrap_or_default();
        if tty {
            while bars.len() < waves.len() {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(style.clone());
                bars.push(b);
            }
            for (b, w) in bars.iter().zip(&waves) {
                b.set_prefix(w["name"].as_str().unwrap_or("").to_string());
                b.set_length(w["total"].as_u64().unwrap_or(0));
                b.set_position(finished(w));
                b.set_message(counts_line(&w["counts"]));
            }
        } else {
            let line = head_line(&r);
            if line != last {
                println!("{line}");
                last = line;
            }
        }
        let code = match r["state"].as_str() {
            Some("done") => Some(0),
            Some("halted") => Some(EXIT_HALTED),
            Some("aborted") => Some(EXIT_ABORTED),
            _ => None,
        };
        if let Some(code) = code {
            for b in &bars {
                b.abandon();
            }
            if tty {
                println!("{}", head_line(&r));
            }
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `drover rollout …`.
pub async fn rollout(api: &client::ApiClient, cmd: RolloutCmd) -> anyhow::Result<()> {
    match cmd {
        RolloutCmd::Start {
            version,
            selector,
            canary,
            waves,
            pause,
            max_failures,
            allow_downgrade,
            platform,
            json,
        } => {
            let body = json!({
                "version": version, "selector": selector, "canary": canary,
                "waves": waves, "pause": pause, "max_failures": max_failures,
                "allow_downgrade": allow_downgrade, "platform": platform,
            });
            let r = api.post("/rollouts", &body).await?;
            if json {
                return print_json(&r);
            }
            println!("{}", head_line(&r));
            println!(
                "follow it with: drover rollout status {} --follow",
                r["id"].as_str().unwrap_or("")
            );
            Ok(())
        }
        RolloutCmd::List { json } => {
            let v = api.get("/rollouts").await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<10} {:<10} {:>5}  HOSTS",
                "ID", "VERSION", "STATE", "WAVE"
            );
            for r in v["rollouts"].as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<10} {:<10} {:>5}  {}",
                    r["id"].as_str().unwrap_or(""),
                    r["version"].as_str().unwrap_or(""),
                    r["state"].as_str().unwrap_or(""),
                    r["current_wave"],
                    counts_line(&r["counts"]),
                );
            }
            Ok(())
        }
        RolloutCmd::Status {
            id,
            follow: true,
            json,
        } => {
            let code = follow(api, &id).await?;
            if json {
                print_json(&api.get(&format!("/rollouts/{id}")).await?)?;
            }
            std::process::exit(code);
        }
        RolloutCmd::Status { id, json, .. } => {
            let r = api.get(&format!("/rollouts/{id}")).await?;
            if json {
                return print_json(&r);
            }
            print_detail(&r);
            Ok(())
        }
        RolloutCmd::Pause { id, json } => act(api, &id, "pause", json).await,
        RolloutCmd::Resume { id, json } => act(api, &id, "resume", json).await,
        RolloutCmd::Abort { id, json } => act(api, &id, "abort", json).await,
    }
}

async fn act(api: &client::ApiClient, id: &str, what: &str, json: bool) -> anyhow::Result<()> {
    let r = api
        .post(&format!("/rollouts/{id}/{what}"), &json!({}))
        .await?;
    if json {
        return print_json(&r);
    }
    println!("{}", head_line(&r));
    Ok(())
}
