//! `drover alerts [--state S] [--json]`, `drover alerts ack <id>`,
//! `drover alerts rules add|list|remove` and `drover silences
//! add|list|remove`, through the API. Owns these arguments and their
//! output; the checks and the alert lifecycle are the library's (`alerts`).

use anyhow::{bail, Context};
use clap::Subcommand;
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum AlertsCmd {
    /// Acknowledge an open alert: its later transitions are not notified.
    ///
    /// Example: drover alerts ack 0193f0e1...
    Ack {
        /// The alert's id (see `drover alerts`).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Alert rules: add, list, remove.
    Rules {
        #[command(subcommand)]
        action: RulesCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// List every rule with its kind, hosts, condition and severity.
    ///
    /// Example: drover alerts rules list --json
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a rule.
    ///
    /// Examples:
    ///   drover alerts rules add disk-full --kind metric --param metric=disk_used_percent
    ///     --param 'op=>' --param threshold=90 --for 5m --severity critical
    ///   drover alerts rules add down --kind host_offline --selector label:env=prod
    ///   drover alerts rules add nginx --kind service_not_active --param unit=nginx.service
    Add {
        /// A unique name.
        name: String,
        /// metric, host_offline, service_not_active, job_failed,
        /// updates_pending, security_refusal, identity_conflict, agent_outdated.
        #[arg(long)]
        kind: String,
        /// Condition parameters as key=value (repeatable). metric: metric=
        /// disk_used_percent|mem_used_percent|cpu_percent|load1, op=>|<,
        /// threshold=N; service_not_active: unit=U; job_failed: min_hosts=N;
        /// updates_pending: days=N, security_only=true; security_refusal:
        /// within_minutes=N.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Which hosts: all (the default), id:<id>, label:<k>=<v>, host:<glob>, os:<name>.
        #[arg(long)]
        selector: Option<String>,
        /// info, warning (the default) or critical.
        #[arg(long)]
        severity: Option<String>,
        /// How long the condition must hold before it fires: 30s, 5m, 1h (default 0).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// A label copied onto its alerts, key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule; its open alerts resolve in the next round.
    ///
    /// Example: drover alerts rules remove disk-full
    Remove {
        /// The rule's name or id.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SilencesCmd {
    /// Silences in force, coming, or ended in the last day.
    ///
    /// Example: drover silences list --json
    List {
        #[arg(long)]
        json: bool,
    },
    /// Silence alerts for a time: transitions are recorded, not notified.
    ///
    /// Example: drover silences add --rule disk-full --selector host:web-* --for 2h
    ///   --comment "resizing volumes"
    Add {
        /// Only this rule (name or id); default every rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only hosts this selector matches; default any host.
        #[arg(long)]
        selector: Option<String>,
        /// How long from now: 30m, 2h, 1d.
        #[arg(long = "for", value_name = "DURATION")]
        for_: String,
        /// Why (shown to everyone).
        #[arg(long)]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    ///
    /// Example: drover silences remove 0193f0e1...
    Remove {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// `30s`, `5m`, `2h`, `1d` in seconds.
fn secs(flag: &str, s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .with_context(|| format!("{flag} {s:?}: write a number and a unit, such as 5m"))?;
    let unit = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{flag} {s:?}: the unit is s, m, h or d (such as 5m)"),
    };
    Ok(n.saturating_mul(unit))
}

fn ago(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

fn labels_of(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("label {p:?} is not key=value");
        };
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(map))
}

/// `drover alerts [--state S]`: open alerts (or those in `state`).
pub async fn list(api: &client::ApiClient, state: &str, json: bool) -> anyhow::Result<()> {
    let v = api.get(&format!("/alerts?state={state}")).await?;
    if json {
        return print_json(&v);
    }
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        println!("no {state} alerts");
        return Ok(());
    }
    for a in alerts {
        let acked = if a["acked_by"].is_string() {
            " (acked)"
        } else {
            ""
        };
        println!(
            "{}  {:<8} {:<8} {:<20} since {}  {}{acked}",
            a["id"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            a["severity"].as_str().unwrap_or(""),
            a["rule_name"].as_str().unwrap_or(""),
            ago(a["fired_at"].as_i64().or(a["first_at"].as_i64())),
            a["summary"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// `drover alerts ack|rules ...`.
pub async fn alerts(api: &client::ApiClient, cmd: AlertsCmd) -> anyhow::Result<()> {
    match cmd {
        AlertsCmd::Ack { id, json } => {
            let a = api.post(&format!("/alerts/{id}/ack"), &json!({})).await?;
            if json {
                return print_json(&a);
            }
            println!(
                "alert {} acknowledged by {}",
                a["id"].as_str().unwrap_or(&id),
                a["acked_by"].as_str().unwrap_or("")
            );
            Ok(())
        }
        AlertsCmd::Rules { action } => rules(api, action).await,
    }
}

async fn rules(api: &client::ApiClient, cmd: RulesCmd) -> anyhow::Result<()> {
    match cmd {
        RulesCmd::List { json } => {
            let v = api.get("/alerts/rules").await?;
            if json {
                return print_json(&v);
            }
            for r in v["rules"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<18} {:<8} {:<8} for {}s  hosts {}  {}",
                    r["name"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or(""),
                    r["severity"].as_str().unwrap_or(""),
                    if r["enabled"] == true {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    r["for_secs"],
                    r["selector_text"].as_str().unwrap_or(""),
                    r["params"],
                );
            }
            Ok(())
        }
        RulesCmd::Add {
            name,
            kind,
            params,
            selector,
            severity,
            for_,
            labels,
            disabled,
            json,
        } => {
            let for_secs = for_.as_deref().map(|f| secs("--for", f)).transpose()?;
            let body = json!({
                "name": name, "kind": kind,
                "params": client::parse_params(&params)?,
                "selector": selector, "severity": severity, "for_secs": for_secs,
                "labels": labels_of(&labels)?, "enabled": !disabled,
            });
            let r = api.post("/alerts/rules", &body).await?;
            if json {
                return print_json(&r);
            }
            println!(
                "rule {} ({}) added",
                r["name"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            Ok(())
        }
        RulesCmd::Remove { id, json } => {
            let v = api.delete(&format!("/alerts/rules/{id}")).await?;
            if json {
                return print_json(&v);
            }
            println!("rule {} removed", v["name"].as_str().unwrap_or(&id));
            Ok(())
        }
    }
}

/// `drover silences ...`.
pub async fn silences(api: &client::ApiClient, cmd: SilencesCmd) -> anyhow::Result<()> {
    match cmd {
        SilencesCmd::List { json } => {
            let v = api.get("/silences").await?;
            if json {
                return print_json(&v);
            }
            for s in v["silences"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  until {}  rule {}  hosts {}  {}",
                    s["id"].as_str().unwrap_or(""),
                    if s["active"] == true {
                        "active"
                    } else {
                        "inactive"
                    },
                    ago(s["ends_at"].as_i64()),
                    s["rule_id"].as_str().unwrap_or("any"),
                    s["selector_text"].as_str().unwrap_or("any"),
                    s["comment"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        SilencesCmd::Add {
            rule,
            selector,
            for_,
            comment,
            json,
        } => {
            let body = json!({
                "rule": rule, "selector": selector,
                "duration_secs": secs("--for", &for_)?, "comment": comment,
            });
            let s = api.post("/silences", &body).await?;
            if json {
                return print_json(&s);
            }
            println!(
                "silence {} added, until {}",
                s["id"].as_str().unwrap_or(""),
                ago(s["ends_at"].as_i64())
            );
            Ok(())
        }
        SilencesCmd::Remove { id, json } => {
            let v = api.delete(&format!("/silences/{id}")).await?;
            if json {
                return print_json(&v);
            }
            println!("silence {id} removed");
            Ok(())
        }
    }
}
