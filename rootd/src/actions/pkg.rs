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
//!
//! Names are the operator's, in the manager's own syntax (apt `NAME=VERSION`
//! and `NAME:ARCH`, dnf `NAME-VERSION` and `NAME.ARCH`; the other manager's
//! form is refused with the right spelling). Every installed state counts as
//! installed: dpkg `ii`, `hi` (held) and triggers pending; unpacked or
//! half-configured packages are reported as such; a held package is shown
//! (`held: true`) and never upgraded behind the operator's back. When dnf
//! resolves a name to another package (`vim` provided by `vim-enhanced`),
//! the result names the package that was installed.

use std::collections::BTreeMap;

use bus_schema::catalogue::pkg::PackagesParams;
use bus_schema::catalogue::{parse_package, PackageSpec};
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
    /// On hold: an upgrade leaves it until the hold is released.
    pub held: bool,
}

/// One named package of an install or upgrade: its version before and
/// after (`None`: not installed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// As the operator wrote it (with any pin or arch).
    pub name: String,
    /// The package that is installed under that name, when there is one;
    /// differs from `name` when dnf resolved a provide (`vim` →
    /// `vim-enhanced`) and drops any pin or arch.
    pub package: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub changed: bool,
    /// The package is on hold (dpkg selection `hold`): upgrades leave it.
    pub held: bool,
    /// dpkg's status abbreviation after the action (`ii`, `hi`, `iU`...);
    /// `None` with rpm or when not installed.
    pub state: Option<String>,
}

/// One installed (or partly installed) package as the package database
/// reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Installed {
    /// The package's own name.
    pub package: String,
    pub arch: String,
    /// With its epoch when it has one (`1:3.0.15-1`).
    pub version: String,
    /// dpkg selection `hold`.
    pub held: bool,
    /// dpkg's status abbreviation without the trailing blank; empty for rpm.
    pub state: String,
    /// Fully installed (dpkg `i`, or triggers awaited/pending); false for
    /// unpacked, half-configured and half-installed packages.
    pub complete: bool,
    /// Found as the provider of this name (dnf `vim` → `vim-enhanced`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provides: Option<String>,
}

