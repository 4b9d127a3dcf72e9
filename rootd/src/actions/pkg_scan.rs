//! `pkg.scan`: what an upgrade would bring, and whether the host wants a
//! reboot. Nothing is changed: apt runs `apt-get --simulate dist-upgrade`
//! (without taking the dpkg lock), dnf `check-update` and `updateinfo
//! list`. With `refresh` it first fetches the package lists ([`refresh`]:
//! `apt-get update` / `dnf makecache`, which take the package manager's
//! lock); without, it reads what the host's own timers last fetched.
//!
//! The result is `{"manager": "apt"|"dnf", "upgradable": [Upgradable…],
//! "held": [names], "reboot": {"required": bool, "packages": [names]}}`;
//! see [`super::pkg_parse::Upgradable`] for an entry. The reboot need comes
//! from `reboot_required_file` and its `.pkgs` sibling (apt), or from
//! `needs_restarting -r`'s exit status (dnf: 1 required, 0 not; a missing
//! program means "not required", said in the summary).
//!
//! Installing is `pkg.rs`; the parsers are `pkg_parse/`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::pkg::{
    apt_env, apt_lock_option, env_refs, unhold_hint, Manager, Tools, DPKG_FORMAT, RPM_FORMAT,
};
use super::pkg_parse::{
    parse_apt_simulation, parse_dnf_check_update, parse_dpkg_query, parse_needs_restarting,
    parse_rpm_q, parse_updateinfo, Upgradable,
};
use crate::config::RootdConfig;
use crate::toolkit::{which, Ctx, Outcome, Ran, Runner};

/// Whether the host wants a reboot, and for which packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reboot {
    pub required: bool,
    /// The packages that asked for it (sorted, without repeats); may be
    /// empty when a reboot is required for reasons no package names.
    pub packages: Vec<String>,
    /// Why the answer may be incomplete (for the summary only).
    #[serde(skip)]
    pub note: Option<String>,
}

/// Fetches the package lists: `apt-get update` (waiting up to
/// `apt_lock_timeout_secs` for the lock) or `dnf makecache`. A failure is
/// the scan's result: a scan over stale lists would look current.
pub async fn refresh(mgr: Manager, ctx: &Ctx<'_>) -> Result<(), Outcome> {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let lock_timeout = apt_lock_option(ctx.cfg);
    let (argv, env): (Vec<&str>, Vec<(&'static str, String)>) = match mgr {
        Manager::Apt => (
            vec![&t.apt_get, "-q", "-o", &lock_timeout, "update"],
            apt_env(ctx.cfg),
        ),
        Manager::Dnf => (vec![&t.dnf, "-q", "makecache"], Vec::new()),
    };
    let ran = runner.run(&argv, &env_refs(&env), true).await?;
    if ran.ok() {
        return Ok(());
    }
    if mgr == Manager::Apt && super::pkg_parse::apt_lock_held(&ran.stderr) {
        return Err(Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!(
                "another package manager is running; the package lists were not refreshed and nothing was scanned (apt-get waited {} s for the lock); try again",
                ctx.cfg.apt_lock_timeout_secs
            ))
        });
    }
    let what = match mgr {
        Manager::Apt => "apt-get update",
        Manager::Dnf => "dnf makecache",
    };
    Err(failed_run(what, &ran))
}

