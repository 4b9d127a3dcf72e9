//! `app`: install and uninstall apps from manifests. The manifest is read
//! from rootd's own manifest directory (never from the command), the inputs
//! are checked again with the same validator the control plane used, and
//! they reach the script only as upper-case environment variables. Secret
//! values are scrubbed from every output line before it leaves rootd.

use std::path::PathBuf;

use bus_schema::catalogue::app::{InstallParams, UninstallParams};
use bus_schema::manifest::{self, Manifest};
use bus_schema::{Command, CommandStatus};
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::RootdConfig;
use crate::exec::{self, Program};
use crate::toolkit::{params, which, Ctx, Outcome};

pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    if which("bash").is_none() {
        return Err("bash is not installed".into());
    }
    if !cfg.manifests_dir.is_dir() {
        return Err(format!(
            "no manifest directory at {}; set manifests_dir",
            cfg.manifests_dir.display()
        ));
    }
    Ok(())
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    match cmd.action.as_str() {
        "app.install" => match params::<InstallParams>(cmd) {
            Ok(p) => install(p, ctx).await,
            Err(o) => o,
        },
        "app.uninstall" => match params::<UninstallParams>(cmd) {
            Ok(p) => uninstall(p, ctx).await,
            Err(o) => o,
        },
        other => Outcome::failed(format!("rootd has no implementation of {other}")),
    }
}

fn state_dir(cfg: &RootdConfig) -> PathBuf {
    cfg.apps_state_dir
        .clone()
        .unwrap_or_else(|| cfg.state_dir.join("apps"))
}

/// Validation failures end `rejected` with exit code 1, like a script's own.
fn invalid(summary: String) -> Outcome {
    Outcome {
        status: CommandStatus::Rejected,
        exit_code: Some(1),
        summary,
        data: json!(null),
    }
}

async fn install(p: InstallParams, ctx: &Ctx<'_>) -> Outcome {
    let (m, dir) = match manifest::load(&ctx.cfg.manifests_dir, &p.app) {
        Ok(x) => x,
        Err(e) => return invalid(e.to_string()),
    };
    // Values of hidden inputs are dropped here too, whoever signed them.
    let resolved = match m.resolve_inputs(&p.inputs) {
        Ok(c) => c,
        Err(errs) => {
            let why: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            return invalid(format!("invalid inputs: {}", why.join("; ")));
        }
    };
    if let Err(why) = meets_requirements(&m) {
        return invalid(why);
    }
    let script = match manifest::script_path(&dir, &m.scripts.install) {
        Ok(s) => s,
        Err(e) => return invalid(e.to_string()),
    };
    let checked = &resolved.checked;
    let mut env = m.env(checked);
    env.push(("DROVER_APP_ID".into(), m.id.clone()));
    env.push(("DROVER_APP_VERSION".into(), m.version.clone()));
    env.push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
    let secrets = m.secrets(checked);
    let outcome = run_script(&m, &script, &env, &secrets, ctx, "install").await;
    if outcome.status == CommandStatus::Succeeded {
        // What is installed, with the inputs minus secrets, for uninstall
        // and for the operator.
        let record = json!({
            "id": m.id,
            "version": m.version,
            "installed_at": bus_schema::now_ms(),
            "inputs": m.mask(&resolved.kept),
        });
        let dir = state_dir(ctx.cfg);
        let _ = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(format!("{}.json", m.id)), record.to_string()));
    }
    outcome
}

async fn uninstall(p: UninstallParams, ctx: &Ctx<'_>) -> Outcome {
    let (m, dir) = match manifest::load(&ctx.cfg.manifests_dir, &p.app) {
        Ok(x) => x,
        Err(e) => return invalid(e.to_string()),
    };
    let Some(name) = &m.scripts.uninstall else {
        return invalid(format!("{} has no uninstall script", m.name));
    };
    let script = match manifest::script_path(&dir, name) {
        Ok(s) => s,
        Err(e) => return invalid(e.to_string()),
    };
    let env = vec![
        ("DROVER_APP_ID".to_string(), m.id.clone()),
        ("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string()),
    ];
    let outcome = run_script(&m, &script, &env, &[], ctx, "uninstall").await;
    if outcome.status == CommandStatus::Succeeded {
        let _ = std::fs::remove_file(state_dir(ctx.cfg).join(format!("{}.json", m.id)));
    }
    outcome
}

/// Checks the host against the manifest's OS and resource requirements.
fn meets_requirements(m: &Manifest) -> Result<(), String> {
    if !m.os.families.is_empty() {
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let mut ours: Vec<String> = Vec::new();
        for line in release.lines() {
            if let Some(v) = line
                .strip_prefix("ID=")
                .or_else(|| line.strip_prefix("ID_LIKE="))
            {
                ours.extend(v.trim_matches('"').split_whitespace().map(str::to_string));
            }
        }
        if !m.os.families.iter().any(|f| ours.contains(f)) {
            return Err(format!(
                "{} needs one of {} (this host: {})",
                m.name,
                m.os.families.join(", "),
                ours.join(" ")
            ));
        }
    }
    let r = &m.resources;
    if r.min_cpu_cores > 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        if cores < r.min_cpu_cores {
            return Err(format!(
                "{} needs {} CPU cores; this host has {cores}",
                m.name, r.min_cpu_cores
            ));
        }
    }
    if r.min_ram_mb > 0 {
        let mem_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(u64::MAX);
        if mem_kb / 1024 < r.min_ram_mb {
            return Err(format!(
                "{} needs {} MB of memory; this host has {}",
                m.name,
                r.min_ram_mb,
                mem_kb / 1024
            ));
        }
    }
    if r.min_disk_mb > 0 {
        if let Ok(s) = nix::sys::statvfs::statvfs("/") {
            let free_mb = s.blocks_available() * s.fragment_size() / (1024 * 1024);
            if free_mb < r.min_disk_mb {
                return Err(format!(
                    "{} needs {} MB free on /; this host has {free_mb}",
                    m.name, r.min_disk_mb
                ));
            }
        }
    }
    Ok(())
}

