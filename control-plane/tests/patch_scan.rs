//! Patch scanning end to end against a real local APT repository
//! (`common::apt_repo`): the fixture itself, and — through the real stack,
//! API → signed command → NATS → agent → rootd → apt-get/dpkg — `pkg.scan`,
//! `pkg.install`, reboot-required, `sys.reboot` and `sys.reboot_cancel`.
//!
//! Needs root (dpkg installs for real) and dpkg-dev
//! (`scripts/test-deps/patch.sh`). The fixture takes an exclusive lock, so
//! the tests here wait for each other; nothing else may run apt meanwhile.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{AptRepo, Stack};
use serde_json::{json, Value};

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

/// The scan's entry for `name`.
fn entry<'a>(scan: &'a Value, name: &str) -> &'a Value {
    scan["result"]["upgradable"]
        .as_array()
        .unwrap_or_else(|| panic!("no upgradable list: {scan}"))
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not upgradable: {scan}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_install_and_reboot_through_the_stack() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt-repo"));
    let host = stack
        .start_host_configured("patch", &repo.rootd_extra())
        .await;
    let t = Duration::from_secs(300);

    // The scan lists both upgrades as the test repositories carry them.
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan["status"], "succeeded", "{scan}");
    assert_eq!(scan["result"]["manager"], "apt");
    let alpha = entry(&scan, "drover-test-alpha");
    assert_eq!(
        (&alpha["current"], &alpha["candidate"], &alpha["arch"]),
        (&json!("1.0"), &json!("1.1"), &json!("all")),
        "{alpha}"
    );
    assert_eq!(alpha["origin"], "DroverTest:stable", "no trailing comma");
    assert_eq!(alpha["security"], false);
    assert_eq!(alpha["severity"], Value::Null);
    assert_eq!(alpha["advisories"], json!([]));
    assert_eq!(alpha["held"], false);
    let beta = entry(&scan, "drover-test-beta");
    assert_eq!(
        (&beta["current"], &beta["candidate"]),
        (&json!("1.0"), &json!("2.0"))
    );
    assert_eq!(beta["origin"], "DroverTest-Security:stable-security");
    assert_eq!(beta["security"], true, "{beta}");
    assert_eq!(
        scan["result"]["upgradable"].as_array().unwrap().len(),
        2,
        "only the test repositories are visible to rootd's apt: {scan}"
    );
    assert_eq!(
        scan["result"]["reboot"],
        json!({"required": false, "packages": []})
    );
    assert!(
        !scan["summary"].as_str().unwrap().contains("reboot"),
        "{scan}"
    );

    // Reboot required, as Debian's packages say it, and no longer once
    // the file is gone.
    repo.set_reboot_required(&["drover-test-beta"]);
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(
        scan["result"]["reboot"],
        json!({"required": true, "packages": ["drover-test-beta"]}),
        "{scan}"
    );
    assert!(
        scan["summary"]
            .as_str()
            .unwrap()
            .contains("reboot required"),
        "{scan}"
    );
    repo.clear_reboot_required();
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan["result"]["reboot"]["required"], false, "{scan}");

    // Installing the candidate installs the real package.
    let done = stack
        .run_final(
            &host.id,
            "pkg.install",
            json!({"packages": ["drover-test-alpha=1.1"]}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        repo.installed_version("drover-test-alpha").as_deref(),
        Some("1.1")
    );
    let p = &done["result"]["packages"][0];
    assert_eq!(
        (&p["before"], &p["after"], &p["changed"]),
        (&json!("1.0"), &json!("1.1"), &json!(true)),
        "{done}"
    );
    assert_eq!(
        repo.installed_version("drover-test-beta").as_deref(),
        Some("1.0"),
        "only what was named changed"
    );
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    let names: Vec<&str> = scan["result"]["upgradable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["drover-test-beta"], "{scan}");

    // A newer alpha in the repository: a scan over the lists apt fetched
    // earlier does not know it; one with `refresh` fetches them first.
    repo.publish("drover-test-alpha", "1.2", "main");
    let stale = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert!(
        !stale["result"]["upgradable"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "drover-test-alpha"),
        "{stale}"
    );
    let fresh = stack
        .run_final(&host.id, "pkg.scan", json!({"refresh": true}), t)
        .await;
    assert_eq!(fresh["status"], "succeeded", "{fresh}");
    let alpha = fresh["result"]["upgradable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "drover-test-alpha")
        .cloned()
        .unwrap_or_else(|| panic!("refresh found alpha 1.2: {fresh}"));
    assert_eq!(
        (&alpha["current"], &alpha["candidate"]),
        (&json!("1.1"), &json!("1.2"))
    );
    let (code, body) = stack
        .command(
            &host.id,
            &json!({"action": "pkg.scan", "params": {"refresh": "yes"}}),
        )
        .await;
    assert_eq!(code, 422, "{body}");

    // A version that conflicts with an installed package: apt would remove
    // beta to make room. Drover refuses, names it, and changes nothing.
    repo.publish_with(
        "drover-test-alpha",
        "1.4",
        "main",
        "Conflicts: drover-test-beta\n",
    );
    let fresh = stack
        .run_final(&host.id, "pkg.scan", json!({"refresh": true}), t)
        .await;
    assert_eq!(fresh["status"], "succeeded", "{fresh}");
    for action in ["pkg.upgrade", "pkg.install"] {
        let done = stack
            .run_final(
                &host.id,
                action,
                json!({"packages": ["drover-test-alpha=1.4"]}),
                t,
            )
            .await;
        assert_eq!(done["status"], "failed", "{done}");
        let summary = done["summary"].as_str().unwrap();
        assert!(
            summary.contains("would remove") && summary.contains("drover-test-beta"),
            "{summary}"
        );
        assert_eq!(
            repo.installed_version("drover-test-beta").as_deref(),
            Some("1.0"),
            "{action} removed nothing"
        );
        assert_eq!(
            repo.installed_version("drover-test-alpha").as_deref(),
            Some("1.1")
        );
    }

    // Refused before anything is signed or run.
    for bad in [
        json!({"delay_minutes": 5000}),
        json!({"message": "two\nlines"}),
        json!({"message": "x".repeat(201)}),
        json!({"message": "-h now"}),
        json!({"delay_minutes": 5, "also": 1}),
    ] {
        let (code, body) = stack
            .command(&host.id, &json!({"action": "sys.reboot", "params": bad}))
            .await;
        assert_eq!(code, 422, "{bad}: {body}");
    }
    assert!(repo.shutdown_calls().is_empty(), "nothing ran");

    // sys.reboot runs shutdown_program, here a test double that records
    // its arguments (a real reboot cannot happen in a test): the message,
    // shell metacharacters and all, is one argument.
    let message = "Drover: patching; $(touch /tmp/pwned) `id` | && > x 'q' \"dq\"";
    let done = stack
        .run_final(
            &host.id,
            "sys.reboot",
            json!({"delay_minutes": 5, "message": message}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["delay_minutes"], 5);
    assert!(done["result"]["due_at"].as_i64().unwrap() > 0, "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("5 minute"),
        "{done}"
    );
    assert_eq!(
        repo.shutdown_calls(),
        vec![vec![
            "-r".to_string(),
            "+5".to_string(),
            message.to_string()
        ]]
    );
    assert!(!Path::new("/tmp/pwned").exists());

    // The defaults: one minute, Drover's message.
    let done = stack.run_final(&host.id, "sys.reboot", json!({}), t).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        repo.shutdown_calls()[1],
        ["-r", "+1", "Drover: reboot for updates"]
    );

    let done = stack
        .run_final(&host.id, "sys.reboot_cancel", json!({}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["cancelled"], true);
    assert_eq!(repo.shutdown_calls()[2], ["-c"]);
    assert_eq!(repo.shutdown_calls().len(), 3);

    // Stop rootd before the fixture purges the packages.
    drop(host);
    drop(repo);
    assert_eq!(
        common::apt_repo::dpkg_installed_version("drover-test-alpha"),
        None
    );
}
