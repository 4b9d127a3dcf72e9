//! Drover's real packages for tests: [`build()`] runs `packaging/build.sh`
//! (cargo-deb and cargo-generate-rpm, the same path as `just package`) on the
//! debug binaries already built, once per test process, and returns the four
//! files. It does not install anything; the package and host-install tests
//! do that themselves.
//!
//! Each test process writes into its own directory
//! `<target>/test-packages/<pid>/`; directories of processes that are gone
//! are removed at the next build. The build takes a lock file, so test
//! binaries running at the same time do not overwrite each other's
//! `<target>/debug/drover-releases/` (what the `drover` package ships).
//!
//! Also here: reading a package's file list ([`deb_files`], [`rpm_files`]),
//! and checking and restoring the machine packages were installed on
//! ([`MachineGuard`], [`mode_owner`], [`getent`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};

/// The four packages built from the debug binaries, and where they are.
#[derive(Debug, Clone)]
pub struct Packages {
    /// The directory holding the four files (this process's own).
    pub dir: PathBuf,
    /// `drover_<ver>-1_<debarch>.deb`: the control plane.
    pub drover_deb: PathBuf,
    /// `drover-agent_<ver>-1_<debarch>.deb`: agent and rootd.
    pub agent_deb: PathBuf,
    /// `drover-<ver>-1.<arch>.rpm`: the control plane.
    pub drover_rpm: PathBuf,
    /// `drover-agent-<ver>-1.<arch>.rpm`: agent and rootd.
    pub agent_rpm: PathBuf,
    /// The package version (the workspace's), e.g. `0.1.0`.
    pub version: String,
    /// Architecture as dpkg names it (`amd64`, `arm64`).
    pub deb_arch: String,
    /// Architecture as rpm and `uname -m` name it (`x86_64`, `aarch64`).
    pub rpm_arch: String,
}

/// The workspace root (where `packaging/` and `manifests/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("control-plane/ has a parent")
        .to_path_buf()
}