async fn run_script(
    m: &Manifest,
    script: &std::path::Path,
    env: &[(String, String)],
    secrets: &[String],
    ctx: &Ctx<'_>,
    what: &str,
) -> Outcome {
    let script_s = script.display().to_string();
    let argv = ["bash", script_s.as_str()];
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Every line passes through the scrubber before it reaches the agent.
    let (tx, mut rx) = mpsc::channel::<(bus_schema::OutputStream, String)>(256);
    let sink = ctx.sink.clone();
    let secrets_owned = secrets.to_vec();
    let forward = tokio::spawn(async move {
        while let Some((stream, line)) = rx.recv().await {
            let line = manifest::scrub(&line, &secrets_owned);
            if sink.send((stream, line)).await.is_err() {
                break;
            }
        }
    });
    let finished = exec::run(
        Program {
            argv: &argv,
            env: &env_refs,
            timeout: ctx.limits.timeout,
            grace: ctx.limits.grace,
            cancel: &ctx.limits.cancel,
            secrets,
        },
        &tx,
    )
    .await;
    drop(tx);
    let _ = forward.await;
    let f = match finished {
        Ok(f) => f,
        Err(e) => return Outcome::failed(format!("could not start the {what} script: {e}")),
    };
    let last = f
        .stdout
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| manifest::scrub(l, secrets))
        .unwrap_or_default();
    // What the script said on stderr, last lines, secrets scrubbed; part of
    // every summary, so an error printed there is never lost.
    let stderr_tail: Vec<String> = f
        .stderr_tail
        .iter()
        .map(|l| manifest::scrub(l, secrets))
        .collect();
    let err = if stderr_tail.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {})", stderr_tail.join(" / "))
    };
    let data = json!({
        "app": m.id,
        "version": m.version,
        "exit_code": f.exit_code,
        "last_line": last,
        "stderr_tail": stderr_tail,
    });
    if f.cancelled {
        return Outcome {
            status: CommandStatus::Cancelled,
            exit_code: f.exit_code,
            summary: format!(
                "{what} of {} cancelled; its process group was stopped",
                m.name
            ),
            data,
        };
    }
    if f.timed_out {
        return Outcome {
            status: CommandStatus::Failed,
            exit_code: f.exit_code,
            summary: format!(
                "{what} of {} did not finish within {:?}",
                m.name, ctx.limits.timeout
            ),
            data,
        };
    }
    let (status, summary) = match f.exit_code {
        Some(0) => (
            CommandStatus::Succeeded,
            format!("{what} of {} {} done{err}", m.name, m.version),
        ),
        Some(1) => (
            CommandStatus::Failed,
            format!(
                "{what} of {}: validation failed (exit 1): {last}{err}",
                m.name
            ),
        ),
        Some(2) => (
            CommandStatus::Failed,
            format!(
                "{what} of {}: installation failed (exit 2): {last}{err}",
                m.name
            ),
        ),
        Some(3) => (
            CommandStatus::Failed,
            format!(
                "{what} of {}: configuration failed (exit 3): {last}{err}",
                m.name
            ),
        ),
        Some(n) => (
            CommandStatus::Failed,
            format!("{what} of {} failed (exit {n}): {last}{err}", m.name),
        ),
        None => (
            CommandStatus::Failed,
            format!("{what} of {} was killed by a signal{err}", m.name),
        ),
    };
    Outcome {
        status,
        exit_code: f.exit_code,
        summary,
        data,
    }
}
