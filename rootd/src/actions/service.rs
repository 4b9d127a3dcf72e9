//! `service.*`: systemd units through `systemctl`, only the units on
//! `service_allow_list`. The unit is always the last argv entry after `--`,
//! so it can never be read as an option (the catalogue also refuses a
//! leading `-`).
//!
//! Names follow systemd's rules ([`bus_schema::catalogue::parse_unit`]):
//! `nginx` means `nginx.service`, an allow-list template `getty@.service`
//! (or `getty@`) covers every instance `getty@tty1.service`, and `\xNN`
//! escapes are names like any other.

use std::path::PathBuf;

use bus_schema::catalogue::service::ServiceParams;
use bus_schema::catalogue::{parse_unit, UnitName};
use bus_schema::Command;
use serde::Serialize;
use serde_json::json;

use crate::config::RootdConfig;
use crate::toolkit::{params, which, Ctx, Outcome, Runner};

/// The properties `status` asks for.
const PROPERTIES: &str = "LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp";

/// The `systemctl` program rootd uses.
pub fn systemctl(cfg: &RootdConfig) -> Option<PathBuf> {
    match &cfg.systemctl {
        Some(p) => Some(p.clone()),
        None => which("systemctl"),
    }
}

pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    let Some(prog) = systemctl(cfg) else {
        return Err("systemctl is not installed".into());
    };
    if !prog.is_file() {
        return Err(format!("systemctl {} does not exist", prog.display()));
    }
    if !cfg.systemd_run_dir.is_dir() {
        return Err(format!(
            "systemd is not running as PID 1 ({} does not exist)",
            cfg.systemd_run_dir.display()
        ));
    }
    Ok(())
}

/// Whether `unit` is on the allow-list: the same unit (`nginx` and
/// `nginx.service` are one), or an instance of a template entry
/// (`getty@.service` covers `getty@tty1`). Entries that are not unit names
/// cover nothing.
pub fn allowed(allow_list: &[String], unit: &str) -> bool {
    let Ok(unit) = parse_unit(unit) else {
        return false;
    };
    allow_list
        .iter()
        .filter_map(|a| parse_unit(a.trim()).ok())
        .any(|a: UnitName| a.covers(&unit))
}

/// Where the allow-list is set, for refusals.
pub const ALLOW_SETTING: &str = "setting `service_allow_list` in rootd's configuration \
     (the TOML file of `drover-rootd --config`, or DROVER_ROOTD_SERVICE_ALLOW_LIST)";

/// The allow-list entry that would cover `unit`: its template for an
/// instance, else the unit itself.
fn template_hint(unit: &str) -> String {
    match parse_unit(unit) {
        Ok(u) if u.instance.is_some() => format!("{}@.{}", u.prefix, u.kind),
        Ok(u) => u.full(),
        Err(_) => unit.to_string(),
    }
}

