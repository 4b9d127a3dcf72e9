//! Patch inventory and approvals end to end: a real `pkg.scan` on a real
//! agent + rootd fills the inventory from the local APT repository of
//! `common::apt_repo` (alpha 1.0→1.1, beta 1.0→2.0 from a security origin);
//! a later scan after a real install drops the stale row; the updates API
//! lists it by package and by host; approvals, declines, expiry,
//! revocation and auto-approval rules decide what `approved_for` hands to
//! maintenance windows; bad input is refused with 4xx and stores nothing;
//! every write is audited; the Updates page renders (a hostile package name
//! as text); `drover updates ... --json` parses. Does not install anything
//! and does not test windows (their own test does).

mod common;

use std::time::Duration;

use common::*;
use control_plane::db::entities::agent;
use control_plane::updates::approvals::{approved_for, DAY_MS};
use control_plane::updates::entities::inventory;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
use serde_json::{json, Value};

const PW: &str = "correct horse battery staple";
const HOSTILE: &str = "<script>alert(1)</script>";

const ALPHA: &str = "drover-test-alpha";
const BETA: &str = "drover-test-beta";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_inventory_approvals_rules_page_and_cli() {
    let stack = Stack::start().await;
    let repo = AptRepo::build(&stack.tmp.path().join("apt-repo"));
    let host = stack
        .start_host_configured("upd", &repo.rootd_extra())
        .await;
    stack.wait_online(&host.id).await;
    let t = Duration::from_secs(300);

    // Before any scan: the host is listed, never scanned, nothing pending.
    let (code, v) = stack.get("/updates/hosts").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["hosts"][0]["agent_id"], host.id.as_str(), "{v}");
    assert_eq!(v["hosts"][0]["last_scan_at"], Value::Null, "{v}");
    assert_eq!(stack.get("/updates").await.1["total"], 0);

    // A real scan of the fixture's repositories: exactly its two upgrades,
    // and the reboot the fixture asks for.
    repo.set_reboot_required(&[BETA]);
    let scan1 = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan1["status"], "succeeded", "{scan1}");
    let mine = host_updates(&stack, &host.id).await;
    let rows = mine["updates"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{mine}");
    // Security first.
    let (beta, alpha) = (&rows[0], &rows[1]);
    assert_eq!(
        (
            &beta["package"],
            &beta["current"],
            &beta["candidate"],
            &beta["security"]
        ),
        (&json!(BETA), &json!("1.0"), &json!("2.0"), &json!(true)),
        "{mine}"
    );
    assert_eq!(beta["origin"], "DroverTest-Security:stable-security");
    assert_eq!(
        (
            &alpha["package"],
            &alpha["current"],
            &alpha["candidate"],
            &alpha["security"],
            &alpha["arch"]
        ),
        (
            &json!(ALPHA),
            &json!("1.0"),
            &json!("1.1"),
            &json!(false),
            &json!("all")
        ),
        "{mine}"
    );
    assert!(rows.iter().all(|r| r["decision"] == "pending"), "{mine}");
    let state = &mine["state"];
    assert_eq!(state["last_scan_status"], "succeeded", "{mine}");
    assert_eq!(state["manager"], "apt");
    assert_eq!(state["last_scan_command"], scan1["id"]);
    assert_eq!(state["reboot_required"], true, "{mine}");
    assert_eq!(state["reboot_packages"], json!([BETA]));
    let (_, by_host) = stack.get("/updates/hosts").await;
    let h0 = &by_host["hosts"][0];
    assert_eq!(
        (&h0["pending"], &h0["security"], &h0["reboot_required"]),
        (&json!(2), &json!(1), &json!(true)),
        "{by_host}"
    );

    // By package: security first; the filters.
    let (_, all) = stack.get("/updates").await;
    let names: Vec<&str> = all["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["package"].as_str().unwrap())
        .collect();
    assert_eq!(names, [BETA, ALPHA], "{all}");
    assert_eq!(all["updates"][0]["hosts"], 1);
    assert_eq!(all["updates"][0]["approval"]["state"], "pending");
    let (_, sec) = stack.get("/updates?security=true").await;
    assert_eq!(sec["total"], 1, "{sec}");
    let (_, none_matched) = stack.get("/updates?selector=host:no-such-host").await;
    assert_eq!(none_matched["total"], 0, "{none_matched}");
    let (code, _) = stack.get("/updates?selector=label:").await;
    assert_eq!(code, 400);

    let db = stack.db().await;
    let h: agent::Model = agent::Entity::find_by_id(host.id.clone())
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let now = bus_schema::now_ms();
    assert!(
        approved(&db, &h, now).await.is_empty(),
        "nothing approved yet"
    );

    // Rules: security updates at once; everything after 3 days.
    let (code, r1) = stack
        .post(
            "/updates/rules",
            &json!({"name": "sec-now", "scope": "security", "selector": {"all": true}, "delay_days": 0}),
        )
        .await;
    assert_eq!(code, 201, "{r1}");
    let (code, r2) = stack
        .post(
            "/updates/rules",
            &json!({"name": "all-later", "scope": "all", "selector": "all", "delay_days": 3}),
        )
        .await;
    assert_eq!(code, 201, "{r2}");
    let now = bus_schema::now_ms();
    assert_eq!(
        approved(&db, &h, now).await,
        [(BETA.to_string(), "rule:sec-now".to_string())],
        "alpha's delay has not passed"
    );
    let d = decisions(&stack, &host.id).await;
    assert_eq!(d[BETA], ("approved".into(), json!("rule:sec-now")));
    assert_eq!(d[ALPHA].0, "pending");
    let alpha_row = &host_updates(&stack, &host.id).await["updates"][1];
    assert_eq!(
        alpha_row["auto_approve_at"].as_i64(),
        alpha_row["first_seen"].as_i64().map(|f| f + 3 * DAY_MS),
        "{alpha_row}"
    );
    assert_eq!(
        approved(&db, &h, now + 4 * DAY_MS).await,
        [
            (ALPHA.to_string(), "rule:all-later".to_string()),
            (BETA.to_string(), "rule:sec-now".to_string())
        ]
    );
    // Disabled, then removed.
    let r1_id = r1["id"].as_str().unwrap();
    let (code, v) = call(
        &stack,
        reqwest::Method::PUT,
        &format!("/updates/rules/{r1_id}"),
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!((code, &v["enabled"]), (200, &json!(false)), "{v}");
    assert!(
        approved(&db, &h, bus_schema::now_ms()).await.is_empty(),
        "disabled"
    );
    let (code, v) = call(
        &stack,
        reqwest::Method::DELETE,
        &format!("/updates/rules/{r1_id}"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = call(
        &stack,
        reqwest::Method::DELETE,
        &format!("/updates/rules/{r1_id}"),
        None,
    )
    .await;
    assert_eq!(code, 404);

    // Approve alpha at its candidate, expiring in an hour; another version
    // covers nothing.
    let now = bus_schema::now_ms();
    let expires = now + 3_600_000;
    let (code, other) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "approve", "scope": "package", "package": ALPHA, "version": "9.9", "selector": {"all": true}}),
        )
        .await;
    assert_eq!(code, 201, "{other}");
    assert!(approved(&db, &h, now).await.is_empty(), "another version");
    let (code, a1) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "approve", "scope": "package", "package": ALPHA,
                    "version": "1.1", "selector": {"all": true},
                    "note": "<b>monthly</b>", "expires_at": expires}),
        )
        .await;
    assert_eq!(code, 201, "{a1}");
    assert_eq!(a1["state"], "active");
    let admin = a1["created_by"].as_str().unwrap().to_string();
    let got = approved_for(&db, &h, now).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].package.as_str(),
            got[0].version.as_str(),
            got[0].approved_by.as_str()
        ),
        (ALPHA, "1.1", admin.as_str())
    );
    assert_eq!(got[0].approval_id.as_deref(), a1["id"].as_str());
    assert!(
        approved(&db, &h, expires).await.is_empty(),
        "expired at its expiry (the rule's 3 days not yet passed)"
    );
    assert_eq!(decisions(&stack, &host.id).await[ALPHA].0, "approved");

    // A decline wins over the approval and the rule; revoking it brings
    // the approval back.
    let (code, d1) = stack
        .post(
            "/updates/approvals",
            &json!({"decision": "decline", "scope": "package", "package": ALPHA,
                    "selector": format!("id:{}", host.id)}),
        )
        .await;
    assert_eq!(code, 201, "{d1}");
    assert!(approved(&db, &h, now).await.is_empty());
    assert_eq!(
        approved(&db, &h, now + 4 * DAY_MS).await,
        [(BETA.to_string(), "rule:all-later".to_string())],
        "a decline beats the rule too"
    );
    assert_eq!(decisions(&stack, &host.id).await[ALPHA].0, "declined");
    let d1_id = d1["id"].as_str().unwrap();
    let (code, r) = stack
        .post(&format!("/updates/approvals/{d1_id}/revoke"), &json!({}))
        .await;
    assert_eq!((code, &r["state"]), (200, &json!("revoked")), "{r}");
    let (code, _) = stack
        .post(&format!("/updates/approvals/{d1_id}/revoke"), &json!({}))
        .await;
    assert_eq!(code, 409, "revoked once");
    assert_eq!(
        approved(&db, &h, now).await,
        [(ALPHA.to_string(), admin.clone())]
    );

    // Bad input: refused with 4xx, nothing stored.
    assert_updates_input_refused(&stack).await;
    let base = json!({"decision": "approve", "scope": "package", "package": "curl", "selector": {"all": true}});
    let (_, rules) = stack.get("/updates/rules").await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "{rules}");

    // Audited, with what was decided.
    let (_, audit) = stack.get("/audit?limit=200").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "update.approve",
        "update.decline",
        "update.approval_revoke",
        "update.rule_add",
        "update.rule_change",
        "update.rule_remove",
    ] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
    let e = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "update.approve")
        .unwrap();
    assert_eq!(e["target"], a1["id"], "{e}");

    // The page: a viewer sees it (no forms), text escaped.
    inventory::Model {
        agent_id: host.id.clone(),
        package: HOSTILE.into(),
        arch: "all".into(),
        current_version: "1".into(),
        candidate_version: "2".into(),
        origin: HOSTILE.into(),
        security: true,
        severity: Some("Critical".into()),
        advisories: format!("[\"{}\"]", "DSA-<i>1</i>"),
        held: false,
        first_seen: 1,
        last_seen: 1,
        scan_command_id: "x".into(),
    }
    .into_active_model()
    .insert(&db)
    .await
    .unwrap();
    stack.add_user("vic", "viewer", PW);
    let viewer = stack.login("vic", PW).await;
    let (code, _) = viewer
        .send(
            reqwest::Method::POST,
            "/api/v1/updates/approvals",
            Some(&base),
            true,
        )
        .await;
    assert_eq!(code, 403, "viewers do not approve");
    stack.add_user("ada", "operator", PW);
    let s = stack.login("ada", PW).await;
    for path in [
        "/updates",
        "/updates?view=hosts",
        &format!("/agents/{}", host.id),
        "/fleet",
    ] {
        let (code, html) = s.get_html(path).await;
        assert_eq!(code, 200, "{path}");
        assert!(
            !html.contains(HOSTILE) && !html.contains("<i>1</i>") && !html.contains("<b>monthly"),
            "{path} shows markup from the database"
        );
    }
    let (_, html) = s.get_html("/updates").await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the hostile name shows as text"
    );
    assert!(
        html.contains("Approve all security updates") && html.contains(ALPHA),
        "forms and rows"
    );
    assert!(html.contains("data-api=\"/api/v1/updates/approvals\""));
    let (_, html) = viewer.get_html("/updates").await;
    assert!(
        !html.contains("Approve all security updates"),
        "no forms for viewers"
    );
    let (_, fleet) = s.get_html("/fleet").await;
    assert!(
        fleet.contains("id=\"count-security-updates\""),
        "fleet counts"
    );
    // The page's own form, as the browser sends it (CSRF header, CLI
    // selector, expiry in days turned into ms by app.js).
    let (code, v) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/updates/approvals",
            Some(
                &json!({"decision": "approve", "scope": "security", "selector": "all",
                         "expires_at": bus_schema::now_ms() + DAY_MS, "note": ""}),
            ),
            true,
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let (code, _) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/updates/approvals",
            Some(&base),
            false,
        )
        .await;
    assert_eq!(code, 403, "no CSRF token, no change");

    // The CLI's --json answers parse and say the same.
    assert_updates_cli(&stack, &host.id, HOSTILE);

    // A real install of alpha's candidate, then a scan: alpha's row is
    // gone, beta's keeps its first_seen (same candidate), the hostile row
    // no scan listed is gone, and the reboot is no longer required.
    let beta_first = host_updates(&stack, &host.id).await["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["package"] == BETA)
        .unwrap()["first_seen"]
        .clone();
    let done = stack
        .run_final(
            &host.id,
            "pkg.install",
            json!({"packages": ["drover-test-alpha=1.1"]}),
            t,
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    repo.clear_reboot_required();
    let scan3 = stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    assert_eq!(scan3["status"], "succeeded", "{scan3}");
    let after = host_updates(&stack, &host.id).await;
    let left: Vec<&str> = after["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["package"].as_str().unwrap())
        .collect();
    assert_eq!(left, [BETA], "{after}");
    assert_eq!(after["updates"][0]["first_seen"], beta_first);
    assert_eq!(after["state"]["reboot_required"], false, "{after}");
    assert_eq!(after["state"]["reboot_since"], Value::Null);
    assert_eq!(after["state"]["last_scan_command"], scan3["id"]);
    assert!(
        approved(&db, &h, bus_schema::now_ms())
            .await
            .iter()
            .all(|(p, _)| p != ALPHA),
        "nothing left to approve for alpha"
    );

    // Stop rootd before the fixture purges the packages.
    drop(host);
    drop(repo);
    assert_eq!(common::apt_repo::dpkg_installed_version(ALPHA), None);
}

/// A scan result over the bus's budget arrives as a marker with the data in
/// the command's output (`bus_schema::result_budget`); the inventory is
/// filled from the output all the same. The package tools are test doubles
/// (rootd's `pkg_programs_dir`) so the result's size is the test's choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_too_large_for_the_bus_still_fills_the_inventory() {
    let stack = Stack::start().await;
    let extra = apt_listing_doubles(&stack.tmp.path().join("apt-doubles"), 300);
    let host = stack.start_host_configured("big", &extra).await;
    let done = stack
        .run_final(&host.id, "pkg.scan", json!({}), Duration::from_secs(180))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["truncated"], true, "over the budget: {done}");
    let v = wait_for(
        "the moved scan result in the inventory",
        Duration::from_secs(60),
        || async {
            let v = host_updates(&stack, &host.id).await;
            (v["state"]["last_scan_command"] == done["id"]).then_some(v)
        },
    )
    .await;
    let rows = v["updates"].as_array().unwrap();
    assert_eq!(rows.len(), 300, "{}", v["state"]);
    assert_eq!(v["state"]["last_scan_status"], "succeeded");
    assert!(rows
        .iter()
        .any(|r| r["current"] == "1.0-7" && r["candidate"] == "1.1-7"));
}

