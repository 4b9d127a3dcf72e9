//! `pkg.*`: the package manager, apt (Debian, Ubuntu) or dnf (Fedora, RHEL
//! and relatives).
//!
//! - `scan` asks for a simulated upgrade (apt) or `check-update` (dnf) and
//!   parses it; nothing is changed.
//! - `install` / `upgrade` act on named packages only, non-interactively,
//!   with the names after `--` so none can be read as an option. The result
//!   says, per package, the version before and after (from `dpkg-query` /
//!   `rpm -q`).
//!
//! A dpkg lock held by another package manager makes apt-get wait
//! `apt_lock_timeout_secs` and then fail; that is reported as "another
//! package manager is running; try again", never a hang.

use std::collections::BTreeMap;

use bus_schema::catalogue::pkg::PackagesParams;
use bus_schema::Command;
use serde::Serialize;
use serde_json::json;

use super::{params, which, Ctx, Outcome, Ran, Runner};
use crate::config::RootdConfig;

/// One upgradable package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upgradable {
    pub name: String,
    pub current: String,
    pub candidate: String,
    pub origin: String,
    pub security: bool,
}

/// One named package of an install or upgrade: its version before and
/// after (`None`: not installed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    Dnf,
}

impl Manager {
    pub fn detect() -> Option<Self> {
        if which("apt-get").is_some() && which("dpkg-query").is_some() {
            Some(Manager::Apt)
        } else if which("dnf").is_some() && which("rpm").is_some() {
            Some(Manager::Dnf)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Dnf => "dnf",
        }
    }
}

pub fn available(_cfg: &RootdConfig) -> Result<(), String> {
    match Manager::detect() {
        Some(_) => Ok(()),
        None => Err("no supported package manager found (apt-get or dnf)".into()),
    }
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let Some(mgr) = Manager::detect() else {
        return Outcome::failed("no supported package manager found (apt-get or dnf)");
    };
    match cmd.action.as_str() {
        "pkg.scan" => scan(mgr, ctx).await,
        "pkg.install" | "pkg.upgrade" => {
            let p: PackagesParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            change(mgr, cmd.action == "pkg.install", &p.packages, ctx).await
        }
        other => Outcome::failed(format!("rootd has no implementation of {other}")),
    }
}

const APT_ENV: &[(&str, &str)] = &[("DEBIAN_FRONTEND", "noninteractive")];

/// Whether apt-get failed because someone else holds the dpkg lock.
pub fn apt_lock_held(stderr: &[String]) -> bool {
    stderr.iter().any(|l| {
        l.contains("Could not get lock")
            || l.contains("Unable to acquire the dpkg frontend lock")
            || l.contains("Unable to lock directory")
            || l.contains("is another process using it?")
    })
}

/// Installs or upgrades the named packages.
async fn change(mgr: Manager, install: bool, pkgs: &[String], ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let before = match versions(mgr, pkgs, &runner).await {
        Ok(v) => v,
        Err(o) => return o,
    };
    if !install {
        let missing: Vec<&str> = pkgs
            .iter()
            .filter(|p| before.get(p.as_str()).is_none_or(|v| v.is_none()))
            .map(|p| p.as_str())
            .collect();
        if !missing.is_empty() {
            return Outcome::failed(format!(
                "not installed, so not upgraded: {} (use pkg.install); nothing was changed",
                missing.join(", ")
            ));
        }
    }
    let lock_timeout = format!("DPkg::Lock::Timeout={}", ctx.cfg.apt_lock_timeout_secs);
    let mut argv: Vec<&str> = match (mgr, install) {
        (Manager::Apt, true) => vec!["apt-get", "install", "-y", "--no-install-recommends"],
        (Manager::Apt, false) => vec!["apt-get", "install", "--only-upgrade", "-y"],
        (Manager::Dnf, true) => vec!["dnf", "install", "-y"],
        (Manager::Dnf, false) => vec!["dnf", "upgrade", "-y"],
    };
    if mgr == Manager::Apt {
        // Keep changed configuration files without asking.
        argv.extend([
            "-o",
            &lock_timeout,
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ]);
    }
    argv.push("--");
    argv.extend(pkgs.iter().map(|s| s.as_str()));
    let env = if mgr == Manager::Apt { APT_ENV } else { &[] };
    let ran = match runner.run(&argv, env, true).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let verb = if install { "install" } else { "upgrade" };
    if !ran.ok() {
        let summary = if mgr == Manager::Apt && apt_lock_held(&ran.stderr) {
            format!(
                "another package manager is running; try again (apt-get waited {} s for the dpkg lock)",
                ctx.cfg.apt_lock_timeout_secs
            )
        } else {
            format!("{} {verb} failed: {}", argv[0], ran.error_tail())
        };
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(summary)
        };
    }
    let after = match versions(mgr, pkgs, &runner).await {
        Ok(v) => v,
        Err(o) => return o,
    };
    let changes: Vec<Change> = pkgs
        .iter()
        .map(|p| {
            let b = before.get(p.as_str()).cloned().flatten();
            let a = after.get(p.as_str()).cloned().flatten();
            Change {
                name: p.clone(),
                changed: a != b,
                before: b,
                after: a,
            }
        })
        .collect();
    let absent: Vec<&str> = changes
        .iter()
        .filter(|c| c.after.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !absent.is_empty() {
        return Outcome::failed(format!(
            "{} reported success but these are not installed: {}",
            argv[0],
            absent.join(", ")
        ));
    }
    let changed = changes.iter().filter(|c| c.changed).count();
    let summary = format!(
        "{verb}: {changed} changed, {} already {}",
        changes.len() - changed,
        if install { "installed" } else { "up to date" }
    );
    Outcome::succeeded(
        summary,
        json!({ "manager": mgr.name(), "packages": changes }),
    )
}

