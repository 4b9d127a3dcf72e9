//! Module inputs that real systems produce, end to end through the real
//! stack (API → NATS → agent → rootd → program): output that is not UTF-8
//! (Latin-1 from an installer, `systemctl`, a dpkg maintainer script), held
//! and half-installed packages, version pins and arch suffixes, and systemd
//! template units and escaped names.
//!
//! `systemctl` is a test double (as in `modules_sys.rs`), and so are dnf
//! and rpm (no RPM system here; rootd's `pkg_programs_dir` points at them);
//! apt-get and dpkg are the real ones, acting on a throw-away package the
//! test builds (needs root, no network). Not here: the rest of each module.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Host, Stack};
use serde_json::{json, Value};

/// U+FFFD, what an invalid byte becomes.
const R: char = '\u{fffd}';

/// Params the control plane must refuse before signing anything; returns
/// the error body.
async fn refused(stack: &Stack, host: &Host, action: &str, params: Value) -> String {
    let (code, body) = stack
        .command(&host.id, &json!({"action": action, "params": params}))
        .await;
    assert_eq!(code, 422, "{action} {params} must be refused: {body}");
    body.to_string()
}

/// The stored output lines of a final command.
async fn output(stack: &Stack, command: &Value) -> Vec<String> {
    let id = command["id"].as_str().unwrap();
    let (code, out) = stack.get(&format!("/commands/{id}/output")).await;
    assert_eq!(code, 200, "{out}");
    out["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str().map(str::to_string))
        .collect()
}

fn summary(done: &Value) -> &str {
    done["summary"].as_str().unwrap_or_default()
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A `systemctl` test double: records its argv (one invocation a line),
/// answers `show` as for a running unit, prints Latin-1 and bytes that are
/// never UTF-8 on both streams for `restart` (then 200 more lines, exit 0),
/// and fails `stop` with a Latin-1 error on stderr.
fn systemctl_double(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir.join("run-systemd-system")).unwrap();
    let log = dir.join("systemctl-argv.log");
    let prog = dir.join("systemctl");
    write_exe(
        &prog,
        &format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do printf '%s|' \"$a\"; done >> {log:?}\n\
             echo >> {log:?}\n\
             case \"$1\" in\n\
             show) printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nUnitFileState=enabled\\nActiveEnterTimestamp=\\n' ;;\n\
             restart) printf 'caf\\351 \\377\\376 out\\n'; printf 'caf\\351 err\\n' >&2\n\
                      i=1; while [ $i -le 200 ]; do echo \"line $i\"; i=$((i+1)); done ;;\n\
             stop) printf 'caf\\351 stop failed\\n' >&2; exit 1 ;;\n\
             esac\n"
        ),
    );
    (prog, log)
}

async fn host_with_systemctl_double(stack: &Stack, name: &str, extra: &str) -> (Host, PathBuf) {
    let dir = stack.tmp.path().join(format!("{name}-double"));
    let (prog, log) = systemctl_double(&dir);
    let host = stack
        .start_host_configured(
            name,
            &format!(
                "systemctl = {:?}\nsystemd_run_dir = {:?}\n{extra}",
                prog,
                dir.join("run-systemd-system")
            ),
        )
        .await;
    (host, log)
}