impl Installed {
    /// What an incomplete dpkg state means, for a summary.
    pub fn incomplete_reason(&self) -> Option<String> {
        if self.complete {
            return None;
        }
        let what = match self.state.chars().nth(1) {
            Some('U') => "unpacked but not configured",
            Some('F') => "half-configured (its configuration failed)",
            Some('H') => "half-installed (its unpacking failed)",
            _ => "not completely installed",
        };
        Some(format!(
            "{} is {what} (dpkg state {}); `dpkg --configure -a` or pkg.install finishes it",
            self.package, self.state
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    Dnf,
}

/// The package tools by path: from `pkg_programs_dir` when that is set
/// (test doubles), else as found in the system directories.
#[derive(Debug, Clone)]
pub struct Tools {
    pub apt_get: String,
    pub dpkg_query: String,
    pub dnf: String,
    pub rpm: String,
}

impl Tools {
    pub fn of(cfg: &RootdConfig) -> Self {
        let find = |name: &str| -> String {
            let found = match &cfg.pkg_programs_dir {
                Some(dir) => Some(dir.join(name)).filter(|p| p.is_file()),
                None => which(name),
            };
            found.map_or_else(|| name.to_string(), |p| p.to_string_lossy().into_owned())
        };
        Self {
            apt_get: find("apt-get"),
            dpkg_query: find("dpkg-query"),
            dnf: find("dnf"),
            rpm: find("rpm"),
        }
    }
}

impl Manager {
    pub fn detect(cfg: &RootdConfig) -> Option<Self> {
        let t = Tools::of(cfg);
        let found = |p: &str| std::path::Path::new(p).is_absolute();
        if found(&t.apt_get) && found(&t.dpkg_query) {
            Some(Manager::Apt)
        } else if found(&t.dnf) && found(&t.rpm) {
            Some(Manager::Dnf)
        } else {
            None
        }
    }

    /// The program that installs, as the operator knows it.
    fn program(self) -> &'static str {
        match self {
            Manager::Apt => "apt-get",
            Manager::Dnf => "dnf",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Dnf => "dnf",
        }
    }
}

pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    match Manager::detect(cfg) {
        Some(_) => Ok(()),
        None => Err("no supported package manager found (apt-get or dnf)".into()),
    }
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let Some(mgr) = Manager::detect(ctx.cfg) else {
        return Outcome::failed("no supported package manager found (apt-get or dnf)");
    };
    match cmd.action.as_str() {
        "pkg.scan" => scan(mgr, ctx).await,
        "pkg.install" | "pkg.upgrade" => {
            let p: PackagesParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            let mut specs = Vec::with_capacity(p.packages.len());
            for raw in &p.packages {
                match parse_package(raw).and_then(|s| check_form(mgr, raw, &s).map(|()| s)) {
                    Ok(s) => specs.push((raw.clone(), s)),
                    Err(e) => return Outcome::rejected(format!("{e}; nothing was changed")),
                }
            }
            change(mgr, cmd.action == "pkg.install", &specs, ctx).await
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

/// Whether a spec is written in `mgr`'s own syntax; the error gives the
/// right spelling.
pub fn check_form(mgr: Manager, raw: &str, spec: &PackageSpec) -> Result<(), String> {
    match mgr {
        Manager::Apt if spec.dnf_epoch => Err(format!(
            "package {raw:?} is written the dnf way (NAME-EPOCH:VERSION); \
             this host uses apt, which pins a version as NAME=VERSION (e.g. pkg=1:2.0-3)"
        )),
        Manager::Dnf if spec.version.is_some() => Err(format!(
            "package {raw:?} is written the apt way (NAME=VERSION); this host uses dnf, \
             which pins a version as NAME-VERSION (e.g. {}-{})",
            spec.name,
            spec.version.as_deref().unwrap_or_default()
        )),
        Manager::Dnf if spec.arch.is_some() => Err(format!(
            "package {raw:?} is written the apt way (NAME:ARCH); this host uses dnf, \
             which names an architecture as NAME.ARCH (e.g. {}.{})",
            spec.name,
            spec.arch.as_deref().unwrap_or_default()
        )),
        _ => Ok(()),
    }
}

/// How to release a hold, per manager.
fn unhold_hint(mgr: Manager, name: &str) -> String {
    match mgr {
        Manager::Apt => format!("`apt-mark unhold {name}`"),
        Manager::Dnf => format!("`dnf versionlock delete {name}`"),
    }
}

/// Installs or upgrades the named packages.
async fn change(
    mgr: Manager,
    install: bool,
    specs: &[(String, PackageSpec)],
    ctx: &Ctx<'_>,
) -> Outcome {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let before = match versions(mgr, specs, &runner, &t).await {
        Ok(v) => v,
        Err(o) => return o,
    };
    let mut held: Vec<&Installed> = before.values().flatten().filter(|i| i.held).collect();
    held.sort_by(|a, b| a.package.cmp(&b.package));
    held.dedup_by(|a, b| a.package == b.package);
    if !install {
        let missing: Vec<&str> = specs
            .iter()
            .filter(|(raw, _)| before.get(raw).is_none_or(|v| v.is_none()))
            .map(|(raw, _)| raw.as_str())
            .collect();
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!(
                "not installed, so not upgraded: {} (use pkg.install)",
                missing.join(", ")
            ));
        }
        for h in &held {
            why.push(format!(
                "{} is held at {}, so it is not upgraded; release the hold with {} and upgrade again",
                h.package,
                h.version,
                unhold_hint(mgr, &h.package)
            ));
        }
        if !why.is_empty() {
            let changes = changes_of(specs, &before, &before);
            return Outcome {
                data: json!({ "manager": mgr.name(), "packages": changes }),
                ..Outcome::failed(format!("{}; nothing was changed", why.join("; ")))
            };
        }
    }
    let lock_timeout = format!("DPkg::Lock::Timeout={}", ctx.cfg.apt_lock_timeout_secs);
    let mut argv: Vec<&str> = match (mgr, install) {
        (Manager::Apt, true) => vec![&t.apt_get, "install", "-y", "--no-install-recommends"],
        (Manager::Apt, false) => vec![&t.apt_get, "install", "--only-upgrade", "-y"],
        (Manager::Dnf, true) => vec![&t.dnf, "install", "-y"],
        (Manager::Dnf, false) => vec![&t.dnf, "upgrade", "-y"],
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
    argv.extend(specs.iter().map(|(raw, _)| raw.as_str()));
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
            let mut s = format!("{} {verb} failed: {}", mgr.program(), ran.error_tail());
            for h in &held {
                s.push_str(&format!(
                    "; {} is held (release it with {})",
                    h.package,
                    unhold_hint(mgr, &h.package)
                ));
            }
            s
        };
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(summary)
        };
    }
    let after = match versions(mgr, specs, &runner, &t).await {
        Ok(v) => v,
        Err(o) => return o,
    };
    let changes = changes_of(specs, &before, &after);
    let data = json!({ "manager": mgr.name(), "packages": changes });
    let absent: Vec<&str> = specs
        .iter()
        .filter(|(raw, _)| after.get(raw).is_none_or(|v| v.is_none()))
        .map(|(raw, _)| raw.as_str())
        .collect();
    if !absent.is_empty() {
        return Outcome {
            data,
            ..Outcome::failed(format!(
                "{} reported success but these are not installed: {}",
                mgr.program(),
                absent.join(", ")
            ))
        };
    }
    let mut partial: Vec<String> = after
        .values()
        .flatten()
        .filter_map(Installed::incomplete_reason)
        .collect();
    partial.sort();
    partial.dedup();
    if !partial.is_empty() {
        return Outcome {
            data,
            ..Outcome::failed(format!(
                "{} reported success but {}",
                mgr.program(),
                partial.join("; ")
            ))
        };
    }
    let changed = changes.iter().filter(|c| c.changed).count();
    let mut summary = format!(
        "{verb}: {changed} changed, {} already {}",
        changes.len() - changed,
        if install { "installed" } else { "up to date" }
    );
    let held: Vec<&str> = changes
        .iter()
        .filter(|c| c.held)
        .map(|c| c.name.as_str())
        .collect();
    if !held.is_empty() {
        summary.push_str(&format!("; held: {}", held.join(", ")));
    }
    for inst in after.values().flatten() {
        if let Some(name) = &inst.provides {
            summary.push_str(&format!("; {name} is provided by {}", inst.package));
        }
    }
    Outcome::succeeded(summary, data)
}

