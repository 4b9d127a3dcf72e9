//! The packages `drover` and `drover-agent` (.deb and .rpm) and the systemd
//! units, with the real tools: the packages are built by
//! `common::packages::build()` (cargo-deb, cargo-generate-rpm) from the debug
//! binaries; their contents are read with `dpkg-deb` and `rpm -qp`; they are
//! installed on this machine (`dpkg -i`, `rpm -i --nodeps`; the tests run as
//! root), upgraded with an edited config, and removed; the units are checked
//! with `systemd-analyze verify` and `security --offline=true`.
//!
//! systemd does not run as PID 1 here, so the maintainer scripts take their
//! "no systemd" branch and no unit is started; that is the only part not
//! exercised. The install tests share one lock (same /etc/drover, same
//! user) and a drop guard puts the machine back even when an assertion fails.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::packages::{
    deb_files, deb_installed, getent, mode_owner, own, rpm_files, rpm_installed, run, MachineGuard,
    STATE_DIRS,
};

/// Expected files of both packages: (path, permissions) for .deb listings.
fn expected_agent_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("/usr/bin/drover-agent", "-rwxr-xr-x"),
        ("/usr/bin/drover-rootd", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/drover-agent.service", "-rw-r--r--"),
        ("/usr/lib/systemd/system/drover-rootd.service", "-rw-r--r--"),
        ("/usr/share/drover/examples/agent.toml", "-rw-r--r--"),
        ("/usr/share/drover/examples/rootd.toml", "-rw-r--r--"),
        (
            "/usr/share/drover/manifests/nginx/manifest.yml",
            "-rw-r--r--",
        ),
        ("/usr/share/drover/manifests/nginx/install.sh", "-rwxr-xr-x"),
        ("/usr/share/drover/manifests/_lib/common.sh", "-rwxr-xr-x"),
    ]
}

fn expected_drover_files(p: &common::packages::Packages) -> Vec<(String, &'static str)> {
    let v = &p.version;
    vec![
        ("/usr/bin/drover".into(), "-rwxr-xr-x"),
        (
            "/usr/lib/systemd/system/drover.service".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/drover/examples/drover.toml".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/drover/catalogue/nginx/manifest.yml".into(),
            "-rw-r--r--",
        ),
        (
            format!(
                "/usr/share/drover/releases/drover-agent_{v}-1_{}.deb",
                p.deb_arch
            ),
            "-rw-r--r--",
        ),
        (
            format!(
                "/usr/share/drover/releases/drover-agent-{v}-1.{}.rpm",
                p.rpm_arch
            ),
            "-rw-r--r--",
        ),
    ]
}

#[test]
fn deb_contents_modes_and_scripts() {
    let p = common::packages::build();
    for (deb, name, files) in [
        (
            &p.agent_deb,
            "drover-agent",
            expected_agent_files()
                .into_iter()
                .map(|(f, m)| (f.to_string(), m))
                .collect::<Vec<_>>(),
        ),
        (&p.drover_deb, "drover", expected_drover_files(p)),
    ] {
        let fields = run(Command::new("dpkg-deb").arg("-f").arg(deb).args([
            "Package",
            "Version",
            "Architecture",
        ]));
        assert!(
            fields.contains(&format!("Package: {name}\n"))
                && fields.contains(&format!("Version: {}-1\n", p.version))
                && fields.contains(&format!("Architecture: {}\n", p.deb_arch)),
            "{name}: {fields}"
        );
        let listed = deb_files(deb);
        for (file, mode) in &files {
            let got = listed
                .get(file)
                .unwrap_or_else(|| panic!("{name} lacks {file}: {listed:?}"));
            assert_eq!(got.0, *mode, "{name}: {file}");
            assert!(
                got.1 == "root/root" || got.1 == "0/0",
                "{name}: {file} owned by {}",
                got.1
            );
        }
        // Configs are made by postinst from the examples, never shipped in
        // /etc: dpkg then never prompts about them nor replaces them.
        assert!(
            listed.keys().all(|f| !f.starts_with("/etc")),
            "{name} ships files in /etc: {listed:?}"
        );
        let ctrl = tempfile::tempdir().unwrap();
        run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(ctrl.path()));
        assert!(
            !ctrl.path().join("conffiles").exists(),
            "{name} has conffiles"
        );
        for script in ["preinst", "postinst", "prerm", "postrm"] {
            let path = ctrl.path().join(script);
            let meta =
                std::fs::metadata(&path).unwrap_or_else(|e| panic!("{name} lacks {script}: {e}"));
            assert_eq!(meta.mode() & 0o777, 0o755, "{name} {script}");
            run(Command::new("sh").arg("-n").arg(&path));
        }
        let postinst = std::fs::read_to_string(ctrl.path().join("postinst")).unwrap();
        assert!(
            postinst.contains("[ -d /run/systemd/system ]"),
            "{name} postinst must touch systemd only when it runs"
        );
    }
}

