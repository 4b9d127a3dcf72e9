//! The inventory operators edit (issue 17 item 1), with real processes: a
//! real host (agent + rootd), the control plane, nats-server and SQLite.
//! Rename, label set/remove seen by job selectors at once, notes shown
//! escaped, bad input refused with a 400 that changes nothing, facts
//! refreshed from heartbeats (selectors follow a kernel upgrade), exact
//! matching unless a glob, decommissioning that revokes and keeps history,
//! and the audit rows of each, through both the API and the CLI.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PW: &str = "inventory-pass-1";

async fn patch(stack: &Stack, id: &str, body: Value) -> (u16, Value) {
    api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        reqwest::Method::PATCH,
        &format!("/agents/{id}"),
        Some(&body),
    )
    .await
}

fn cli_json(stack: &Stack, args: &[&str]) -> Value {
    let out = stack.drover(args);
    assert!(
        out.status.success(),
        "drover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "drover {args:?} printed no single JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The selector's JSON form, from its CLI text.
fn sel(text: &str) -> Value {
    serde_json::to_value(bus_schema::selector::Selector::parse(text).unwrap()).unwrap()
}

async fn matches(stack: &Stack, selector: &str) -> u64 {
    let (code, v) = stack.post("/jobs/preview", &sel(selector)).await;
    assert_eq!(code, 200, "{selector}: {v}");
    v["count"].as_u64().unwrap()
}

async fn audit_actions(stack: &Stack, id: &str) -> Vec<(String, Value)> {
    let (code, v) = stack.get("/audit").await;
    assert_eq!(code, 200, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == id)
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["detail"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_edit_the_inventory_and_selectors_follow() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("inv-1").await;
    let id = host.id.clone();
    let before = stack.get(&format!("/agents/{id}")).await.1;
    let hostname = before["hostname"].as_str().unwrap().to_string();

    // 1. Rename through the CLI (--json: one document), then clear.
    let v = cli_json(&stack, &["agents", "--json", "rename", &id, "db primary"]);
    assert_eq!(v["display_name"], "db primary", "{v}");
    assert_eq!(v["operator_name"], "db primary", "{v}");
    let (_, v) = stack.get("/agents").await;
    let row = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(row["display_name"], "db primary", "{row}");
    let v = cli_json(&stack, &["agents", "rename", &id, "--clear", "--json"]);
    assert_eq!(v["display_name"], Value::Null, "back to the host name: {v}");
    let (code, v) = patch(&stack, &id, json!({"display_name": "db primary"})).await;
    assert_eq!(code, 200, "{v}");

    // 2. Labels: set through the CLI; the agent's own stay, marked.
    assert_eq!(matches(&stack, "label:role=web").await, 0);
    let v = cli_json(
        &stack,
        &["agents", "--json", "label", &id, "env=prod", "role=web"],
    );
    assert_eq!(v["labels"]["env"], "prod", "{v}");
    assert_eq!(v["label_sources"]["role"], "operator", "{v}");
    assert_eq!(v["operator_labels"]["role"], "web", "{v}");
    // A job's selector sees the new label at once.
    assert_eq!(matches(&stack, "label:role=web").await, 1);
    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": sel("label:role=web"), "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["target_count"], 1, "{job}");
    let job_id = job["id"].as_str().unwrap().to_string();
    let done = stack.wait_job_done(&job_id, Duration::from_secs(60)).await;
    assert_eq!(done["done"], true, "{done}");
    // Removal (`key-` form) excludes the host right away.
    let v = cli_json(&stack, &["agents", "--json", "label", &id, "role-"]);
    assert!(v["labels"].get("role").is_none(), "{v}");
    assert_eq!(matches(&stack, "label:role=web").await, 0);
    assert_eq!(matches(&stack, "label:env=prod").await, 1);

    // 3. Notes, hostile text: stored as given, shown escaped.
    let notes = "<b>rack 4</b> & \"owner\"\nsecond line";
    let v = cli_json(&stack, &["agents", "--json", "notes", &id, notes]);
    assert_eq!(v["notes"], notes, "{v}");
    stack.add_user("ivy", "admin", PW);
    let s = stack.login("ivy", PW).await;
    let (code, html) = s.get_html(&format!("/agents/{id}")).await;
    assert_eq!(code, 200);
    assert!(!html.contains("<b>rack 4</b>"), "notes as markup: {html}");
    assert!(html.contains("&lt;b&gt;rack 4&lt;/b&gt; &amp;"), "{html}");
    assert!(html.contains("db primary"), "{html}");
    assert!(html.contains("data-source=\"operator\""), "{html}");

    // Bad input: 400, named, nothing changed.
    let now = stack.get(&format!("/agents/{id}")).await.1;
    for (body, says) in [
        (json!({"display_name": "a\u{7}b"}), "control"),
        (json!({"display_name": "x".repeat(65)}), "1..=64"),
        (json!({"labels": {"env": "pr od"}}), "env"),
        (
            json!({"labels": {"ok": "1"}, "remove_labels": ["no-such"]}),
            "no-such",
        ),
        (json!({"notes": "n".repeat(4001)}), "4000"),
        (json!({}), "nothing to change"),
    ] {
        let (code, v) = patch(&stack, &id, body.clone()).await;
        assert_eq!(code, 400, "{body}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(says),
            "{body}: {v}"
        );
    }
    let (code, v) = patch(&stack, &id, json!({"colour": "red"})).await;
    assert!((400..500).contains(&code), "{v}");
    let after = stack.get(&format!("/agents/{id}")).await.1;
    for k in ["display_name", "labels", "operator_labels", "notes"] {
        assert_eq!(now[k], after[k], "{k} changed by a refused edit");
    }
    let out = stack.drover(&["agents", "label", &id, "oops"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key=value"));

    // 5 + 6. Facts follow the heartbeat: the host "upgrades" its kernel.
    // The real agent is stopped; a heartbeat for it carries the new kernel.
    host.agent.stop();
    let hb = json!({
        "agent_id": id, "hostname": hostname, "seq": 1_000_000u64,
        "sent_at": bus_schema::now_ms(), "interval_secs": 30,
        "os": "Debian GNU/Linux 13", "kernel": "6.99.0-inv-amd64",
        "metrics": bus_schema::Metrics::default(),
    });
    let hb: bus_schema::Heartbeat = serde_json::from_value(hb).unwrap();
    let nc = stack.client().await;
    nc.publish(
        bus_schema::subjects::heartbeat(&id),
        bus_schema::encode(&hb).into(),
    )
    .await
    .unwrap();
    nc.flush().await.unwrap();
    wait_for(
        "the kernel selector to follow the heartbeat",
        Duration::from_secs(30),
        || async { (matches(&stack, "kernel:6.99.0-inv-amd64").await == 1).then_some(()) },
    )
    .await;
    // Exact unless a glob.
    assert_eq!(matches(&stack, "kernel:6.99.0").await, 0);
    assert_eq!(matches(&stack, "kernel:6.99.0*").await, 1);
    assert_eq!(matches(&stack, "os:debia").await, 0);
    assert_eq!(matches(&stack, "os:debia*").await, 1);
    assert_eq!(matches(&stack, "label:env=pro").await, 0);
    assert_eq!(matches(&stack, "label:env=pr?d").await, 1);

    // 4. Decommission: refused without --yes (nothing changed), then done.
    let out = stack.drover(&["agents", "remove", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(
        stack.get(&format!("/agents/{id}")).await.1["decommissioned_at"],
        Value::Null
    );
    let v = cli_json(&stack, &["agents", "--json", "remove", &id, "--yes"]);
    assert_eq!(v["status"], "decommissioned", "{v}");
    let (_, v) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(v["status"], "revoked", "{v}");
    assert!(v["decommissioned_at"].is_i64(), "{v}");
    assert!(v["decommissioned_by"].is_string(), "{v}");
    let (_, list) = stack.get("/agents").await;
    assert!(
        !list["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id),
        "still in the fleet: {list}"
    );
    assert_eq!(matches(&stack, "label:env=prod").await, 0);
    assert_eq!(matches(&stack, "all").await, 0);
    // History stays readable.
    let (code, j) = stack.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(code, 200, "{j}");
    let (code, cmds) = stack.get(&format!("/agents/{id}/commands")).await;
    assert_eq!(code, 200);
    assert!(!cmds["commands"].as_array().unwrap().is_empty(), "{cmds}");
    let (code, html) = s.get_html(&format!("/agents/{id}")).await;
    assert_eq!(code, 200);
    assert!(html.contains("Decommissioned"), "{html}");
    // A decommissioned host is not edited, and not removed twice.
    let (code, v) = patch(&stack, &id, json!({"notes": "x"})).await;
    assert_eq!(code, 409, "{v}");
    let (code, v) = stack
        .post(&format!("/agents/{id}/decommission"), &json!({}))
        .await;
    assert_eq!(code, 409, "{v}");

    // Audit: every change, by whom, with what.
    let rows = audit_actions(&stack, &id).await;
    let edits: Vec<&Value> = rows
        .iter()
        .filter(|(a, _)| a == "agent.edit")
        .map(|(_, d)| d)
        .collect();
    assert!(edits.len() >= 6, "{rows:?}");
    assert!(
        edits.iter().any(|d| d["labels"]["role"] == "web"),
        "{rows:?}"
    );
    assert!(
        edits.iter().any(|d| d["remove_labels"][0] == "role"),
        "{rows:?}"
    );
    assert!(
        edits.iter().any(|d| d["display_name"] == "db primary"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|(a, _)| a == "agent.decommission"),
        "{rows:?}"
    );
    assert!(
        !rows.iter().any(|(_, d)| d.to_string().contains("<b>rack")),
        "notes are not copied into the trail: {rows:?}"
    );
}

/// Item 6 on the wire crate's matcher itself: a label or fact matches its
/// whole value, case aside for facts, unless the operator wrote `*` or `?`.
#[test]
fn matching_is_exact_unless_a_glob() {
    use bus_schema::selector::{Selector, SelectorTarget};
    use std::collections::BTreeMap;
    struct T(&'static str, &'static str);
    impl SelectorTarget for T {
        fn agent_id(&self) -> &str {
            "U1"
        }
        fn hostname(&self) -> &str {
            "web-1"
        }
        fn labels(&self) -> BTreeMap<String, String> {
            BTreeMap::from([("env".to_string(), self.1.to_string())])
        }
        fn facts(&self) -> serde_json::Map<String, Value> {
            let mut m = serde_json::Map::new();
            m.insert("os".into(), Value::String(self.0.into()));
            m.insert("kernel".into(), Value::String("6.1.0-18-amd64".into()));
            m
        }
    }
    let like = T("debian-like", "production");
    let deb = T("debian", "prod");
    let m = |s: &str, t: &T| Selector::parse(s).unwrap().matches(t);
    assert!(!m("os:debian", &like) && m("os:debian", &deb));
    assert!(m("os:deb*", &like) && m("os:deb*", &deb));
    assert!(m("os:debian-lik?", &like));
    assert!(!m("label:env=prod", &like) && m("label:env=prod", &deb));
    assert!(m("label:env=prod*", &like));
    assert!(!m("kernel:6.1", &deb) && m("kernel:6.1*", &deb));
}
