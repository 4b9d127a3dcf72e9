//! `drover updates`: pending updates by package or by host, approving and
//! declining them, the approvals with revocation, and auto-approval rules,
//! all through the API (`/api/v1/updates/...`).
//!
//! Owns these arguments, turning `PACKAGE[=VERSION]` and `--expires 7d`
//! into the API's fields, and the output; every check of what is asked is
//! the control plane's. Install history (`drover updates history`) is
//! `history.rs`'s.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use control_plane::selector::Selector;
use control_plane::{auth::urlencode, client};
use serde_json::{json, Value};

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum UpdatesCmd {
    /// Pending updates: by package (security first, then severity, then
    /// hosts affected) or, with --by-host, by host.
    #[command(after_help = "Examples:\n  drover updates list --security\n  \
        drover updates list --by-host --selector label:env=prod --json")]
    List {
        /// One row per host instead of per package.
        #[arg(long)]
        by_host: bool,
        /// Only security updates (hosts with one).
        #[arg(long)]
        security: bool,
        /// Only hosts this selector matches (`label:env=prod,host:web-*`).
        #[arg(long)]
        selector: Option<String>,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a package (at a version, or any candidate) or every security
    /// update for the hosts a selector matches.
    #[command(
        after_help = "Examples:\n  drover updates approve openssl=3.0.15-1~deb12u1 --selector label:env=prod --expires 7d\n  \
        drover updates approve --security --selector all --note \"monthly patching\""
    )]
    Approve(Decide),
    /// Decline a package or every security update for the hosts a selector
    /// matches; a decline wins over every approval and rule.
    #[command(
        after_help = "Examples:\n  drover updates decline linux-image-amd64 --selector host:db-* --note \"kernel freeze\""
    )]
    Decline(Decide),
    /// Approvals and declines, newest first, with their state.
    #[command(after_help = "Example:\n  drover updates approvals --json")]
    Approvals {
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an approval or decline before it runs out.
    #[command(after_help = "Example:\n  drover updates revoke 0193a4c1d2e37f00a1b2c3d4e5f60718")]
    Revoke {
        id: String,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Auto-approval rules: list, add, remove.
    Rules {
        #[command(subcommand)]
        action: RulesCmd,
    },
    /// Install history: versions before and after, status, who approved
    /// each install, in which window.
    #[command(after_help = "Examples:\n  drover updates history --since 7d\n  \
        drover updates history --host 0193a1b2... --package openssl --csv > history.csv")]
    History(crate::history::HistoryArgs),
}

/// What `approve` and `decline` take.
#[derive(Args, Debug)]
pub struct Decide {
    /// `NAME` (any candidate version) or `NAME=VERSION`; leave out with
    /// --security.
    package: Option<String>,
    /// Every security update instead of one package.
    #[arg(long, conflicts_with = "package")]
    security: bool,
    /// The hosts it covers: `all`, `label:env=prod`, `host:web-*`...
    #[arg(long)]
    selector: String,
    /// Runs out after this long: `30m`, `12h`, `7d` (default: never).
    #[arg(long)]
    expires: Option<String>,
    /// Why (shown with the approval).
    #[arg(long)]
    note: Option<String>,
    /// Print the API's answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// The rules, by name.
    #[command(after_help = "Example:\n  drover updates rules list --json")]
    List {
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve updates of a scope on the selector's hosts once they have
    /// been pending for some days.
    #[command(
        after_help = "Examples:\n  drover updates rules add staging-security --scope security --selector label:env=staging\n  \
        drover updates rules add prod-security --scope security --selector label:env=prod --delay-days 3"
    )]
    Add {
        name: String,
        /// `security` or `all`.
        #[arg(long, default_value = "security")]
        scope: String,
        #[arg(long)]
        selector: String,
        /// Days after an update first appeared (0: at once).
        #[arg(long, default_value_t = 0)]
        delay_days: i32,
        /// Add it switched off.
        #[arg(long)]
        disabled: bool,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule (by id, as `rules list` shows).
    #[command(
        after_help = "Example:\n  drover updates rules remove 0193a4c1d2e37f00a1b2c3d4e5f60718"
    )]
    Remove {
        id: String,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `30m`, `12h`, `7d`, `2w` in milliseconds.
fn duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .with_context(|| format!("--expires {s:?}: write a number and a unit, such as 7d"))?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" | "" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => bail!("--expires {s:?}: the unit is m, h, d or w (such as 7d)"),
    };
    if n <= 0 {
        bail!("--expires {s:?}: give a positive duration, such as 7d");
    }
    Ok(n.saturating_mul(unit_ms))
}

