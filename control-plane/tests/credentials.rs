//! Credentials that expire and renew, with real processes: agent JWTs with
//! a life of a few seconds renewed by a real agent while a command runs
//! (it completes exactly once), an agent stopped past its JWT's expiry
//! re-authenticating with its key and no token, a revoked one refused,
//! forged and replayed renewal requests refused on the real broker; API
//! tokens that expire and record their last use through the real API, CLI
//! and page.

mod common;

use std::path::Path;
use std::time::Duration;

use bus_schema::credentials::{jwt_times, renew_subject, RenewReply, RenewRequest, RenewStatus};
use common::{gated_stack, wait_for, Host, Stack};
use futures::StreamExt;
use serde_json::{json, Value};

/// The agent's credentials as `GET /api/v1/agents/{id}` shows them.
async fn creds(stack: &Stack, id: &str) -> Value {
    let (code, v) = stack.get(&format!("/agents/{id}")).await;
    assert_eq!(code, 200, "{v}");
    v["credentials"].clone()
}

/// The expiry (s since the epoch) of the JWT the agent keeps on disk.
fn stored_exp(state_dir: &Path) -> i64 {
    let jwt = std::fs::read_to_string(state_dir.join("agent.jwt")).unwrap();
    jwt_times(&jwt)
        .and_then(|(_, e)| e)
        .expect("the stored JWT has an expiry")
}

fn now_secs() -> i64 {
    bus_schema::now_ms() / 1000
}

fn runs_in_rootd(h: &Host, id: &str) -> usize {
    h.rootd
        .log_text()
        .lines()
        .filter(|l| l.contains("server: running ") && l.contains(&format!("command={id}")))
        .count()
}