/// An app whose installer prints Latin-1 and invalid UTF-8 on stdout and
/// stderr, then 300 more lines, and exits with the chosen code.
fn bytes_manifests(root: &Path) -> PathBuf {
    let dir = root.join("manifests");
    std::fs::create_dir_all(dir.join("bytes")).unwrap();
    std::fs::write(
        dir.join("bytes/manifest.yml"),
        r#"
id: bytes
name: Bytes
version: "0.1"
description: Prints what real installers print.
category: test
inputs:
  - name: exit_with
    type: select
    label: Exit code
    allowed_values: ["0", "2"]
    default: "0"
scripts: { install: install.sh, uninstall: install.sh }
timeout_secs: 60
idempotent: true
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("bytes/install.sh"),
        "#!/usr/bin/env bash\nset -euo pipefail\n\
         printf 'caf\\351 \\377\\376 stdout\\n'\n\
         printf 'caf\\351 stderr\\n' >&2\n\
         for i in $(seq 1 300); do echo \"more $i\"; done\n\
         exit \"$EXIT_WITH\"\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_is_not_utf8_never_stops_an_action() {
    let tmp = tempfile::tempdir().unwrap();
    let manifests = bytes_manifests(tmp.path());
    let stack = Stack::start_with_manifests(&manifests).await;
    let (host, _log) = host_with_systemctl_double(
        &stack,
        "bytes",
        &format!("manifests_dir = {manifests:?}\nservice_allow_list = [\"nginx\"]"),
    )
    .await;
    let t = Duration::from_secs(60);

    // systemctl prints invalid bytes, then more: it runs to its end.
    let done = stack
        .run_final(&host.id, "service.restart", json!({"unit": "nginx"}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let lines = output(&stack, &done).await;
    assert_eq!(lines.len(), 202, "{lines:?}");
    assert!(lines.contains(&format!("caf{R} {R}{R} out")), "{lines:?}");
    assert!(lines.contains(&format!("caf{R} err")), "{lines:?}");
    // stdout and stderr are read apart, so only each stream is in order.
    let numbered: Vec<&String> = lines.iter().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(numbered.len(), 200);
    assert_eq!(numbered.last().map(|l| l.as_str()), Some("line 200"));

    // A failing systemctl whose error is Latin-1: the summary has it.
    let done = stack
        .run_final(&host.id, "service.stop", json!({"unit": "nginx"}), t)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["exit_code"], 1, "{done}");
    assert!(
        summary(&done).contains(&format!("caf{R} stop failed")),
        "{done}"
    );

    // An installer: every line stored, the stderr line in the summary.
    for (code, status) in [("0", "succeeded"), ("2", "failed")] {
        let (s, job) = stack
            .post(
                "/apps/bytes/install",
                &json!({"selector": {"agents": [host.id]}, "inputs": {"exit_with": code}}),
            )
            .await;
        assert_eq!(s, 201, "{job}");
        let job_id = job["job_id"].as_str().unwrap();
        stack.wait_job_done(job_id, t).await;
        let (_, hosts) = stack.get(&format!("/jobs/{job_id}/hosts")).await;
        let cid = hosts["hosts"][0]["command_id"].as_str().unwrap();
        let (_, done) = stack.get(&format!("/commands/{cid}")).await;
        assert_eq!(done["status"], status, "{done}");
        assert_eq!(done["exit_code"], code.parse::<i64>().unwrap(), "{done}");
        assert!(summary(&done).contains(&format!("caf{R} stderr")), "{done}");
        let lines = output(&stack, &done).await;
        assert_eq!(lines.len(), 302, "{lines:?}");
        assert!(lines.contains(&format!("caf{R} {R}{R} stdout")));
        let numbered: Vec<&String> = lines.iter().filter(|l| l.starts_with("more ")).collect();
        assert_eq!(numbered.len(), 300);
        assert_eq!(numbered.last().map(|l| l.as_str()), Some("more 300"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_units_and_escaped_names_follow_systemd() {
    let stack = Stack::start().await;
    let (host, log) = host_with_systemctl_double(
        &stack,
        "units",
        r#"service_allow_list = ["getty@.service", "wg-quick@", 'site\x2da.service', "nginx"]"#,
    )
    .await;
    let t = Duration::from_secs(30);
    let argv = || std::fs::read_to_string(&log).unwrap_or_default();
    let first_call = || argv().lines().next().unwrap_or_default().to_string();

    // Instances of allow-listed templates, with and without a type.
    for (unit, verb) in [
        ("getty@tty1.service", "start"),
        ("getty@tty1", "status"),
        ("wg-quick@wg0", "reload"),
        ("wg-quick@wg0.service", "enable"),
        (r"site\x2da.service", "start"),
        (r"site\x2da", "status"),
    ] {
        std::fs::write(&log, "").unwrap();
        let done = stack
            .run_final(
                &host.id,
                &format!("service.{verb}"),
                json!({"unit": unit}),
                t,
            )
            .await;
        assert_eq!(done["status"], "succeeded", "{verb} {unit}: {done}");
        let want = if verb == "status" { "show" } else { verb };
        assert!(first_call().starts_with(want), "{}", argv());
        assert!(
            first_call().ends_with(&format!("|--|{unit}|")),
            "{}",
            argv()
        );
    }

    // Not covered: refused by rootd, naming the unit and the setting, not
    // the whole list; systemctl never runs.
    std::fs::write(&log, "").unwrap();
    for unit in ["serial-getty@ttyS0", "getty@tty1.socket", "sshd"] {
        let done = stack
            .run_final(&host.id, "service.restart", json!({"unit": unit}), t)
            .await;
        assert_eq!(done["status"], "rejected", "{done}");
        let s = summary(&done);
        assert!(s.contains("is not in rootd's allowed services"), "{s}");
        assert!(s.contains("service_allow_list"), "{s}");
        assert!(!s.contains("wg-quick"), "the allow-list is not shown: {s}");
    }
    assert!(summary(
        &stack
            .run_final(
                &host.id,
                "service.start",
                json!({"unit": "serial-getty@ttyS0"}),
                t
            )
            .await
    )
    .contains("`serial-getty@ttyS0.service`"));
    assert_eq!(argv(), "", "systemctl must not have run");

    // Not unit names by systemd's rules: 422 saying what is accepted.
    for bad in [
        "getty@.service",
        r"site\x2.service",
        r"site\a.service",
        "-H",
        "a b",
        "nginx;reboot",
        &"a".repeat(250),
    ] {
        let body = refused(&stack, &host, "service.start", json!({"unit": bad})).await;
        assert!(
            body.contains("NAME@INSTANCE") || body.contains("template"),
            "{bad}: {body}"
        );
    }
    assert_eq!(argv(), "");
}

/// A throw-away Debian package (version with an epoch) whose postinst
/// prints Latin-1 and invalid UTF-8 on both streams, then 300 lines.
const PKG: &str = "drover-test-inputs";
const PKG_VERSION: &str = "1:1.0-1";

fn build_deb(dir: &Path) -> PathBuf {
    let root = dir.join("pkgroot");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {PKG}\nVersion: {PKG_VERSION}\nArchitecture: all\n\
             Maintainer: Drover tests <tests@example.org>\n\
             Description: Drover test package (safe to remove)\n"
        ),
    )
    .unwrap();
    write_exe(
        &root.join("DEBIAN/postinst"),
        "#!/bin/sh\nprintf 'caf\\351 \\377\\376 postinst\\n'\n\
         printf 'caf\\351 postinst stderr\\n' >&2\n\
         i=1; while [ $i -le 300 ]; do echo \"postinst line $i\"; i=$((i+1)); done\nexit 0\n",
    );
    let deb = dir.join("drover-test-inputs.deb");
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

/// Runs a dpkg tool, waiting (bounded) while another package manager
/// holds the dpkg lock.
async fn dpkg_tool(argv: &[&str]) -> std::process::Output {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    wait_for(
        &format!("{argv:?} to get the dpkg lock"),
        Duration::from_secs(180),
        || {
            let argv = argv.clone();
            async move {
                let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                (!err.contains("lock")).then_some(out)
            }
        },
    )
    .await
}

/// Unholds and purges the test package, even when the test fails.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("apt-mark").args(["unhold", PKG]).output();
        let _ = Command::new("dpkg").args(["--purge", PKG]).output();
    }
}

fn dpkg_status(pkg: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", "--", pkg])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_half_installed_and_pinned_packages_with_real_dpkg() {
    if !Path::new("/usr/bin/apt-get").exists() || !Path::new("/usr/bin/dpkg-deb").exists() {
        println!("SKIPPED: apt-get and dpkg-deb are needed (the test builds a Debian package)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());
    let _purge = Purge;
    let stack = Stack::start().await;
    let host = stack.start_host("pkgs").await;
    let t = Duration::from_secs(300);

    // Unpacked, not configured (dpkg `iU`): installing configures it, and
    // its maintainer script's Latin-1 does not kill it halfway through.
    let out = dpkg_tool(&["dpkg", "--unpack", deb.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dpkg_status(PKG), "iU");
    let done = stack
        .run_final(&host.id, "pkg.install", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(dpkg_status(PKG), "ii");
    let lines = output(&stack, &done).await;
    assert!(
        lines.contains(&format!("caf{R} {R}{R} postinst")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("caf{R} postinst stderr")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "postinst line 300"), "{lines:?}");
    let p = &done["result"]["packages"][0];
    assert_eq!(p["after"], PKG_VERSION, "{done}");
    assert_eq!(p["state"], "ii", "{done}");
    assert_eq!(p["held"], false, "{done}");

    // Held (`hi`): installed, shown as held, never upgraded behind the
    // operator's back, and never called "not installed".
    let out = dpkg_tool(&["apt-mark", "hold", PKG]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dpkg_status(PKG), "hi");
    let done = stack
        .run_final(&host.id, "pkg.install", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["packages"][0]["held"], true, "{done}");
    assert!(summary(&done).contains("held"), "{done}");
    let done = stack
        .run_final(&host.id, "pkg.upgrade", json!({"packages": [PKG]}), t)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let s = summary(&done);
    assert!(
        s.contains("is held") && s.contains(&format!("apt-mark unhold {PKG}")),
        "{s}"
    );
    assert!(!s.contains("not installed"), "{s}");
    assert_eq!(dpkg_status(PKG), "hi", "the hold is left as it was");
    let done = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let held = done["result"]["held"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(held.iter().any(|h| h == PKG), "{done}");

    // Pins (with an epoch) and arch suffixes in apt's syntax.
    let arch = String::from_utf8(
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for spec in [
        format!("{PKG}={PKG_VERSION}"),
        format!("{PKG}:{}", arch.trim()),
        format!("{PKG}:{}={PKG_VERSION}", arch.trim()),
    ] {
        let done = stack
            .run_final(&host.id, "pkg.install", json!({"packages": [spec]}), t)
            .await;
        assert_eq!(done["status"], "succeeded", "{spec}: {done}");
        let p = &done["result"]["packages"][0];
        assert_eq!(p["name"], spec.as_str(), "{done}");
        assert_eq!(p["package"], PKG, "{done}");
        assert_eq!(p["after"], PKG_VERSION, "{done}");
    }
    // dnf's spelling on an apt host: refused by rootd with apt's spelling.
    let done = stack
        .run_final(
            &host.id,
            "pkg.install",
            json!({"packages": [format!("{PKG}-{PKG_VERSION}")]}),
            t,
        )
        .await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert!(summary(&done).contains("NAME=VERSION"), "{done}");

    // Not package specs: 422 saying which forms are accepted.
    for bad in [
        "pkg=1;reboot",
        "-o",
        "pkg = 1",
        "pkg=",
        "pkg:AMD64",
        "pkg=$(id)",
    ] {
        let body = refused(&stack, &host, "pkg.install", json!({"packages": [bad]})).await;
        assert!(
            body.contains("NAME=VERSION") && body.contains("NAME.ARCH"),
            "{bad}: {body}"
        );
    }
}

/// dnf and rpm test doubles (no RPM system here): `vim` is provided by
/// `vim-enhanced`, the only package dnf can install; rpm answers `-q` and
/// `-q --whatprovides` from what was installed. Records dnf's argv.
fn dnf_doubles(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let state = dir.join("vim-enhanced.installed");
    let log = dir.join("dnf-argv.log");
    write_exe(
        &dir.join("dnf"),
        &format!(
            "#!/bin/sh\n\
             echo \"$*\" >> {log:?}\n\
             case \"$1\" in\n\
             install) shift 2; [ \"$1\" = -- ] && shift\n\
               for p in \"$@\"; do case \"$p\" in\n\
                 vim|vim-enhanced) touch {state:?}; echo 'Installing: vim-enhanced x86_64 2:9.0.2081-1.fc39' ;;\n\
                 *) echo \"No match for argument: $p\" >&2; exit 1 ;;\n\
               esac; done; echo 'Complete!' ;;\n\
             upgrade) echo 'Nothing to do.' ;;\n\
             esac\n"
        ),
    );
    write_exe(
        &dir.join("rpm"),
        &format!(
            "#!/bin/sh\n\
             by=name; [ \"$2\" = --whatprovides ] && by=provide\n\
             for last; do :; done\n\
             if [ -e {state:?} ]; then\n\
               if [ \"$last\" = vim-enhanced ] || [ \"$last\" = vim-enhanced.x86_64 ] || \
                  {{ [ \"$last\" = vim ] && [ $by = provide ]; }}; then\n\
                 printf 'vim-enhanced\\tx86_64\\t2:9.0.2081-1.fc39\\n'; exit 0\n\
               fi\n\
             fi\n\
             if [ $by = provide ]; then echo \"no package provides $last\"; else echo \"package $last is not installed\"; fi\n\
             exit 1\n"
        ),
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnf_spelling_and_provides_are_reported() {
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("dnf-doubles");
    let log = dnf_doubles(&dir);
    let host = stack
        .start_host_configured("dnf", &format!("pkg_programs_dir = {dir:?}"))
        .await;
    let t = Duration::from_secs(60);
    let argv = || std::fs::read_to_string(&log).unwrap_or_default();

    // apt's spelling on a dnf host: refused with dnf's, dnf never runs.
    for (spec, right) in [
        ("vim=9.0.2081", "vim-9.0.2081"),
        ("glibc:i686", "glibc.i686"),
    ] {
        let done = stack
            .run_final(&host.id, "pkg.install", json!({"packages": [spec]}), t)
            .await;
        assert_eq!(done["status"], "rejected", "{done}");
        assert!(summary(&done).contains(right), "{spec}: {done}");
    }
    assert_eq!(argv(), "");

    // `vim` resolves to vim-enhanced: installed, and said so.
    let done = stack
        .run_final(&host.id, "pkg.install", json!({"packages": ["vim"]}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["manager"], "dnf", "{done}");
    let p = &done["result"]["packages"][0];
    assert_eq!(p["name"], "vim", "{done}");
    assert_eq!(p["package"], "vim-enhanced", "{done}");
    assert_eq!(p["after"], "2:9.0.2081-1.fc39", "{done}");
    assert_eq!(p["changed"], true, "{done}");
    assert!(
        summary(&done).contains("vim is provided by vim-enhanced"),
        "{done}"
    );
    assert_eq!(argv(), "install -y -- vim\n");

    // dnf's own spellings pass, as argv after `--`.
    let done = stack
        .run_final(
            &host.id,
            "pkg.upgrade",
            json!({"packages": ["vim", "vim-enhanced.x86_64"]}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        argv().ends_with("upgrade -y -- vim vim-enhanced.x86_64\n"),
        "{}",
        argv()
    );
}
