//! `pkg.list`: the installed packages with version and architecture, from
//! `dpkg-query -W` (apt hosts) or `rpm -qa` (dnf hosts), argv only, filtered
//! here by a name glob and cut at the limit. Owns that listing; installing,
//! removing and scanning are `pkg.rs`, `pkg_remove.rs`, `pkg_scan.rs`.

use bus_schema::catalogue::listing::check_pattern;
use bus_schema::catalogue::pkg::ListParams;
use bus_schema::Command;
use serde_json::json;

use super::pkg::{Manager, Tools, DPKG_FORMAT, RPM_FORMAT};
use super::pkg_parse::{parse_dpkg_query, parse_rpm_q};
use crate::toolkit::{params, Ctx, Outcome, Runner};

pub async fn run(mgr: Manager, cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let p: ListParams = match params(cmd) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let pattern = match p.pattern.as_deref().map(|s| check_pattern("pattern", s)) {
        Some(Err(e)) => return Outcome::rejected(format!("invalid params: {e}")),
        Some(Ok(g)) => Some(g),
        None => None,
    };
    let t = Tools::of(ctx.cfg);
    let argv: Vec<&str> = match mgr {
        Manager::Apt => vec![&t.dpkg_query, "-W", DPKG_FORMAT],
        Manager::Dnf => vec![&t.rpm, "-qa", "--qf", RPM_FORMAT],
    };
    let ran = match Runner::new(ctx).run(&argv, &[], false).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ran.ok() {
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!("listing packages failed: {}", ran.error_tail()))
        };
    }
    let mut found = match mgr {
        Manager::Apt => parse_dpkg_query(&ran.stdout),
        Manager::Dnf => parse_rpm_q(&ran.stdout),
    };
    found.retain(|i| pattern.as_ref().is_none_or(|g| g.matches(&i.package)));
    found.sort_by(|a, b| (&a.package, &a.arch).cmp(&(&b.package, &b.arch)));
    let matched = found.len();
    found.truncate(p.limit as usize);
    let packages: Vec<_> = found
        .iter()
        .map(|i| {
            json!({
                "name": i.package,
                "version": i.version,
                "arch": i.arch,
                "state": i.state,
                "held": i.held,
            })
        })
        .collect();
    let mut summary = format!("{matched} packages installed");
    if p.pattern.is_some() {
        summary.push_str(" matching the pattern");
    }
    if matched > packages.len() {
        summary.push_str(&format!(
            " (first {} shown; raise limit or narrow the pattern)",
            packages.len()
        ));
    }
    Outcome::succeeded(
        summary,
        json!({
            "manager": mgr.name(),
            "packages": packages,
            "matched": matched,
            "truncated": matched > p.limit as usize,
        }),
    )
}