/// Results arrive at least once and in any order: a scan's result that
/// arrives after a newer scan's, and a result delivered again with other
/// data, change nothing. The agent is stopped and its results are
/// published with its own credentials and key, as it would send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_and_repeated_scan_results_change_nothing() {
    let stack = Stack::start().await;
    let mut host = stack.start_host("order").await;
    stack.wait_online(&host.id).await;
    host.agent.stop();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (code, c) = stack
            .command(&host.id, &json!({"action": "pkg.scan"}))
            .await;
        assert_eq!(code, 201, "{c}");
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let (older, newer) = (&ids[0], &ids[1]);
    let names = |v: &Value| -> Vec<String> {
        let u = v["updates"].as_array().unwrap();
        u.iter()
            .map(|r| r["package"].as_str().unwrap().to_string())
            .collect()
    };
    publish_scan_result(&stack, &host, newer, &[("new-a", "2"), ("new-b", "3")]).await;
    let v = host_updates(&stack, &host.id).await;
    assert_eq!(
        (names(&v), &v["state"]["last_scan_command"]),
        (vec!["new-a".into(), "new-b".into()], &json!(newer))
    );
    // The older scan ends (its command is stored) but its list is not.
    publish_scan_result(&stack, &host, older, &[("old-z", "9")]).await;
    assert_eq!(
        stack.get(&format!("/commands/{older}")).await.1["status"],
        "succeeded"
    );
    // The newer one again, with other data: the first report stands.
    publish_scan_result(&stack, &host, newer, &[("replayed", "1")]).await;
    let after = host_updates(&stack, &host.id).await;
    assert_eq!(after, v, "nothing changed");
}

