//! Patch scanning end to end against a real local APT repository
//! (`common::apt_repo`): the fixture itself, and — through the real stack,
//! API → signed command → NATS → agent → rootd → apt-get/dpkg — `pkg.scan`,
//! `pkg.install`, reboot-required, `sys.reboot` and `sys.reboot_cancel`.
//!
//! Needs root (dpkg installs for real) and dpkg-dev
//! (`scripts/test-deps/patch.sh`). The fixture takes an exclusive lock, so
//! the tests here wait for each other; nothing else may run apt meanwhile.

mod common;

use common::AptRepo;

#[test]
fn fixture_installs_the_old_versions_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = AptRepo::build(tmp.path());
    assert_eq!(
        repo.installed_version("drover-test-alpha").as_deref(),
        Some("1.0")
    );
    assert_eq!(
        repo.installed_version("drover-test-beta").as_deref(),
        Some("1.0")
    );
    // apt, with the fixture's configuration, sees the newer versions.
    let out = std::process::Command::new("apt-get")
        .args(["--simulate", "dist-upgrade"])
        .env("APT_CONFIG", repo.apt_config())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Inst drover-test-alpha [1.0] (1.1 "),
        "{text}"
    );
    assert!(text.contains("Inst drover-test-beta [1.0] (2.0 "), "{text}");
    drop(repo);
    assert_eq!(
        common::apt_repo::dpkg_installed_version("drover-test-alpha"),
        None
    );
    assert!(!tmp.path().join("repo").exists());
    assert!(!tmp.path().join("apt").exists());
}
