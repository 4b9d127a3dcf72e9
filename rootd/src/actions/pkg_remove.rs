//! `pkg.remove`: removes (or purges) named packages, non-interactively, and
//! only those: apt first simulates the removal and refuses, with nothing
//! changed, when it would take any other package with it (a dependant such
//! as `drover-agent`), and dpkg's `Essential: yes` / `Protected: yes`
//! packages are refused outright. Owns that; the package tools, the lock
//! handling and the manager detection are `pkg.rs`'s.

use std::collections::BTreeSet;

use bus_schema::catalogue::parse_package;
use bus_schema::catalogue::pkg::{is_protected_package, RemoveParams};
use bus_schema::Command;
use serde::Serialize;
use serde_json::json;

use super::pkg::{
    apt_env, apt_lock_option, check_form, env_refs, Manager, Tools, APT_NO_PTY, RPM_FORMAT,
};
use super::pkg_parse::{apt_lock_held, parse_rpm_q};
use crate::toolkit::{params, Ctx, Outcome, Runner};

/// dpkg-query's format for the removal checks: name, arch, status
/// abbreviation, version, Essential, Protected.
pub const DPKG_REMOVE_FORMAT: &str =
    "-f=${Package}\t${Architecture}\t${db:Status-Abbrev}\t${Version}\t${Essential}\t${Protected}\n";

/// One package as dpkg knows it, for a removal.
#[derive(Debug, Clone, PartialEq)]
pub struct DpkgRow {
    pub package: String,
    pub arch: String,
    /// dpkg's status abbreviation, trimmed (`ii`, `rc`, `un`...).
    pub state: String,
    pub version: String,
    pub essential: bool,
    pub protected: bool,
}

impl DpkgRow {
    /// Installed in some form (not only its configuration files left).
    pub fn installed(&self) -> bool {
        !matches!(self.state.chars().nth(1), Some('n') | Some('c') | None)
    }
    /// Only its configuration files are left (removed, not purged).
    pub fn config_only(&self) -> bool {
        self.state.chars().nth(1) == Some('c')
    }
}

pub fn parse_dpkg_rows(lines: &[String]) -> Vec<DpkgRow> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [name, arch, state, version, essential, protected] = f[..] else {
                return None;
            };
            Some(DpkgRow {
                package: name.to_string(),
                arch: arch.to_string(),
                state: state.trim().to_string(),
                version: version.to_string(),
                essential: essential.trim().eq_ignore_ascii_case("yes"),
                protected: protected.trim().eq_ignore_ascii_case("yes"),
            })
        })
        .collect()
}

/// The packages an `apt-get -s remove|purge` would remove (`Remv` and
/// `Purg` lines), without their `:arch`.
pub fn simulated_removals(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("Remv ").or_else(|| l.strip_prefix("Purg ")))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|n| n.split(':').next().unwrap_or(n).to_string())
        .collect()
}

/// What happened to one named package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removal {
    pub name: String,
    /// The version installed before; `None` when it was not installed.
    pub before: Option<String>,
    /// `removed` (configuration files kept), `purged`, `not-installed`
    /// (nothing to do) or `still-installed`.
    pub after: String,
    pub changed: bool,
}

pub async fn run(mgr: Manager, cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let p: RemoveParams = match params(cmd) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let mut names = Vec::with_capacity(p.packages.len());
    for raw in &p.packages {
        match parse_package(raw).and_then(|s| check_form(mgr, raw, &s).map(|()| s)) {
            Ok(s) => names.push((raw.clone(), s.name)),
            Err(e) => return Outcome::rejected(format!("{e}; nothing was changed")),
        }
    }
    match mgr {
        Manager::Apt => apt(&p, &names, ctx).await,
        Manager::Dnf => dnf(&p, ctx).await,
    }
}

async fn dpkg_rows(
    runner: &Runner<'_>,
    t: &Tools,
    names: &[&str],
) -> Result<Vec<DpkgRow>, Outcome> {
    let mut argv = vec![t.dpkg_query.as_str(), "-W", DPKG_REMOVE_FORMAT, "--"];
    argv.extend(names);
    // Exits non-zero when a name is unknown; the others are still listed.
    let ran = runner.run(&argv, &[], false).await?;
    Ok(parse_dpkg_rows(&ran.stdout))
}