#[test]
fn rpm_contents_modes_and_scripts() {
    let p = common::packages::build();
    for (rpm, name, files) in [
        (
            &p.agent_rpm,
            "drover-agent",
            expected_agent_files()
                .into_iter()
                .map(|(f, m)| (f.to_string(), m))
                .collect::<Vec<_>>(),
        ),
        (&p.drover_rpm, "drover", expected_drover_files(p)),
    ] {
        let nvra = run(Command::new("rpm")
            .args(["-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"])
            .arg(rpm));
        assert_eq!(nvra, format!("{name} {} 1 {}", p.version, p.rpm_arch));
        let listed = rpm_files(rpm);
        for (file, mode) in &files {
            let (perms, owner, flags) = listed
                .get(file)
                .unwrap_or_else(|| panic!("{name} lacks {file}: {listed:?}"));
            assert_eq!(
                (perms.as_str(), owner.as_str()),
                (*mode, "root/root"),
                "{name}: {file}"
            );
            assert!(!flags.contains('c'), "{name}: {file} is a %config file");
        }
        assert!(
            listed.keys().all(|f| !f.starts_with("/etc")),
            "{name} ships files in /etc: {listed:?}"
        );
        let scripts = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm));
        for (kind, marker) in [
            ("preinstall", "useradd --system"),
            ("postinstall", "/usr/share/drover/examples/"),
            ("preuninstall", "systemctl stop"),
            ("postuninstall", "daemon-reload"),
        ] {
            assert!(
                scripts.contains(&format!("{kind} scriptlet (using /bin/sh):")),
                "{name} lacks its {kind} scriptlet:\n{scripts}"
            );
            assert!(scripts.contains(marker), "{name} {kind}: {scripts}");
        }
        let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(rpm));
        assert!(requires.contains("shadow-utils"), "{name}: {requires}");
    }
}

/// The units, verified in a scratch root holding this machine's systemd
/// units plus the agent package's files (so `ExecStart=` binaries exist),
/// and the agent's offline exposure score.
#[test]
fn units_verify_and_agent_exposure() {
    let p = common::packages::build();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&p.agent_deb)
        .arg(root.path()));
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&p.drover_deb)
        .arg(root.path()));
    let units = root.path().join("usr/lib/systemd/system");
    // The targets and slices the units name (sysinit.target, ...), and
    // ExecStartPre's chgrp, as on any systemd host.
    run(Command::new("cp")
        .args(["-a", "--no-clobber"])
        .arg(format!("{}/.", host_unit_dir().display()))
        .arg(&units));
    std::os::unix::fs::symlink("usr/bin", root.path().join("bin")).unwrap();
    std::fs::copy("/usr/bin/chgrp", root.path().join("usr/bin/chgrp")).unwrap();

    let ours: Vec<PathBuf> = [
        "drover.service",
        "drover-agent.service",
        "drover-rootd.service",
    ]
    .iter()
    .map(|u| units.join(u))
    .collect();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(&ours)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("drover"),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );

    let mut scores = BTreeMap::new();
    for unit in &ours {
        scores.insert(
            unit.file_name().unwrap().to_string_lossy().into_owned(),
            exposure(root.path(), unit),
        );
    }
    println!("systemd-analyze security --offline=true exposure: {scores:?}");
    let agent = scores["drover-agent.service"];
    assert!(agent <= 2.0, "drover-agent.service exposure {agent} > 2.0");
    let cp = scores["drover.service"];
    assert!(cp <= 2.0, "drover.service exposure {cp} > 2.0");
    // rootd runs as root and cannot be as tight, but must stay below the
    // UNSAFE band's floor (9.0 is what an unhardened root service scores).
    let rootd = scores["drover-rootd.service"];
    assert!(rootd < 9.0, "drover-rootd.service exposure {rootd}");
}