/// Rewrites the agent's configuration without its registration token.
fn drop_enroll_token(h: &Host) {
    let toml = std::fs::read_to_string(&h.agent_toml).unwrap();
    let kept: String = toml
        .lines()
        .filter(|l| !l.starts_with("enroll_token"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!kept.contains("drvreg_"), "no token left: {kept}");
    std::fs::write(&h.agent_toml, kept).unwrap();
}

/// Waits until the JWT on disk has expired (by the clock it names).
async fn wait_expired(h: &Host) {
    let exp = stored_exp(&h.state_dir);
    wait_for(
        "the stored JWT to expire",
        Duration::from_secs(60),
        || async move { (now_secs() > exp).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_in_flight_across_renewals_completes_exactly_once() {
    let (_tmp, gate, stack, h) = gated_stack(&[("DROVER_AGENT_JWT_TTL_SECS", "6")]).await;
    let first = creds(&stack, &h.id).await;
    assert_eq!(first["issued_via"], "enrol", "{first}");
    assert!(first["jwt_expires_at"].as_i64().is_some(), "{first}");
    let first_exp = stored_exp(&h.state_dir);

    let (code, c) = stack
        .command(
            &h.id,
            &json!({"action": "app.install", "params": {"app": "gated", "inputs": {}}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    wait_for(
        "rootd to start the install",
        Duration::from_secs(30),
        || {
            let n = runs_in_rootd(&h, &id);
            async move { (n == 1).then_some(()) }
        },
    )
    .await;

    // Two renewals while it runs: the second comes after the first JWT's
    // expiry, so the connection now stands on a renewed JWT.
    let renewed = wait_for("two renewals", Duration::from_secs(90), || async {
        let v = creds(&stack, &h.id).await;
        (v["renewals"].as_i64().unwrap_or(0) >= 2).then_some(v)
    })
    .await;
    assert_eq!(renewed["issued_via"], "renew", "{renewed}");
    assert!(now_secs() > first_exp, "past the first JWT's expiry");
    assert!(
        stored_exp(&h.state_dir) > first_exp,
        "the new JWT is stored"
    );
    let (_, cmd) = stack.get(&format!("/commands/{id}")).await;
    assert_eq!(cmd["status"], "running", "still running: {cmd}");

    std::fs::write(&gate, "").unwrap();
    let v = stack.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(runs_in_rootd(&h, &id), 1, "ran exactly once");
    let log = h.agent.log_text();
    assert!(log.contains("credentials renewed"), "{log}");
    assert!(!log.contains("probably revoked"), "{log}");
    // And the renewed connection carries new commands.
    assert_eq!(stack.ping(&h.id).await["status"], "succeeded");
    // Each issue is in the audit trail.
    let (_, audit) = stack.get("/audit?action=credentials.renew").await;
    let e = &audit["entries"][0];
    assert_eq!(e["action"], "credentials.renew", "{audit}");
    assert_eq!(e["target"], h.id.as_str(), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_offline_past_expiry_reauthenticates_without_a_token_unless_revoked() {
    let mut stack = Stack::start().await;
    stack
        .restart_cp_with(&[("DROVER_AGENT_JWT_TTL_SECS", "4")])
        .await;
    let mut a = stack.start_host("a").await;
    let mut b = stack.start_host("b").await;

    // A: stopped until its JWT expired, then started with no token.
    a.agent.stop();
    drop_enroll_token(&a);
    wait_expired(&a).await;
    // The broker itself refuses the expired JWT.
    let jwt = std::fs::read_to_string(a.state_dir.join("agent.jwt")).unwrap();
    let seed = std::fs::read_to_string(a.state_dir.join("agent.seed")).unwrap();
    let kp = std::sync::Arc::new(nkeys::KeyPair::from_seed(seed.trim()).unwrap());
    let refused = async_nats::ConnectOptions::with_jwt(jwt.trim().to_string(), move |nonce| {
        let kp = kp.clone();
        async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .connect(stack.nats.url())
    .await;
    assert!(refused.is_err(), "an expired JWT does not get in");
    let before = creds(&stack, &a.id).await["reauths"].as_i64().unwrap();
    a.agent = Stack::spawn_agent(&a.agent_toml, &a.dir);
    assert_eq!(stack.ping(&a.id).await["status"], "succeeded");
    let after = creds(&stack, &a.id).await;
    assert!(after["reauths"].as_i64().unwrap() > before, "{after}");
    assert!(stored_exp(&a.state_dir) > now_secs() - 4, "a fresh JWT");
    let log = a.agent.log_text();
    assert!(log.contains("re-authenticating"), "{log}");

    // B: revoked while stopped, then started past its JWT's expiry.
    b.agent.stop();
    drop_enroll_token(&b);
    let (code, v) = stack
        .post(&format!("/agents/{}/revoke", b.id), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    wait_expired(&b).await;
    let before = creds(&stack, &b.id).await;
    b.agent = Stack::spawn_agent(&b.agent_toml, &b.dir);
    wait_for("the revoked agent to stop", Duration::from_secs(60), || {
        let running = b.agent.running();
        async move { (!running).then_some(()) }
    })
    .await;
    let log = b.agent.log_text();
    assert!(log.contains("enrol it again"), "{log}");
    assert!(log.contains("revoked"), "{log}");
    assert_eq!(creds(&stack, &b.id).await, before, "nothing issued");
}

/// Sends `payload` on the renewal subject of `agent` with `reply` as the
/// reply subject, on `client`.
async fn send(client: &async_nats::Client, agent: &str, reply: &str, payload: Vec<u8>) {
    client
        .publish_with_reply(renew_subject(agent), reply.to_string(), payload.into())
        .await
        .unwrap();
    client.flush().await.unwrap();
}

async fn next_reply(sub: &mut async_nats::Subscriber) -> RenewReply {
    let m = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("an answer within 20s")
        .expect("the subscription is open");
    bus_schema::codec::decode(&m.payload, None).unwrap()
}

fn request(key: &nkeys::KeyPair, agent: &str, at: i64, nonce: &str) -> Vec<u8> {
    let req = RenewRequest {
        agent_id: agent.to_string(),
        at,
        nonce: nonce.to_string(),
    };
    bus_schema::encode(&bus_schema::signing::agent_sign(key, &req))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_revoked_renewals_are_refused() {
    let stack = Stack::start().await;
    let h = stack.start_host("h").await;
    let seed = std::fs::read_to_string(h.state_dir.join("agent.seed")).unwrap();
    let key = nkeys::KeyPair::from_seed(seed.trim()).unwrap();
    let forger = nkeys::KeyPair::new_user();
    let client = stack.client().await;
    let inbox = format!("{}.test", bus_schema::subjects::inbox_prefix(&h.id));
    let mut sub = client.subscribe(format!("{inbox}.>")).await.unwrap();
    let mut other = client.subscribe("_INBOX_elsewhere.>").await.unwrap();
    let renewals = || async { creds(&stack, &h.id).await["renewals"].as_i64().unwrap_or(0) };
    let before = renewals().await;

    // A good request is answered with a JWT for this agent.
    let good = request(&key, &h.id, bus_schema::now_ms(), "n1");
    send(&client, &h.id, &format!("{inbox}.1"), good.clone()).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.status, RenewStatus::Renewed, "{r:?}");
    assert_eq!(r.nonce, "n1");
    let jwt = r.user_jwt.unwrap();
    assert_eq!(
        bus_schema::credentials::jwt_subject(&jwt).as_deref(),
        Some(h.id.as_str())
    );
    assert_eq!(renewals().await, before + 1);

    // The same bytes again: a replay.
    send(&client, &h.id, &format!("{inbox}.2"), good).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.status, RenewStatus::Refused, "{r:?}");
    assert!(r.message.contains("replayed"), "{r:?}");
    assert!(r.user_jwt.is_none());

    // Signed by another key, in the agent's name.
    let forged = request(&forger, &h.id, bus_schema::now_ms(), "n3");
    send(&client, &h.id, &format!("{inbox}.3"), forged).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.status, RenewStatus::Refused, "{r:?}");
    assert!(r.message.contains("does not verify"), "{r:?}");

    // Stale, and naming another agent.
    let stale = request(&key, &h.id, bus_schema::now_ms() - 10 * 60_000, "n4");
    send(&client, &h.id, &format!("{inbox}.4"), stale).await;
    let r = next_reply(&mut sub).await;
    assert!(r.message.contains("minutes off"), "{r:?}");
    let renamed = request(&key, "UOTHER", bus_schema::now_ms(), "n5");
    send(&client, &h.id, &format!("{inbox}.5"), renamed).await;
    let r = next_reply(&mut sub).await;
    assert!(r.message.contains("another agent"), "{r:?}");
    // Not a signed request at all.
    send(&client, &h.id, &format!("{inbox}.6"), b"\x92\x01".to_vec()).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.status, RenewStatus::Refused, "{r:?}");

    // A reply subject outside the agent's inbox gets nothing; the next
    // request (answered in order after it) shows it was passed over.
    let good = request(&key, &h.id, bus_schema::now_ms(), "n7");
    send(&client, &h.id, "_INBOX_elsewhere.x", good).await;
    let probe = request(&key, &h.id, bus_schema::now_ms() + 1, "n8");
    send(&client, &h.id, &format!("{inbox}.8"), probe).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.nonce, "n8");
    assert_eq!(r.status, RenewStatus::Renewed, "{r:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(1), other.next())
            .await
            .is_err(),
        "nothing was sent outside the agent's inbox"
    );
    assert_eq!(renewals().await, before + 2, "only the good ones counted");
    let (_, sec) = stack.get("/security").await;
    assert!(
        sec["credentials"]["refused_renewals"].as_u64().unwrap() >= 6,
        "{sec}"
    );

    // Revoked: refused, and told what to do.
    let (code, v) = stack
        .post(&format!("/agents/{}/revoke", h.id), &json!({}))
        .await;
    assert_eq!(code, 200, "{v}");
    let late = request(&key, &h.id, bus_schema::now_ms() + 2, "n9");
    send(&client, &h.id, &format!("{inbox}.9"), late).await;
    let r = next_reply(&mut sub).await;
    assert_eq!(r.status, RenewStatus::Refused, "{r:?}");
    assert!(r.message.contains("revoked"), "{r:?}");
    assert_eq!(renewals().await, before + 2);
}

/// A request as `token` to `path`: status and JSON.
async fn as_token(stack: &Stack, token: &str, path: &str) -> (u16, Value) {
    common::api_request(
        &reqwest::Client::new(),
        &stack.base,
        token,
        reqwest::Method::GET,
        path,
        None,
    )
    .await
}

async fn token_row(stack: &Stack, id: &str) -> Value {
    let (code, v) = stack.get("/api-tokens").await;
    assert_eq!(code, 200, "{v}");
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("token {id} listed: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_expire_and_record_their_last_use() {
    let stack = Stack::start().await;
    let (_, listed) = stack.get("/api-tokens").await;
    let count = listed["tokens"].as_array().unwrap().len();

    // Bad expiries are refused and create nothing.
    for bad in [
        json!({"name": "x", "role": "viewer", "expires_in_secs": 0}),
        json!({"name": "x", "role": "viewer", "expires_in_secs": -5}),
        json!({"name": "x", "role": "viewer", "expires_at": 1}),
        json!({"name": "x", "role": "viewer", "expires_in_secs": 60, "expires_at": bus_schema::now_ms() + 60_000}),
        json!({"name": "x", "role": "viewer", "expires_in_secs": 400_000_000}),
    ] {
        let (code, v) = stack.post("/api-tokens", &bad).await;
        assert_eq!(code, 422, "{bad}: {v}");
    }
    let (_, listed) = stack.get("/api-tokens").await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), count);

    // A short-lived token works, and its use is recorded.
    let (code, short) = stack
        .post(
            "/api-tokens",
            &json!({"name": "short", "role": "viewer", "expires_in_secs": 3}),
        )
        .await;
    assert_eq!(code, 201, "{short}");
    let exp = short["expires_at"].as_i64().unwrap();
    let secret = short["token"].as_str().unwrap().to_string();
    let id = short["id"].as_str().unwrap().to_string();
    assert_eq!(token_row(&stack, &id).await["last_used_at"], Value::Null);
    let (code, v) = as_token(&stack, &secret, "/agents").await;
    assert_eq!(code, 200, "{v}");
    let row = token_row(&stack, &id).await;
    assert_eq!(row["expires_at"], exp, "{row}");
    let used = row["last_used_at"].as_i64().expect("last use recorded");
    assert!(used >= row["created_at"].as_i64().unwrap(), "{row}");

    // Once past its expiry: 401, saying so and what to do.
    wait_for(
        "the token's expiry",
        Duration::from_secs(30),
        || async move { (bus_schema::now_ms() > exp).then_some(()) },
    )
    .await;
    let (code, v) = as_token(&stack, &secret, "/agents").await;
    assert_eq!(code, 401, "{v}");
    let msg = v.to_string();
    assert!(msg.contains("expired"), "{msg}");
    assert!(msg.contains("drover api-tokens create"), "{msg}");
    assert_eq!(token_row(&stack, &id).await["expired"], true);

    // The CLI: --expires, and --json for both commands.
    let out = stack.drover(&["api-tokens", "create", "ci", "--expires", "30d", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = v["expires_at"].as_i64().unwrap();
    let want = bus_schema::now_ms() + 30 * 86_400_000;
    assert!((want - 600_000..=want).contains(&at), "{v}");
    let out = stack.drover(&["api-tokens", "create", "ci2", "--expires", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expires"));
    let out = stack.drover(&["api-tokens", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "ci"));
    let out = stack.drover(&["api-tokens", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("EXPIRES") && text.contains("LAST USED"),
        "{text}"
    );
    assert!(text.contains("expired "), "{text}");

    // The page shows both columns.
    stack.add_user("ops", "admin", "correct horse battery");
    let s = stack.login("ops", "correct horse battery").await;
    let (code, html) = s.get_html("/users").await;
    assert_eq!(code, 200);
    assert!(
        html.contains("Expires") && html.contains("Last used"),
        "{html}"
    );
    assert!(
        html.contains("name=\"expires_at\""),
        "the form asks for an expiry"
    );
}
