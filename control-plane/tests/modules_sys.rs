//! The `pkg` and `service` modules end to end, through the real stack: API →
//! signed command → NATS → agent → rootd → the real program (apt-get and
//! dpkg on this machine, systemctl or — where systemd is not PID 1 — a test
//! double). The firewall is `modules_firewall.rs`.
//!
//! Needs root (rootd acts for real) and network access for apt.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_params_refused, sh, wait_for, Host, Stack};
use serde_json::{json, Value};

/// The small Debian package the test installs (a few dozen KiB).
const PKG: &str = "hello";

fn installed_version(pkg: &str) -> Option<String> {
    let out = sh(&[
        "dpkg-query",
        "-W",
        "-f=${db:Status-Abbrev}\t${Version}",
        pkg,
    ]);
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = s.split_once('\t')?;
    status.starts_with("ii").then(|| version.to_string())
}

/// Purges a package, waiting for the dpkg lock if someone holds it.
fn purge(pkg: &str) -> std::process::Output {
    Command::new("apt-get")
        .args([
            "-o",
            "DPkg::Lock::Timeout=120",
            "purge",
            "-y",
            "-qq",
            "--",
            pkg,
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap()
}

/// Removes the test package when the test ends, even on failure.
struct RemovePkg(&'static str);
impl Drop for RemovePkg {
    fn drop(&mut self) {
        let _ = purge(self.0);
    }
}

/// The pkg tests take turns: one of them holds the dpkg lock on purpose.
static PKG_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkg_scan_install_upgrade_with_apt() {
    if !Path::new("/usr/bin/apt-get").exists() {
        println!("SKIPPED pkg test: apt-get is not installed (the test uses Debian packages)");
        return;
    }
    let _turn = PKG_TURN.lock().await;
    // Start from "not installed".
    let out = purge(PKG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(installed_version(PKG), None);
    let _cleanup = RemovePkg(PKG);

    let stack = Stack::start().await;
    let host = stack.start_host("pkg").await;
    let t = Duration::from_secs(600);

    let done = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["manager"], "apt");
    assert!(done["result"]["upgradable"].is_array(), "{done}");

    // Names that are not package names never get signed.
    for bad in ["hello;reboot", "../x", "-o", "", "a b", "$(id)"] {
        assert_params_refused(&stack, &host, "pkg.install", json!({"packages": [bad]})).await;
        assert_params_refused(&stack, &host, "pkg.upgrade", json!({"packages": [bad]})).await;
    }
    assert_params_refused(&stack, &host, "pkg.install", json!({"packages": []})).await;
    assert_eq!(installed_version(PKG), None, "nothing was installed");

    // Install: dpkg agrees, and the result says before and after.
    let done = stack
        .run_final(&host.id, "pkg.install", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let version = installed_version(PKG).expect("installed according to dpkg");
    let p = &done["result"]["packages"][0];
    assert_eq!(p["name"], PKG);
    assert_eq!(p["before"], Value::Null, "{done}");
    assert_eq!(p["after"], version.as_str(), "{done}");
    assert_eq!(p["changed"], true);

    // Again: succeeds, changes nothing.
    let done = stack
        .run_final(&host.id, "pkg.install", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let p = &done["result"]["packages"][0];
    assert_eq!(
        (&p["before"], &p["after"]),
        (&json!(version), &json!(version))
    );
    assert_eq!(p["changed"], false);
    assert_eq!(installed_version(PKG), Some(version.clone()));

    // Upgrade of an installed, newest package: a successful no-op.
    let done = stack
        .run_final(&host.id, "pkg.upgrade", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["packages"][0]["after"], version.as_str());
    assert_eq!(done["result"]["packages"][0]["changed"], false);

    // Upgrade of a package that is not installed: refused, nothing changed.
    let done = stack
        .run_final(&host.id, "pkg.upgrade", json!({"packages": ["sl"]}), t)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("not installed"),
        "{done}"
    );
    assert_eq!(installed_version("sl"), None);

    // A package that does not exist: failed with apt's reason.
    let done = stack
        .run_final(
            &host.id,
            "pkg.install",
            json!({"packages": ["drover-no-such-package"]}),
            t,
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("Unable to locate"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkg_install_reports_a_held_dpkg_lock_instead_of_hanging() {
    if !Path::new("/usr/bin/apt-get").exists() {
        println!("SKIPPED pkg lock test: apt-get is not installed");
        return;
    }
    let _turn = PKG_TURN.lock().await;
    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("lock", "apt_lock_timeout_secs = 2")
        .await;
    // Another "package manager": holds dpkg's frontend lock the way apt and
    // dpkg take it (an fcntl lock), for at most 60 s.
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\n\
             f=open('/var/lib/dpkg/lock-frontend','w')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(60)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map(Holder)
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let done = stack
        .run_final(
            &host.id,
            "pkg.install",
            json!({"packages": ["sl"]}),
            Duration::from_secs(60),
        )
        .await;
    drop(holder);
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("another package manager is running; try again"),
        "{done}"
    );
    assert_eq!(installed_version("sl"), None);
}

// ---------------------------------------------------------------- service

fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The modules the agent's heartbeat reports. The agent asks rootd at start
/// and then every 60 s, so a rootd that was slow to bind under load shows up
/// within a minute: the waits below allow 90 s.
async fn modules(stack: &Stack, host: &Host) -> Vec<String> {
    let (code, v) = stack.get(&format!("/agents/{}", host.id)).await;
    assert_eq!(code, 200, "{v}");
    v["modules"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_module_without_systemd_is_reported_and_refused() {
    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("nosd", "service_allow_list = [\"nginx\"]")
        .await;
    let mods = wait_for(
        "rootd modules in the heartbeat",
        Duration::from_secs(90),
        || async {
            let m = modules(&stack, &host).await;
            m.contains(&"pkg".to_string()).then_some(m)
        },
    )
    .await;
    assert!(mods.contains(&"firewall".to_string()), "{mods:?}");
    assert!(mods.contains(&"pkg".to_string()), "{mods:?}");
    if systemd_is_pid1() {
        assert!(mods.contains(&"service".to_string()), "{mods:?}");
        println!("systemd is PID 1 here: the not-available path is not exercised");
        return;
    }
    assert!(!mods.contains(&"service".to_string()), "{mods:?}");
    // The control plane refuses at once: the host said it cannot.
    stack
        .assert_refused(
            &host.id,
            &json!({"action": "service.status", "params": {"unit": "nginx"}}),
            &["cannot run service actions"],
        )
        .await;
    // rootd refuses too, with its reason, when asked directly.
    let signed =
        common::signed_command(&stack, &host.id, "service.status", json!({"unit": "nginx"}));
    match common::ask_rootd(&host.socket, &signed).await {
        bus_schema::rootd_proto::RootFrame::Done {
            status, summary, ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected);
            assert!(
                summary.contains("service") && summary.contains("systemd is not running as PID 1"),
                "{summary}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A stand-in for `systemctl`: it records its argv, one invocation a line,
/// answers `show` with fixed properties and fails `stop` like systemd does
/// for an unknown unit.
fn write_systemctl_double(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = dir.join("systemctl-argv.log");
    let prog = dir.join("systemctl");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do printf '%s|' \"$a\"; done >> {log:?}\n\
             echo >> {log:?}\n\
             case \"$1\" in\n\
             show) [ \"$5\" = ghost ] && {{ printf 'LoadState=not-found\\nActiveState=inactive\\nSubState=dead\\nUnitFileState=\\nActiveEnterTimestamp=\\n'; exit 0; }}\n\
                   printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nUnitFileState=enabled\\nActiveEnterTimestamp=Tue 2026-11-24 10:00:00 UTC\\n' ;;\n\
             stop) echo 'Failed to stop nginx.service: Unit nginx.service not loaded.' >&2; exit 5 ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (prog, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_actions_build_safe_systemctl_argv() {
    // TEST DOUBLE: systemd cannot run as PID 1 in this test environment (a
    // container without systemd), so `systemctl` is a small script that
    // records the argv rootd gives it; `systemd_run_dir` points at a
    // directory the test makes so rootd believes systemd runs. What is
    // proved: the argv (verb, `--`, unit), the allow-list, and the parsing
    // of `systemctl show`. The real systemctl is exercised by
    // `service_real_systemd` where systemd is PID 1.
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("double");
    std::fs::create_dir_all(dir.join("run-systemd-system")).unwrap();
    let (prog, log) = write_systemctl_double(&dir);
    let host = stack
        .start_host_configured(
            "sd",
            &format!(
                "systemctl = {:?}\nsystemd_run_dir = {:?}\nservice_allow_list = [\"nginx\", \"redis-server.service\", \"ghost\"]",
                prog,
                dir.join("run-systemd-system")
            ),
        )
        .await;
    let mods = wait_for(
        "service in the heartbeat",
        Duration::from_secs(90),
        || async {
            let m = modules(&stack, &host).await;
            m.contains(&"service".to_string()).then_some(m)
        },
    )
    .await;
    assert!(mods.contains(&"service".to_string()));
    let t = Duration::from_secs(30);
    let argv_log = || std::fs::read_to_string(&log).unwrap_or_default();

    let done = stack
        .run_final(&host.id, "service.start", json!({"unit": "nginx"}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        argv_log(),
        "start|--|nginx|\n\
         show|-p|LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp|--|nginx|\n"
    );
    let r = &done["result"];
    assert_eq!(r["active"], true, "{done}");
    assert_eq!(r["enabled"], true);
    assert_eq!(r["sub_state"], "running");
    assert_eq!(r["since"], "Tue 2026-11-24 10:00:00 UTC");

    // status: only `show`, and `nginx.service` matches `nginx` on the list.
    std::fs::write(&log, "").unwrap();
    let done = stack
        .run_final(
            &host.id,
            "service.status",
            json!({"unit": "nginx.service"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        argv_log(),
        "show|-p|LoadState,ActiveState,SubState,UnitFileState,ActiveEnterTimestamp|--|nginx.service|\n"
    );
    assert_eq!(done["result"]["active_state"], "active");
    assert_eq!(done["result"]["unit_file_state"], "enabled");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("active (running)"),
        "{done}"
    );

    // An allow-listed unit that is not installed: said so, not "inactive".
    let done = stack
        .run_final(&host.id, "service.status", json!({"unit": "ghost"}), t)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("does not exist"),
        "{done}"
    );
    assert_eq!(done["result"]["load_state"], "not-found");

    // Each verb maps to its systemctl verb.
    for (action, verb) in [
        ("service.restart", "restart"),
        ("service.reload", "reload"),
        ("service.enable", "enable"),
        ("service.disable", "disable"),
    ] {
        std::fs::write(&log, "").unwrap();
        let done = stack
            .run_final(&host.id, action, json!({"unit": "redis-server"}), t)
            .await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(
            argv_log().starts_with(&format!("{verb}|--|redis-server|\n")),
            "{action}: {}",
            argv_log()
        );
    }

    // A failing systemctl: failed, with its error.
    std::fs::write(&log, "").unwrap();
    let done = stack
        .run_final(&host.id, "service.stop", json!({"unit": "nginx"}), t)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["exit_code"], 5);
    assert!(
        done["summary"].as_str().unwrap().contains("not loaded"),
        "{done}"
    );

    // Not on the allow-list: refused by rootd, systemctl never runs.
    std::fs::write(&log, "").unwrap();
    let done = stack
        .run_final(&host.id, "service.restart", json!({"unit": "sshd"}), t)
        .await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("service_allow_list"),
        "{done}"
    );
    let done = stack
        .run_final(
            &host.id,
            "service.start",
            json!({"unit": "nginx.socket"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert_eq!(argv_log(), "", "systemctl must not have run");

    // Not unit names at all: never signed.
    for bad in ["-H", "--host=evil", "nginx;reboot", "$(id)", "../nginx", ""] {
        assert_params_refused(&stack, &host, "service.start", json!({"unit": bad})).await;
    }
    assert_eq!(argv_log(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_real_systemd() {
    if !systemd_is_pid1() {
        println!(
            "SKIPPED real systemd test: systemd is not running as PID 1 here \
             (/run/systemd/system does not exist); see service_actions_build_safe_systemctl_argv"
        );
        return;
    }
    // A throw-away unit in the runtime unit directory (gone at reboot).
    let unit = format!(
        "drover-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let path = Path::new("/run/systemd/system").join(format!("{unit}.service"));
    std::fs::write(
        &path,
        "[Unit]\nDescription=Drover test unit\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    .unwrap();
    struct Cleanup(std::path::PathBuf, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("systemctl")
                .args(["stop", "--", &self.1])
                .status();
            let _ = std::fs::remove_file(&self.0);
            let _ = Command::new("systemctl").arg("daemon-reload").status();
        }
    }
    let _cleanup = Cleanup(path, unit.clone());
    assert!(sh(&["systemctl", "daemon-reload"]).status.success());

    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("realsd", &format!("service_allow_list = [{unit:?}]"))
        .await;
    let t = Duration::from_secs(60);
    let done = stack
        .run_final(&host.id, "service.start", json!({"unit": unit}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["active_state"], "active", "{done}");
    let out = sh(&["systemctl", "is-active", "--", &unit]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "active");
    let done = stack
        .run_final(
            &host.id,
            "service.status",
            json!({"unit": format!("{unit}.service")}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["sub_state"], "running");
    let done = stack
        .run_final(&host.id, "service.stop", json!({"unit": unit}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["active_state"], "inactive", "{done}");
}
