//! `drover apps`: the app catalogue through the API — list, show an app's
//! install form, install it on the hosts a selector matches.
//!
//! Owns those arguments, reading `key=@file` inputs (so a secret never has
//! to be on the command line) and the output; the manifests and the input
//! checks are the control plane's.

use anyhow::Context;
use clap::Subcommand;
use control_plane::client;
use serde_json::Value;

use crate::follow::{follow_job, Follow};
use crate::print::{json_mode, print_json};

#[derive(Subcommand, Debug)]
pub enum AppsCmd {
    /// List the apps.
    List,
    /// Show an app's inputs (its install form).
    Show { id: String },
    /// Install an app on every host a selector matches, e.g.
    /// `drover apps install nginx host:web-* server_name=example.org`.
    /// Inputs are key=value; `key=@/path` reads the value from a file, so a
    /// password never has to be on the command line.
    #[command(after_help = "Examples:\n  \
        drover apps install nginx host:web-* server_name=example.org\n  \
        drover apps install mariadb id:<agent-id> root_password=@/run/secrets/db --json")]
    Install {
        id: String,
        selector: String,
        inputs: Vec<String>,
        /// Seconds to follow the job (0: submit and return).
        #[arg(long, default_value_t = 1800)]
        wait: u64,
        /// Submitting again with the same key returns the same job.
        #[arg(long)]
        key: Option<String>,
    },
}

/// `drover apps [list|show|install]`.
pub async fn apps(api: &client::ApiClient, action: AppsCmd) -> anyhow::Result<()> {
    match action {
        AppsCmd::List => {
            let v = api.get("/apps").await?;
            if json_mode() {
                return print_json(&v);
            }
            for a in v["apps"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<16} {:<8} {:<10} {}",
                    a["id"].as_str().unwrap_or(""),
                    a["version"].as_str().unwrap_or(""),
                    a["category"].as_str().unwrap_or(""),
                    a["description"].as_str().unwrap_or("")
                );
            }
            for e in v["invalid"].as_array().cloned().unwrap_or_default() {
                eprintln!("skipped: {}", e.as_str().unwrap_or(""));
            }
            Ok(())
        }
        AppsCmd::Show { id } => {
            let a = api.get(&format!("/apps/{id}")).await?;
            if json_mode() {
                return print_json(&a);
            }
            println!(
                "{} {} — {}",
                a["name"].as_str().unwrap_or(""),
                a["version"].as_str().unwrap_or(""),
                a["description"].as_str().unwrap_or("")
            );
            for i in a["inputs"].as_array().cloned().unwrap_or_default() {
                let mut notes = Vec::new();
                if i["required"] == true {
                    notes.push("required".to_string());
                }
                if !i["default"].is_null() {
                    notes.push(format!("default {}", i["default"]));
                }
                if let Some(vals) = i["allowed_values"].as_array().filter(|v| !v.is_empty()) {
                    let vals: Vec<&str> = vals.iter().filter_map(|v| v.as_str()).collect();
                    notes.push(format!("one of {}", vals.join("|")));
                }
                if !i["visible_if"].as_object().is_none_or(|o| o.is_empty()) {
                    notes.push(format!("only if {}", i["visible_if"]));
                }
                if i["sensitive"] == true {
                    notes.push("secret: pass key=@file".into());
                }
                println!(
                    "  {:<20} {:<9} {}  {}",
                    i["name"].as_str().unwrap_or(""),
                    i["type"].as_str().unwrap_or(""),
                    i["label"].as_str().unwrap_or(""),
                    if notes.is_empty() {
                        String::new()
                    } else {
                        format!("({})", notes.join(", "))
                    }
                );
            }
            Ok(())
        }
        AppsCmd::Install {
            id,
            selector,
            inputs,
            wait,
            key,
        } => {
            let sel = control_plane::jobs::Selector::parse(&selector)?;
            let mut resolved = Vec::with_capacity(inputs.len());
            for kv in inputs {
                match kv.split_once("=@") {
                    Some((k, path)) => {
                        let v = std::fs::read_to_string(path)
                            .with_context(|| format!("reading the value of {k} from {path}"))?;
                        resolved.push(format!("{k}={}", v.trim_end_matches(['\n', '\r'])));
                    }
                    None => resolved.push(kv),
                }
            }
            let mut inputs = client::parse_params(&resolved)?;
            // Inputs are typed by the manifest; send every value as given.
            if let Value::Object(m) = &mut inputs {
                for v in m.values_mut() {
                    if let Value::Number(n) = v {
                        *v = Value::String(n.to_string());
                    }
                }
            }
            let body =
                serde_json::json!({"selector": sel, "inputs": inputs, "idempotency_key": key});
            let job = api.post(&format!("/apps/{id}/install"), &body).await?;
            let jid = job["id"].as_str().unwrap_or("").to_string();
            if job["replayed"] == true && !json_mode() {
                eprintln!("idempotency key already used for this request: job {jid}, made earlier, nothing new was started");
            }
            for i in job["ignored_inputs"].as_array().into_iter().flatten() {
                eprintln!(
                    "input {} ignored: {}",
                    i["field"].as_str().unwrap_or("?"),
                    i["reason"].as_str().unwrap_or("")
                );
            }
            if !json_mode() {
                eprintln!("job {jid}: install {id} on {} hosts", job["target_count"]);
            }
            if wait == 0 {
                if json_mode() {
                    return print_json(&job);
                }
                println!("{jid}");
                return Ok(());
            }
            let f = Follow {
                id: jid,
                max: std::time::Duration::from_secs(wait),
                stream: false,
                json: json_mode(),
            };
            follow_job(api, f).await
        }
    }
}
