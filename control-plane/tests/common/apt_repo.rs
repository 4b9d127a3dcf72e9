//! A local APT repository of tiny real packages, for the patch tests:
//! [`AptRepo::build`] makes `drover-test-alpha` 1.0 and 1.1 and
//! `drover-test-beta` 1.0 and 2.0 with `dpkg-deb --build` (a control file
//! and one file under `/usr/share/drover-test/`), puts them in two flat
//! repositories with a `Release` file each — a normal one (`Origin:
//! DroverTest`, `Label: DroverTest`, `Suite: stable`: alpha 1.0 and 1.1, beta
//! 1.0) and a security one (`Label: DroverTest-Security`, `Suite:
//! stable-security`: beta 2.0) — writes an `APT_CONFIG` file that points apt
//! at those two repositories only, runs `apt-get update` with it, and
//! installs alpha 1.0 and beta 1.0 with `dpkg -i`.
//!
//! The machine's own apt configuration is untouched: the source list,
//! source parts, package lists, caches, extended states and logs all live
//! under the fixture's directory, and only a process given that
//! `APT_CONFIG` (rootd through its `apt_config` key, see
//! [`AptRepo::rootd_extra`]) sees the repositories. The packages are
//! installed into the machine's real dpkg database, so [`Drop`] purges every
//! `drover-test-*` package and removes the fixture's files: nothing leaks.
//!
//! It also gives rootd a reboot-required file of its own
//! ([`AptRepo::set_reboot_required`]) and a test double for `shutdown`
//! (a script that records its argv; a real reboot cannot happen in a
//! test), so no test ever reboots the machine.
//!
//! Not concurrent: installing takes the machine's dpkg lock, so tests that
//! use it must not run at the same time as another apt user (its own dpkg
//! runs wait up to two minutes for a lock another process holds). Each
//! [`AptRepo`] holds an exclusive lock file (`/tmp/drover-test-apt.lock`)
//! for its whole life, so two of them (in one test binary or in several)
//! wait for each other instead of failing; nothing else on the machine
//! should run apt or dpkg meanwhile.
//!
//! Needs `dpkg-deb` and `dpkg-scanpackages` (dpkg-dev):
//! `scripts/test-deps/patch.sh` installs them.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// The packages the fixture builds: (name, version, repository).
pub const APT_TEST_PACKAGES: [(&str, &str, &str); 4] = [
    ("drover-test-alpha", "1.0", "main"),
    ("drover-test-alpha", "1.1", "main"),
    ("drover-test-beta", "1.0", "main"),
    ("drover-test-beta", "2.0", "security"),
];

/// The package names, for purging.
const NAMES: [&str; 2] = ["drover-test-alpha", "drover-test-beta"];

/// The lock that keeps two fixtures (two apt users) apart.
const LOCK_FILE: &str = "/tmp/drover-test-apt.lock";

/// A built local repository, configured and with alpha 1.0 and beta 1.0
/// installed. Dropping it purges the packages and removes its files.
pub struct AptRepo {
    dir: PathBuf,
    apt_config: PathBuf,
    reboot_required: PathBuf,
    shutdown_double: PathBuf,
    shutdown_record: PathBuf,
    /// Files and directories this fixture made under `dir`, removed on drop.
    made: Vec<PathBuf>,
    _lock: Flock<File>,
}

/// Runs a command, panicking with its output when it fails; returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("running {cmd:?}: {e} (scripts/test-deps/patch.sh installs the tools)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long the fixture waits for another package manager (another test
/// installing something) to release the dpkg lock.
const DPKG_LOCK_WAIT: Duration = Duration::from_secs(120);

/// Runs `dpkg ARGS`, trying again while another process holds the dpkg
/// lock (bounded by [`DPKG_LOCK_WAIT`] and a number of tries); returns the
/// last run's output.
fn dpkg(args: &[&OsStr]) -> std::process::Output {
    let deadline = Instant::now() + DPKG_LOCK_WAIT;
    for _ in 0..1000 {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("running dpkg: {e}"));
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("dpkg {args:?}: the dpkg lock stayed held");
}

fn purge_test_packages() {
    let installed: Vec<&OsStr> = NAMES
        .iter()
        .filter(|n| dpkg_status(n).is_some())
        .map(OsStr::new)
        .collect();
    if !installed.is_empty() {
        let mut args = vec![OsStr::new("--purge")];
        args.extend(installed);
        let _ = dpkg(&args);
    }
}

/// dpkg's (status abbreviation, version) of a package it knows, if any.
fn dpkg_status(pkg: &str) -> Option<(String, String)> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}\t${Version}", "--", pkg])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let (state, version) = s.split_once('\t')?;
    let state = state.trim().to_string();
    // `un`: known but not installed; `rc`: only configuration left.
    (state != "un" && !version.is_empty()).then(|| (state, version.to_string()))
}

/// The installed version of `pkg` per dpkg-query, with or without a
/// fixture (`None`: not fully installed).
pub fn dpkg_installed_version(pkg: &str) -> Option<String> {
    dpkg_status(pkg)
        .filter(|(state, _)| state.starts_with(['i', 'h']) && state[1..].starts_with('i'))
        .map(|(_, v)| v)
}

