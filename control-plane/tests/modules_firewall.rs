//! The `firewall` module end to end, through the real stack: API → signed
//! command → NATS → agent → rootd → nft in a throw-away network namespace.
//!
//! Needs root (rootd acts for real), nftables and iproute2
//! (`scripts/test-deps/sysmods.sh`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_params_refused, sh, Stack};
use serde_json::{json, Value};

// ---------------------------------------------------------------- firewall

/// A network namespace that is deleted when the test ends, even on panic.
struct Netns(String);

impl Netns {
    fn create() -> Result<Self, String> {
        let name = format!(
            "drover-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add failed (no CAP_NET_ADMIN?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self(name))
    }

    /// Drover's table as nft itself shows it inside the namespace: the
    /// independent check of what rootd did.
    fn rules(&self) -> Vec<Value> {
        let out = sh(&[
            "ip", "netns", "exec", &self.0, "nft", "-j", "list", "table", "inet", "drover",
        ]);
        assert!(
            out.status.success(),
            "nft list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.get("rule").cloned())
            .collect()
    }

    fn chain(&self) -> Value {
        let out = sh(&[
            "ip", "netns", "exec", &self.0, "nft", "-j", "list", "table", "inet", "drover",
        ]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|i| i.get("chain").cloned())
            .expect("chain input")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `(verdict, protocol, port, source)` of a rule in nft's JSON.
fn shape(rule: &Value) -> (String, String, u64, Option<String>) {
    let mut out = (String::new(), String::new(), 0, None);
    for e in rule["expr"].as_array().unwrap() {
        if let Some(m) = e.get("match") {
            let p = &m["left"]["payload"];
            if p["field"] == "dport" {
                out.1 = p["protocol"].as_str().unwrap().to_string();
                out.2 = m["right"].as_u64().unwrap();
            } else if p["field"] == "saddr" {
                let r = &m["right"];
                out.3 = Some(match r.as_str() {
                    Some(a) => a.to_string(),
                    None => format!(
                        "{}/{}",
                        r["prefix"]["addr"].as_str().unwrap(),
                        r["prefix"]["len"]
                    ),
                });
            }
        } else if e.get("accept").is_some() {
            out.0 = "accept".into();
        } else if e.get("drop").is_some() {
            out.0 = "drop".into();
        }
    }
    out
}

fn host_has_drover_table() -> bool {
    let out = sh(&["nft", "list", "tables"]);
    String::from_utf8_lossy(&out.stdout).contains("table inet drover")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_rules_live_in_drovers_table_idempotently() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            println!("SKIPPED firewall test: {why}");
            return;
        }
    };
    let host_table_before = host_has_drover_table();
    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("fw", &format!("nft_netns = {:?}", ns.0))
        .await;
    let t = Duration::from_secs(60);

    // Nothing yet: list works without creating anything.
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["rules"], json!([]));

    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_port",
            json!({"port": 8080, "protocol": "tcp", "source": "10.0.0.0/8"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["changed"], true, "{done}");
    let h8080 = done["result"]["added"][0]["handle"]
        .as_u64()
        .expect("handle");

    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_service",
            json!({"service": "ssh"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let done = stack
        .run_final(
            &host.id,
            "firewall.deny_port",
            json!({"port": 53, "protocol": "udp"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // list: three rules with handles, as Drover understands them.
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let rules = done["result"]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 3, "{done}");
    assert!(rules
        .iter()
        .all(|r| r["handle"].as_u64().is_some() && r["managed"] == true));
    let r8080 = rules
        .iter()
        .find(|r| r["port"] == 8080)
        .expect("8080 listed");
    assert_eq!(r8080["handle"].as_u64(), Some(h8080));
    assert_eq!(r8080["source"], "10.0.0.0/8");
    assert_eq!(r8080["verdict"], "accept");
    assert_eq!(r8080["protocol"], "tcp");
    let r22 = rules.iter().find(|r| r["port"] == 22).expect("ssh listed");
    assert_eq!(r22["source"], Value::Null);
    assert!(r22["comment"].as_str().unwrap().contains("ssh"), "{r22}");
    let r53 = rules.iter().find(|r| r["port"] == 53).expect("53 listed");
    assert_eq!(
        (r53["protocol"].as_str(), r53["verdict"].as_str()),
        (Some("udp"), Some("drop"))
    );

    // Independently, with nft itself: the chain keeps policy accept, and the
    // rules are in Drover's order (sourced first, then drops, then accepts).
    let chain = ns.chain();
    assert_eq!(chain["policy"], "accept", "{chain}");
    assert_eq!(chain["hook"], "input");
    let seen: Vec<_> = ns.rules().iter().map(shape).collect();
    assert_eq!(
        seen,
        vec![
            (
                "accept".into(),
                "tcp".into(),
                8080,
                Some("10.0.0.0/8".into())
            ),
            ("drop".into(), "udp".into(), 53, None),
            ("accept".into(), "tcp".into(), 22, None),
        ]
    );

    // The same rule again (spelled with host bits set): still one rule.
    let done = stack
        .run_final(
            &host.id,
            "firewall.allow_port",
            json!({"port": 8080, "protocol": "tcp", "source": "10.1.2.3/8"}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["changed"], false, "{done}");
    assert_eq!(done["result"]["present"][0]["handle"].as_u64(), Some(h8080));
    assert_eq!(ns.rules().len(), 3);

    // Hostile or malformed params never get signed, and nothing changes.
    for bad in [
        json!({"port": 8080, "source": "10.0.0.1;reboot"}),
        json!({"port": 8080, "source": "$(id)"}),
        json!({"port": 8080, "source": "10.0.0.0/33"}),
        json!({"port": 0}),
        json!({"port": 70000}),
        json!({"port": 22, "protocol": "icmp"}),
        json!({"port": 22, "extra": "x"}),
    ] {
        assert_params_refused(&stack, &host, "firewall.allow_port", bad.clone()).await;
        assert_params_refused(&stack, &host, "firewall.deny_port", bad).await;
    }
    assert_params_refused(
        &stack,
        &host,
        "firewall.allow_service",
        json!({"service": "ssh;reboot"}),
    )
    .await;
    assert_params_refused(
        &stack,
        &host,
        "firewall.remove_rule",
        json!({"handle": "1; flush ruleset"}),
    )
    .await;
    assert_eq!(ns.rules().len(), 3);

    // remove_rule: only a handle of Drover's table; an unknown one changes nothing.
    let done = stack
        .run_final(
            &host.id,
            "firewall.remove_rule",
            json!({"handle": 99999}),
            t,
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"]
            .as_str()
            .unwrap()
            .contains("no rule with handle 99999"),
        "{done}"
    );
    assert_eq!(ns.rules().len(), 3);

    let done = stack
        .run_final(
            &host.id,
            "firewall.remove_rule",
            json!({"handle": h8080}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let done = stack
        .run_final(&host.id, "firewall.list", json!({}), t)
        .await;
    let rules = done["result"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{done}");
    assert!(rules.iter().all(|r| r["handle"].as_u64() != Some(h8080)));
    let seen: Vec<_> = ns.rules().iter().map(shape).collect();
    assert_eq!(
        seen,
        vec![
            ("drop".into(), "udp".into(), 53, None),
            ("accept".into(), "tcp".into(), 22, None),
        ]
    );

    // The host's own firewall was never touched.
    assert_eq!(host_has_drover_table(), host_table_before);
}

// ---------------------------------------------------------------- pkg
