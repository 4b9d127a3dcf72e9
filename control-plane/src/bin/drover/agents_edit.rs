//! The inventory side of `drover agents` (rename, label, notes, show):
//! turning arguments into the body of `PATCH /api/v1/agents/{id}` and
//! printing one agent's record. Owns no argument definitions (`agents.rs`)
//! and no rules (the control plane checks every field and refuses a bad
//! one with a 400 that changes nothing).

use control_plane::client;
use serde_json::{json, Map, Value};

/// Sends an edit (`POST /api/v1/agents/{id}`); answers the agent's record.
pub async fn edit(api: &client::ApiClient, id: &str, body: Value) -> anyhow::Result<Value> {
    api.post(&format!("/agents/{id}"), &body).await
}

/// `env=prod role=web tmp-` and `--remove k` into `{"labels": {...},
/// "remove_labels": [...]}`.
pub fn label_body(pairs: &[String], remove: &[String]) -> anyhow::Result<Value> {
    let mut set = Map::new();
    let mut gone: Vec<String> = remove.to_vec();
    for p in pairs {
        if let Some((k, v)) = p.split_once('=') {
            set.insert(k.to_string(), Value::String(v.to_string()));
        } else if let Some(k) = p.strip_suffix('-') {
            gone.push(k.to_string());
        } else {
            anyhow::bail!(
                "{p:?}: write key=value to set a label or key- to remove it, e.g. env=prod"
            );
        }
    }
    if set.is_empty() && gone.is_empty() {
        anyhow::bail!("nothing to change: give key=value, key- or --remove KEY (e.g. `drover agents label UABC... env=prod`)");
    }
    Ok(json!({ "labels": set, "remove_labels": gone }))
}

/// The notes to send: the argument, the file's text (`-`: stdin), or ""
/// for `--clear`.
pub fn notes_text(text: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    use anyhow::Context;
    match (text, file) {
        (Some(t), _) => Ok(t),
        (None, Some(p)) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading notes from standard input")
        }
        (None, Some(p)) => std::fs::read_to_string(p)
            .with_context(|| format!("reading notes from {}", p.display())),
        (None, None) => Ok(String::new()),
    }
}

/// `k=v (operator), k2=v2 (agent)` from a record's `labels` and
/// `label_sources`.
pub fn labels_text(v: &Value) -> String {
    let Some(l) = v["labels"].as_object() else {
        return "none".into();
    };
    if l.is_empty() {
        return "none".into();
    }
    l.iter()
        .map(|(k, val)| {
            format!(
                "{k}={} ({})",
                val.as_str().unwrap_or(""),
                v["label_sources"][k].as_str().unwrap_or("agent")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One agent's record for a terminal.
pub fn print_record(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("id:         {}", s("id"));
    println!(
        "name:       {}",
        v["display_name"].as_str().unwrap_or(&s("hostname"))
    );
    println!("hostname:   {}", s("hostname"));
    let status = if v["decommissioned_at"].is_i64() {
        format!("decommissioned by {}", s("decommissioned_by"))
    } else {
        s("status")
    };
    println!("status:     {status}");
    println!("os:         {}", s("os"));
    println!("kernel:     {}", s("kernel"));
    println!("labels:     {}", labels_text(v));
    let notes = s("notes");
    if !notes.is_empty() {
        println!("notes:\n{notes}");
    }
}
