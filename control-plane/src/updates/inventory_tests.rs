//! Unit tests of the inventory replacement over real SQLite: upserts,
//! `first_seen`, stale rows, failed / older / repeated scans, defaults for
//! results of older rootd versions.

use super::*;
use sea_orm::{ActiveModelTrait, DatabaseConnection, IntoActiveModel};
use serde_json::{json, Value};

use crate::updates::test_db as db;

fn scan(id: &str, created_at: i64, status: &str, result: Value) -> command::Model {
    command::Model {
        id: id.into(),
        agent_id: "A".into(),
        job_id: None,
        action: SCAN_ACTION.into(),
        params: "{}".into(),
        status: status.into(),
        requested_by: "t".into(),
        source: "user".into(),
        created_at,
        updated_at: created_at + 5,
        expires_at: created_at + 1000,
        timeout_secs: 30,
        exit_code: Some(0),
        summary: if status == "succeeded" {
            "ok".into()
        } else {
            "apt-get update failed: no network".into()
        },
        result: Some(result.to_string()),
        attempts: 1,
        finished_at: Some(created_at + 5),
        stream_seq: None,
        outcome_source: Some("reported".into()),
        inferred_status: None,
        inferred_summary: None,
        inferred_at: None,
    }
}

/// Stores the command row (as the ledger would have) and applies it.
async fn run(db: &DatabaseConnection, c: &command::Model) -> Applied {
    c.clone().into_active_model().insert(db).await.unwrap();
    apply_scan(db, c, c.created_at + 10).await.unwrap()
}

async fn rows(db: &DatabaseConnection) -> Vec<inventory::Model> {
    let mut v = inventory::Entity::find().all(db).await.unwrap();
    v.sort_by(|a, b| a.package.cmp(&b.package));
    v
}

async fn state(db: &DatabaseConnection) -> host_state::Model {
    host_state::Entity::find_by_id("A".to_string())
        .one(db)
        .await
        .unwrap()
        .expect("a patch state row")
}

fn pkg(name: &str, candidate: &str, security: bool) -> Value {
    json!({"name": name, "arch": "amd64", "current": "1.0", "candidate": candidate,
           "origin": "Debian:12/stable", "security": security, "severity": null,
           "advisories": if security { json!(["DSA-1-1"]) } else { json!([]) }, "held": false})
}