async fn apt(p: &RemoveParams, names: &[(String, String)], ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let bare: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    let before = match dpkg_rows(&runner, &t, &bare).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let refused: Vec<String> = before
        .iter()
        .filter(|r| r.installed() && (r.essential || r.protected))
        .map(|r| {
            let why = if r.essential {
                "Essential"
            } else {
                "Protected"
            };
            format!("{} is marked {why}: yes by dpkg", r.package)
        })
        .collect();
    if !refused.is_empty() {
        return Outcome::rejected(format!(
            "{}; Drover never removes essential or protected packages; nothing was changed",
            refused.join("; ")
        ));
    }
    let row = |n: &str| before.iter().find(|r| r.package == n);
    // Only what dpkg knows can be removed (purge also takes what left its
    // configuration files); the rest is reported as not installed.
    let todo: Vec<&str> = names
        .iter()
        .filter(|(_, n)| row(n).is_some_and(|r| r.installed() || p.purge && r.config_only()))
        .map(|(raw, _)| raw.as_str())
        .collect();
    let verb = if p.purge { "purge" } else { "remove" };
    if !todo.is_empty() {
        let env = apt_env(ctx.cfg);
        let lock = apt_lock_option(ctx.cfg);
        let mut sim = vec![t.apt_get.as_str(), "-s", verb, "-o", &lock, "--"];
        sim.extend(&todo);
        let ran = match runner.run(&sim, &env_refs(&env), false).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if !ran.ok() {
            return Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(format!(
                    "apt-get -s {verb} failed: {}; nothing was changed",
                    ran.error_tail()
                ))
            };
        }
        let named: BTreeSet<&str> = bare.iter().copied().collect();
        let extra: Vec<String> = simulated_removals(&ran.stdout)
            .into_iter()
            .filter(|n| !named.contains(n.as_str()))
            .collect();
        if !extra.is_empty() {
            let ours = extra.iter().any(|n| is_protected_package(n));
            return Outcome::rejected(format!(
                "removing {} would also remove {} (they depend on it){}; nothing was changed. \
                 Drover removes only the packages named: name those too if you mean it",
                todo.join(", "),
                extra.join(", "),
                if ours {
                    ", including Drover's own agent, which is never removed"
                } else {
                    ""
                }
            ));
        }
        let mut argv = vec![t.apt_get.as_str(), verb, "-y", "-o", &lock];
        argv.extend(APT_NO_PTY);
        argv.push("--");
        argv.extend(&todo);
        let ran = match runner.run(&argv, &env_refs(&env), true).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if !ran.ok() {
            let summary = if apt_lock_held(&ran.stderr) {
                format!(
                    "another package manager is running; try again (apt-get waited {} s for the dpkg lock)",
                    ctx.cfg.apt_lock_timeout_secs
                )
            } else {
                format!("apt-get {verb} failed: {}", ran.error_tail())
            };
            return Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(summary)
            };
        }
    }
    let after = match dpkg_rows(&runner, &t, &bare).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let report: Vec<Removal> = names
        .iter()
        .map(|(raw, n)| {
            let b = row(n);
            let a = after.iter().find(|r| &r.package == n);
            let state = match a {
                Some(r) if r.installed() => "still-installed",
                Some(r) if r.config_only() => "removed",
                _ if b.is_some_and(|r| r.installed() || r.config_only()) => "purged",
                _ => "not-installed",
            };
            Removal {
                name: raw.clone(),
                before: b.filter(|r| r.installed()).map(|r| r.version.clone()),
                after: state.to_string(),
                changed: b.map(|r| &r.state) != a.map(|r| &r.state),
            }
        })
        .collect();
    finish(verb, "apt", report)
}