/// The per-package report of an install or upgrade.
fn changes_of(
    specs: &[(String, PackageSpec)],
    before: &BTreeMap<String, Option<Installed>>,
    after: &BTreeMap<String, Option<Installed>>,
) -> Vec<Change> {
    specs
        .iter()
        .map(|(raw, _)| {
            let b = before.get(raw).cloned().flatten();
            let a = after.get(raw).cloned().flatten();
            let now = a.as_ref().or(b.as_ref());
            Change {
                name: raw.clone(),
                package: now.map(|i| i.package.clone()),
                changed: a.as_ref().map(|i| &i.version) != b.as_ref().map(|i| &i.version),
                held: now.is_some_and(|i| i.held),
                state: a
                    .as_ref()
                    .map(|i| i.state.clone())
                    .filter(|s| !s.is_empty()),
                before: b.map(|i| i.version),
                after: a.map(|i| i.version),
            }
        })
        .collect()
}

/// dpkg-query's format: name, arch, status abbreviation, version.
const DPKG_FORMAT: &str = "-f=${Package}\t${Architecture}\t${db:Status-Abbrev}\t${Version}\n";

/// rpm's format: name, arch, [epoch:]version-release.
const RPM_FORMAT: &str = "%{NAME}\t%{ARCH}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n";

