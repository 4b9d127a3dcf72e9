//! Following a job until it ends, for `drover run`: the API's `?wait=` long
//! poll answers the moment the last result is stored, and the event stream
//! (`/api/v1/events`) drives the progress bar and `--stream`'s per-host
//! lines in between. No fixed-interval polling.
//!
//! Owns the follow loop and its three outputs (progress bar on a terminal,
//! per-host lines with `--stream`, the final summary); the per-host table
//! itself is `print::print_job`. It sends no job and decides nothing about
//! selectors or parameters.

use std::collections::HashSet;
use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::time::{Duration, Instant};

use control_plane::client;
use futures::StreamExt;
use serde_json::Value;

use crate::exit::{HostsFailed, TimedOut};
use crate::print::{print_job, print_json};

/// How to follow one job.
pub struct Follow {
    /// The job id.
    pub id: String,
    /// Give up after this long (exit 6).
    pub max: Duration,
    /// Print each host's result as it arrives (`--stream`).
    pub stream: bool,
    /// JSON output: one document, or NDJSON with `stream`.
    pub json: bool,
}

type Poll<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Value>> + Send + 'a>>;

/// Follows the job until every host answered or `max` passed, then prints
/// the summary. Errors: API errors (saying that the job was submitted and
/// how to see it: a script must not submit it again); [`HostsFailed`] when
/// some host did not succeed; [`TimedOut`] when `max` passed first.
pub async fn follow_job(api: &client::ApiClient, f: Follow) -> anyhow::Result<()> {
    let id = f.id.clone();
    follow(api, f).await.map_err(|e| {
        let outcome = e
            .chain()
            .any(|c| c.is::<HostsFailed>() || c.is::<TimedOut>());
        if outcome {
            e
        } else {
            e.context(format!(
                "job {id} was submitted (do not submit it again); see it with `drover jobs {id}`"
            ))
        }
    })
}

async fn follow(api: &client::ApiClient, f: Follow) -> anyhow::Result<()> {
    let id = f.id.as_str();
    let first = api.get(&format!("/jobs/{id}")).await?;
    let bar = if !f.json && !f.stream && std::io::stderr().is_terminal() {
        progress_bar(first["target_count"].as_u64().unwrap_or(0))
    } else {
        indicatif::ProgressBar::hidden()
    };
    // The event stream only says "something changed"; a lost stream costs
    // the live progress, not the result (the long poll still ends it).
    // Connected in the background, so that a fast job is not held up.
    let (tx, mut events) = tokio::sync::mpsc::channel::<String>(256);
    let sse = api.clone();
    let reader = tokio::spawn(async move {
        if let Ok(resp) = sse.events().await {
            command_events(resp, tx).await;
        }
    });
    let deadline = Instant::now() + f.max;
    let long_poll = |deadline: Instant| -> Poll<'_> {
        let secs = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 300);
        let path = format!("/jobs/{id}?wait={secs}");
        Box::pin(async move { api.get(&path).await })
    };
    let mut printed: HashSet<String> = HashSet::new();
    let mut mine: HashSet<String> = HashSet::new();
    let targets = first["target_count"].as_u64().unwrap_or(0) as usize;
    if f.stream {
        emit_hosts(api, &f, &mut printed, &mut mine).await?;
    }
    let mut poll = long_poll(deadline);
    let mut live = true;
    let mut last = first;
    // Bounded: each turn is an answer or an event; the deadline ends it.
    for _ in 0..1_000_000 {
        if last["done"].as_bool().unwrap_or(false) || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            v = &mut poll => {
                last = v?;
                set_progress(&bar, &last);
                if !last["done"].as_bool().unwrap_or(false) && Instant::now() < deadline {
                    poll = long_poll(deadline);
                }
            }
            ev = events.recv(), if live => {
                let Some(cid) = ev else {
                    live = false;
                    continue;
                };
                // Other jobs' commands are none of ours; a command this
                // job made after the last look re-reads the list.
                let mut ours = mine.contains(&cid);
                while let Ok(more) = events.try_recv() {
                    ours |= mine.contains(&more);
                }
                if !ours && mine.len() >= targets {
                    continue;
                }
                if !ours || f.stream {
                    emit_hosts(api, &f, &mut printed, &mut mine).await?;
                }
                last = api.get(&format!("/jobs/{id}")).await?;
                set_progress(&bar, &last);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
    drop(poll);
    reader.abort();
    bar.finish_and_clear();
    if !last["done"].as_bool().unwrap_or(false) {
        last = api.get(&format!("/jobs/{id}")).await?;
    }
    if f.stream {
        emit_hosts(api, &f, &mut printed, &mut mine).await?;
        summary_line(&last, f.json)?;
    } else if f.json {
        let mut doc = last.clone();
        doc["hosts"] = api.get(&format!("/jobs/{id}/hosts")).await?["hosts"].clone();
        print_json(&doc)?;
    } else {
        print_job(api, &last).await?;
    }
    outcome(&last, id, f.max)
}

/// The exit decision: not done is a timeout, a failed host is exit 3.
fn outcome(last: &Value, id: &str, max: Duration) -> anyhow::Result<()> {
    if !last["done"].as_bool().unwrap_or(false) {
        return Err(TimedOut(format!(
            "stopped following after {max:?}; `drover jobs {id}` shows it later"
        ))
        .into());
    }
    let c = &last["counts"];
    let bad = ["failed", "expired", "cancelled"]
        .iter()
        .map(|k| c[*k].as_i64().unwrap_or(0))
        .sum::<i64>();
    if bad > 0 {
        return Err(HostsFailed(format!(
            "{bad} hosts did not succeed; `drover jobs {id}` lists them"
        ))
        .into());
    }
    Ok(())
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn set_progress(bar: &indicatif::ProgressBar, v: &Value) {
    let c = &v["counts"];
    bar.set_position(c["finished"].as_u64().unwrap_or(0));
    bar.set_message(format!(
        "ok {} failed {} running {} pending {} offline {} expired {}",
        c["succeeded"], c["failed"], c["running"], c["pending"], c["offline"], c["expired"]
    ));
}

/// Reads the SSE stream and sends the command id of every command event.
/// Ends when the stream ends or the follower stops listening.
async fn command_events(resp: reqwest::Response, tx: tokio::sync::mpsc::Sender<String>) {
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            if let Some(cid) = command_id(&v) {
                if tx.send(cid).await.is_err() {
                    return;
                }
            }
        }
        // A line never grows without end: the server's are short JSON.
        if buf.len() > 1 << 20 {
            buf.clear();
        }
    }
}

