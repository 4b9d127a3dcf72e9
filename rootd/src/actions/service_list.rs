//! `service.list`: the host's systemd units, read with `systemctl
//! list-units --all --plain --no-legend --no-pager --full` (argv, no
//! shell; the same output since systemd 219, where `--output=json` is
//! newer), filtered here by name glob, active state and type, each marked
//! when rootd's `service_allow_list` covers it. Owns that listing and its
//! parsing; acting on a unit is `service.rs`.

use bus_schema::catalogue::listing::check_pattern;
use bus_schema::catalogue::service::ServiceListParams;
use bus_schema::Command;
use serde::Serialize;
use serde_json::json;

use super::service::{allowed, systemctl};
use crate::toolkit::{params, Ctx, Outcome, Runner};

/// Longest description kept per unit, in bytes.
const DESCRIPTION_MAX: usize = 256;

/// One unit as `systemctl list-units` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitRow {
    /// The full name, e.g. `nginx.service`.
    pub unit: String,
    /// The unit type (`service`, `timer`...).
    pub unit_type: String,
    /// `loaded`, `not-found`, `masked`...
    pub load: String,
    /// `active`, `inactive`, `failed`...
    pub active: String,
    /// `running`, `dead`, `exited`...
    pub sub: String,
    pub description: String,
    /// On rootd's `service_allow_list`: `service.start` and the other
    /// verbs may act on it.
    pub allowed: bool,
}

/// Parses `list-units --plain --no-legend` lines: `UNIT LOAD ACTIVE SUB
/// DESCRIPTION...`, with the `●`/`*` mark some versions put before a
/// failed or not-found unit dropped. Lines that do not fit are skipped.
pub fn parse_list_units(lines: &[String]) -> Vec<UnitRow> {
    let mut out = Vec::new();
    for l in lines {
        let mut it = l.split_whitespace().peekable();
        if matches!(it.peek(), Some(&"●") | Some(&"*")) {
            it.next();
        }
        let (Some(unit), Some(load), Some(active), Some(sub)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Some((_, kind)) = unit.rsplit_once('.') else {
            continue;
        };
        let description: Vec<&str> = it.collect();
        out.push(UnitRow {
            unit: unit.to_string(),
            unit_type: kind.to_string(),
            load: load.to_string(),
            active: active.to_string(),
            sub: sub.to_string(),
            description: cut(&description.join(" "), DESCRIPTION_MAX),
            allowed: false,
        });
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let p: ServiceListParams = match params(cmd) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let pattern = match p.pattern.as_deref().map(|s| check_pattern("pattern", s)) {
        Some(Err(e)) => return Outcome::rejected(format!("invalid params: {e}")),
        Some(Ok(g)) => Some(g),
        None => None,
    };
    let Some(prog) = systemctl(ctx.cfg) else {
        return Outcome::failed("systemctl is not installed");
    };
    let prog = prog.to_string_lossy().into_owned();
    let argv = [
        prog.as_str(),
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "--no-pager",
        "--full",
    ];
    let ran = match Runner::new(ctx).run(&argv, &[], false).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ran.ok() {
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!("systemctl list-units failed: {}", ran.error_tail()))
        };
    }
    let state = p.state.map(|s| s.as_str());
    let mut rows: Vec<UnitRow> = parse_list_units(&ran.stdout)
        .into_iter()
        .filter(|u| p.unit_type == "all" || u.unit_type == p.unit_type)
        .filter(|u| state.is_none_or(|s| u.active == s))
        .filter(|u| pattern.as_ref().is_none_or(|g| g.matches(&u.unit)))
        .collect();
    rows.sort_by(|a, b| a.unit.cmp(&b.unit));
    rows.dedup_by(|a, b| a.unit == b.unit);
    let matched = rows.len();
    rows.truncate(p.limit as usize);
    for r in &mut rows {
        r.allowed = allowed(&ctx.cfg.service_allow_list, &r.unit);
    }
    let failed = rows.iter().filter(|r| r.active == "failed").count();
    let mut summary = format!("{matched} units");
    if matched > rows.len() {
        summary.push_str(&format!(
            " (first {} shown; raise limit or narrow the pattern)",
            rows.len()
        ));
    }
    if failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    Outcome::succeeded(
        summary,
        json!({
            "units": rows,
            "matched": matched,
            "truncated": matched > p.limit as usize,
            "allow_list": ctx.cfg.service_allow_list,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_units_plain() {
        let lines: Vec<String> = [
            "nginx.service loaded active running A high performance web server",
            "● redis-server.service loaded failed failed Advanced key-value store",
            "* ghost.service not-found inactive dead ghost.service",
            "getty@tty1.service loaded active running Getty on tty1",
            "apt-daily.timer loaded active waiting Daily apt download activities",
            "garbage",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let u = parse_list_units(&lines);
        assert_eq!(u.len(), 5);
        assert_eq!(u[0].description, "A high performance web server");
        assert_eq!(
            (u[1].unit.as_str(), u[1].active.as_str()),
            ("redis-server.service", "failed")
        );
        assert_eq!(u[2].load, "not-found");
        assert_eq!(u[4].unit_type, "timer");
        assert!(cut(&"x".repeat(300), DESCRIPTION_MAX).len() <= DESCRIPTION_MAX);
    }
}