/// The Updates page's forms in a real browser (headless Chromium): the
/// approve and decline buttons of one row's form, an expiry typed in days
/// and kept through the page's live refreshes, a rule disabled from its
/// row. Checked through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_updates_page_in_a_browser() {
    let stack = Stack::start().await;
    let extra = apt_listing_doubles(&stack.tmp.path().join("apt-doubles"), 2);
    let host = stack.start_host_configured("web", &extra).await;
    let t = Duration::from_secs(120);
    assert_eq!(
        stack.run_final(&host.id, "pkg.scan", json!({}), t).await["status"],
        "succeeded"
    );
    let (code, rule) = stack
        .post(
            "/updates/rules",
            &json!({"name": "later", "scope": "all", "selector": "all", "delay_days": 3}),
        )
        .await;
    assert_eq!(code, 201, "{rule}");
    stack.add_user("ops", "operator", PW);
    let b = Chrome::start().await;
    b.login(&stack.base, "ops", PW).await;
    b.c()
        .goto(&format!("{}/updates", stack.base))
        .await
        .unwrap();
    let row = |i: usize| format!("tr[data-package^='lib{i:05}-'] form");
    // Typed, then the page refreshes its live regions (a scan's event),
    // then sent: what was typed is still there.
    b.type_into(&format!("{} input[name=expires_at]", row(0)), "3")
        .await;
    b.wait_text("#live", "live").await;
    let c = b.c();
    c.execute(
        "document.querySelector('#approvals-wrap').dataset.old = '1'",
        vec![],
    )
    .await
    .unwrap();
    stack.run_final(&host.id, "pkg.scan", json!({}), t).await;
    wait_for(
        "the page's live refresh",
        Duration::from_secs(30),
        || async move {
            let old = "return !!document.querySelector('#approvals-wrap[data-old]')";
            (c.execute(old, vec![]).await.ok()? == json!(false)).then_some(())
        },
    )
    .await;
    b.click(&format!("{} button[value=approve]", row(0))).await;
    b.wait_text("#approvals-wrap", "= 1.1-0").await;
    b.click(&format!("{} button[value=decline]", row(1))).await;
    b.wait_text("#approvals-wrap", "declined").await;
    let (_, v) = stack.get("/updates/approvals").await;
    let list = v["approvals"].as_array().unwrap();
    let approve = list.iter().find(|a| a["decision"] == "approve").unwrap();
    let left = approve["expires_at"].as_i64().unwrap() - approve["created_at"].as_i64().unwrap();
    assert!(
        (3 * DAY_MS - 60_000..=3 * DAY_MS).contains(&left),
        "3 days: {approve}"
    );
    assert_eq!(
        (&approve["version"], &approve["selector"]),
        (&json!("1.1-0"), &json!({"all": true}))
    );
    let decline = list.iter().find(|a| a["decision"] == "decline").unwrap();
    assert_eq!(
        (&decline["expires_at"], &decline["version"]),
        (&Value::Null, &json!("1.1-1")),
        "{decline}"
    );
    b.click("#rules-wrap form button").await;
    b.wait_text("#rules-wrap", "Enable").await;
    assert_eq!(
        stack.get("/updates/rules").await.1["rules"][0]["enabled"],
        false
    );
}
