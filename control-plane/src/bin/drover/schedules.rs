//! `drover schedules`: list, add, remove, enable and disable scheduled jobs
//! through the API (`/api/v1/schedules`). Owns the arguments and their
//! output; the checks and the scheduler are the control plane's
//! (`schedules.rs` in the library).

use clap::Subcommand;
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum SchedulesCmd {
    /// Every schedule with its next run and last job, e.g.
    /// `drover schedules list --json`.
    List {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a schedule, e.g.
    /// `drover schedules add nightly-scan label:env=prod "0 3 * * *" --timezone Europe/Berlin`.
    ///
    /// CRON is five fields (minute hour day-of-month month day-of-week) or
    /// six with seconds first; it is read in --timezone (an IANA name).
    /// Jobs it submits are requested by `schedule:<name>` (source: system).
    Add {
        /// Unique name: letters, digits, '.', '_' or '-'.
        name: String,
        /// Which hosts: all, id:<agent>, label:<k>=<v>, host:<glob>,
        /// os:<name>, fact:<k>=<v> (comma-separated, all must hold).
        selector: String,
        /// e.g. "0 3 * * *" (03:00 daily) or "*/30 * * * * *" (every 30 s).
        cron: String,
        /// IANA time zone the cron expression is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// The action; only pkg.scan can be scheduled for now.
        #[arg(long, default_value = "pkg.scan")]
        action: String,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
        /// The jobs' params as JSON (default for pkg.scan: {"refresh": true},
        /// which fetches the package lists before scanning), e.g.
        /// --params '{"refresh": false}'.
        #[arg(long)]
        params: Option<String>,
        /// Print the stored schedule as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule (by name or id), e.g. `drover schedules remove nightly-scan`.
    /// Its past jobs stay.
    Remove {
        schedule: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a schedule (by name or id); its next run is computed from now,
    /// e.g. `drover schedules enable nightly-scan`.
    Enable {
        schedule: String,
        /// Print the schedule as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a schedule (by name or id): no more jobs until enabled,
    /// e.g. `drover schedules disable nightly-scan`.
    Disable {
        schedule: String,
        /// Print the schedule as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A time (milliseconds since the epoch) as UTC RFC 3339, or "-".
fn when(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn path_of(schedule: &str) -> String {
    format!("/schedules/{}", control_plane::auth::urlencode(schedule))
}

fn print_one(v: &Value) {
    println!(
        "schedule {} ({}): {} `{}` in {} — {}, next run {}",
        v["name"].as_str().unwrap_or(""),
        v["id"].as_str().unwrap_or(""),
        v["action"].as_str().unwrap_or(""),
        v["cron"].as_str().unwrap_or(""),
        v["timezone"].as_str().unwrap_or(""),
        if v["enabled"] == true {
            "enabled"
        } else {
            "disabled"
        },
        when(&v["next_run_at"]),
    );
}

/// `drover schedules …`.
pub async fn schedules(api: &client::ApiClient, cmd: SchedulesCmd) -> anyhow::Result<()> {
    match cmd {
        SchedulesCmd::List { json } => {
            let v = api.get("/schedules").await?;
            if json {
                return print_json(&v);
            }
            let all = v["schedules"].as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                println!("no schedules; add one with `drover schedules add NAME SELECTOR CRON --timezone ZONE`");
                return Ok(());
            }
            println!(
                "{:<20} {:<9} {:<18} {:<16} {:<8} {:<23} {:<34} LAST ERROR",
                "NAME", "ACTION", "CRON", "ZONE", "ENABLED", "NEXT RUN", "LAST JOB"
            );
            for s in all {
                println!(
                    "{:<20} {:<9} {:<18} {:<16} {:<8} {:<23} {:<34} {}",
                    s["name"].as_str().unwrap_or(""),
                    s["action"].as_str().unwrap_or(""),
                    s["cron"].as_str().unwrap_or(""),
                    s["timezone"].as_str().unwrap_or(""),
                    s["enabled"],
                    when(&s["next_run_at"]),
                    s["last_job_id"].as_str().unwrap_or("-"),
                    s["last_error"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        SchedulesCmd::Add {
            name,
            selector,
            cron,
            timezone,
            action,
            disabled,
            params,
            json,
        } => {
            // Checked here for a quick answer, and again by the API.
            control_plane::jobs::Selector::parse(&selector)?;
            let mut body = json!({
                "name": name, "action": action, "selector": selector, "cron": cron,
                "timezone": timezone, "enabled": !disabled,
            });
            if let Some(p) = params {
                body["params"] = serde_json::from_str(&p).map_err(|e| {
                    anyhow::anyhow!(
                        "--params is not JSON ({e}); write e.g. '{{\"refresh\": false}}'"
                    )
                })?;
            }
            let v = api.post("/schedules", &body).await?;
            if json {
                return print_json(&v);
            }
            print_one(&v);
            Ok(())
        }
        SchedulesCmd::Remove { schedule, json } => {
            let v = api.delete(&path_of(&schedule)).await?;
            if json {
                return print_json(&v);
            }
            println!("removed schedule {}", v["name"].as_str().unwrap_or(""));
            Ok(())
        }
        SchedulesCmd::Enable { schedule, json } => set_enabled(api, &schedule, true, json).await,
        SchedulesCmd::Disable { schedule, json } => set_enabled(api, &schedule, false, json).await,
    }
}

/// `drover schedules enable|disable <schedule>`.
async fn set_enabled(
    api: &client::ApiClient,
    schedule: &str,
    on: bool,
    json: bool,
) -> anyhow::Result<()> {
    let verb = if on { "enable" } else { "disable" };
    let v = api
        .post(&format!("{}/{verb}", path_of(schedule)), &json!({}))
        .await?;
    if json {
        return print_json(&v);
    }
    print_one(&v);
    Ok(())
}
