//! The `firewall`, `pkg` and `service` modules end to end, through the real
//! stack: API → signed command → NATS → agent → rootd → the real program
//! (nft in a throw-away network namespace, apt-get and dpkg on this machine,
//! systemctl or — where systemd is not PID 1 — a test double).
//!
//! Needs root (rootd acts for real), nftables and iproute2
//! (`scripts/test-deps/sysmods.sh`), and network access for apt.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Host, Stack};
use serde_json::{json, Value};

/// Params the control plane must refuse before signing anything.
async fn refused(stack: &Stack, host: &Host, action: &str, params: Value) {
    let (code, body) = stack
        .command(&host.id, &json!({"action": action, "params": params}))
        .await;
    assert!(
        code == 422 || code == 400,
        "{action} {params} must be refused with 4xx, got {code}: {body}"
    );
}

fn sh(argv: &[&str]) -> std::process::Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

// ---------------------------------------------------------------- firewall

/// A network namespace that is deleted when the test ends, even on panic.
struct Netns(String);

impl Netns {
    fn create() -> Result<Self, String> {
        let name = format!(
            "drover-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add failed (no CAP_NET_ADMIN?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self(name))
    }

    /// Drover's table as nft itself shows it inside the namespace: the
    /// independent check of what rootd did.
    fn rules(&self) -> Vec<Value> {
        let out = sh(&[
            "ip", "netns", "exec", &self.0, "nft", "-j", "list", "table", "inet", "drover",
        ]);
        assert!(
            out.status.success(),
            "nft list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.get("rule").cloned())
            .collect()
    }

    fn chain(&self) -> Value {
        let out = sh(&[
            "ip", "netns", "exec", &self.0, "nft", "-j", "list", "table", "inet", "drover",
        ]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|i| i.get("chain").cloned())
            .expect("chain input")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `(verdict, protocol, port, source)` of a rule in nft's JSON.
fn shape(rule: &Value) -> (String, String, u64, Option<String>) {
    let mut out = (String::new(), String::new(), 0, None);
    for e in rule["expr"].as_array().unwrap() {
        if let Some(m) = e.get("match") {
            let p = &m["left"]["payload"];
            if p["field"] == "dport" {
                out.1 = p["protocol"].as_str().unwrap().to_string();
                out.2 = m["right"].as_u64().unwrap();
            } else if p["field"] == "saddr" {
                let r = &m["right"];
                out.3 = Some(match r.as_str() {
                    Some(a) => a.to_string(),
                    None => format!(
                        "{}/{}",
                        r["prefix"]["addr"].as_str().unwrap(),
                        r["prefix"]["len"]
                    ),
                });
            }
        } else if e.get("accept").is_some() {
            out.0 = "accept".into();
        } else if e.get("drop").is_some() {
            out.0 = "drop".into();
        }
    }
    out
}

fn host_has_drover_table() -> bool {
    let out = sh(&["nft", "list", "tables"]);
    String::from_utf8_lossy(&out.stdout).contains("table inet drover")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_rules_live_in_drovers_table_idempotently() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED firewall test: {why}");
            return;
        }
    };
    let host_table_before = host_has_drover_table();
    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("fw", &format!("nft_netns = {:?}", ns.0))
        .await;
    let t = Duration::from_secs(60);

    // Nothing yet: list works without creating anything.
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["rules"], json!([]));

    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_port",
            json!({"port": 8080, "protocol": "tcp", "source": "10.0.0.0/8"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["changed"], true, "{done}");
    let h8080 = done["result"]["added"][0]["handle"]
        .as_u64()
        .expect("handle");

    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_service",
            json!({"service": "ssh"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let done = stack
        .run_final(
            &host.id,
            "firewall.deny_port",
            json!({"port": 53, "protocol": "udp"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // list: three rules with handles, as Drover understands them.
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let rules = done["result"]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 3, "{done}");
    assert!(rules
        .iter()
        .all(|r| r["handle"].as_u64().is_some() && r["managed"] == true));
    let r8080 = rules
        .iter()
        .find(|r| r["port"] == 8080)
        .expect("8080 listed");
    assert_eq!(r8080["handle"].as_u64(), Some(h8080));
    assert_eq!(r8080["source"], "10.0.0.0/8");
    assert_eq!(r8080["verdict"], "accept");
    assert_eq!(r8080["protocol"], "tcp");
    let r22 = rules.iter().find(|r| r["port"] == 22).expect("ssh listed");
    assert_eq!(r22["source"], Value::Null);
    assert!(r22["comment"].as_str().unwrap().contains("ssh"), "{r22}");
    let r53 = rules.iter().find(|r| r["port"] == 53).expect("53 listed");
    assert_eq!(
        (r53["protocol"].as_str(), r53["verdict"].as_str()),
        (Some("udp"), Some("drop"))
    );

    // Independently, with nft itself: the chain keeps policy accept, and the
    // rules are in Drover's order (sourced first, then drops, then accepts).
    let chain = ns.chain();
    assert_eq!(chain["policy"], "accept", "{chain}");
    assert_eq!(chain["hook"], "input");
    let seen: Vec<_> = ns.rules().iter().map(shape).collect();
    assert_eq!(
        seen,
        vec![
            (
                "accept".into(),
                "tcp".into(),
                8080,
                Some("10.0.0.0/8".into())
            ),
            ("drop".into(), "udp".into(), 53, None),
            ("accept".into(), "tcp".into(), 22, None),
        ]
    );

    // The same rule again (spelled with host bits set): still one rule.
    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_port",
            json!({"port": 8080, "protocol": "tcp", "source": "10.1.2.3/8"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["changed"], false, "{done}");
    assert_eq!(done["result"]["present"][0]["handle"].as_u64(), Some(h8080));
    assert_eq!(ns.rules().len(), 3);

    // Hostile or malformed params never get signed, and nothing changes.
    for bad in [
        json!({"port": 8080, "source": "10.0.0.1;reboot"}),
        json!({"port": 8080, "source": "$(id)"}),
        json!({"port": 8080, "source": "10.0.0.0/33"}),
        json!({"port": 0}),
        json!({"port": 70000}),
        json!({"port": 22, "protocol": "icmp"}),
        json!({"port": 22, "extra": "x"}),
    ] {
        refused(&stack, &host, "firewall.allow_port", bad.clone()).await;
        refused(&stack, &host, "firewall.deny_port", bad).await;
    }
    refused(
        &stack,
        &host,
        "firewall.allow_service",
        json!({"service": "ssh;reboot"}),
    )
    .await;
    refused(
        &stack,
        &host,
        "firewall.remove_rule",
        json!({"handle": "1; flush ruleset"}),
    )
    .await;
    assert_eq!(ns.rules().len(), 3);

    // remove_rule: only a handle of Drover's table; an unknown one changes nothing.
    let done = stack
        .run_final(
            &host.id,
            "firewall.remove_rule",
            json!({"handle": 99999}),
            t,
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("no rule with handle 99999"),
        "{done}"
    );
    assert_eq!(ns.rules().len(), 3);

    let done = stack
        .run_final(
            &host.id,
            "firewall.remove_rule",
            json!({"handle": h8080}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    let rules = done["result"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{done}");
    assert!(rules.iter().all(|r| r["handle"].as_u64() != Some(h8080)));
    let seen: Vec<_> = ns.rules().iter().map(shape).collect();
    assert_eq!(
        seen,
        vec![
            ("drop".into(), "udp".into(), 53, None),
            ("accept".into(), "tcp".into(), 22, None),
        ]
    );

    // The host's own firewall was never touched.
    assert_eq!(host_has_drover_table(), host_table_before);
}

// ---------------------------------------------------------------- pkg

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
        refused(&stack, &host, "pkg.install", json!({"packages": [bad]})).await;
        refused(&stack, &host, "pkg.upgrade", json!({"packages": [bad]})).await;
    }
    refused(&stack, &host, "pkg.install", json!({"packages": []})).await;
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
        refused(&stack, &host, "service.start", json!({"unit": bad})).await;
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