/// The state of one unit, from `systemctl show`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UnitStatus {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`...
    pub active_state: String,
    /// `running`, `dead`, `exited`...
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`... (empty when the unit
    /// has no unit file).
    pub unit_file_state: String,
    /// Whether it starts at boot.
    pub enabled: bool,
    pub active: bool,
    /// When it last became active, as systemd prints it; `None` when never.
    pub since: Option<String>,
}

/// Parses `Key=Value` lines of `systemctl show -p ...` (in any order).
pub fn parse_show(unit: &str, lines: &[String]) -> UnitStatus {
    let mut s = UnitStatus {
        unit: unit.to_string(),
        ..Default::default()
    };
    for line in lines {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "LoadState" => s.load_state = v,
            "ActiveState" => s.active_state = v,
            "SubState" => s.sub_state = v,
            "UnitFileState" => s.unit_file_state = v,
            "ActiveEnterTimestamp" => s.since = (!v.is_empty() && v != "n/a").then_some(v),
            _ => {}
        }
    }
    s.active = s.active_state == "active";
    s.enabled = matches!(
        s.unit_file_state.as_str(),
        "enabled" | "enabled-runtime" | "alias"
    );
    s
}

/// The verb of a `service.*` action, as systemctl spells it.
fn verb(action: &str) -> Option<&'static str> {
    Some(match action {
        "service.status" => "status",
        "service.start" => "start",
        "service.stop" => "stop",
        "service.restart" => "restart",
        "service.reload" => "reload",
        "service.enable" => "enable",
        "service.disable" => "disable",
        _ => return None,
    })
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    if cmd.action == "service.list" {
        return super::service_list::run(cmd, ctx).await;
    }
    let p: ServiceParams = match params(cmd) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let Some(verb) = verb(&cmd.action) else {
        return Outcome::failed(format!("rootd has no implementation of {}", cmd.action));
    };
    if !allowed(&ctx.cfg.service_allow_list, &p.unit) {
        let full = parse_unit(&p.unit)
            .map(|u| u.full())
            .unwrap_or_else(|_| p.unit.clone());
        return Outcome::rejected(format!(
            "`{full}` is not in rootd's allowed services ({ALLOW_SETTING}); \
             a template entry such as `{}` would cover its instances",
            template_hint(&p.unit)
        ));
    }
    let Some(prog) = systemctl(ctx.cfg) else {
        return Outcome::failed("systemctl is not installed");
    };
    let prog = prog.to_string_lossy().into_owned();
    let runner = Runner::new(ctx);
    let unit = p.unit.as_str();

    if verb != "status" {
        let ran = match runner.run(&[&prog, verb, "--", unit], &[], true).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if !ran.ok() {
            return Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(format!(
                    "systemctl {verb} {unit} failed: {}",
                    ran.error_tail()
                ))
            };
        }
    }
    let ran = match runner
        .run(&[&prog, "show", "-p", PROPERTIES, "--", unit], &[], false)
        .await
    {
        Ok(r) => r,
        Err(o) => return o,
    };
    if !ran.ok() {
        return Outcome {
            exit_code: ran.exit_code,
            ..Outcome::failed(format!(
                "systemctl show {unit} failed: {}",
                ran.error_tail()
            ))
        };
    }
    let st = parse_show(unit, &ran.stdout);
    if st.load_state == "not-found" {
        return Outcome {
            data: json!(st),
            ..Outcome::failed(format!("unit {unit} does not exist on this host"))
        };
    }
    let state = format!(
        "{} ({}), {}",
        st.active_state,
        st.sub_state,
        if st.unit_file_state.is_empty() {
            "no unit file"
        } else {
            &st.unit_file_state
        }
    );
    let summary = if verb == "status" {
        format!("{unit}: {state}")
    } else {
        format!("systemctl {verb} {unit}: now {state}")
    };
    Outcome::succeeded(summary, json!(st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_with_and_without_suffix() {
        let list = vec!["nginx".to_string(), "redis-server.service".to_string()];
        assert!(allowed(&list, "nginx"));
        assert!(allowed(&list, "nginx.service"));
        assert!(allowed(&list, "redis-server"));
        assert!(allowed(&list, "redis-server.service"));
        assert!(!allowed(&list, "nginx.socket"));
        assert!(!allowed(&list, "sshd"));
        assert!(!allowed(&[], "nginx"));
    }

    #[test]
    fn templates_cover_their_instances() {
        let list: Vec<String> = [
            "getty@.service",
            "wg-quick@",
            "site\\x2da.service",
            "not a unit",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(allowed(&list, "getty@tty1.service"));
        assert!(allowed(&list, "getty@tty1"));
        assert!(allowed(&list, "wg-quick@wg0"));
        assert!(allowed(&list, "wg-quick@wg0.service"));
        assert!(allowed(&list, "site\\x2da"));
        assert!(!allowed(&list, "getty@tty1.socket"));
        assert!(!allowed(&list, "getty"));
        assert!(!allowed(&list, "serial-getty@ttyS0"));
        assert!(!allowed(&list, "not a unit"));
        // An instance entry covers that instance only.
        let one = vec!["getty@tty1".to_string()];
        assert!(allowed(&one, "getty@tty1.service"));
        assert!(!allowed(&one, "getty@tty2"));
    }

    #[test]
    fn parses_show_output() {
        let lines: Vec<String> = [
            "SubState=running",
            "LoadState=loaded",
            "ActiveState=active",
            "UnitFileState=enabled",
            "ActiveEnterTimestamp=Tue 2026-11-24 10:00:00 UTC",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = parse_show("nginx", &lines);
        assert!(s.active && s.enabled);
        assert_eq!(s.sub_state, "running");
        assert_eq!(s.load_state, "loaded");
        assert_eq!(s.since.as_deref(), Some("Tue 2026-11-24 10:00:00 UTC"));
        let lines: Vec<String> = [
            "ActiveState=inactive",
            "SubState=dead",
            "UnitFileState=",
            "ActiveEnterTimestamp=",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = parse_show("gone", &lines);
        assert!(!s.active && !s.enabled);
        assert_eq!(s.since, None);
    }
}