/// The installed package behind each spec (`None`: not installed), keyed
/// by the spec as written.
async fn versions(
    mgr: Manager,
    specs: &[(String, PackageSpec)],
    runner: &Runner<'_>,
    t: &Tools,
) -> Result<BTreeMap<String, Option<Installed>>, Outcome> {
    match mgr {
        Manager::Apt => {
            let mut names: Vec<&str> = specs.iter().map(|(_, s)| s.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let mut argv = vec![t.dpkg_query.as_str(), "-W", DPKG_FORMAT, "--"];
            argv.extend(names);
            // Exits non-zero when a name is unknown; what it prints for the
            // others is still right.
            let ran = runner.run(&argv, &[], false).await?;
            let found = parse_dpkg_query(&ran.stdout);
            Ok(specs
                .iter()
                .map(|(raw, s)| {
                    let hit = found
                        .iter()
                        .find(|i| {
                            i.package == s.name
                                && s.arch
                                    .as_ref()
                                    .is_none_or(|a| *a == i.arch || i.arch == "all")
                        })
                        .cloned();
                    (raw.clone(), hit)
                })
                .collect())
        }
        Manager::Dnf => {
            let mut out = BTreeMap::new();
            for (raw, _) in specs {
                // The name as rpm knows it (`glibc.i686`, `bash-5.2.15`),
                // else the package that provides it (`vim`: vim-enhanced).
                let mut hit = None;
                for by_provide in [false, true] {
                    let mut argv = vec![t.rpm.as_str(), "-q"];
                    if by_provide {
                        argv.push("--whatprovides");
                    }
                    argv.extend(["--qf", RPM_FORMAT, "--", raw.as_str()]);
                    let ran = runner.run(&argv, &[], false).await?;
                    hit = parse_rpm_q(&ran.stdout).into_iter().next();
                    if let Some(h) = hit.as_mut() {
                        if by_provide {
                            h.provides = Some(raw.clone());
                        }
                        break;
                    }
                }
                out.insert(raw.clone(), hit);
            }
            Ok(out)
        }
    }
}

/// `name\tarch\tabbrev\tversion` lines of dpkg-query: the packages that
/// are installed at least in part (not `un`, `rc`...).
pub fn parse_dpkg_query(lines: &[String]) -> Vec<Installed> {
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        let [name, arch, status, version] = f[..] else {
            continue;
        };
        let mut c = status.chars();
        let (Some(want), Some(state)) = (c.next(), c.next()) else {
            continue;
        };
        let complete = matches!(state, 'i' | 'W' | 't');
        let present = complete || matches!(state, 'U' | 'F' | 'H');
        if !present || version.is_empty() {
            continue;
        }
        out.push(Installed {
            package: name.to_string(),
            arch: arch.to_string(),
            version: version.to_string(),
            held: want == 'h',
            state: status.trim_end().to_string(),
            complete,
            provides: None,
        });
    }
    out
}

/// `name\tarch\tversion` lines of rpm (it prints "package x is not
/// installed" without a tab for the others). rpm lists installed packages
/// only.
pub fn parse_rpm_q(lines: &[String]) -> Vec<Installed> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, arch, version] = f[..] else {
                return None;
            };
            Some(Installed {
                package: name.to_string(),
                arch: arch.to_string(),
                version: version.to_string(),
                held: false,
                state: String::new(),
                complete: true,
                provides: None,
            })
        })
        .collect()
}

/// The held packages (dpkg selection `hold`, installed at least in part).
async fn held_apt(runner: &Runner<'_>, t: &Tools) -> Result<Vec<String>, Outcome> {
    let ran = runner
        .run(&[&t.dpkg_query, "-W", DPKG_FORMAT], &[], false)
        .await?;
    Ok(parse_dpkg_query(&ran.stdout)
        .into_iter()
        .filter(|i| i.held)
        .map(|i| i.package)
        .collect())
}

