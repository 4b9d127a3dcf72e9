//! Package actions. `scan` asks the package manager for a simulated upgrade
//! and parses what it would install; nothing is changed.

use serde::Serialize;
use serde_json::json;

use super::{which, Ctx, Outcome};
use crate::exec::{self, Program};
use bus_schema::{Command, CommandStatus};

/// One upgradable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upgradable {
    pub name: String,
    pub current: String,
    pub candidate: String,
    pub origin: String,
    pub security: bool,
}

pub fn available() -> Result<(), String> {
    if which("apt-get").is_some() {
        Ok(())
    } else {
        Err("no supported package manager found (apt-get)".into())
    }
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    match cmd.action.as_str() {
        "pkg.scan" => scan(ctx).await,
        other => Outcome::failed(format!("{other} is not implemented yet")),
    }
}

pub async fn scan(ctx: &Ctx<'_>) -> Outcome {
    let (limits, sink) = (ctx.limits, ctx.sink);
    let argv = [
        "apt-get",
        "--simulate",
        "-o",
        "Debug::NoLocking=true",
        "dist-upgrade",
    ];
    let finished = match exec::run(
        Program {
            argv: &argv,
            env: &[("DEBIAN_FRONTEND", "noninteractive")],
            timeout: limits.timeout,
            grace: limits.grace,
            cancel: &limits.cancel,
        },
        sink,
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return Outcome::failed(format!("could not start apt-get: {e}")),
    };
    if finished.cancelled {
        return Outcome {
            status: CommandStatus::Cancelled,
            exit_code: finished.exit_code,
            summary: "cancelled while running; the process group was stopped".into(),
            data: json!(null),
        };
    }
    if finished.timed_out {
        return Outcome {
            status: CommandStatus::Failed,
            exit_code: finished.exit_code,
            summary: format!("apt-get did not finish within {:?}", limits.timeout),
            data: json!(null),
        };
    }
    if finished.exit_code != Some(0) {
        return Outcome {
            status: CommandStatus::Failed,
            exit_code: finished.exit_code,
            summary: "apt-get --simulate failed; see the output".into(),
            data: json!(null),
        };
    }
    let pkgs: Vec<Upgradable> = finished
        .stdout
        .iter()
        .filter_map(|l| parse_apt_inst(l))
        .collect();
    let security = pkgs.iter().filter(|p| p.security).count();
    Outcome {
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: format!("{} upgradable, {} security", pkgs.len(), security),
        data: json!({ "manager": "apt", "upgradable": pkgs }),
    }
}

/// Parses `Inst name [current] (candidate origin [arch])`.
pub fn parse_apt_inst(line: &str) -> Option<Upgradable> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let (current, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (cur, r) = r.split_once(']')?;
            (cur.to_string(), r.trim_start())
        }
        // A new package (no current version) is not an upgrade.
        None => return None,
    };
    let inner = rest.strip_prefix('(')?;
    let inner = &inner[..inner.find(')')?];
    let mut parts = inner.split_whitespace();
    let candidate = parts.next()?.to_string();
    let origin = parts.next().unwrap_or("").to_string();
    let security = origin.to_ascii_lowercase().contains("security");
    Some(Upgradable {
        name: name.to_string(),
        current,
        candidate,
        origin,
        security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_lines() {
        let p = parse_apt_inst(
            "Inst libssl3 [3.0.11-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])",
        )
        .unwrap();
        assert_eq!(p.name, "libssl3");
        assert_eq!(p.current, "3.0.11-1~deb12u1");
        assert_eq!(p.candidate, "3.0.15-1~deb12u1");
        assert!(p.security);
        let q =
            parse_apt_inst("Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.14/oldstable [amd64])")
                .unwrap();
        assert!(!q.security);
        assert!(parse_apt_inst("Inst newpkg (1.0 Debian:12 [amd64])").is_none());
        assert!(parse_apt_inst("Conf bash (5.2)").is_none());
    }
}
