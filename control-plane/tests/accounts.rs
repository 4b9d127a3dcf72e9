//! Accounts, roles, CSRF, API tokens and the audit trail, over real HTTP
//! against a real `drover serve` (and a real agent where a command runs).

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::json;

const PW: &str = "a-long-test-password";

#[tokio::test(flavor = "multi_thread")]
async fn login_roles_csrf_and_logout() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.add_user("olga", "operator", PW);
    stack.add_user("vic", "viewer", PW);

    // Wrong password: the login page again, no cookie.
    let r = stack.login_form("olga", "not-the-password", "").await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // Pages and the API need a login.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{}/fleet", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
    let r = anon
        .get(format!("{}/api/v1/agents", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let op = stack.login("olga", PW).await;
    assert!(op.cookie.starts_with("drover_session="));
    let cmd = json!({"action": "sys.ping"});
    let path = format!("/api/v1/agents/{}/commands", host.id);
    // A session write without the CSRF token is refused, and creates nothing.
    let (code, v) = op.send(Method::POST, &path, Some(&cmd), false).await;
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("CSRF"), "{v}");
    let mut forged = Session {
        http: op.http.clone(),
        base: op.base.clone(),
        cookie: op.cookie.clone(),
        csrf: "0".repeat(64),
    };
    let (code, _) = forged.send(Method::POST, &path, Some(&cmd), true).await;
    assert_eq!(code, 403);
    let (_, list) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    assert_eq!(list["commands"].as_array().unwrap().len(), 0);
    // With it, the operator runs a command.
    let (code, c) = op.send(Method::POST, &path, Some(&cmd), true).await;
    assert_eq!(code, 201, "{c}");
    let done = stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // ... but may not approve agents, make tokens or manage users.
    let (code, _) = op
        .send(Method::POST, "/api/v1/tokens", Some(&json!({})), true)
        .await;
    assert_eq!(code, 403);
    let (code, _) = op
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&json!({"name": "x", "role": "admin", "password": PW})),
            true,
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = op.get_html("/users").await;
    assert_eq!(code, 403);

    // A viewer reads, and nothing else.
    let vi = stack.login("vic", PW).await;
    let (code, v) = vi.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = vi.send(Method::POST, &path, Some(&cmd), true).await;
    assert_eq!(code, 403, "{v}");
    let (code, _) = vi
        .send(
            Method::POST,
            &format!("/api/v1/commands/{}/cancel", c["id"].as_str().unwrap()),
            None,
            true,
        )
        .await;
    assert_eq!(code, 403);
    let (code, html) = vi.get_html(&format!("/agents/{}", host.id)).await;
    assert_eq!(code, 200);
    assert!(
        !html.contains("id=\"run-form\""),
        "a viewer sees no run form"
    );

    // Logout ends the session for good.
    forged.csrf = vi.csrf.clone();
    forged.cookie = vi.cookie.clone();
    let (code, _) = vi.send(Method::POST, "/logout", None, true).await;
    assert_eq!(code, 303);
    let (code, _) = forged
        .send(Method::GET, "/api/v1/agents", None, false)
        .await;
    assert_eq!(code, 401);

    // An admin token is still accepted (bearer calls need no CSRF token).
    let (code, _) = stack.post("/tokens", &json!({"uses": 1})).await;
    assert_eq!(code, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_bound_to_a_role() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    let out = stack.drover(&["api-tokens", "create", "ci", "--role", "viewer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let token = text
        .lines()
        .find(|l| l.starts_with("drv_"))
        .expect("the token is printed once")
        .to_string();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{}/api/v1/agents/{}/commands", stack.base, host.id))
        .bearer_auth(&token)
        .json(&json!({"action": "sys.ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Listing never shows secrets; revoking cuts the token off.
    let (_, list) = stack.get("/api-tokens").await;
    assert!(!list.to_string().contains(&token));
    let id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = stack.drover(&["api-tokens", "revoke", &id]);
    assert!(out.status.success());
    let r = http
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited_per_user_and_address() {
    let stack = Stack::start().await;
    stack.add_user("olga", "operator", PW);
    stack.add_user("otto", "operator", PW);
    for _ in 0..5 {
        let r = stack.login_form("olga", "wrong-password-here", "").await;
        assert_eq!(r.status().as_u16(), 401);
    }
    // Now even the right password is refused for a while...
    let r = stack.login_form("olga", PW, "").await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("set-cookie").is_none());
    // ... for that user only.
    let r = stack.login_form("otto", PW, "").await;
    assert_eq!(r.status().as_u16(), 303);
    // A password typed into the user field never reaches the trail.
    let r = stack
        .login_form("correct-horse-typed-as-name", "x", "")
        .await;
    assert_eq!(r.status().as_u16(), 401);
    let (_, all) = stack.get("/audit?limit=1000").await;
    assert!(!all.to_string().contains("correct-horse"), "{all}");
    assert!(all.to_string().contains("(unknown user)"), "{all}");
    let (_, v) = stack.get("/audit?action=login").await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "login.failed").count(), 6);
    assert!(actions.contains(&"login.limited"));
    assert!(actions.contains(&"login"));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_trail_masks_secrets_and_detects_tampering() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.add_user("olga", "operator", PW);
    let op = stack.login("olga", PW).await;
    // An action with a sensitive parameter: its value never reaches the trail.
    let spec = bus_schema::catalogue::all()
        .iter()
        .find(|a| !a.sensitive.is_empty())
        .expect("an action with a sensitive parameter");
    let secret = "s3cr3t-value-never-logged";
    let mut params = serde_json::Map::new();
    params.insert(spec.sensitive[0].to_string(), json!(secret));
    let _ = op
        .send(
            Method::POST,
            &format!("/api/v1/agents/{}/commands", host.id),
            Some(&json!({"action": spec.name, "params": params})),
            true,
        )
        .await;
    let (code, c) = op
        .send(
            Method::POST,
            &format!("/api/v1/agents/{}/commands", host.id),
            Some(&json!({"action": "sys.ping"})),
            true,
        )
        .await;
    assert_eq!(code, 201);
    let (code, v) = stack.get("/audit?actor=olga").await;
    assert_eq!(code, 200);
    let entries = v["entries"].as_array().unwrap();
    let ping = entries
        .iter()
        .find(|e| e["detail"]["command_id"] == c["id"])
        .expect("the command is in the trail");
    assert_eq!(ping["action"], "command.create");
    assert_eq!(ping["target"], host.id.as_str());
    assert_eq!(ping["ip"], "127.0.0.1");
    assert!(entries.iter().any(|e| e["action"] == "login"));
    // The secret is nowhere: not in the API, the CSV export or the database.
    let all = stack.get("/audit?limit=1000").await.1.to_string();
    assert!(!all.contains(secret));
    let csv = reqwest::Client::new()
        .get(format!("{}/api/v1/audit?format=csv", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("id,at,actor,action,target,ip,detail,prev_hash,hash\n"));
    assert!(csv.contains("command.create"));
    assert!(!csv.contains(secret));
    let (code, _) = stack.get("/audit?since=yesterday").await;
    assert_eq!(code, 422);

    // The chain verifies...
    let out = stack.drover(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    // ... an edited row is found...
    let db = stack.db().await;
    let id = ping["id"].as_i64().unwrap();
    db.execute_unprepared(&format!(
        "UPDATE audit_log SET actor = 'mallory' WHERE id = {id}"
    ))
    .await
    .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&format!("entry {id}")), "{err}");
    assert!(err.contains("edited"), "{err}");
    db.execute_unprepared(&format!(
        "UPDATE audit_log SET actor = 'olga' WHERE id = {id}"
    ))
    .await
    .unwrap();
    assert!(stack.drover(&["audit", "verify"]).status.success());
    // ... and so is a deleted one.
    db.execute_unprepared("DELETE FROM audit_log WHERE id = 2")
        .await
        .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("entry 3") && err.contains("deleted"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_admin_from_init_and_totp() {
    let stack = Stack::start().await;
    // `drover init` made `admin` with a generated password; set a known one.
    let pwfile = stack.tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{PW}\n")).unwrap();
    let out = stack.drover(&[
        "users",
        "passwd",
        "admin",
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = stack.login("admin", PW).await;
    // Users from the UI, with the same rules.
    let (code, v) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&json!({"name": "bob", "role": "operator", "password": "short"})),
            true,
        )
        .await;
    assert_eq!(code, 422, "{v}");
    // The last admin cannot demote themselves.
    let (code, _) = admin
        .send(
            Method::POST,
            "/api/v1/users/admin/role",
            Some(&json!({"role": "viewer"})),
            true,
        )
        .await;
    assert_eq!(code, 409);

    // TOTP: start, confirm with a real code, then logins need it.
    let (code, t) = admin
        .send(Method::POST, "/api/v1/account/totp", None, true)
        .await;
    assert_eq!(code, 200, "{t}");
    let secret = t["secret"].as_str().unwrap().to_string();
    assert!(t["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let totp = control_plane::auth::totp_for(&secret, "admin").unwrap();
    let (code, v) = admin
        .send(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&json!({"code": "000000"})),
            true,
        )
        .await;
    // (One chance in a million that 000000 is the current code.)
    assert_eq!(code, 422, "{v}");
    let (code, v) = admin
        .send(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&json!({"code": totp.generate_current().unwrap()})),
            true,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let r = stack.login_form("admin", PW, "").await;
    assert_eq!(r.status().as_u16(), 401);
    let r = stack.login_form("admin", PW, "123456x").await;
    assert_eq!(r.status().as_u16(), 401);
    let r = stack
        .login_form("admin", PW, &totp.generate_current().unwrap())
        .await;
    assert_eq!(r.status().as_u16(), 303);
    // The secret is not in the database's audit trail.
    let (_, v) = stack.get("/audit?limit=1000").await;
    assert!(!v.to_string().contains(&secret));
    assert!(v.to_string().contains("account.totp_enable"));
}

/// The fleet page filters, sorts, counts and pages in SQL: with 10,000
/// agents it renders one page of 50 with the right counts. (How long that
/// takes is printed, not asserted: tests do not time things.)
#[tokio::test(flavor = "multi_thread")]
async fn fleet_page_counts_filters_and_pages_ten_thousand_agents() {
    use control_plane::db::entities::agent;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let stack = Stack::start().await;
    let db = stack.db().await;
    let now = bus_schema::now_ms();
    let rows: Vec<agent::ActiveModel> = (0..10_000)
        .map(|i| agent::ActiveModel {
            id: Set(format!("AGENT{i:05}")),
            hostname: Set(format!("web-{i:05}")),
            status: Set(if i % 10 == 0 { "offline" } else { "online" }.into()),
            machine_id: Set(format!("m{i}")),
            facts: Set("{}".into()),
            token_id: Set(None),
            approved_by: Set(None),
            revoked_at: Set(None),
            first_seen: Set(now),
            last_seen: Set(now - i as i64),
            last_seq: Set(0),
            // The control plane's sweep marks an online agent offline once
            // `heartbeat_secs * 3` passes without a heartbeat: with 5 s the
            // oldest rows (last seen up to 10 s before `now`) went offline
            // 5 s into the test and changed the counts asserted below.
            heartbeat_secs: Set(3600),
            os: Set("linux".into()),
            kernel: Set("6".into()),
            agent_version: Set("0".into()),
            metrics: Set(r#"{"cpu_percent":12.5,"mem_used_bytes":1,"mem_total_bytes":4,"disk_used_bytes":1,"disk_total_bytes":2}"#.into()),
            modules: Set("[]".into()),
            operations: Set("[]".into()),
            rootd_error: Set(None),
            display_name: Set(None),
            boot_id: Set(None),
            booted_at: Set(None),
            agent_channel: Set(String::new()),
            protocol_version: Set(1),
            labels: Set(format!(r#"{{"rack":"r{}"}}"#, i % 40)),
        })
        .collect();
    for chunk in rows.chunks(500) {
        agent::Entity::insert_many(chunk.to_vec())
            .exec(&db)
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let get = |q: &'static str| {
        let http = http.clone();
        let url = format!("{}/fleet{q}", stack.base);
        let token = stack.token.clone();
        async move {
            let t = std::time::Instant::now();
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            (r.text().await.unwrap(), t.elapsed())
        }
    };
    let (html, took) = get("").await;
    eprintln!("fleet page, 10,000 agents: {took:?}");
    assert!(html.contains("<b>10000</b><span>all agents</span>"));
    assert!(html.contains("id=\"count-online\"><b>9000</b>"));
    assert!(html.contains("10000 agents · page 1 of 200"));
    assert_eq!(html.matches("<tr data-id=").count(), 50);
    let (html, took) = get("?q=web-099&status=offline&sort=last_seen&dir=desc").await;
    eprintln!("fleet page, search + filter + sort: {took:?}");
    // web-09900, 09910, ..., 09990: 10 offline hosts match.
    assert!(html.contains("10 agents · page 1 of 1"), "{html}");
    let (html, _) = get("?page=200").await;
    assert!(html.contains("web-09999"));
    assert!(html.contains("page 200 of 200"));
}

/// Approving an agent needs an admin; the approval is in the trail with who
/// did it and from where.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_need_an_admin_and_are_audited() {
    let stack = Stack::start().await;
    stack.add_user("olga", "operator", PW);
    stack.add_user("ada", "admin", PW);
    let token = stack.token(1, "1h", false).await;
    let host = stack
        .start_host_with("h1", &token, &random_machine_id())
        .await;
    wait_for(
        "the agent to be pending",
        Duration::from_secs(30),
        || async {
            let (_, v) = stack.get(&format!("/agents/{}", host.id)).await;
            (v["status"] == "pending").then_some(())
        },
    )
    .await;
    let path = format!("/api/v1/agents/{}/approve", host.id);
    let op = stack.login("olga", PW).await;
    let (code, _) = op.send(Method::POST, &path, None, true).await;
    assert_eq!(code, 403);
    let admin = stack.login("ada", PW).await;
    let (code, v) = admin.send(Method::POST, &path, None, true).await;
    assert_eq!(code, 200, "{v}");
    stack.wait_online(&host.id).await;
    let (_, v) = stack.get("/audit?action=agent").await;
    let e = &v["entries"][0];
    assert_eq!(e["action"], "agent.approve", "{v}");
    assert_eq!(e["actor"], "ada");
    assert_eq!(e["target"], host.id.as_str());
    assert_eq!(e["ip"], "127.0.0.1");
}

/// A session ends after an hour without requests, and after 12 hours in any
/// case; the database holds only a hash of the cookie.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_expire_when_idle_or_old() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let stack = Stack::start().await;
    stack.add_user("vic", "viewer", PW);
    let db = stack.db().await;
    let a = stack.login("vic", PW).await;
    let b = stack.login("vic", PW).await;
    let token = a.cookie.trim_start_matches("drover_session=").to_string();
    let rows = control_plane::db::entities::session::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|s| s.id != token && s.csrf_token.len() == 64));
    assert!(rows
        .iter()
        .any(|s| s.id == control_plane::auth::hash_token(&token)));
    // Idle for over an hour: gone.
    db.execute_unprepared(&format!(
        "UPDATE sessions SET last_seen = last_seen - 3700000 WHERE id = '{}'",
        control_plane::auth::hash_token(&token)
    ))
    .await
    .unwrap();
    let (code, _) = a.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 401);
    // Older than 12 hours, however active: gone too.
    let (code, _) = b.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 200);
    db.execute_unprepared("UPDATE sessions SET expires_at = 1")
        .await
        .unwrap();
    let (code, _) = b.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 401);
    assert_eq!(
        control_plane::db::entities::session::Entity::find()
            .count(&db)
            .await
            .unwrap(),
        0
    );
}