/// Installed version of each package (`None`: not installed).
async fn versions(
    mgr: Manager,
    pkgs: &[String],
    runner: &Runner<'_>,
) -> Result<BTreeMap<String, Option<String>>, Outcome> {
    let mut argv: Vec<&str> = match mgr {
        Manager::Apt => vec![
            "dpkg-query",
            "-W",
            "-f=${Package}\t${db:Status-Abbrev}\t${Version}\n",
            "--",
        ],
        Manager::Dnf => vec![
            "rpm",
            "-q",
            "--qf",
            "%{NAME}\t%{VERSION}-%{RELEASE}\n",
            "--",
        ],
    };
    argv.extend(pkgs.iter().map(|s| s.as_str()));
    // Both exit non-zero when a package is not installed; what they print
    // for the others is still right.
    let ran = runner.run(&argv, &[], false).await?;
    let found = match mgr {
        Manager::Apt => parse_dpkg_query(&ran.stdout),
        Manager::Dnf => parse_rpm_q(&ran.stdout),
    };
    Ok(pkgs
        .iter()
        .map(|p| (p.clone(), found.get(p).cloned()))
        .collect())
}

/// `name\tii \tversion` lines: installed packages only.
pub fn parse_dpkg_query(lines: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in lines {
        let mut f = l.split('\t');
        let (Some(name), Some(status), Some(version)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if status.starts_with("ii") && !version.is_empty() {
            out.entry(name.to_string())
                .or_insert_with(|| version.to_string());
        }
    }
    out
}

/// `name\tversion-release` lines (rpm prints "package x is not installed"
/// without a tab for the others).
pub fn parse_rpm_q(lines: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in lines {
        if let Some((name, version)) = l.split_once('\t') {
            out.entry(name.to_string())
                .or_insert_with(|| version.to_string());
        }
    }
    out
}

pub async fn scan(mgr: Manager, ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let pkgs = match mgr {
        Manager::Apt => {
            let argv = [
                "apt-get",
                "--simulate",
                "-o",
                "Debug::NoLocking=true",
                "dist-upgrade",
            ];
            let ran = match runner.run(&argv, APT_ENV, true).await {
                Ok(r) => r,
                Err(o) => return o,
            };
            if !ran.ok() {
                return failed_run("apt-get --simulate dist-upgrade", &ran);
            }
            ran.stdout
                .iter()
                .filter_map(|l| parse_apt_inst(l))
                .collect::<Vec<_>>()
        }
        Manager::Dnf => match scan_dnf(&runner).await {
            Ok(p) => p,
            Err(o) => return o,
        },
    };
    let security = pkgs.iter().filter(|p| p.security).count();
    Outcome::succeeded(
        format!("{} upgradable, {} security", pkgs.len(), security),
        json!({ "manager": mgr.name(), "upgradable": pkgs }),
    )
}

fn failed_run(what: &str, ran: &Ran) -> Outcome {
    Outcome {
        exit_code: ran.exit_code,
        ..Outcome::failed(format!("{what} failed: {}", ran.error_tail()))
    }
}

/// `dnf check-update` (exit 100: updates, 0: none), the security advisories,
/// and the installed versions.
async fn scan_dnf(runner: &Runner<'_>) -> Result<Vec<Upgradable>, Outcome> {
    let ran = runner
        .run(&["dnf", "-q", "check-update"], &[], true)
        .await?;
    if !matches!(ran.exit_code, Some(0) | Some(100)) {
        return Err(failed_run("dnf check-update", &ran));
    }
    let updates = parse_dnf_check_update(&ran.stdout);
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let sec = runner
        .run(
            &["dnf", "-q", "updateinfo", "list", "--security"],
            &[],
            true,
        )
        .await?;
    if !sec.ok() {
        return Err(failed_run("dnf updateinfo list --security", &sec));
    }
    let names: Vec<String> = updates.iter().map(|u| u.0.clone()).collect();
    let mut argv = vec![
        "rpm",
        "-q",
        "--qf",
        "%{NAME}\t%{VERSION}-%{RELEASE}\n",
        "--",
    ];
    argv.extend(names.iter().map(|s| s.as_str()));
    let current = parse_rpm_q(&runner.run(&argv, &[], false).await?.stdout);
    Ok(updates
        .into_iter()
        .map(|(name, candidate, origin)| Upgradable {
            security: is_security(&name, &sec.stdout),
            current: current.get(&name).cloned().unwrap_or_default(),
            name,
            candidate,
            origin,
        })
        .collect())
}

/// `name.arch  version  repo` lines of `dnf check-update`, up to the
/// "Obsoleting Packages" section.
pub fn parse_dnf_check_update(lines: &[String]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for l in lines {
        if l.starts_with("Obsoleting") {
            break;
        }
        if l.starts_with(char::is_whitespace) {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Some((name, _arch)) = f[0].rsplit_once('.') else {
            continue;
        };
        if !f[1].chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        out.push((name.to_string(), f[1].to_string(), f[2].to_string()));
    }
    out
}

/// Whether `dnf updateinfo list --security` (`ADVISORY  SEVERITY  NEVRA`)
/// names an update of `name`.
pub fn is_security(name: &str, updateinfo: &[String]) -> bool {
    updateinfo.iter().any(|l| {
        l.split_whitespace().nth(2).is_some_and(|nevra| {
            nevra
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
    })
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

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

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

    #[test]
    fn parses_dpkg_query() {
        let v = parse_dpkg_query(&lines(&[
            "libc6\tii \t2.36-9+deb12u14",
            "hello\trc \t2.10-3",
            "libc6\tii \t2.36-9+deb12u14",
            "garbage",
        ]));
        assert_eq!(v.get("libc6").map(String::as_str), Some("2.36-9+deb12u14"));
        assert!(
            !v.contains_key("hello"),
            "removed, config left: not installed"
        );
    }

    #[test]
    fn parses_rpm_q() {
        let v = parse_rpm_q(&lines(&[
            "bash\t5.2.15-5.fc39",
            "package nosuch is not installed",
        ]));
        assert_eq!(v.get("bash").map(String::as_str), Some("5.2.15-5.fc39"));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn parses_dnf_check_update_and_security() {
        let out = lines(&[
            "",
            "bash.x86_64                      5.2.26-1.fc39                 updates",
            "openssl-libs.x86_64              1:3.1.4-3.fc39                updates",
            "Last metadata expiration check: 0:01:02 ago",
            "Obsoleting Packages",
            "grub2-tools.x86_64               1:2.06-100.fc39               updates",
            "    grub2-tools.x86_64           1:2.06-95.fc39                @updates",
        ]);
        let u = parse_dnf_check_update(&out);
        assert_eq!(
            u,
            vec![
                ("bash".into(), "5.2.26-1.fc39".into(), "updates".into()),
                (
                    "openssl-libs".into(),
                    "1:3.1.4-3.fc39".into(),
                    "updates".into()
                ),
            ]
        );
        let sec = lines(&[
            "FEDORA-2024-1a2b3c4d5e Important/Sec. openssl-libs-1:3.1.4-3.fc39.x86_64",
            "FEDORA-2024-ffffffffff Moderate/Sec.  openssl-3.1.4-3.fc39.x86_64",
        ]);
        assert!(is_security("openssl-libs", &sec));
        assert!(is_security("openssl", &sec));
        assert!(!is_security("bash", &sec));
        assert!(!is_security("openssl-l", &sec));
    }

    #[test]
    fn recognises_a_held_lock() {
        assert!(apt_lock_held(&lines(&[
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)",
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?",
        ])));
        assert!(!apt_lock_held(&lines(&[
            "E: Unable to locate package nosuch"
        ])));
    }
}