/// The cargo target directory the test binaries were built in.
pub fn target_dir() -> PathBuf {
    let drover = PathBuf::from(env!("CARGO_BIN_EXE_drover"));
    // <target>/debug/drover
    drover
        .parent()
        .and_then(Path::parent)
        .expect("the drover binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// Builds the four packages from the debug binaries (once per process; later
/// calls return the same paths). Panics with the tools' output when a build
/// fails, or when a tool names a file otherwise than expected.
pub fn build() -> &'static Packages {
    static BUILT: OnceLock<Packages> = OnceLock::new();
    BUILT.get_or_init(build_now)
}

fn build_now() -> Packages {
    // The workspace's binaries must exist (this panics with advice if not).
    for b in ["drover-agent", "drover-rootd"] {
        super::bin(b);
    }
    let target = target_dir();
    let root = target.join("test-packages");
    std::fs::create_dir_all(&root).unwrap();
    let lock = File::create(root.join(".lock")).unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("locking the test packages directory");
    remove_stale(&root);
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);

    let out = Command::new("bash")
        .arg(workspace_root().join("packaging/build.sh"))
        .args(["--profile", "dev", "--no-build", "--fast", "--out"])
        .arg(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace_root())
        .output()
        .expect("running packaging/build.sh (bash)");
    assert!(
        out.status.success(),
        "packaging/build.sh failed ({}); run scripts/test-deps/packaging.sh (`just test` does)\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let version = env!("CARGO_PKG_VERSION").to_string();
    let rpm_arch = std::env::consts::ARCH.to_string();
    let deb_arch = match rpm_arch.as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
    .to_string();
    let pkgs = Packages {
        drover_deb: dir.join(format!("drover_{version}-1_{deb_arch}.deb")),
        agent_deb: dir.join(format!("drover-agent_{version}-1_{deb_arch}.deb")),
        drover_rpm: dir.join(format!("drover-{version}-1.{rpm_arch}.rpm")),
        agent_rpm: dir.join(format!("drover-agent-{version}-1.{rpm_arch}.rpm")),
        dir,
        version,
        deb_arch,
        rpm_arch,
    };
    for p in [
        &pkgs.drover_deb,
        &pkgs.agent_deb,
        &pkgs.drover_rpm,
        &pkgs.agent_rpm,
    ] {
        assert!(
            p.is_file(),
            "{} was not built; {} holds: {:?}",
            p.display(),
            pkgs.dir.display(),
            std::fs::read_dir(&pkgs.dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
    }
    pkgs
}

/// Removes the package directories of test processes that no longer run.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

// Reading packages and checking the machine they are installed on.

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dpkg-deb -c`: path (without the leading `.`) → (permissions, owner/group).
pub fn deb_files(deb: &Path) -> BTreeMap<String, (String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // perms owner/group size date time path
            (f.len() >= 6).then(|| {
                let path = f[5].trim_start_matches('.').to_string();
                (path, (f[0].to_string(), f[1].to_string()))
            })
        })
        .collect()
}

/// `rpm -qp`: path → (permissions, "user/group", file flags).
pub fn rpm_files(rpm: &Path) -> BTreeMap<String, (String, String, String)> {
    run(Command::new("rpm").args([
        "-qp",
        "--qf",
        "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} (%{FILEFLAGS:fflags}) %{FILENAMES}\n]",
    ])
    .arg(rpm))
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.splitn(4, ' ').collect();
        (f.len() == 4).then(|| {
            (
                f[3].to_string(),
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
            )
        })
    })
    .collect()
}

/// The state directories the packages' scripts make.
pub const STATE_DIRS: [&str; 3] = [
    "/var/lib/drover",
    "/var/lib/drover-agent",
    "/var/lib/drover-rootd",
];
/// The package names, in both formats.
pub const PACKAGES: [&str; 2] = ["drover", "drover-agent"];

/// Puts the machine back as the test found it, even when an assertion
/// fails: removes the packages (from dpkg's and rpm's databases), the files
/// they and their scripts made, and the drover user and group if the test
/// created them. It refuses to start on a machine that already has any of
/// it, so it never removes what it did not make.
pub struct MachineGuard {
    had_user: bool,
    had_group: bool,
}

impl MachineGuard {
    pub fn arm() -> Self {
        for pkg in PACKAGES {
            assert!(
                !deb_installed(pkg) && !rpm_installed(pkg),
                "{pkg} is already installed on this machine; the package tests will not touch it"
            );
        }
        for path in STATE_DIRS.iter().chain(&["/etc/drover", "/run/drover"]) {
            assert!(
                !Path::new(path).exists(),
                "{path} exists; the package tests will not touch it (remove it, or run them elsewhere)"
            );
        }
        MachineGuard {
            had_user: getent("passwd", "drover").is_some(),
            had_group: getent("group", "drover").is_some(),
        }
    }
}

impl Drop for MachineGuard {
    fn drop(&mut self) {
        for pkg in PACKAGES {
            if deb_installed(pkg) {
                let _ = Command::new("dpkg").args(["--purge", pkg]).output();
            }
            if rpm_installed(pkg) {
                let _ = Command::new("rpm").args(["-e", "--nodeps", pkg]).output();
            }
        }
        for path in STATE_DIRS.iter().chain(&["/etc/drover", "/run/drover"]) {
            let _ = std::fs::remove_dir_all(path);
        }
        if !self.had_user && getent("passwd", "drover").is_some() {
            let _ = Command::new("userdel").arg("drover").output();
        }
        if !self.had_group && getent("group", "drover").is_some() {
            let _ = Command::new("groupdel").arg("drover").output();
        }
    }
}

pub fn deb_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("installed")
                && !String::from_utf8_lossy(&o.stdout).contains("not-installed")
        })
        .unwrap_or(false)
}

pub fn rpm_installed(pkg: &str) -> bool {
    Command::new("rpm")
        .args(["-q", pkg])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `getent DB KEY`'s line, if any.
pub fn getent(db: &str, key: &str) -> Option<String> {
    let out = Command::new("getent").args([db, key]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// (mode & 0o7777, owner name, group name) of a path (not following links).
pub fn mode_owner(path: &str) -> (u32, String, String) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let user = nix::unistd::User::from_uid(m.uid().into())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_else(|| m.uid().to_string());
    let group = nix::unistd::Group::from_gid(m.gid().into())
        .unwrap()
        .map(|g| g.name)
        .unwrap_or_else(|| m.gid().to_string());
    (m.mode() & 0o7777, user, group)
}

pub fn own(mode: u32, user: &str, group: &str) -> (u32, String, String) {
    (mode, user.to_string(), group.to_string())
}
