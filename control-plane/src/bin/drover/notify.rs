//! `drover notify channels add|list|remove|test` and `drover notify
//! deliveries <channel>`: notification channels and what was delivered on
//! them, through the API. Owns these arguments and their output; the checks
//! and the sending are the library's (`notify`).

use clap::Subcommand;
use control_plane::client;
use serde_json::{json, Value};

use crate::print::print_json;

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// Channels: where alert notifications go.
    Channels {
        #[command(subcommand)]
        action: ChannelsCmd,
    },
    /// A channel's recent deliveries: state, attempts, last error.
    ///
    /// Example: drover notify deliveries ops-hook --json
    Deliveries {
        /// The channel's name or id.
        channel: String,
        /// How many, newest first (1..=500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ChannelsCmd {
    /// List channels (secrets show only as set / not set).
    ///
    /// Example: drover notify channels list --json
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a channel.
    #[command(after_help = "Examples:\n  \
        drover notify channels add ops-hook --kind webhook --url https://hooks.example/drover \
        --secret-file /etc/drover/hook.key --min-severity warning --group-secs 60\n  \
        drover notify channels add ops-mail --kind email --smtp-host smtp.example --tls starttls \
        --from drover@example.com --to ops@example.com --username drover --secret-file -\n  \
        drover notify channels add night --kind webhook --url https://h.example/x \
        --quiet 22:00-07:00 --quiet-timezone Europe/Paris --quiet-bypass-critical\n  \
        drover notify channels add automation --kind bus")]
    Add {
        /// A unique name: letters, digits, '-', '_', '.'.
        name: String,
        /// webhook, email or bus.
        #[arg(long)]
        kind: String,
        /// Webhook: the URL (http or https) it POSTs to.
        #[arg(long)]
        url: Option<String>,
        /// Webhook: json (default), slack or teams.
        #[arg(long)]
        format: Option<String>,
        /// Email: the SMTP server.
        #[arg(long)]
        smtp_host: Option<String>,
        /// Email: the SMTP port (default by --tls: 587, 465, 25).
        #[arg(long)]
        smtp_port: Option<u16>,
        /// Email: starttls (default), tls or none.
        #[arg(long)]
        tls: Option<String>,
        /// Email: the sender address.
        #[arg(long)]
        from: Option<String>,
        /// Email: a recipient (repeat for more).
        #[arg(long)]
        to: Vec<String>,
        /// Email: the SMTP user (the password comes from --secret-file).
        #[arg(long)]
        username: Option<String>,
        /// A file holding the webhook HMAC key or SMTP password ('-':
        /// standard input). Never on the command line, where others see it.
        #[arg(long)]
        secret_file: Option<std::path::PathBuf>,
        /// The least severity sent: info (default), warning, critical.
        #[arg(long)]
        min_severity: Option<String>,
        /// Only these alert rules, by name or id (repeat); none: every rule.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Only transitions with this label, as key=value (repeat: all must match).
        #[arg(long = "match")]
        matchers: Vec<String>,
        /// Quiet hours as HH:MM-HH:MM (held, not dropped, until they end).
        #[arg(long)]
        quiet: Option<String>,
        /// IANA time zone of --quiet.
        #[arg(long, default_value = "UTC")]
        quiet_timezone: String,
        /// Critical notifications go out during quiet hours too.
        #[arg(long)]
        quiet_bypass_critical: bool,
        /// Transitions of one rule within this many seconds go out as one message.
        #[arg(long, default_value_t = 0)]
        group_secs: i64,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel and its delivery records.
    ///
    /// Example: drover notify channels remove ops-hook
    Remove {
        /// The channel's name or id.
        channel: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a test notification through the whole path (outbox, stream,
    /// grouping, quiet hours); `drover notify deliveries` shows how it went.
    ///
    /// Example: drover notify channels test ops-hook --severity critical
    Test {
        /// The channel's name or id.
        channel: String,
        /// info (default), warning or critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn ms_time(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A path segment: anything but letters, digits, '-', '_', '.' escaped.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let s = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the secret from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the secret from {}", path.display()))?
    };
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// `drover notify …`.
pub async fn notify(api: &client::ApiClient, cmd: NotifyCmd) -> anyhow::Result<()> {
    match cmd {
        NotifyCmd::Channels { action } => channels(api, action).await,
        NotifyCmd::Deliveries {
            channel,
            limit,
            json,
        } => {
            let v = api
                .get(&format!(
                    "/notify/channels/{}/deliveries?limit={limit}",
                    seg(&channel)
                ))
                .await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<38} {:<9} {:>8} {:>11} {:<21} {:<21} LAST ERROR",
                "DELIVERY", "STATE", "ATTEMPTS", "TRANSITIONS", "CREATED", "SENT"
            );
            for d in v["deliveries"].as_array().into_iter().flatten() {
                println!(
                    "{:<38} {:<9} {:>8} {:>11} {:<21} {:<21} {}",
                    d["id"].as_str().unwrap_or(""),
                    d["state"].as_str().unwrap_or(""),
                    d["attempts"],
                    d["transition_ids"].as_array().map_or(0, Vec::len),
                    ms_time(&d["created_at"]),
                    ms_time(&d["sent_at"]),
                    d["last_error"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
    }
}

async fn channels(api: &client::ApiClient, cmd: ChannelsCmd) -> anyhow::Result<()> {
    match cmd {
        ChannelsCmd::List { json } => {
            let v = api.get("/notify/channels").await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<38} {:<16} {:<8} {:<9} {:<8} {:<8} {:<12} TARGET [RULES]",
                "ID", "NAME", "KIND", "SEVERITY", "SECRET", "ENABLED", "QUIET"
            );
            for c in v["channels"].as_array().into_iter().flatten() {
                let target = match c["kind"].as_str() {
                    Some("webhook") => c["config"]["url"].as_str().unwrap_or("").to_string(),
                    Some("email") => c["config"]["to"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => format!("drover.alert.{}", c["id"].as_str().unwrap_or("")),
                };
                let rules: Vec<&str> = c["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let target = if rules.is_empty() {
                    target
                } else {
                    format!("{target} [rules {}]", rules.join(","))
                };
                let q = &c["quiet_hours"];
                println!(
                    "{:<38} {:<16} {:<8} {:<9} {:<8} {:<8} {:<12} {}",
                    c["id"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or(""),
                    c["kind"].as_str().unwrap_or(""),
                    c["min_severity"].as_str().unwrap_or(""),
                    c["secret"].as_str().unwrap_or(""),
                    c["enabled"],
                    if q.is_null() {
                        "-".into()
                    } else {
                        format!(
                            "{}-{}",
                            q["start"].as_str().unwrap_or(""),
                            q["end"].as_str().unwrap_or("")
                        )
                    },
                    target,
                );
            }
            Ok(())
        }
        ChannelsCmd::Add {
            name,
            kind,
            url,
            format,
            smtp_host,
            smtp_port,
            tls,
            from,
            to,
            username,
            secret_file,
            min_severity,
            rules,
            matchers,
            quiet,
            quiet_timezone,
            quiet_bypass_critical,
            group_secs,
            disabled,
            json,
        } => {
            let config = match kind.as_str() {
                "webhook" => json!({"url": url.unwrap_or_default(), "format": format}),
                "email" => json!({"host": smtp_host.unwrap_or_default(), "port": smtp_port,
                                  "tls": tls, "from": from.unwrap_or_default(), "to": to,
                                  "username": username}),
                _ => json!({}),
            };
            let mut m = serde_json::Map::new();
            for kv in &matchers {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--match {kv:?}: use key=value (e.g. --match team=db)")
                })?;
                m.insert(k.into(), v.into());
            }
            let quiet_hours = match quiet.as_deref() {
                None => Value::Null,
                Some(q) => {
                    let (s, e) = q.split_once('-').ok_or_else(|| {
                        anyhow::anyhow!("--quiet {q:?}: use HH:MM-HH:MM (e.g. 22:00-07:00)")
                    })?;
                    json!({"start": s, "end": e, "timezone": quiet_timezone,
                           "bypass_critical": quiet_bypass_critical})
                }
            };
            let mut body = json!({
                "name": name, "kind": kind, "config": config, "min_severity": min_severity,
                "rule_ids": rules, "matchers": m, "quiet_hours": quiet_hours,
                "group_secs": group_secs, "enabled": !disabled,
            });
            if let Some(p) = secret_file {
                body["secret"] = json!(read_secret(&p)?);
            }
            let v = api.post("/notify/channels", &body).await?;
            if json {
                return print_json(&v);
            }
            println!(
                "channel {} ({}) added: {}",
                v["name"].as_str().unwrap_or(""),
                v["kind"].as_str().unwrap_or(""),
                v["id"].as_str().unwrap_or("")
            );
            Ok(())
        }
        ChannelsCmd::Remove { channel, json } => {
            let v = api
                .delete(&format!("/notify/channels/{}", seg(&channel)))
                .await?;
            if json {
                return print_json(&v);
            }
            println!("channel {} removed", v["name"].as_str().unwrap_or(""));
            Ok(())
        }
        ChannelsCmd::Test {
            channel,
            severity,
            json,
        } => {
            let v = api
                .post(
                    &format!("/notify/channels/{}/test", seg(&channel)),
                    &json!({ "severity": severity }),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            println!(
                "test notification queued (transition {}); see `drover notify deliveries {channel}`",
                v["transition_id"]
            );
            Ok(())
        }
    }
}