fn finish(verb: &str, manager: &str, report: Vec<Removal>) -> Outcome {
    let data = json!({ "manager": manager, "purge": verb == "purge", "packages": report });
    let stuck: Vec<&str> = report
        .iter()
        .filter(|r| r.after == "still-installed")
        .map(|r| r.name.as_str())
        .collect();
    if !stuck.is_empty() {
        return Outcome {
            data,
            ..Outcome::failed(format!(
                "{verb} reported success but these are still installed: {}",
                stuck.join(", ")
            ))
        };
    }
    let changed = report.iter().filter(|r| r.changed).count();
    let absent: Vec<&str> = report
        .iter()
        .filter(|r| r.after == "not-installed")
        .map(|r| r.name.as_str())
        .collect();
    let mut summary = format!("{verb}: {changed} changed");
    if !absent.is_empty() {
        summary.push_str(&format!("; not installed: {}", absent.join(", ")));
    }
    Outcome::succeeded(summary, data)
}

async fn dnf(p: &RemoveParams, ctx: &Ctx<'_>) -> Outcome {
    let runner = Runner::new(ctx);
    let t = Tools::of(ctx.cfg);
    let query = |names: &[String]| {
        let mut argv = vec![
            t.rpm.clone(),
            "-q".into(),
            "--qf".into(),
            RPM_FORMAT.into(),
            "--".into(),
        ];
        argv.extend(names.iter().cloned());
        argv
    };
    let q = query(&p.packages);
    let q: Vec<&str> = q.iter().map(String::as_str).collect();
    let before = match runner.run(&q, &[], false).await {
        Ok(r) => parse_rpm_q(&r.stdout),
        Err(o) => return o,
    };
    let installed: Vec<&str> = p
        .packages
        .iter()
        .filter(|n| before.iter().any(|i| &i.package == *n))
        .map(String::as_str)
        .collect();
    if !installed.is_empty() {
        // As the apt path simulates first: `dnf remove` takes every package
        // that depends on the named ones with it (Drover's own agent among
        // them, if it needs one). `rpm -e --test` fails naming them instead.
        let mut argv = vec![t.rpm.as_str(), "-e", "--test", "--"];
        argv.extend(&installed);
        let test = match runner.run(&argv, &[], false).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if !test.ok() {
            return Outcome::rejected(format!(
                "removing {} would also remove packages that depend on it ({}); nothing was \
                 changed. Drover removes only the packages named: name those too if you mean it",
                installed.join(", "),
                test.error_tail()
            ));
        }
        // `--noautoremove`: dependencies nobody needs any more stay.
        let mut argv = vec![t.dnf.as_str(), "remove", "-y", "--noautoremove", "--"];
        argv.extend(&installed);
        let ran = match runner.run(&argv, &[], true).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if !ran.ok() {
            return Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(format!("dnf remove failed: {}", ran.error_tail()))
            };
        }
    }
    let after = match runner.run(&q, &[], false).await {
        Ok(r) => parse_rpm_q(&r.stdout),
        Err(o) => return o,
    };
    let report = p
        .packages
        .iter()
        .map(|n| {
            let b = before.iter().find(|i| &i.package == n);
            let still = after.iter().any(|i| &i.package == n);
            Removal {
                name: n.clone(),
                before: b.map(|i| i.version.clone()),
                after: match (b, still) {
                    (_, true) => "still-installed",
                    (Some(_), false) => "removed",
                    (None, false) => "not-installed",
                }
                .to_string(),
                changed: b.is_some() && !still,
            }
        })
        .collect();
    finish(if p.purge { "purge" } else { "remove" }, "dnf", report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn parses_rows_and_simulations() {
        let rows = parse_dpkg_rows(&lines(&[
            "bash\tamd64\tii \t5.2-2\tyes\t",
            "hello\tamd64\trc \t2.10-3\t\t",
            "apt\tamd64\tii \t2.6.1\t\tyes",
            "gone\t\tun \t\t\t",
            "bad line",
        ]));
        assert_eq!(rows.len(), 4);
        assert!(rows[0].essential && rows[0].installed());
        assert!(rows[1].config_only() && !rows[1].installed());
        assert!(rows[2].protected);
        assert!(!rows[3].installed() && !rows[3].config_only());
        let sim = simulated_removals(&lines(&[
            "NOTE: This is only a simulation!",
            "Remv drover-test-alpha [1.0]",
            "Purg drover-agent:amd64 [0.1.0]",
            "Inst something",
        ]));
        assert_eq!(
            sim.into_iter().collect::<Vec<_>>(),
            ["drover-agent", "drover-test-alpha"]
        );
    }
}