/// The directory this machine's systemd units are in.
fn host_unit_dir() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("sysinit.target").exists())
        .expect("systemd's units (sysinit.target) are not installed")
}

/// `systemd-analyze security --offline=true`'s overall exposure (0.0-10.0).
fn exposure(root: &Path, unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    let after = line.rsplit(": ").next().unwrap();
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable exposure line: {line}"))
}

/// The install tests change this machine (/etc/drover, /var/lib/drover*,
/// the drover user): one at a time.
static INSTALL: Mutex<()> = Mutex::new(());

/// After the first install of both packages: the user, group, directories,
/// configs, binaries and units, with their owners and modes.
fn assert_installed_layout() {
    let passwd = getent("passwd", "drover").expect("user drover was not created");
    // drover:x:UID:GID:comment:home:shell
    let f: Vec<&str> = passwd.split(':').collect();
    assert_eq!(f.len(), 7, "{passwd}");
    let uid: u32 = f[2].parse().unwrap();
    assert!(uid < 1000, "drover is not a system user: {passwd}");
    // Home: the state directory of whichever package made the user.
    assert!(
        f[5] == "/var/lib/drover-agent" || f[5] == "/var/lib/drover",
        "{passwd}"
    );
    assert!(
        f[6].ends_with("/nologin") || f[6] == "/bin/false",
        "{passwd}"
    );
    let group = getent("group", "drover").expect("group drover was not created");
    assert_eq!(
        group.split(':').nth(2).unwrap(),
        f[3],
        "primary group: {group}"
    );

    assert_eq!(mode_owner("/etc/drover"), own(0o750, "root", "drover"));
    assert_eq!(
        mode_owner("/var/lib/drover"),
        own(0o750, "drover", "drover")
    );
    assert_eq!(
        mode_owner("/var/lib/drover-agent"),
        own(0o700, "drover", "drover")
    );
    assert_eq!(
        mode_owner("/var/lib/drover-rootd"),
        own(0o700, "root", "root")
    );
    assert_eq!(
        mode_owner("/etc/drover/agent.toml"),
        own(0o640, "root", "drover")
    );
    assert_eq!(
        mode_owner("/etc/drover/rootd.toml"),
        own(0o600, "root", "root")
    );
    assert_eq!(
        mode_owner("/etc/drover/drover.toml"),
        own(0o640, "root", "drover")
    );
    for bin in [
        "/usr/bin/drover",
        "/usr/bin/drover-agent",
        "/usr/bin/drover-rootd",
    ] {
        assert_eq!(mode_owner(bin), own(0o755, "root", "root"), "{bin}");
    }
    for unit in ["drover", "drover-agent", "drover-rootd"] {
        let path = format!("/usr/lib/systemd/system/{unit}.service");
        assert_eq!(mode_owner(&path), own(0o644, "root", "root"), "{path}");
    }

    // The configs are the examples, except rootd's agent_uid: drover's uid.
    let example =
        |f: &str| std::fs::read_to_string(format!("/usr/share/drover/examples/{f}")).unwrap();
    let installed = |f: &str| std::fs::read_to_string(format!("/etc/drover/{f}")).unwrap();
    assert_eq!(installed("agent.toml"), example("agent.toml"));
    assert_eq!(installed("drover.toml"), example("drover.toml"));
    let rootd = installed("rootd.toml");
    assert_eq!(
        rootd,
        example("rootd.toml").replace("\nagent_uid = 0\n", &format!("\nagent_uid = {uid}\n"))
    );
    let parsed: toml::Value = toml::from_str(&rootd).unwrap();
    assert_eq!(parsed["agent_uid"].as_integer(), Some(uid.into()));
    assert_eq!(parsed["socket_group"].as_str(), Some("drover"));
}