/// Builds one package into `out`: returns the .deb's path. `extra` is
/// appended to its control file (`Conflicts: …\n`).
fn build_deb(
    stage: &Path,
    out: &Path,
    name: &str,
    version: &str,
    arch: &str,
    extra: &str,
) -> PathBuf {
    let root = stage.join(format!("{name}_{version}"));
    let _ = std::fs::remove_dir_all(&root);
    let short = name.trim_start_matches("drover-test-");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/drover-test")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n\
             Maintainer: Drover tests <tests@drover.invalid>\nSection: misc\nPriority: optional\n\
             {extra}Description: Drover test package {short}\n A tiny package for Drover's patch tests.\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join(format!("usr/share/drover-test/{short}")),
        format!("{name} {version}\n"),
    )
    .unwrap();
    let deb = out.join(format!("{name}_{version}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&root)
        .arg(&deb));
    let _ = std::fs::remove_dir_all(&root);
    deb
}

/// Writes `Packages` and a `Release` (with the Packages file's checksum)
/// into a flat repository.
fn index_repo(repo: &Path, label: &str, suite: &str) {
    let packages = run(Command::new("dpkg-scanpackages")
        .args(["--multiversion", "."])
        .current_dir(repo));
    std::fs::write(repo.join("Packages"), &packages).unwrap();
    let sum: String = Sha256::digest(packages.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        repo.join("Release"),
        format!(
            "Origin: DroverTest\nLabel: {label}\nSuite: {suite}\nCodename: {suite}\n\
             Date: Thu, 01 Jan 2026 00:00:00 UTC\nArchitectures: all amd64 arm64\n\
             Description: Drover test repository ({suite})\nSHA256:\n {sum} {} Packages\n",
            packages.len()
        ),
    )
    .unwrap();
}

impl AptRepo {
    /// Builds the repositories in `dir` (which must exist and be the
    /// test's own, e.g. a temporary directory), configures apt for them,
    /// runs `apt-get update` and installs alpha 1.0 and beta 1.0. Waits for
    /// any other fixture to be dropped first. Panics with the tools' output
    /// when a step fails.
    pub fn build(dir: &Path) -> AptRepo {
        std::fs::create_dir_all(dir).unwrap();
        let lock = File::create(LOCK_FILE).expect("creating the apt fixture's lock file");
        let lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("locking the apt fixture's lock file");
        let dir = dir.to_path_buf();
        let arch = run(Command::new("dpkg").arg("--print-architecture"))
            .trim()
            .to_string();
        let made = [
            "debs",
            "repo",
            "apt",
            "reboot-required",
            "reboot-required.pkgs",
        ]
        .iter()
        .chain(&["shutdown-double", "shutdown-calls"])
        .map(|n| dir.join(n))
        .collect::<Vec<_>>();
        let mut repo = AptRepo {
            apt_config: dir.join("apt/apt.conf"),
            reboot_required: dir.join("reboot-required"),
            shutdown_double: dir.join("shutdown-double"),
            shutdown_record: dir.join("shutdown-calls"),
            made,
            dir,
            _lock: lock,
        };
        // Leftovers of a test that was killed before its drop ran.
        purge_test_packages();
        repo.make(&arch);
        repo
    }