/// The `command_id` of a command event's JSON (at the top or one level
/// down, whichever way the event is tagged).
fn command_id(v: &Value) -> Option<String> {
    if let Some(id) = v["command_id"].as_str() {
        return Some(id.to_string());
    }
    v.as_object()?
        .values()
        .find_map(|inner| inner["command_id"].as_str().map(str::to_string))
}

/// Whether a host entry's status is final (it will not change again).
fn is_final(h: &Value) -> bool {
    serde_json::from_value::<bus_schema::CommandStatus>(h["status"].clone())
        .map(|s| s.is_final())
        .unwrap_or(false)
}

/// Notes the job's command ids in `mine`; with `--stream`, prints the
/// hosts that reached a final state since the last call, once each: NDJSON objects (`"type": "host"` + the `/jobs/<id>/hosts` entry)
/// with `json`, else one readable line each.
async fn emit_hosts(
    api: &client::ApiClient,
    f: &Follow,
    printed: &mut HashSet<String>,
    mine: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let hosts = api.get(&format!("/jobs/{}/hosts", f.id)).await?;
    for h in hosts["hosts"].as_array().cloned().unwrap_or_default() {
        let cmd = h["command_id"].as_str().unwrap_or("").to_string();
        mine.insert(cmd.clone());
        if !f.stream || !is_final(&h) || !printed.insert(cmd) {
            continue;
        }
        if f.json {
            let mut line = serde_json::json!({ "type": "host" });
            if let (Some(o), Value::Object(src)) = (line.as_object_mut(), h) {
                o.extend(src);
            }
            println!("{}", serde_json::to_string(&line)?);
        } else {
            println!(
                "{:<24} {:<10} {:>4}  {}",
                h["hostname"].as_str().unwrap_or("?"),
                h["status"].as_str().unwrap_or(""),
                h["exit_code"]
                    .as_i64()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                h["summary"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// The last line of `--stream`: the job's view with `"type": "summary"`
/// (NDJSON), or its counts in one sentence.
fn summary_line(v: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        let mut line = serde_json::json!({ "type": "summary" });
        if let (Some(o), Value::Object(src)) = (line.as_object_mut(), v.clone()) {
            o.extend(src);
        }
        println!("{}", serde_json::to_string(&line)?);
    } else {
        let c = &v["counts"];
        println!(
            "job {}: {} targets — {} succeeded, {} failed, {} running, {} pending, {} offline, {} expired",
            v["id"].as_str().unwrap_or(""),
            v["target_count"], c["succeeded"], c["failed"], c["running"], c["pending"], c["offline"], c["expired"]
        );
    }
    Ok(())
}