/// Edits the two configs an operator is most likely to change.
fn edit_configs() -> (String, String) {
    let agent = format!(
        "{}\nhostname = \"edited-by-test\"\n",
        std::fs::read_to_string("/etc/drover/agent.toml").unwrap()
    );
    std::fs::write("/etc/drover/agent.toml", &agent).unwrap();
    let rootd = format!(
        "{}\nservice_allow_list = [\"nginx\"]\n",
        std::fs::read_to_string("/etc/drover/rootd.toml")
            .unwrap()
            .replace("service_allow_list = []\n", "")
    );
    std::fs::write("/etc/drover/rootd.toml", &rootd).unwrap();
    (agent, rootd)
}

fn assert_edits_kept(edited: &(String, String)) {
    assert_eq!(
        std::fs::read_to_string("/etc/drover/agent.toml").unwrap(),
        edited.0
    );
    assert_eq!(
        std::fs::read_to_string("/etc/drover/rootd.toml").unwrap(),
        edited.1
    );
}

#[test]
fn deb_install_upgrade_keeps_edits_purge_removes() {
    let p = common::packages::build();
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = MachineGuard::arm();

    run(Command::new("dpkg")
        .arg("-i")
        .arg(&p.agent_deb)
        .arg(&p.drover_deb));
    assert!(deb_installed("drover") && deb_installed("drover-agent"));
    assert_installed_layout();

    // Upgrade (the same version again runs the same upgrade path: preinst
    // upgrade, postinst configure with the old version): edits survive.
    let edited = edit_configs();
    run(Command::new("dpkg")
        .arg("-i")
        .arg(&p.agent_deb)
        .arg(&p.drover_deb));
    assert_edits_kept(&edited);
    assert_eq!(
        mode_owner("/etc/drover/agent.toml"),
        own(0o640, "root", "drover")
    );

    // Remove keeps configs and state (Debian convention); purge removes them.
    std::fs::write("/var/lib/drover-agent/agent.id", "test").unwrap();
    run(Command::new("dpkg").args(["--remove", "drover-agent", "drover"]));
    assert!(!Path::new("/usr/bin/drover-agent").exists());
    assert_edits_kept(&edited);
    assert!(Path::new("/var/lib/drover-agent/agent.id").exists());
    run(Command::new("dpkg").args(["--purge", "drover-agent", "drover"]));
    for gone in STATE_DIRS.iter().chain(&[
        "/etc/drover",
        "/usr/bin/drover",
        "/usr/bin/drover-agent",
        "/usr/bin/drover-rootd",
        "/usr/lib/systemd/system/drover-agent.service",
        "/usr/share/drover",
    ]) {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
    assert!(!deb_installed("drover") && !deb_installed("drover-agent"));
    // The user and group stay after purge (files elsewhere may still carry
    // their ids); the guard removes them because this test made them.
    assert!(getent("passwd", "drover").is_some());
    drop(guard);
}

#[test]
fn rpm_install_upgrade_keeps_edits_erase_keeps_config() {
    let p = common::packages::build();
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = MachineGuard::arm();

    // --nodeps: this Debian machine's rpm database knows no libc or shadow-utils.
    run(Command::new("rpm")
        .args(["-i", "--nodeps"])
        .arg(&p.agent_rpm)
        .arg(&p.drover_rpm));
    assert!(rpm_installed("drover") && rpm_installed("drover-agent"));
    assert_installed_layout();

    let edited = edit_configs();
    run(Command::new("rpm")
        .args(["-U", "--nodeps", "--replacepkgs"])
        .arg(&p.agent_rpm)
        .arg(&p.drover_rpm));
    assert_edits_kept(&edited);

    // Erase removes the package's files, keeps /etc/drover and the state
    // (RPM convention).
    std::fs::write("/var/lib/drover-agent/agent.id", "test").unwrap();
    run(Command::new("rpm").args(["-e", "--nodeps", "drover-agent", "drover"]));
    assert!(!rpm_installed("drover") && !rpm_installed("drover-agent"));
    for gone in [
        "/usr/bin/drover",
        "/usr/bin/drover-agent",
        "/usr/bin/drover-rootd",
        "/usr/lib/systemd/system/drover.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after rpm -e");
    }
    assert_edits_kept(&edited);
    assert!(Path::new("/var/lib/drover-agent/agent.id").exists());
    assert!(Path::new("/etc/drover/drover.toml").exists());
    drop(guard);
}