    fn make(&mut self, arch: &str) {
        let dir = self.dir.clone();
        let stage = dir.join("debs");
        std::fs::create_dir_all(&stage).unwrap();
        let mut debs = std::collections::BTreeMap::new();
        for (name, version, repo) in APT_TEST_PACKAGES {
            // alpha is architecture-independent (`[all]` in apt's output),
            // beta is built for this machine.
            let a = if name.ends_with("alpha") { "all" } else { arch };
            let out = dir.join("repo").join(repo);
            std::fs::create_dir_all(&out).unwrap();
            let deb = build_deb(&stage, &out, name, version, a, "");
            debs.insert((name, version), deb);
        }
        index_repo(&dir.join("repo/main"), "DroverTest", "stable");
        index_repo(
            &dir.join("repo/security"),
            "DroverTest-Security",
            "stable-security",
        );

        // apt's own directories, all under the fixture's.
        let apt = dir.join("apt");
        for d in [
            "sources.list.d",
            "preferences.d",
            "lists/partial",
            "cache/archives/partial",
            "state",
            "log",
        ] {
            std::fs::create_dir_all(apt.join(d)).unwrap();
        }
        std::fs::write(
            apt.join("sources.list"),
            format!(
                "# Drover's test repositories (written by the test fixture).\n\
                 deb [trusted=yes] file:{} ./\ndeb [trusted=yes] file:{} ./\n",
                dir.join("repo/main").display(),
                dir.join("repo/security").display()
            ),
        )
        .unwrap();
        let q = |p: PathBuf| format!("\"{}\"", p.display());
        std::fs::write(
            &self.apt_config,
            format!(
                "// apt configuration for Drover's patch tests only: the test repositories\n\
                 // and apt's state under the fixture's directory; nothing of the machine's.\n\
                 Dir::Etc::SourceList {};\n\
                 Dir::Etc::SourceParts {};\n\
                 Dir::Etc::Preferences {};\n\
                 Dir::Etc::PreferencesParts {};\n\
                 Dir::State::Lists {};\n\
                 Dir::State::extended_states {};\n\
                 Dir::Cache {};\n\
                 Dir::Log {};\n\
                 APT::Sandbox::User \"root\";\n\
                 Acquire::Languages \"none\";\n",
                q(apt.join("sources.list")),
                q(apt.join("sources.list.d")),
                q(apt.join("preferences")),
                q(apt.join("preferences.d")),
                q(apt.join("lists")),
                q(apt.join("state/extended_states")),
                q(apt.join("cache")),
                q(apt.join("log")),
            ),
        )
        .unwrap();
        run(Command::new("apt-get")
            .args(["update", "-q"])
            .env("APT_CONFIG", &self.apt_config)
            .env("DEBIAN_FRONTEND", "noninteractive"));

        let out = dpkg(&[
            OsStr::new("-i"),
            debs[&("drover-test-alpha", "1.0")].as_os_str(),
            debs[&("drover-test-beta", "1.0")].as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "dpkg -i of the test packages failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // The shutdown double: records each call's arguments, one call per
        // line, arguments separated by NUL bytes.
        std::fs::write(
            &self.shutdown_double,
            format!(
                "#!/bin/sh\n# Test double for shutdown(8): records its arguments, reboots nothing.\n\
                 printf '%s\\0' \"$@\" >> '{}'\nprintf '\\n' >> '{}'\n\
                 echo \"Reboot scheduled (test double)\" >&2\n",
                self.shutdown_record.display(),
                self.shutdown_record.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            &self.shutdown_double,
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }

    /// The `APT_CONFIG` file that points apt at the test repositories.
    pub fn apt_config(&self) -> &Path {
        &self.apt_config
    }

    /// The directory the fixture lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The installed version of `pkg` per dpkg-query (`None`: not
    /// installed or only its configuration left).
    pub fn installed_version(&self, pkg: &str) -> Option<String> {
        dpkg_installed_version(pkg)
    }

    /// The rootd.toml lines that point rootd at the fixture: `apt_config`,
    /// `reboot_required_file` (the fixture's own, see
    /// [`Self::set_reboot_required`]) and `shutdown_program` (the test
    /// double, see [`Self::shutdown_calls`]).
    pub fn rootd_extra(&self) -> String {
        format!(
            "apt_config = {:?}\nreboot_required_file = {:?}\nshutdown_program = {:?}\n",
            self.apt_config, self.reboot_required, self.shutdown_double
        )
    }

    /// The reboot-required file rootd is pointed at.
    pub fn reboot_required_file(&self) -> &Path {
        &self.reboot_required
    }

    /// Says a reboot is required, as Debian's packages do: the file, and
    /// its `.pkgs` sibling listing `pkgs`.
    pub fn set_reboot_required(&self, pkgs: &[&str]) {
        std::fs::write(&self.reboot_required, "*** System restart required ***\n").unwrap();
        let list: String = pkgs.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(self.dir.join("reboot-required.pkgs"), list).unwrap();
    }

    /// Removes the reboot-required file and its `.pkgs` sibling.
    pub fn clear_reboot_required(&self) {
        let _ = std::fs::remove_file(&self.reboot_required);
        let _ = std::fs::remove_file(self.dir.join("reboot-required.pkgs"));
    }

    /// The `shutdown_program` test double's path.
    pub fn shutdown_double(&self) -> &Path {
        &self.shutdown_double
    }

    /// The argument lists the shutdown double was called with, in order.
    pub fn shutdown_calls(&self) -> Vec<Vec<String>> {
        std::fs::read(&self.shutdown_record)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split_terminator('\n')
                    .map(|call| call.split_terminator('\0').map(str::to_string).collect())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Publishes one more version of a test package into the `main` or
    /// `security` repository and re-indexes it, without refreshing apt's
    /// lists: a `pkg.scan` with `refresh` sees it, one without does not.
    pub fn publish(&self, name: &str, version: &str, repo: &str) {
        self.publish_with(name, version, repo, "");
    }

    /// [`Self::publish`] with `extra` control-file lines (`Conflicts:
    /// drover-test-beta\n`).
    pub fn publish_with(&self, name: &str, version: &str, repo: &str, extra: &str) {
        assert!(NAMES.contains(&name), "only the fixture's own packages");
        let arch = if name.ends_with("alpha") {
            "all".to_string()
        } else {
            run(Command::new("dpkg").arg("--print-architecture"))
                .trim()
                .to_string()
        };
        let out = self.dir.join("repo").join(repo);
        build_deb(&self.dir.join("debs"), &out, name, version, &arch, extra);
        match repo {
            "security" => index_repo(&out, "DroverTest-Security", "stable-security"),
            _ => index_repo(&out, "DroverTest", "stable"),
        }
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        purge_test_packages();
        for p in &self.made {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
