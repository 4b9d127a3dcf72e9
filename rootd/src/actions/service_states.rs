//! The read-only answer to `RootRequest::ServiceStates`: the load, active
//! and sub state of the units the agent watches, from one
//! `systemctl show --property=LoadState,ActiveState,SubState -- <units>`
//! (argv only, never a shell; the unit names come after `--`).
//!
//! Owns validating the request and parsing the answer; not which units are
//! watched (the control plane's watch lists) nor the `service.*` actions.

use std::time::Duration;

use bus_schema::catalogue::parse_unit;
use bus_schema::{ServiceState, MAX_WATCHED_UNITS};

use crate::config::RootdConfig;

/// How long `systemctl show` may take before the answer is an error.
const SHOW_WITHIN: Duration = Duration::from_secs(5);

/// Why the states could not be read (sent back as a refusal).
#[derive(Debug, thiserror::Error)]
pub enum StatesError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
}

impl StatesError {
    /// The refusal label.
    pub fn label(&self) -> &'static str {
        match self {
            StatesError::BadRequest(_) => "malformed",
            StatesError::Unavailable(_) => "unavailable",
        }
    }
}

/// The units in full form, checked: at most [`MAX_WATCHED_UNITS`], each a
/// valid systemd unit name.
pub fn checked_units(units: &[String]) -> Result<Vec<String>, StatesError> {
    if units.len() > MAX_WATCHED_UNITS {
        return Err(StatesError::BadRequest(format!(
            "{} units asked; at most {MAX_WATCHED_UNITS}",
            units.len()
        )));
    }
    units
        .iter()
        .map(|u| parse_unit(u).map(|n| n.full()))
        .collect::<Result<_, _>>()
        .map_err(StatesError::BadRequest)
}

/// Splits `systemctl show` output for several units (one block of
/// `Key=Value` lines per unit, blocks separated by an empty line, in the
/// order asked) into one state per unit.
pub fn parse_blocks(units: &[String], stdout: &str) -> Result<Vec<ServiceState>, StatesError> {
    let mut blocks: Vec<Vec<&str>> = vec![vec![]];
    for line in stdout.lines() {
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(Vec::is_empty) {
                blocks.push(vec![]);
            }
        } else if let Some(b) = blocks.last_mut() {
            b.push(line);
        }
    }
    if blocks.last().is_some_and(Vec::is_empty) {
        blocks.pop();
    }
    if blocks.len() != units.len() {
        return Err(StatesError::Unavailable(format!(
            "systemctl show answered {} blocks for {} units",
            blocks.len(),
            units.len()
        )));
    }
    Ok(units
        .iter()
        .zip(blocks)
        .map(|(unit, lines)| {
            let mut s = ServiceState {
                unit: unit.clone(),
                load_state: String::new(),
                active_state: String::new(),
                sub_state: String::new(),
            };
            for l in lines {
                let Some((k, v)) = l.split_once('=') else {
                    continue;
                };
                let v: String = v
                    .trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(32)
                    .collect();
                match k.trim() {
                    "LoadState" => s.load_state = v,
                    "ActiveState" => s.active_state = v,
                    "SubState" => s.sub_state = v,
                    _ => {}
                }
            }
            s
        })
        .collect())
}

/// Reads the units' states (in the order asked).
pub async fn read(cfg: &RootdConfig, units: &[String]) -> Result<Vec<ServiceState>, StatesError> {
    let units = checked_units(units)?;
    if units.is_empty() {
        return Ok(vec![]);
    }
    let prog = match &cfg.systemctl {
        Some(p) => p.clone(),
        None => crate::toolkit::which("systemctl")
            .ok_or_else(|| StatesError::Unavailable("systemctl is not installed".into()))?,
    };
    let mut cmd = tokio::process::Command::new(&prog);
    cmd.arg("show")
        .arg("--property=LoadState,ActiveState,SubState")
        .arg("--")
        .args(&units)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SHOW_WITHIN, cmd.output())
        .await
        .map_err(|_| {
            StatesError::Unavailable(format!(
                "systemctl show did not answer within {}s",
                SHOW_WITHIN.as_secs()
            ))
        })?
        .map_err(|e| StatesError::Unavailable(format!("running {}: {e}", prog.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(StatesError::Unavailable(format!(
            "systemctl show failed ({}): {}",
            out.status,
            err.trim().chars().take(300).collect::<String>()
        )));
    }
    parse_blocks(&units, &String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_map_to_units_in_order() {
        let units = vec!["nginx.service".to_string(), "php-fpm.service".to_string()];
        let out = "LoadState=loaded\nActiveState=active\nSubState=running\n\n\
                   ActiveState=failed\nLoadState=loaded\nSubState=failed\n";
        let s = parse_blocks(&units, out).unwrap();
        assert_eq!(s[0].active_state, "active");
        assert_eq!(s[1].unit, "php-fpm.service");
        assert_eq!(s[1].active_state, "failed");
        assert!(parse_blocks(&units, "LoadState=loaded\n").is_err());
    }

    #[test]
    fn bad_units_are_refused() {
        assert!(checked_units(&["-evil".into()]).is_err());
        assert!(checked_units(&["a b".into()]).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("u{i}")).collect();
        assert!(checked_units(&many).is_err());
        assert_eq!(checked_units(&["nginx".into()]).unwrap(), ["nginx.service"]);
    }
}