pub async fn scan(mgr: Manager, ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let (pkgs, new) = match mgr {
        Manager::Apt => match scan_apt(&runner, &t, ctx.cfg).await {
            Ok(p) => p,
            Err(o) => return o,
        },
        Manager::Dnf => match scan_dnf(&runner, &t).await {
            Ok(p) => (p, Vec::new()),
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
    let reboot = match mgr {
        Manager::Apt => reboot_apt(&ctx.cfg.reboot_required_file),
        Manager::Dnf => match reboot_dnf(&runner, ctx.cfg).await {
            Ok(r) => r,
            Err(o) => return o,
        },
    };
    let pkgs: Vec<Upgradable> = pkgs
        .into_iter()
        .map(|p| Upgradable {
            held: held.contains(&p.name),
            ..p
        })
        .collect();
    Outcome::succeeded(
        summary(mgr, &pkgs, &new, &held, &reboot),
        json!({ "manager": mgr.name(), "upgradable": pkgs, "held": held, "reboot": reboot }),
    )
}

/// The one-line account of a scan.
fn summary(
    mgr: Manager,
    pkgs: &[Upgradable],
    new: &[String],
    held: &[String],
    reboot: &Reboot,
) -> String {
    let security = pkgs.iter().filter(|p| p.security).count();
    let mut s = format!("{} upgradable, {} security", pkgs.len(), security);
    if !new.is_empty() {
        s.push_str(&format!(
            ", {} new package(s) pulled in ({})",
            new.len(),
            new.join(", ")
        ));
    }
    if !held.is_empty() {
        s.push_str(&format!(
            ", {} held ({}; not upgraded until released with {})",
            held.len(),
            held.join(", "),
            unhold_hint(mgr, "NAME")
        ));
    }
    if reboot.required {
        s.push_str("; reboot required");
        if !reboot.packages.is_empty() {
            s.push_str(&format!(" (by {})", reboot.packages.join(", ")));
        }
    }
    if let Some(note) = &reboot.note {
        s.push_str(&format!("; {note}"));
    }
    s
}

fn failed_run(what: &str, ran: &Ran) -> Outcome {
    Outcome {
        exit_code: ran.exit_code,
        ..Outcome::failed(format!("{what} failed: {}", ran.error_tail()))
    }
}

/// The simulated dist-upgrade: the upgrades, and the new packages it would
/// pull in (named in the summary only).
async fn scan_apt(
    runner: &Runner<'_>,
    t: &Tools,
    cfg: &RootdConfig,
) -> Result<(Vec<Upgradable>, Vec<String>), Outcome> {
    let argv = [
        t.apt_get.as_str(),
        "--simulate",
        "-o",
        "Debug::NoLocking=true",
        "dist-upgrade",
    ];
    let env = apt_env(cfg);
    let ran = runner.run(&argv, &env_refs(&env), true).await?;
    if !ran.ok() {
        return Err(failed_run("apt-get --simulate dist-upgrade", &ran));
    }
    let plan = parse_apt_simulation(&ran.stdout);
    Ok((plan.upgrades, plan.new))
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

/// `dnf check-update` (exit 100: updates, 0: none), the advisories, and
/// the installed versions.
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
    let info = runner
        .run(&[&t.dnf, "-q", "updateinfo", "list"], &[], false)
        .await?;
    if !info.ok() {
        return Err(failed_run("dnf updateinfo list", &info));
    }
    let advisories = parse_updateinfo(&info.stdout);
    let mut names: Vec<&str> = updates.iter().map(|u| u.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut argv = vec![t.rpm.as_str(), "-q", "--qf", RPM_FORMAT, "--"];
    argv.extend(names);
    let installed = parse_rpm_q(&runner.run(&argv, &[], false).await?.stdout);
    Ok(updates
        .into_iter()
        .map(|u| {
            let adv = advisories.get(&u.name).cloned().unwrap_or_default();
            // The installed version of the same architecture, else any.
            let current = installed
                .iter()
                .find(|i| i.package == u.name && i.arch == u.arch)
                .or_else(|| installed.iter().find(|i| i.package == u.name))
                .map(|i| i.version.clone())
                .unwrap_or_default();
            Upgradable {
                name: u.name,
                arch: u.arch,
                current,
                candidate: u.candidate,
                origin: u.repo,
                security: adv.security,
                severity: adv.severity,
                advisories: adv.ids,
                held: false,
            }
        })
        .collect())
}

/// apt hosts: the file's existence, and the packages its `.pkgs` sibling
/// lists.
pub fn reboot_apt(file: &Path) -> Reboot {
    if !file.exists() {
        return Reboot::default();
    }
    let mut pkgs_file = file.as_os_str().to_owned();
    pkgs_file.push(".pkgs");
    let mut packages: Vec<String> = std::fs::read_to_string(PathBuf::from(pkgs_file))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    packages.sort();
    packages.dedup();
    Reboot {
        required: true,
        packages,
        note: None,
    }
}

/// The `needs_restarting` program: as configured when it is a path, else
/// found in the system directories.
fn needs_restarting(cfg: &RootdConfig) -> Option<PathBuf> {
    let p = &cfg.needs_restarting;
    if p.components().count() > 1 {
        p.is_file().then(|| p.clone())
    } else {
        which(&p.to_string_lossy())
    }
}

/// dnf hosts: `needs-restarting -r`'s exit status.
async fn reboot_dnf(runner: &Runner<'_>, cfg: &RootdConfig) -> Result<Reboot, Outcome> {
    let Some(prog) = needs_restarting(cfg) else {
        return Ok(Reboot {
            note: Some(format!(
                "reboot need unknown: {} not found (install dnf-utils)",
                cfg.needs_restarting.display()
            )),
            ..Reboot::default()
        });
    };
    let prog = prog.to_string_lossy().into_owned();
    let ran = runner.run(&[&prog, "-r"], &[], false).await?;
    Ok(match ran.exit_code {
        Some(0) => Reboot::default(),
        Some(1) => Reboot {
            required: true,
            packages: parse_needs_restarting(&ran.stdout),
            note: None,
        },
        _ => Reboot {
            note: Some(format!(
                "reboot need unknown: {prog} -r failed: {}",
                ran.error_tail()
            )),
            ..Reboot::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_required_file_and_its_packages() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("reboot-required");
        assert_eq!(reboot_apt(&f), Reboot::default());
        std::fs::write(&f, "*** System restart required ***\n").unwrap();
        assert_eq!(
            reboot_apt(&f),
            Reboot {
                required: true,
                packages: vec![],
                note: None
            }
        );
        std::fs::write(
            dir.path().join("reboot-required.pkgs"),
            "libc6\nlinux-image-amd64\nlibc6\n",
        )
        .unwrap();
        assert_eq!(reboot_apt(&f).packages, ["libc6", "linux-image-amd64"]);
    }

    #[test]
    fn summary_says_reboot_required() {
        let r = Reboot {
            required: true,
            packages: vec!["libc6".into()],
            note: None,
        };
        let s = summary(Manager::Apt, &[], &[], &[], &r);
        assert_eq!(s, "0 upgradable, 0 security; reboot required (by libc6)");
        let s = summary(Manager::Apt, &[], &[], &[], &Reboot::default());
        assert!(!s.contains("reboot"));
    }

    /// `needs-restarting -r` on a dnf host, here a test double (this
    /// machine has no dnf): exit 1 with its package list, exit 0, a
    /// failure, and no program at all.
    #[tokio::test]
    async fn needs_restarting_exit_status() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("needs-restarting");
        let cfg_for = |p: &Path| -> RootdConfig {
            serde_json::from_value(json!({
                "agent_uid": 0, "control_plane_key": "", "agent_id_file": "/nonexistent",
                "state_dir": "/nonexistent", "needs_restarting": p,
            }))
            .unwrap()
        };
        let limits = crate::toolkit::Limits {
            timeout: std::time::Duration::from_secs(30),
            grace: std::time::Duration::from_secs(1),
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        let (sink, _rx) = tokio::sync::mpsc::channel(1000);
        let fixture = include_str!("pkg_parse/fixtures/dnf-needs-restarting.txt");
        for (script, want) in [
            (
                format!("#!/bin/sh\n[ \"$1\" = -r ] || exit 2\ncat <<'EOF'\n{fixture}EOF\nexit 1\n"),
                Reboot {
                    required: true,
                    packages: vec!["glibc".into(), "kernel".into(), "systemd".into()],
                    note: None,
                },
            ),
            (
                "#!/bin/sh\necho 'No core libraries or services have been updated since boot-up.'\n"
                    .to_string(),
                Reboot::default(),
            ),
        ] {
            std::fs::write(&prog, script).unwrap();
            std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
            let cfg = cfg_for(&prog);
            let ctx = Ctx { cfg: &cfg, limits: &limits, sink: &sink };
            assert_eq!(reboot_dnf(&Runner::new(&ctx), &cfg).await.unwrap(), want);
        }
        std::fs::write(&prog, "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
        let cfg = cfg_for(&prog);
        let ctx = Ctx {
            cfg: &cfg,
            limits: &limits,
            sink: &sink,
        };
        let r = reboot_dnf(&Runner::new(&ctx), &cfg).await.unwrap();
        assert!(!r.required);
        assert!(r.note.unwrap().contains("broken"));
        let cfg = cfg_for(&dir.path().join("absent"));
        let ctx = Ctx {
            cfg: &cfg,
            limits: &limits,
            sink: &sink,
        };
        let r = reboot_dnf(&Runner::new(&ctx), &cfg).await.unwrap();
        assert!(!r.required);
        assert!(r.note.unwrap().contains("not found"));
    }
}
