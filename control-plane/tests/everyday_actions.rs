//! The everyday actions end to end through the real stack (API → signed
//! command → NATS → agent → rootd): `sys.disk` and `sys.processes` in the
//! agent, `service.list`, `pkg.list` and `pkg.remove` in rootd; bad input
//! refused by the API (nothing signed) and by rootd when sent signed past
//! the control plane; and the host page offering only the actions the host
//! can run.
//!
//! Needs root (rootd removes packages for real) and dpkg-dev (the local APT
//! repository of `common::apt_repo`). systemd is not PID 1 here, so
//! `service.list` runs against the `systemctl` TEST DOUBLE of
//! `common::everyday` (fixed units, argv recorded); what it proves is the
//! argv, the parsing and the filters, not systemd itself.

mod common;

use std::path::Path;
use std::time::Duration;

use common::everyday::{
    dpkg_state, install_conf_pkg, list_units_double, refused, rootd_refuses, CONF_FILE, CONF_PKG,
};
use common::{wait_for, AptRepo, Stack};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_and_processes_run_in_the_agent() {
    let stack = Stack::start().await;
    let host = stack.start_host("everyday-sys").await;

    // sys.disk: the filesystem holding the test's temporary directory, with
    // the numbers statvfs gives for it.
    let done = stack.run_final(&host.id, "sys.disk", json!({}), T).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mounts = done["result"]["mounts"].as_array().expect("mounts").clone();
    let tmp = stack.tmp.path().canonicalize().unwrap();
    let ours = mounts
        .iter()
        .filter(|m| tmp.starts_with(m["mount"].as_str().unwrap()))
        .max_by_key(|m| m["mount"].as_str().unwrap().len())
        .unwrap_or_else(|| panic!("no mount holds {}: {done}", tmp.display()));
    let st = nix::sys::statvfs::statvfs(ours["mount"].as_str().unwrap()).unwrap();
    let frag = st.fragment_size() as u64;
    assert_eq!(ours["size_bytes"], st.blocks() as u64 * frag, "{ours}");
    assert_eq!(ours["inodes_total"], st.files() as u64, "{ours}");
    let (size, used, avail) = (
        ours["size_bytes"].as_u64().unwrap(),
        ours["used_bytes"].as_u64().unwrap(),
        ours["available_bytes"].as_u64().unwrap(),
    );
    assert!(
        size > 0 && used > 0 && used <= size && avail <= size - used,
        "{ours}"
    );
    assert!(ours["inodes_used"].as_u64().unwrap() > 0, "{ours}");
    assert!(
        !mounts.iter().any(|m| m["fs_type"] == "proc"),
        "pseudo filesystems left out"
    );
    let all = stack
        .run_final(&host.id, "sys.disk", json!({"all": true}), T)
        .await;
    assert!(
        all["result"]["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["fs_type"] == "proc"),
        "all lists /proc: {all}"
    );

    // sys.processes: a process the test starts that keeps a core busy.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let busy = Kill(
        std::process::Command::new("yes")
            .arg("drover-everyday")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = busy.0.id();
    // sysinfo gives 0 % to a process that had no CPU time at its first
    // sample (it has nothing to compare with), and a just-spawned `yes` can
    // be asked about within the same clock tick: wait until the kernel has
    // charged it some CPU time (utime + stime in /proc/<pid>/stat).
    wait_for(
        "the busy process to use CPU",
        Duration::from_secs(10),
        || async {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            (ticks > 0).then_some(())
        },
    )
    .await;
    let done = stack
        .run_final(
            &host.id,
            "sys.processes",
            json!({"sort": "cpu", "limit": 100}),
            T,
        )
        .await;
    drop(busy);
    assert_eq!(done["status"], "succeeded", "{done}");
    let procs = done["result"]["processes"].as_array().unwrap();
    assert!(!procs.is_empty() && procs.len() <= 100, "{done}");
    let me = procs
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not among the top by CPU: {done}"));
    assert_eq!(me["name"], "yes", "{me}");
    assert_eq!(me["command"], "yes drover-everyday", "{me}");
    assert_eq!(me["user"], "root", "{me}");
    assert!(me["rss_bytes"].as_u64().unwrap() > 0, "{me}");
    assert!(me["cpu_percent"].as_f64().unwrap() > 0.0, "{me}");
    let cpus: Vec<f64> = procs
        .iter()
        .map(|p| p["cpu_percent"].as_f64().unwrap())
        .collect();
    assert!(
        cpus.windows(2).all(|w| w[0] >= w[1]),
        "sorted by CPU: {cpus:?}"
    );
    let mem = stack
        .run_final(
            &host.id,
            "sys.processes",
            json!({"sort": "memory", "limit": 3}),
            T,
        )
        .await;
    let rss: Vec<u64> = mem["result"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rss_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        rss.len() == 3 && rss.windows(2).all(|w| w[0] >= w[1]),
        "{mem}"
    );

    // Bad input never leaves the control plane.
    refused(
        &stack,
        &host.id,
        "sys.processes",
        json!({"limit": 101}),
        "1 to 100",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "sys.processes",
        json!({"sort": "pid"}),
        "unknown variant",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "sys.disk",
        json!({"mount": "/"}),
        "unknown field",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_list_filters_and_marks_the_allow_list() {
    // TEST DOUBLE: systemd is not PID 1 here, so `systemctl` is the double
    // of common::everyday (see the file's doc comment).
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("sd-double");
    let (prog, log) = list_units_double(&dir);
    let host = stack
        .start_host_configured(
            "everyday-sd",
            &format!(
                "systemctl = {:?}\nsystemd_run_dir = {:?}\nservice_allow_list = [\"nginx\", \"getty@.service\"]\n",
                prog,
                dir.join("run-systemd-system")
            ),
        )
        .await;
    let units = |v: &Value| -> Vec<String> {
        v["result"]["units"]
            .as_array()
            .unwrap_or_else(|| panic!("no units: {v}"))
            .iter()
            .map(|u| u["unit"].as_str().unwrap().to_string())
            .collect()
    };
    let done = stack
        .run_final(&host.id, "service.list", json!({}), T)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        units(&done),
        [
            "getty@tty1.service",
            "ghost.service",
            "nginx.service",
            "redis-server.service"
        ]
    );
    let row = |v: &Value, name: &str| -> Value {
        v["result"]["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["unit"] == name)
            .unwrap()
            .clone()
    };
    let nginx = row(&done, "nginx.service");
    assert_eq!(
        (
            &nginx["load"],
            &nginx["active"],
            &nginx["sub"],
            &nginx["allowed"]
        ),
        (
            &json!("loaded"),
            &json!("active"),
            &json!("running"),
            &json!(true)
        )
    );
    assert_eq!(nginx["description"], "A high performance web server");
    assert_eq!(
        row(&done, "getty@tty1.service")["allowed"],
        true,
        "template covers it"
    );
    assert_eq!(row(&done, "redis-server.service")["allowed"], false);
    assert_eq!(
        done["result"]["allow_list"],
        json!(["nginx", "getty@.service"])
    );
    let argv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        argv.trim(),
        "list-units --all --plain --no-legend --no-pager --full"
    );

    let f = stack
        .run_final(&host.id, "service.list", json!({"state": "failed"}), T)
        .await;
    assert_eq!(units(&f), ["redis-server.service"]);
    let f = stack
        .run_final(&host.id, "service.list", json!({"pattern": "getty@*"}), T)
        .await;
    assert_eq!(units(&f), ["getty@tty1.service"]);
    let f = stack
        .run_final(&host.id, "service.list", json!({"type": "timer"}), T)
        .await;
    assert_eq!(units(&f), ["apt-daily.timer"]);
    let f = stack
        .run_final(
            &host.id,
            "service.list",
            json!({"type": "all", "limit": 2}),
            T,
        )
        .await;
    assert_eq!(units(&f).len(), 2);
    assert_eq!(
        (&f["result"]["matched"], &f["result"]["truncated"]),
        (&json!(6), &json!(true))
    );

    // Bad input: refused by the API, and by rootd when signed past it;
    // systemctl never runs.
    std::fs::write(&log, "").unwrap();
    refused(
        &stack,
        &host.id,
        "service.list",
        json!({"pattern": "x;reboot"}),
        "not allowed",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "service.list",
        json!({"pattern": "$(id)"}),
        "not allowed",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "service.list",
        json!({"limit": 2001}),
        "1 to 2000",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "service.list",
        json!({"unit": "nginx"}),
        "unknown field",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "service.list",
        json!({"state": "running"}),
        "unknown variant",
    )
    .await;
    for bad in [
        json!({"pattern": "a b"}),
        json!({"limit": 0}),
        json!({"type": "sh -c"}),
    ] {
        rootd_refuses(&stack, &host.socket, &host.id, "service.list", bad).await;
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "systemctl must not have run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkg_list_and_remove_with_a_local_repository() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt-repo"));
    let _conf = install_conf_pkg(stack.tmp.path());
    assert_eq!(dpkg_state(CONF_PKG).as_deref(), Some("ii"));
    let host = stack
        .start_host_configured("everyday-pkg", &repo.rootd_extra())
        .await;

    let names = |v: &Value| -> Vec<String> {
        v["result"]["packages"]
            .as_array()
            .unwrap_or_else(|| panic!("no packages: {v}"))
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = stack
        .run_final(&host.id, "pkg.list", json!({"pattern": "drover-test-*"}), T)
        .await;
    assert_eq!(list["status"], "succeeded", "{list}");
    assert_eq!(
        names(&list),
        ["drover-test-alpha", "drover-test-beta", CONF_PKG],
        "{list}"
    );
    let conf = &list["result"]["packages"][2];
    assert_eq!(
        (&conf["version"], &conf["arch"]),
        (&json!("1.0"), &json!("all")),
        "{conf}"
    );
    let one = stack
        .run_final(
            &host.id,
            "pkg.list",
            json!({"pattern": "drover-test-*", "limit": 1}),
            T,
        )
        .await;
    assert_eq!(names(&one), ["drover-test-alpha"]);
    assert_eq!(one["result"]["truncated"], true);

    // remove keeps the conffile; purge takes it too.
    let done = stack
        .run_final(&host.id, "pkg.remove", json!({"packages": [CONF_PKG]}), T)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let p = &done["result"]["packages"][0];
    assert_eq!(
        (&p["before"], &p["after"], &p["changed"]),
        (&json!("1.0"), &json!("removed"), &json!(true)),
        "{done}"
    );
    assert_eq!(dpkg_state(CONF_PKG).as_deref(), Some("rc"));
    assert!(Path::new(CONF_FILE).exists(), "remove keeps the conffile");
    let list = stack
        .run_final(&host.id, "pkg.list", json!({"pattern": "drover-test-*"}), T)
        .await;
    assert_eq!(names(&list), ["drover-test-alpha", "drover-test-beta"]);
    let done = stack
        .run_final(
            &host.id,
            "pkg.remove",
            json!({"packages": [CONF_PKG], "purge": true}),
            T,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["packages"][0]["after"], "purged", "{done}");
    assert_eq!(dpkg_state(CONF_PKG), None);
    assert!(!Path::new(CONF_FILE).exists(), "purge removes the conffile");

    // Removing what is not installed changes nothing and says so.
    let done = stack
        .run_final(&host.id, "pkg.remove", json!({"packages": [CONF_PKG]}), T)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["packages"][0]["after"], "not-installed",
        "{done}"
    );

    // An essential package: the catalogue cannot know, rootd refuses it
    // before apt runs.
    let done = stack
        .run_final(&host.id, "pkg.remove", json!({"packages": ["bash"]}), T)
        .await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert!(
        done["summary"].as_str().unwrap().contains("Essential: yes"),
        "{done}"
    );
    assert_eq!(dpkg_state("bash").as_deref(), Some("ii"));

    // Refused by the API: nothing signed.
    refused(
        &stack,
        &host.id,
        "pkg.remove",
        json!({"packages": ["drover-agent"]}),
        "Drover's own",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "pkg.remove",
        json!({"packages": ["hello; rm -rf /"]}),
        "not accepted",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "pkg.remove",
        json!({"packages": ["-y"]}),
        "not accepted",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "pkg.remove",
        json!({"packages": ["drover-test-alpha"], "force": true}),
        "unknown field",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "pkg.list",
        json!({"pattern": "a|b"}),
        "not allowed",
    )
    .await;
    refused(
        &stack,
        &host.id,
        "pkg.list",
        json!({"limit": 5001}),
        "1 to 5000",
    )
    .await;
    // ...and by rootd when signed past the control plane.
    for (action, bad) in [
        ("pkg.remove", json!({"packages": ["drover-agent"]})),
        ("pkg.remove", json!({"packages": ["drover-test-alpha`id`"]})),
        ("pkg.list", json!({"pattern": "$(reboot)"})),
    ] {
        rootd_refuses(&stack, &host.socket, &host.id, action, bad).await;
    }
    assert_eq!(
        repo.installed_version("drover-test-alpha").as_deref(),
        Some("1.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_page_offers_only_what_the_host_can_run() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("everyday-page").await;
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {v}"))
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let path = format!("/agents/{}/actions", host.id);
    // rootd answers: its modules (pkg here; service needs systemd as PID 1).
    let with = wait_for(
        "the host to report pkg",
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get(&path).await;
            (code == 200 && names(&v, "actions").iter().any(|n| n == "pkg.remove")).then_some(v)
        },
    )
    .await;
    let offered = names(&with, "actions");
    for a in [
        "pkg.list",
        "pkg.remove",
        "sys.disk",
        "sys.processes",
        "sys.ping",
    ] {
        assert!(offered.iter().any(|n| n == a), "{a} offered: {with}");
    }
    assert!(!offered.iter().any(|n| n == "sys.cancel"));
    let hidden = &with["hidden"];
    let svc = hidden
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "service.list");
    assert!(
        svc.is_some_and(|h| h["reason"].as_str().unwrap().contains("module service")),
        "service.list hidden on a host without systemd: {with}"
    );

    // rootd stops: its actions go, the agent's stay, and the page says why.
    host.rootd.stop();
    let without = wait_for(
        "the host to report rootd down",
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get(&path).await;
            (code == 200 && !names(&v, "actions").iter().any(|n| n == "pkg.remove")).then_some(v)
        },
    )
    .await;
    let offered = names(&without, "actions");
    for a in ["pkg.list", "pkg.remove", "service.list", "sys.reboot"] {
        assert!(
            !offered.iter().any(|n| n == a),
            "{a} not offered: {without}"
        );
    }
    for a in ["sys.disk", "sys.processes", "sys.info"] {
        assert!(
            offered.iter().any(|n| n == a),
            "{a} still offered: {without}"
        );
    }
    let why = without["hidden"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "pkg.remove")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("drover-rootd") && why.contains("not answering"),
        "{why}"
    );
    let (code, html) = stack.page_text(&format!("/agents/{}", host.id)).await;
    assert_eq!(code, 200);
    assert!(
        html.contains("id=\"actions-hidden\""),
        "the page lists what is left out"
    );
    assert!(
        html.contains("pkg.remove") && html.contains("not answering"),
        "{html}"
    );
    let (code, _) = stack.get("/agents/nope/actions").await;
    assert_eq!(code, 404);
}
