//! Maintenance windows that are already open when an update is approved,
//! and two windows open at once over one host, on a real stack with a real
//! agent and rootd against the local APT repository fixture: the approval
//! made after the runs opened joins both runs (their hosts are looked at
//! again once a minute while the occurrence is open), yet the package is
//! installed once — the second run waits while the first is working on the
//! host, then finds nothing left to install. The rest of the windows'
//! rules are `patch_windows.rs`'s.

mod common;

use std::time::Duration;

use common::{create_window, open_now, req, wait_run, AptRepo, Stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_approval_joins_open_runs_and_installs_once() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt"));
    let host = stack
        .start_host_configured("web-1", &repo.rootd_extra())
        .await;
    stack.wait_online(&host.id).await;
    let t = Duration::from_secs(180);
    let scan = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan["status"], "succeeded", "{scan}");

    // Two windows open now, nothing approved yet: both runs open empty.
    let a = create_window(&stack, &open_now("first", json!({}))).await;
    let b = create_window(&stack, &open_now("second", json!({}))).await;
    let ids = [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()];
    // A window is found by its name too; `reboot` defaults to never.
    let (code, by_name) = stack.get("/windows/first").await;
    assert_eq!((code, &by_name["id"]), (200, &a["id"]), "{by_name}");
    let mut quiet = open_now("third", json!({"enabled": false}));
    quiet.as_object_mut().unwrap().remove("reboot");
    assert_eq!(create_window(&stack, &quiet).await["reboot"], "never");
    let (code, gone) = req(&stack, reqwest::Method::DELETE, "/windows/third", None).await;
    assert_eq!(code, 200, "{gone}");
    for id in ids {
        let r = wait_run(&stack, id, "an empty run", t, |r| {
            r["status"] == "completed"
        })
        .await;
        assert_eq!(r["hosts_total"], 0, "{r}");
    }

    let (code, ap) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "approve", "scope": "package", "package": "drover-test-alpha",
                    "version": "1.1", "selector": {"all": true}}),
        )
        .await;
    assert_eq!(code, 201, "{ap}");

    // Both runs take the host while their occurrence is open, and end.
    for id in ids {
        let r = wait_run(&stack, id, "the host joining the open run", t, |r| {
            r["status"] == "completed" && r["hosts_total"] == 1
        })
        .await;
        let h = &r["hosts"][0];
        assert_eq!(h["status"], "installed", "{r}");
    }
    assert_eq!(
        repo.installed_version("drover-test-alpha").as_deref(),
        Some("1.1")
    );
    // Installed once: one history row, one upgrade command.
    let (_, hist) = stack.get("/updates/history").await;
    let rows: Vec<_> = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["package"] == "drover-test-alpha")
        .collect();
    assert_eq!(rows.len(), 1, "{hist}");
    assert_eq!(rows[0]["version_after"], "1.1", "{hist}");
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    let upgrades = cmds["commands"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["action"] == "pkg.upgrade").count());
    assert_eq!(upgrades, Some(1), "{cmds}");
}
