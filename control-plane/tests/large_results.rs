//! Large results, end to end with real processes (nats-server, control
//! plane, agent, rootd): a result over the budget
//! (`bus_schema::result_budget`) ends `succeeded` with a marker, and its
//! full data is in the command's output; a result message too large for the
//! bus ends its command `failed` with the reason instead of leaving it
//! `running`.
//!
//! The large results come from `pkg.scan` on an apt host whose `apt-get` and
//! `dpkg-query` are test doubles (rootd's `pkg_programs_dir`): `apt-get`
//! prints a prepared `Inst ...` listing, so the result's size is chosen by
//! the test. Not covered here: the firewall namespace set-up.

mod common;

use std::path::Path;
use std::time::Duration;

use bus_schema::result_budget;
use common::{wait_for, Stack};
use serde_json::json;

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `apt-get` prints `listing`; while `hold` exists it waits (bounded: 60 s)
/// before printing. `dpkg-query` knows no held package.
fn apt_doubles(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let listing = dir.join("listing.txt");
    let hold = dir.join("hold");
    write_exe(
        &dir.join("apt-get"),
        &format!(
            "#!/bin/sh\n\
             i=0\n\
             while [ -e {hold:?} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             cat {listing:?}\n"
        ),
    );
    write_exe(&dir.join("dpkg-query"), "#!/bin/sh\nexit 0\n");
    (listing, hold)
}

/// An `Inst` line for package `i`, about 600 bytes as a JSON item.
fn inst_line(i: usize) -> String {
    let name = format!("lib{i:05}-{}", "n".repeat(200));
    let origin = format!("Debian:12/{}", "o".repeat(300));
    format!("Inst {name} [1.0-{i}] (1.1-{i} {origin} [amd64])")
}

/// Every stored output line of a command, paging past the API's page size.
async fn all_output(stack: &Stack, id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut after = 0u64;
    for _ in 0..100 {
        let (code, out) = stack
            .get(&format!("/commands/{id}/output?after={after}"))
            .await;
        assert_eq!(code, 200, "{out}");
        let page = out["lines"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return lines;
        }
        for l in &page {
            after = l["seq"].as_u64().unwrap();
            lines.push(l["line"].as_str().unwrap().to_string());
        }
    }
    panic!("output of {id} did not end within 100 pages");
}

async fn scan(stack: &Stack, agent: &str) -> String {
    let (code, created) = stack
        .command(agent, &json!({"action": "pkg.scan", "params": {}}))
        .await;
    assert_eq!(code, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_budget_succeed_with_the_data_in_the_output() {
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("apt-doubles");
    let (listing, _) = apt_doubles(&dir);
    let host = stack
        .start_host_configured("h", &format!("pkg_programs_dir = {dir:?}"))
        .await;

    // ~400 KB (over the bus limit) and ~2 MB (over rootd's frame limit).
    for (n, at_least) in [(700usize, 256 * 1024), (3500, 1024 * 1024)] {
        let text: Vec<String> = (0..n).map(inst_line).collect();
        std::fs::write(&listing, text.join("\n") + "\n").unwrap();
        let id = scan(&stack, &host.id).await;
        let done = stack.wait_final(&id, Duration::from_secs(180)).await;
        assert_eq!(done["status"], "succeeded", "{n} packages: {done}");
        let marker = &done["result"];
        assert_eq!(marker["truncated"], true, "{marker}");
        assert_eq!(marker["in_output"], true, "{marker}");
        assert!(
            marker["bytes"].as_u64().unwrap() as usize > at_least,
            "{marker}"
        );
        assert!(result_budget::measure(marker) <= result_budget::MAX_RESULT_DATA_BYTES);
        assert_eq!(marker["preview"]["manager"], "apt", "{marker}");
        assert_eq!(marker["preview"]["upgradable"]["items"], n, "{marker}");

        // The full data, from the stored output.
        let lines = all_output(&stack, &id).await;
        let full = result_budget::reassemble(marker, &lines).expect("the data is in the output");
        let pkgs = full["upgradable"].as_array().unwrap();
        assert_eq!(pkgs.len(), n);
        assert!(pkgs[n - 1]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("lib{:05}-", n - 1)));
        assert_eq!(pkgs[7]["current"], "1.0-7");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_for_the_bus_ends_its_command_failed() {
    let stack = Stack::start().await;
    let dir = stack.tmp.path().join("apt-doubles");
    let (listing, hold) = apt_doubles(&dir);
    std::fs::write(&listing, inst_line(1) + "\n").unwrap();
    let host = stack
        .start_host_configured("h", &format!("pkg_programs_dir = {dir:?}"))
        .await;
    std::fs::write(&hold, "").unwrap();
    let id = scan(&stack, &host.id).await;
    wait_for("the command to run", Duration::from_secs(60), || async {
        let (_, v) = stack.get(&format!("/commands/{id}")).await;
        (v["status"] == "running").then_some(())
    })
    .await;

    // What an agent without the budget would send: a result message over
    // the bus limit, on the command's own subject, with the agent's
    // credentials.
    let nc = common::agent_client(&stack, &host).await;
    let big = vec![0x41u8; bus_schema::codec::MAX_MESSAGE_BYTES + 50_000];
    nc.publish(bus_schema::subjects::result(&host.id, &id), big.into())
        .await
        .unwrap();
    nc.flush().await.unwrap();

    let done = stack.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed", "{done}");
    let summary = done["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("over the bus limit"), "{done}");

    // The host's own readable result still replaces the inferred failure.
    std::fs::remove_file(&hold).unwrap();
    let replaced = wait_for("the host's result", Duration::from_secs(60), || async {
        let (_, v) = stack.get(&format!("/commands/{id}")).await;
        (v["status"] == "succeeded").then_some(v)
    })
    .await;
    assert_eq!(replaced["result"]["upgradable"][0]["current"], "1.0-1");
}