pub async fn scan(mgr: Manager, ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let pkgs = match mgr {
        Manager::Apt => {
            let argv = [
                t.apt_get.as_str(),
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
        Manager::Dnf => match scan_dnf(&runner, &t).await {
            Ok(p) => p,
            Err(o) => return o,
        },
    };
    // dnf's holds (versionlock, a plugin) are not read.
    let held = match mgr {
        Manager::Apt => match held_apt(&runner, &t).await {
            Ok(h) => h,
            Err(o) => return o,
        },
        Manager::Dnf => Vec::new(),
    };
    let pkgs: Vec<Upgradable> = pkgs
        .into_iter()
        .map(|p| Upgradable {
            held: held.contains(&p.name),
            ..p
        })
        .collect();
    let security = pkgs.iter().filter(|p| p.security).count();
    let mut summary = format!("{} upgradable, {} security", pkgs.len(), security);
    if !held.is_empty() {
        summary.push_str(&format!(
            ", {} held ({}; not upgraded until released with {})",
            held.len(),
            held.join(", "),
            unhold_hint(mgr, "NAME")
        ));
    }
    Outcome::succeeded(
        summary,
        json!({ "manager": mgr.name(), "upgradable": pkgs, "held": held }),
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
async fn scan_dnf(runner: &Runner<'_>, t: &Tools) -> Result<Vec<Upgradable>, Outcome> {
    let ran = runner
        .run(&[&t.dnf, "-q", "check-update"], &[], true)
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
            &[&t.dnf, "-q", "updateinfo", "list", "--security"],
            &[],
            true,
        )
        .await?;
    if !sec.ok() {
        return Err(failed_run("dnf updateinfo list --security", &sec));
    }
    let names: Vec<String> = updates.iter().map(|u| u.0.clone()).collect();
    let mut argv = vec![t.rpm.as_str(), "-q", "--qf", RPM_FORMAT, "--"];
    argv.extend(names.iter().map(|s| s.as_str()));
    let current: BTreeMap<String, String> =
        parse_rpm_q(&runner.run(&argv, &[], false).await?.stdout)
            .into_iter()
            .map(|i| (i.package, i.version))
            .collect();
    Ok(updates
        .into_iter()
        .map(|(name, candidate, origin)| Upgradable {
            security: is_security(&name, &sec.stdout),
            current: current.get(&name).cloned().unwrap_or_default(),
            name,
            candidate,
            origin,
            held: false,
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
        held: false,
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
            "libc6\tamd64\tii \t2.36-9+deb12u14",
            "hello\tamd64\trc \t2.10-3",
            "held\tall\thi \t1:1.0-1",
            "half\tamd64\tiU \t1.0",
            "failed\tamd64\tiF \t1.0",
            "trig\tamd64\tit \t1.0",
            "gone\tamd64\tun \t",
            "garbage",
        ]));
        let names: Vec<&str> = v.iter().map(|i| i.package.as_str()).collect();
        assert_eq!(
            names,
            ["libc6", "held", "half", "failed", "trig"],
            "rc, un: not installed"
        );
        assert_eq!(v[0].version, "2.36-9+deb12u14");
        assert!(v[0].complete && !v[0].held);
        assert!(v[1].complete && v[1].held && v[1].state == "hi");
        assert!(!v[2].complete);
        assert!(v[2]
            .incomplete_reason()
            .unwrap()
            .contains("unpacked but not configured"));
        assert!(v[3]
            .incomplete_reason()
            .unwrap()
            .contains("half-configured"));
        assert!(v[4].complete);
    }

    #[test]
    fn parses_rpm_q() {
        let v = parse_rpm_q(&lines(&[
            "bash\tx86_64\t5.2.15-5.fc39",
            "package nosuch is not installed",
            "openssl-libs\tx86_64\t1:3.1.4-3.fc39",
        ]));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].version, "5.2.15-5.fc39");
        assert_eq!(v[1].version, "1:3.1.4-3.fc39");
    }

    #[test]
    fn each_manager_gets_its_own_spelling() {
        let form = |m, s: &str| check_form(m, s, &parse_package(s).unwrap());
        form(Manager::Apt, "pkg=1:2.0-3").unwrap();
        form(Manager::Apt, "libc6:i386").unwrap();
        form(Manager::Dnf, "glibc.i686").unwrap();
        form(Manager::Dnf, "vim-enhanced-2:9.0.1-1.fc39").unwrap();
        assert!(form(Manager::Dnf, "pkg=1.2-3")
            .unwrap_err()
            .contains("pkg-1.2-3"));
        assert!(form(Manager::Dnf, "glibc:i686")
            .unwrap_err()
            .contains("glibc.i686"));
        assert!(form(Manager::Apt, "vim-2:9.0-1")
            .unwrap_err()
            .contains("NAME=VERSION"));
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
