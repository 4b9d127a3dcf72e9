//! `drover windows list|add|remove|runs|abort`: maintenance windows and
//! their runs, through the API. Owns these arguments and their output; the
//! checks and what a window does are the library's (`windows`).

use clap::Subcommand;
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum WindowsCmd {
    /// List windows: schedule, hosts, batches, open now / next opening.
    ///
    /// Example: drover windows list --json
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a recurring window in which approved updates are installed.
    ///
    /// Example: drover windows add nightly --selector label:env=staging
    ///   --days mon,tue,wed,thu,fri --start 02:00 --duration 120
    ///   --timezone Europe/Berlin --max-hosts 2 --max-failures 1 --reboot if_required
    Add {
        /// A unique name (shown as window:<name> on the commands it issues).
        name: String,
        /// Which hosts: all, id:<id>, label:<k>=<v>, host:<glob>, os:<name>, fact:<k>=<v>.
        #[arg(long)]
        selector: String,
        /// Days it opens on, comma-separated: mon,tue,wed,thu,fri,sat,sun.
        #[arg(long)]
        days: String,
        /// Local opening time, HH:MM (24-hour).
        #[arg(long)]
        start: String,
        /// Minutes it stays open (1..=1440).
        #[arg(long)]
        duration: u32,
        /// IANA time zone of --start.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Hosts installing at once.
        #[arg(long, conflicts_with = "max_percent")]
        max_hosts: Option<u32>,
        /// Percent (1..=100) of the run's hosts installing at once.
        #[arg(long)]
        max_percent: Option<u32>,
        /// Halt the run when more hosts than this have failed.
        #[arg(long)]
        max_failures: Option<u32>,
        /// never or if_required (reboot hosts whose scan says so).
        #[arg(long, default_value = "never")]
        reboot: String,
        /// Minutes a rebooted host has to come back.
        #[arg(long)]
        reboot_deadline: Option<u32>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a window (its runs and history stay).
    ///
    /// Example: drover windows remove nightly
    Remove {
        /// The window's name or id.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// A window's recent runs, or one run with its hosts (--run).
    ///
    /// Example: drover windows runs nightly ; drover windows runs --run 0193f0e1...
    Runs {
        /// The window's name or id (not needed with --run).
        window: Option<String>,
        /// Show this run with its per-host rows.
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop a running run: hosts not started wait for the next occurrence.
    ///
    /// Example: drover windows abort 0193f0e1...
    Abort {
        run: String,
        #[arg(long)]
        json: bool,
    },
}

fn occ(v: &Value) -> String {
    match v["start"].as_i64() {
        Some(ms) => chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%MZ").to_string())
            .unwrap_or_default(),
        None => "-".into(),
    }
}

fn batch(w: &Value) -> String {
    match (w["max_hosts"].as_i64(), w["max_percent"].as_i64()) {
        (Some(h), _) => format!("{h} hosts"),
        (None, Some(p)) => format!("{p}%"),
        _ => "all".into(),
    }
}

fn print_run(r: &Value) {
    println!(
        "run {}  {}  hosts {}: {} ok, {} failed, {} deferred{}",
        r["id"].as_str().unwrap_or(""),
        r["status"].as_str().unwrap_or(""),
        r["hosts_total"],
        r["hosts_succeeded"],
        r["hosts_failed"],
        r["hosts_deferred"],
        r["halted_reason"]
            .as_str()
            .map(|s| format!("  ({s})"))
            .unwrap_or_default(),
    );
    for h in r["hosts"].as_array().into_iter().flatten() {
        println!(
            "  batch {:<3} {:<24} {:<14} {}",
            h["batch"],
            h["hostname"]
                .as_str()
                .unwrap_or(h["agent_id"].as_str().unwrap_or("")),
            h["status"].as_str().unwrap_or(""),
            h["message"].as_str().unwrap_or(""),
        );
    }
}

/// `drover windows …`.
pub async fn windows(api: &client::ApiClient, cmd: WindowsCmd) -> anyhow::Result<()> {
    match cmd {
        WindowsCmd::List { json } => {
            let v = api.get("/windows").await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<16} {:<28} {:<8} {:<9} {:<8} {:<18} NEXT",
                "ID", "NAME", "DAYS START/MIN TZ", "BATCH", "FAILURES", "OPEN", "SELECTOR"
            );
            for w in v["windows"].as_array().into_iter().flatten() {
                let days: Vec<&str> = w["days"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<34} {:<16} {:<28} {:<8} {:<9} {:<8} {:<18} {}",
                    w["id"].as_str().unwrap_or(""),
                    w["name"].as_str().unwrap_or(""),
                    format!(
                        "{} {}/{} {}",
                        days.join(","),
                        w["start"].as_str().unwrap_or(""),
                        w["duration_minutes"],
                        w["timezone"].as_str().unwrap_or("")
                    ),
                    batch(w),
                    w["max_failures"]
                        .as_i64()
                        .map(|n| n.to_string())
                        .unwrap_or("-".into()),
                    if w["enabled"] == false {
                        "disabled"
                    } else if w["open_now"] == true {
                        "open"
                    } else {
                        "closed"
                    },
                    control_plane::selector::Selector::text_of(&w["selector"]),
                    occ(&w["next_occurrence"]),
                );
            }
            Ok(())
        }
        WindowsCmd::Add {
            name,
            selector,
            days,
            start,
            duration,
            timezone,
            max_hosts,
            max_percent,
            max_failures,
            reboot,
            reboot_deadline,
            disabled,
            json,
        } => {
            let days: Vec<String> = days
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect();
            let body = json!({
                "name": name, "selector": selector, "days": days, "start": start,
                "duration_minutes": duration, "timezone": timezone,
                "max_hosts": max_hosts, "max_percent": max_percent,
                "max_failures": max_failures, "reboot": reboot,
                "reboot_deadline_minutes": reboot_deadline, "enabled": !disabled,
            });
            let w = api.post("/windows", &body).await?;
            if json {
                return print_json(&w);
            }
            println!(
                "window {} ({}) added; next opening {}",
                w["name"].as_str().unwrap_or(""),
                w["id"].as_str().unwrap_or(""),
                occ(&w["next_occurrence"])
            );
            Ok(())
        }
        WindowsCmd::Remove { id, json } => {
            let v = api.delete(&format!("/windows/{id}")).await?;
            if json {
                return print_json(&v);
            }
            println!("window {} removed", v["name"].as_str().unwrap_or(&id));
            Ok(())
        }
        WindowsCmd::Runs { window, run, json } => {
            if let Some(run) = run {
                let r = api.get(&format!("/windows/runs/{run}")).await?;
                if json {
                    return print_json(&r);
                }
                print_run(&r);
                return Ok(());
            }
            let Some(window) = window else {
                anyhow::bail!("name a window id, or a run with --run; list windows with `drover windows list`");
            };
            let v = api.get(&format!("/windows/{window}/runs")).await?;
            if json {
                return print_json(&v);
            }
            for r in v["runs"].as_array().into_iter().flatten() {
                print!("{}  ", occ(&json!({"start": r["occurrence_start"]})));
                print_run(r);
            }
            Ok(())
        }
        WindowsCmd::Abort { run, json } => {
            let r = api
                .post(&format!("/windows/runs/{run}/abort"), &json!({}))
                .await?;
            if json {
                return print_json(&r);
            }
            print_run(&r);
            Ok(())
        }
    }
}