/// `drover updates ...`.
pub async fn updates(api: &client::ApiClient, cmd: UpdatesCmd) -> anyhow::Result<()> {
    match cmd {
        UpdatesCmd::List {
            by_host,
            security,
            selector,
            json,
        } => list(api, by_host, security, selector, json).await,
        UpdatesCmd::Approve(d) => decide(api, "approve", d).await,
        UpdatesCmd::Decline(d) => decide(api, "decline", d).await,
        UpdatesCmd::Approvals { json } => approvals(api, json).await,
        UpdatesCmd::Revoke { id, json } => {
            let v = api
                .post(&format!("/updates/approvals/{id}/revoke"), &json!({}))
                .await?;
            if json {
                return print_json(&v);
            }
            println!("revoked {}", v["id"].as_str().unwrap_or(&id));
            Ok(())
        }
        UpdatesCmd::Rules { action } => rules(api, action).await,
        UpdatesCmd::History(a) => crate::history::history(api, a).await,
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn joined(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

async fn list(
    api: &client::ApiClient,
    by_host: bool,
    security: bool,
    selector: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut q = Vec::new();
    if security {
        q.push("security=true".to_string());
    }
    if let Some(sel) = selector {
        q.push(format!("selector={}", urlencode(&sel)));
    }
    let path = if by_host {
        "/updates/hosts"
    } else {
        "/updates"
    };
    let v = api.get(&format!("{path}?{}", q.join("&"))).await?;
    if json {
        return print_json(&v);
    }
    if by_host {
        println!(
            "{:<24} {:>7} {:>8} {:>8}  {:<7} LAST SCAN",
            "HOST", "PENDING", "SECURITY", "APPROVED", "REBOOT"
        );
        for h in v["hosts"].as_array().into_iter().flatten() {
            println!(
                "{:<24} {:>7} {:>8} {:>8}  {:<7} {}",
                s(&h["hostname"]),
                s(&h["pending"]),
                s(&h["security"]),
                s(&h["approved"]),
                if h["reboot_required"] == true {
                    "yes"
                } else {
                    "no"
                },
                s(&h["last_scan_status"]),
            );
        }
    } else {
        println!(
            "{:<32} {:<24} {:>5} {:<8} {:<9} APPROVAL",
            "PACKAGE", "CANDIDATE", "HOSTS", "SECURITY", "SEVERITY"
        );
        for u in v["updates"].as_array().into_iter().flatten() {
            println!(
                "{:<32} {:<24} {:>5} {:<8} {:<9} {}",
                s(&u["package"]),
                joined(&u["candidates"]),
                s(&u["hosts"]),
                if u["security"] == true { "yes" } else { "no" },
                s(&u["severity"]),
                s(&u["approval"]["state"]),
            );
        }
    }
    Ok(())
}

async fn decide(api: &client::ApiClient, decision: &str, d: Decide) -> anyhow::Result<()> {
    let mut body = json!({"decision": decision, "selector": d.selector});
    match (&d.package, d.security) {
        (Some(p), false) => {
            body["scope"] = json!("package");
            match p.split_once('=') {
                Some((name, version)) => {
                    body["package"] = json!(name);
                    body["version"] = json!(version);
                }
                None => body["package"] = json!(p),
            }
        }
        (None, true) => body["scope"] = json!("security"),
        _ => bail!("name a package (NAME or NAME=VERSION) or pass --security"),
    }
    if let Some(e) = &d.expires {
        body["expires_at"] = json!(bus_schema::now_ms() + duration_ms(e)?);
    }
    if let Some(n) = &d.note {
        body["note"] = json!(n);
    }
    let v = api.post("/updates/approvals", &body).await?;
    if d.json {
        return print_json(&v);
    }
    println!(
        "{} {} for {} (id {})",
        if decision == "approve" {
            "approved"
        } else {
            "declined"
        },
        match v["scope"].as_str() {
            Some("security") => "all security updates".to_string(),
            _ => format!(
                "{}{}",
                s(&v["package"]),
                v["version"]
                    .as_str()
                    .map(|x| format!("={x}"))
                    .unwrap_or_default()
            ),
        },
        d.selector,
        s(&v["id"])
    );
    Ok(())
}

async fn approvals(api: &client::ApiClient, json: bool) -> anyhow::Result<()> {
    let v = api.get("/updates/approvals").await?;
    if json {
        return print_json(&v);
    }
    println!(
        "{:<32} {:<8} {:<8} {:<30} {:<20} BY",
        "ID", "DECISION", "STATE", "UPDATES", "HOSTS"
    );
    for a in v["approvals"].as_array().into_iter().flatten() {
        let what = if a["scope"] == "security" {
            "security".to_string()
        } else {
            format!(
                "{}{}",
                s(&a["package"]),
                a["version"]
                    .as_str()
                    .map(|x| format!("={x}"))
                    .unwrap_or_default()
            )
        };
        println!(
            "{:<32} {:<8} {:<8} {:<30} {:<20} {}",
            s(&a["id"]),
            s(&a["decision"]),
            s(&a["state"]),
            what,
            Selector::text_of(&a["selector"]),
            s(&a["created_by"]),
        );
    }
    Ok(())
}

async fn rules(api: &client::ApiClient, action: RulesCmd) -> anyhow::Result<()> {
    match action {
        RulesCmd::List { json } => {
            let v = api.get("/updates/rules").await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<32} {:<20} {:<8} {:>5} {:<8} HOSTS",
                "ID", "NAME", "SCOPE", "DAYS", "ENABLED"
            );
            for r in v["rules"].as_array().into_iter().flatten() {
                println!(
                    "{:<32} {:<20} {:<8} {:>5} {:<8} {}",
                    s(&r["id"]),
                    s(&r["name"]),
                    s(&r["scope"]),
                    s(&r["delay_days"]),
                    s(&r["enabled"]),
                    Selector::text_of(&r["selector"]),
                );
            }
            Ok(())
        }
        RulesCmd::Add {
            name,
            scope,
            selector,
            delay_days,
            disabled,
            json,
        } => {
            let body = json!({"name": name, "scope": scope, "selector": selector,
                              "delay_days": delay_days, "enabled": !disabled});
            let v = api.post("/updates/rules", &body).await?;
            if json {
                return print_json(&v);
            }
            println!("added rule {} (id {})", s(&v["name"]), s(&v["id"]));
            Ok(())
        }
        RulesCmd::Remove { id, json } => {
            let v = api.delete(&format!("/updates/rules/{id}")).await?;
            if json {
                return print_json(&v);
            }
            println!("removed rule {}", s(&v["rule"]["name"]));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::duration_ms;

    #[test]
    fn expiry_durations() {
        assert_eq!(duration_ms("30m").unwrap(), 1_800_000);
        assert_eq!(duration_ms("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(duration_ms("2").unwrap(), 2 * 86_400_000);
        for bad in ["", "d", "0d", "7y", "-1d"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }
}