#[tokio::test]
async fn a_scan_replaces_the_hosts_inventory_and_keeps_first_seen_per_candidate() {
    let (_d, db) = db().await;
    let first = json!({"manager": "apt",
        "upgradable": [pkg("alpha", "1.1", false), pkg("beta", "2.0", true), pkg("gamma", "3", false)],
        "held": ["gamma"], "reboot": {"required": true, "packages": ["linux-image"]}});
    assert_eq!(
        run(&db, &scan("c1", 1000, "succeeded", first)).await,
        Applied::Replaced {
            upgradable: 3,
            security: 1
        }
    );
    let r = rows(&db).await;
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].package, "beta");
    assert!(r[1].security);
    assert_eq!(r[1].advisories, r#"["DSA-1-1"]"#);
    assert!(r[2].held, "listed in `held`");
    assert!(r
        .iter()
        .all(|x| x.first_seen == 1005 && x.scan_command_id == "c1"));
    let s = state(&db).await;
    assert_eq!((s.upgradable, s.security), (3, 1));
    assert_eq!(s.manager, "apt");
    assert!(s.reboot_required);
    assert_eq!(s.reboot_since, Some(1005));
    assert_eq!(s.reboot_packages, r#"["linux-image"]"#);

    // Second scan: alpha unchanged, beta has a new candidate, gamma gone.
    let second = json!({"manager": "apt",
        "upgradable": [pkg("alpha", "1.1", false), pkg("beta", "2.1", true)],
        "held": [], "reboot": {"required": true, "packages": []}});
    run(&db, &scan("c2", 2000, "succeeded", second)).await;
    let r = rows(&db).await;
    assert_eq!(
        r.iter().map(|x| x.package.as_str()).collect::<Vec<_>>(),
        ["alpha", "beta"],
        "the stale row is gone"
    );
    assert_eq!(r[0].first_seen, 1005, "same candidate: first seen kept");
    assert_eq!(r[0].last_seen, 2005);
    assert_eq!(
        r[1].first_seen, 2005,
        "a new candidate starts its own delay"
    );
    let s = state(&db).await;
    assert_eq!(s.upgradable, 2);
    assert_eq!(s.reboot_since, Some(1005), "still required since the first");
    assert_eq!(s.last_scan_command.as_deref(), Some("c2"));
}

#[tokio::test]
async fn older_repeated_and_failed_scans_leave_the_inventory_alone() {
    let (_d, db) = db().await;
    let newer = json!({"manager": "apt", "upgradable": [pkg("alpha", "1.1", false)]});
    run(&db, &scan("c5", 5000, "succeeded", newer)).await;
    let before = rows(&db).await;

    // Created before the applied one, finished after it: changes nothing.
    let older = json!({"manager": "apt", "upgradable": [pkg("zeta", "9", true)]});
    assert_eq!(
        run(&db, &scan("c4", 4000, "succeeded", older)).await,
        Applied::Stale
    );
    assert_eq!(rows(&db).await, before);
    // The same command again (a redelivery past the ledger): nothing.
    let c5 = command::Entity::find_by_id("c5".to_string())
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(apply_scan(&db, &c5, 9999).await.unwrap(), Applied::Stale);
    assert_eq!(state(&db).await.updated_at, 5010);

    // A failed scan: recorded, inventory kept.
    assert_eq!(
        run(&db, &scan("c6", 6000, "failed", Value::Null)).await,
        Applied::Failed
    );
    assert_eq!(rows(&db).await, before);
    let s = state(&db).await;
    assert_eq!(s.last_scan_status.as_deref(), Some("failed"));
    assert_eq!(
        s.last_scan_error.as_deref(),
        Some("apt-get update failed: no network")
    );
    assert_eq!(s.upgradable, 1, "counts stay with the rows");
    // A later success clears the error.
    run(
        &db,
        &scan("c7", 7000, "succeeded", json!({"upgradable": []})),
    )
    .await;
    let s = state(&db).await;
    assert_eq!(s.last_scan_status.as_deref(), Some("succeeded"));
    assert_eq!(s.last_scan_error, None);
    assert_eq!(s.manager, "apt", "a result without `manager` keeps it");
    assert!(rows(&db).await.is_empty());
}

#[tokio::test]
async fn results_of_older_rootd_versions_get_defaults() {
    let (_d, db) = db().await;
    // What rootd sent before severities, advisories and reboot existed.
    let old = json!({"manager": "apt", "upgradable": [
        {"name": "alpha", "current": "1.0", "candidate": "1.1", "origin": "x", "security": false, "held": false},
        {"name": "", "candidate": "1"},
        {"name": "bad\nname", "candidate": "1"}
    ], "held": []});
    assert_eq!(
        run(&db, &scan("c1", 1000, "succeeded", old)).await,
        Applied::Replaced {
            upgradable: 1,
            security: 0
        }
    );
    let r = rows(&db).await;
    assert_eq!(r[0].arch, "");
    assert_eq!(r[0].severity, None);
    assert_eq!(r[0].advisories, "[]");
    let s = state(&db).await;
    assert!(!s.reboot_required);
    assert_eq!(s.reboot_since, None);

    // A result that is not a scan report at all: a failed scan.
    assert_eq!(
        run(&db, &scan("c2", 2000, "succeeded", json!("nonsense"))).await,
        Applied::Failed
    );
    assert_eq!(rows(&db).await.len(), 1);
    // Not a scan: ignored.
    let mut other = scan("c3", 3000, "succeeded", json!({}));
    other.action = "pkg.install".into();
    assert_eq!(run(&db, &other).await, Applied::Ignored);
}

#[tokio::test]
async fn a_result_moved_to_the_output_waits_for_its_data() {
    let (_d, db) = db().await;
    run(
        &db,
        &scan(
            "c1",
            1000,
            "succeeded",
            json!({"upgradable": [pkg("alpha", "1.1", false)]}),
        ),
    )
    .await;
    let marker = json!({"truncated": true, "bytes": 70000, "in_output": true, "chunks": 5,
                        "preview": {"manager": "apt", "upgradable": {"items": 300}}});
    assert_eq!(
        run(&db, &scan("c2", 2000, "succeeded", marker)).await,
        Applied::Moved
    );
    assert_eq!(rows(&db).await.len(), 1, "the marker is not an empty scan");
    assert_eq!(state(&db).await.last_scan_command.as_deref(), Some("c1"));
}

#[tokio::test]
async fn a_scan_listing_more_than_a_host_holds_is_refused_and_changes_nothing() {
    let (_d, db) = db().await;
    let ok = json!({"manager": "apt", "upgradable": [pkg("alpha", "1.1", false)]});
    run(&db, &scan("c1", 1000, "succeeded", ok)).await;
    let before = rows(&db).await;
    let many: Vec<Value> = (0..=MAX_ROWS)
        .map(|i| pkg(&format!("p{i}"), "2", true))
        .collect();
    let flood = json!({"manager": "apt", "upgradable": many});
    assert_eq!(
        run(&db, &scan("c2", 2000, "succeeded", flood)).await,
        Applied::Failed
    );
    assert_eq!(rows(&db).await, before, "the previous inventory is kept");
    let s = state(&db).await;
    assert_eq!(s.last_scan_status.as_deref(), Some("failed"));
    assert!(
        s.last_scan_error
            .as_deref()
            .is_some_and(|e| e.contains("more than the 5000")),
        "{s:?}"
    );
}
