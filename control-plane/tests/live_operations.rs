//! Live operations (`GET /api/v1/operations`, `drover ops`) against a real
//! stack: a real host running a held `app.install`, a host whose agent is
//! stopped holding queued user commands and a schedule's system command.
//! Checks the counts by action, source, origin and status, each filter,
//! that bad filters are refused by name, that finished commands leave the
//! view, and the CLI's `--json`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<String> {
    v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["command_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_operations_count_filter_and_drop_finished_commands() {
    let f = ops_fleet().await;
    let stack = &f.stack;

    // Everything open, counted by action, source, origin and status.
    let v = ops_view(stack, "").await;
    let c = &v["counts"];
    assert_eq!(c["total"], 4, "{v}");
    assert_eq!(
        c["by_action"],
        json!({"app.install": 1, "pkg.scan": 1, "sys.ping": 2}),
        "{v}"
    );
    assert_eq!(c["by_source"], json!({"system": 1, "user": 3}), "{v}");
    assert_eq!(c["by_origin"], json!({"schedule": 1, "user": 3}), "{v}");
    assert_eq!(c["by_status"]["running"], 1, "{v}");
    assert_eq!(c["by_status"]["queued"], 3, "{v}");
    assert_eq!(v["truncated"], false, "{v}");
    let ops = v["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "{v}");
    let scan = ops.iter().find(|o| o["action"] == "pkg.scan").unwrap();
    assert_eq!(scan["source"], "system", "{scan}");
    assert_eq!(scan["requested_by"], "schedule:nightly-scan", "{scan}");
    let (_, qa) = stack.get(&format!("/agents/{}", f.q.id)).await;
    assert_eq!(scan["hostname"], qa["hostname"], "{scan}");
    assert_eq!(scan["agent_id"], f.q.id.as_str(), "{scan}");
    assert!(
        scan["job_id"].as_str().is_some(),
        "a schedule's command belongs to a job: {scan}"
    );
    let install = ops
        .iter()
        .find(|o| o["command_id"] == f.install.as_str())
        .unwrap();
    assert_eq!(install["status"], "running", "{install}");
    assert_eq!(install["agent_id"], f.h.id.as_str(), "{install}");
    assert!(install["age_ms"].as_i64().unwrap() >= 0, "{install}");

    // Each filter narrows the list and the counts alike.
    let v = ops_view(stack, "?action=sys.ping").await;
    assert_eq!(v["counts"]["total"], 2, "{v}");
    let mut want = f.pings.clone();
    want.sort();
    let mut got = ids(&v);
    got.sort();
    assert_eq!(got, want);
    let v = ops_view(stack, "?source=system").await;
    assert_eq!(v["counts"]["total"], 1, "{v}");
    assert_eq!(v["operations"][0]["action"], "pkg.scan", "{v}");
    let v = ops_view(stack, "?source=user&status=queued").await;
    assert_eq!(v["counts"]["total"], 2, "{v}");
    let v = ops_view(stack, &format!("?agent={}", f.h.id)).await;
    assert_eq!(ids(&v), vec![f.install.clone()], "{v}");
    let v = ops_view(stack, &format!("?agent={}", f.q.id)).await;
    assert_eq!(v["counts"]["total"], 3, "{v}");
    // Both hosts run on this machine, so they share its hostname.
    let host = qa["hostname"].as_str().unwrap();
    let v = ops_view(stack, &format!("?agent={host}")).await;
    assert_eq!(v["counts"]["total"], 4, "by hostname: {v}");
    let glob: String = host.chars().take(1).chain("*".chars()).collect();
    let v = ops_view(stack, &format!("?agent={glob}")).await;
    assert_eq!(v["counts"]["total"], 4, "by a hostname glob: {v}");
    let v = ops_view(stack, "?agent=no-such-host").await;
    assert_eq!(v["counts"]["total"], 0, "{v}");
    // The limit bounds the list, not the counts.
    let v = ops_view(stack, "?limit=1").await;
    assert_eq!(v["operations"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["counts"]["total"], 4, "{v}");
    assert_eq!(v["truncated"], true, "{v}");

    // Bad filters: a 400 that names the value.
    for (q, says) in [
        ("?source=robot", "`source`"),
        ("?status=succeeded", "`status`"),
        ("?action=no.such", "`action`"),
        ("?limit=0", "`limit`"),
        ("?limit=abc", "`limit`"),
    ] {
        let (code, v) = stack.get(&format!("/operations{q}")).await;
        assert_eq!(code, 400, "{q}: {v}");
        assert!(v.to_string().contains(says), "{q}: {v}");
    }

    // The CLI: one JSON document with the same counts.
    let out = stack.drover(&["ops", "--json", "--source", "user"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["counts"]["total"], 3, "{cli}");
    assert_eq!(cli["counts"]["by_action"]["sys.ping"], 2, "{cli}");
    let out = stack.drover(&["ops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 running now: user 3, system 1"), "{text}");
    assert!(text.contains("system (schedule:nightly-scan)"), "{text}");
    let out = stack.drover(&["ops", "--status", "done"]);
    assert!(!out.status.success(), "a bad status is refused");

    // Finished commands leave the view: the install when its gate opens,
    // a ping when it is cancelled while queued.
    std::fs::write(&f.gate, "").unwrap();
    let done = stack.wait_final(&f.install, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let v = wait_ops_total(stack, 3).await;
    assert!(!ids(&v).contains(&f.install), "{v}");
    assert_eq!(v["counts"]["by_status"].get("running"), None, "{v}");
    let (code, c) = stack
        .post(&format!("/commands/{}/cancel", f.pings[0]), &json!({}))
        .await;
    assert_eq!(code, 200, "{c}");
    // The cancel is final at once; the view no longer holds the ping (a
    // `sys.cancel` to the host now waits in its place, in case it had it).
    let v = ops_view(stack, "?action=sys.ping").await;
    assert_eq!(ids(&v), vec![f.pings[1].clone()], "{v}");
    let v = ops_view(stack, "").await;
    assert!(!ids(&v).contains(&f.pings[0]), "{v}");
    assert_eq!(v["counts"]["by_action"]["pkg.scan"], 1, "{v}");
    let _ = (&f.q, &f.schedule);
}