/// The installed agent and rootd start from the configs the package made,
/// once the three values the host install script fills in are set
/// (nats_url, enroll_token, control_plane_key) and enroll.creds is in
/// place: rootd as root, the agent as user drover (the uid postinst wrote
/// into rootd.toml, the group that may open the socket), against a real
/// control plane. The host enrols, reports rootd's modules (so the agent
/// reached the socket) and answers `sys.ping`. /run/drover is made here as
/// systemd's RuntimeDirectory= would (0750 root:drover).
#[test]
fn deb_installed_agent_and_rootd_start_from_the_packaged_configs() {
    let p = common::packages::build();
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let _guard = MachineGuard::arm();
    run(Command::new("dpkg").arg("-i").arg(&p.agent_deb));
    let user = nix::unistd::User::from_name("drover").unwrap().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stack = common::Stack::start().await;
        let token = stack.token(1, "1h", true).await;
        let fill = |file: &str, from: &str, to: &str| {
            let path = format!("/etc/drover/{file}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(from), "{path} lacks {from:?}");
            std::fs::write(&path, text.replace(from, to)).unwrap();
        };
        let key = stack.control_plane_key();
        fill(
            "agent.toml",
            "nats_url = \"nats://127.0.0.1:4222\"",
            &format!("nats_url = {:?}", stack.nats.url()),
        );
        fill(
            "agent.toml",
            "enroll_token = \"\"",
            &format!("enroll_token = {token:?}"),
        );
        fill(
            "agent.toml",
            "# control_plane_key = \"\"",
            &format!("control_plane_key = {key:?}"),
        );
        fill(
            "rootd.toml",
            "control_plane_key = \"\"",
            &format!("control_plane_key = {key:?}"),
        );
        std::fs::copy(
            stack.data_dir.join("enroll.creds"),
            "/etc/drover/enroll.creds",
        )
        .unwrap();
        run(Command::new("chown").args(["root:drover", "/etc/drover/enroll.creds"]));
        run(Command::new("chmod").args(["0640", "/etc/drover/enroll.creds"]));
        run(Command::new("install").args([
            "-d",
            "-m",
            "0750",
            "-o",
            "root",
            "-g",
            "drover",
            "/run/drover",
        ]));

        let logs = tempfile::tempdir().unwrap();
        let mut rc = Command::new("/usr/bin/drover-rootd");
        rc.args(["--config", "/etc/drover/rootd.toml"]);
        let rootd = common::Proc::spawn("drover-rootd", rc, logs.path().join("rootd.log"));
        let socket = Path::new("/run/drover/rootd.sock");
        common::wait_for(
            "rootd's socket",
            std::time::Duration::from_secs(20),
            || async { socket.exists().then_some(()) },
        )
        .await;
        assert_eq!(
            mode_owner("/run/drover/rootd.sock"),
            own(0o660, "root", "drover")
        );

        let mut ac = Command::new("/usr/bin/drover-agent");
        ac.args(["--config", "/etc/drover/agent.toml", "run"])
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir("/");
        let agent = common::Proc::spawn("drover-agent", ac, logs.path().join("agent.log"));
        let id = common::wait_for(
            "the agent's id",
            std::time::Duration::from_secs(20),
            || async {
                std::fs::read_to_string("/var/lib/drover-agent/agent.id")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            },
        )
        .await;
        stack.wait_online(&id).await;
        common::wait_for(
            &format!(
                "agent {id} to report rootd's modules (agent log:\n{}\nrootd log:\n{})",
                agent.log_text(),
                rootd.log_text()
            ),
            std::time::Duration::from_secs(90),
            || async {
                let (_, v) = stack.get(&format!("/agents/{id}")).await;
                let modules = v["modules"].as_array().cloned().unwrap_or_default();
                // rootd's own (no systemd here, so not `service`).
                modules
                    .iter()
                    .any(|m| m == "pkg" || m == "app")
                    .then_some(())
            },
        )
        .await;
        let ping = stack.ping(&id).await;
        assert_eq!(ping["status"], "succeeded", "{ping}");
        // The agent's files belong to drover, not root.
        assert_eq!(mode_owner("/var/lib/drover-agent/agent.id").1, "drover");
        drop(agent);
        drop(rootd);
    });
}
