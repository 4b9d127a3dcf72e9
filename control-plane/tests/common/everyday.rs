//! Fixtures of the everyday-actions tests (`everyday_actions.rs`): a
//! `systemctl` test double that answers `list-units` with a fixed fleet of
//! units and records its argv, and a small `.deb` with a conffile built with
//! `dpkg-deb` (installed and purged by the test, a drop guard cleaning up),
//! and the two refusal checks (by the API, by rootd past it).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bus_schema::rootd_proto::RootFrame;
use serde_json::{json, Value};

use super::{ask_rootd, signed_command, Stack};

/// The units the double lists, as `systemctl list-units --all --plain
/// --no-legend` prints them (one failed unit with the `●` mark older
/// versions print even under `--plain`).
pub const DOUBLE_UNITS: &str = "\
nginx.service loaded active running A high performance web server
● redis-server.service loaded failed failed Advanced key-value store
getty@tty1.service loaded active running Getty on tty1
ghost.service not-found inactive dead ghost.service
apt-daily.timer loaded active waiting Daily apt download activities
ssh.socket loaded active listening OpenBSD Secure Shell server socket
";

/// Writes the `systemctl` double into `dir`: every call appends its argv
/// (one line) to the returned log; `list-units` prints [`DOUBLE_UNITS`].
/// Also makes `dir/run-systemd-system`, for rootd's `systemd_run_dir`.
/// Returns (program, argv log).
pub fn list_units_double(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("run-systemd-system")).unwrap();
    let log = dir.join("systemctl-argv.log");
    let units = dir.join("units.txt");
    std::fs::write(&units, DOUBLE_UNITS).unwrap();
    let prog = dir.join("systemctl");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$1\" in\n  list-units) cat '{}' ;;\n  *) exit 1 ;;\nesac\n",
            log.display(),
            units.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (prog, log)
}

/// The name of the test package with a conffile.
pub const CONF_PKG: &str = "drover-test-everyday";
/// Its conffile.
pub const CONF_FILE: &str = "/etc/drover-test-everyday.conf";

/// Removes the conffile package on drop, whatever the test did.
pub struct ConfPkg;
impl Drop for ConfPkg {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", CONF_PKG]).output();
        let _ = std::fs::remove_file(CONF_FILE);
    }
}

/// Builds [`CONF_PKG`] 1.0 (architecture `all`, one conffile) in `dir`
/// and installs it with `dpkg -i`. Call while holding the apt fixture
/// (`AptRepo`), which keeps other package tests away.
pub fn install_conf_pkg(dir: &Path) -> ConfPkg {
    let root = dir.join("conf-pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {CONF_PKG}\nVersion: 1.0\nArchitecture: all\nMaintainer: Drover tests <t@example.invalid>\nDescription: Drover test package with a conffile\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join("DEBIAN/conffiles"), format!("{CONF_FILE}\n")).unwrap();
    std::fs::write(root.join("etc/drover-test-everyday.conf"), "setting = 1\n").unwrap();
    let deb = dir.join("conf-pkg.deb");
    let guard = ConfPkg;
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb: {out:?}");
    let out = Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert!(out.status.success(), "dpkg -i: {out:?}");
    guard
}

/// dpkg's status abbreviation of `pkg` (`ii`, `rc`...), `None` when dpkg
/// does not know it.
pub fn dpkg_state(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", "--", pkg])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty() && s != "un").then_some(s)
}

/// Asserts the API refuses `params` for `action` as invalid (nothing
/// signed, nothing run), its error containing `says`.
pub async fn refused(stack: &Stack, agent: &str, action: &str, params: Value, says: &str) {
    let (code, v) = stack
        .command(agent, &json!({"action": action, "params": params}))
        .await;
    assert_eq!(code, 422, "{action} {params}: {v}");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(err.contains(says), "{action} {params}: {err}");
}

/// Asserts rootd refuses a genuinely signed `action` with invalid `params`.
pub async fn rootd_refuses(stack: &Stack, socket: &Path, agent: &str, action: &str, params: Value) {
    match ask_rootd(
        socket,
        &signed_command(stack, agent, action, params.clone()),
    )
    .await
    {
        RootFrame::Refused { label, reason } => {
            assert!(
                label.contains("invalid"),
                "{action} {params}: {label}: {reason}"
            )
        }
        other => panic!("rootd ran {action} {params}: {other:?}"),
    }
}
