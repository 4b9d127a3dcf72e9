//! `drover updates history`: every install attempt of approved updates per
//! host and package (versions before and after, status, who approved it, in
//! which window), newest first, as a table, JSON or CSV, through the API.
//! Owns these arguments and their output; the history is the library's
//! (`windows::history`).

use clap::Args;
use control_plane::client;

use crate::print::print_json;

/// Example: drover updates history --host 0193a1b2... --package openssl --since 7d --csv > history.csv
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only this agent (its id).
    #[arg(long)]
    host: Option<String>,
    /// Only this package.
    #[arg(long)]
    package: Option<String>,
    /// Since: 7d, 12h, 30m, YYYY-MM-DD or milliseconds since the epoch.
    #[arg(long)]
    since: Option<String>,
    /// Page (1-based, 100 rows each) of the table or JSON.
    #[arg(long, default_value_t = 1)]
    page: u64,
    /// CSV with a header row (every matching row, up to 100,000).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    #[arg(long)]
    json: bool,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `drover updates history`.
pub async fn history(api: &client::ApiClient, a: HistoryArgs) -> anyhow::Result<()> {
    let mut q = vec![format!("page={}", a.page)];
    for (k, v) in [
        ("agent", &a.host),
        ("package", &a.package),
        ("since", &a.since),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", enc(v)));
        }
    }
    if a.csv {
        q.push("format=csv".into());
        print!(
            "{}",
            api.get_text(&format!("/updates/history?{}", q.join("&")))
                .await?
        );
        return Ok(());
    }
    let v = api
        .get(&format!("/updates/history?{}", q.join("&")))
        .await?;
    if a.json {
        return print_json(&v);
    }
    println!(
        "{:<20} {:<20} {:<28} {:<18} {:<18} {:<10} {:<16} WINDOW RUN",
        "AT (UTC)", "HOST", "PACKAGE", "BEFORE", "AFTER", "STATUS", "APPROVED BY"
    );
    for r in v["history"].as_array().into_iter().flatten() {
        let at = r["at"]
            .as_i64()
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20} {:<20} {:<28} {:<18} {:<18} {:<10} {:<16} {}",
            at,
            s("hostname"),
            s("package"),
            s("version_before"),
            s("version_after"),
            s("status"),
            s("approved_by"),
            r["run_id"].as_str().unwrap_or("-"),
        );
    }
    let total = v["total"].as_u64().unwrap_or(0);
    let shown = v["history"].as_array().map(Vec::len).unwrap_or(0);
    if total as usize > shown {
        eprintln!("page {} of {} rows; more with --page", a.page, total);
    }
    Ok(())
}
