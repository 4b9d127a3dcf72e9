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

pub use super::pkg_parse::{apt_lock_held, parse_dpkg_query, parse_rpm_q, Installed};
use crate::config::RootdConfig;
use crate::toolkit::{params, which, Ctx, Outcome, Runner};

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
    pub fn program(self) -> &'static str {
        match self {
            Manager::Apt => "apt-get",
            Manager::Dnf => "dnf",
        }
    }

    pub fn name(self) -> &'static str {
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
        "pkg.scan" => {
            let p: bus_schema::catalogue::pkg::ScanParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            if p.refresh {
                if let Err(o) = super::pkg_scan::refresh(mgr, ctx).await {
                    return o;
                }
            }
            super::pkg_scan::scan(mgr, ctx).await
        }
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
        "pkg.list" => super::pkg_list::run(mgr, cmd, ctx).await,
        "pkg.remove" => super::pkg_remove::run(mgr, cmd, ctx).await,
        other => Outcome::failed(format!("rootd has no implementation of {other}")),
    }
}

/// The packages apt-get listed under "The following packages will be
/// REMOVED:" (it prints them before refusing under `--no-remove`).
pub fn would_remove(stdout: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in stdout {
        if l.starts_with("The following packages will be REMOVED") {
            inside = true;
            continue;
        }
        if inside {
            if !l.starts_with(' ') {
                break;
            }
            out.extend(
                l.split_whitespace()
                    .map(|p| p.trim_end_matches('*').to_string()),
            );
        }
    }
    out
}

/// Options for every `apt-get` run that calls dpkg: no pseudo-terminal
/// between apt and dpkg. With one (apt's default, `Dpkg::Use-Pty`), apt
/// copies dpkg's output to its own stdout 1 KiB at a time and stops
/// reading once dpkg has exited, so the last output of a maintainer script
/// can be lost, cut mid-line (apt-pkg/deb/dpkgpm.cc, `pkgDPkgPM::Go`: the
/// wait loop ends at dpkg's exit without draining the pty). Without it,
/// dpkg writes straight into the pipe rootd reads to its end.
pub const APT_NO_PTY: [&str; 2] = ["-o", "Dpkg::Use-Pty=0"];

/// apt-get's environment: non-interactive, and `APT_CONFIG` when rootd's
/// `apt_config` names a file.
pub fn apt_env(cfg: &RootdConfig) -> Vec<(&'static str, String)> {
    let mut env = vec![("DEBIAN_FRONTEND", "noninteractive".to_string())];
    if let Some(p) = &cfg.apt_config {
        env.push(("APT_CONFIG", p.to_string_lossy().into_owned()));
    }
    env
}

/// apt's option (for `-o`) that makes it wait for the dpkg lock up to
/// rootd's `apt_lock_timeout_secs` instead of failing at once while another
/// apt or unattended-upgrades holds it: `DPkg::Lock::Timeout=<seconds>`.
pub fn apt_lock_option(cfg: &RootdConfig) -> String {
    format!("DPkg::Lock::Timeout={}", cfg.apt_lock_timeout_secs)
}

/// The borrowed form [`Runner::run`] takes.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
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
pub fn unhold_hint(mgr: Manager, name: &str) -> String {
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
    let lock_timeout = apt_lock_option(ctx.cfg);
    let mut argv: Vec<&str> = match (mgr, install) {
        (Manager::Apt, true) => vec![&t.apt_get, "install", "-y", "--no-install-recommends"],
        (Manager::Apt, false) => vec![&t.apt_get, "install", "--only-upgrade", "-y"],
        (Manager::Dnf, true) => vec![&t.dnf, "install", "-y"],
        (Manager::Dnf, false) => vec![&t.dnf, "upgrade", "-y"],
    };
    if mgr == Manager::Apt {
        // Never remove a package to make room (a Conflicts: of the new
        // version): apt refuses instead, and the result names what it
        // would have removed. dnf never erases without --allowerasing.
        // Keep changed configuration files without asking.
        argv.extend([
            "--no-remove",
            "-o",
            &lock_timeout,
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ]);
        argv.extend(APT_NO_PTY);
    }
    argv.push("--");
    argv.extend(specs.iter().map(|(raw, _)| raw.as_str()));
    let env = if mgr == Manager::Apt {
        apt_env(ctx.cfg)
    } else {
        Vec::new()
    };
    let ran = match runner.run(&argv, &env_refs(&env), true).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let verb = if install { "install" } else { "upgrade" };
    if !ran.ok() {
        let removals = would_remove(&ran.stdout);
        let summary = if mgr == Manager::Apt && apt_lock_held(&ran.stderr) {
            format!(
                "another package manager is running; try again (apt-get waited {} s for the dpkg lock)",
                ctx.cfg.apt_lock_timeout_secs
            )
        } else if mgr == Manager::Apt && !removals.is_empty() {
            format!(
                "nothing was changed: the {verb} would remove {} ({}); Drover never removes packages to make room — resolve the conflict on the host first",
                if removals.len() == 1 { "a package" } else { "packages" },
                removals.join(", ")
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
pub const DPKG_FORMAT: &str = "-f=${Package}\t${Architecture}\t${db:Status-Abbrev}\t${Version}\n";

/// rpm's format: name, arch, [epoch:]version-release.
pub const RPM_FORMAT: &str = "%{NAME}\t%{ARCH}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n";

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

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::catalogue::parse_package;

    #[test]
    fn names_what_apt_would_remove() {
        let out: Vec<String> = [
            "Reading package lists...",
            "The following packages will be REMOVED:",
            "  drover-test-beta libfoo1*",
            "The following packages will be upgraded:",
            "  drover-test-alpha",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(would_remove(&out), ["drover-test-beta", "libfoo1"]);
        assert!(would_remove(&out[..1]).is_empty());
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
}
