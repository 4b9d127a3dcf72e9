//! Regression tests for the notification security review: a stored secret
//! is never carried to a new destination, and SMTP credentials need an
//! encrypted connection. Real parts: a nats-server, `drover serve` on
//! SQLite, a webhook receiver in this process.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_where_a_channel_sends_needs_the_secret_again() {
    let stack = Stack::start().await;
    let hook = Hook::start().await;
    let ch = stack
        .add_channel(json!({"name": "signed", "kind": "webhook",
            "config": {"url": hook.url()}, "secret": "0123456789abcdef-hmac"}))
        .await;
    let id = ch["id"].as_str().unwrap().to_string();
    let path = format!("/notify/channels/{id}");

    // Changing only routing keeps the secret.
    let (st, v) = stack
        .put(
            &path,
            &json!({"name": "signed", "kind": "webhook",
            "config": {"url": hook.url()}, "min_severity": "warning"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["secret"], "set");

    // Pointing the channel elsewhere without the secret is refused, and
    // nothing changes.
    let other = format!("http://127.0.0.1:{}/steal", free_port());
    let (st, v) = stack
        .put(
            &path,
            &json!({"name": "signed", "kind": "webhook", "config": {"url": other}}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("give the secret again"),
        "{v}"
    );
    let (_, v) = stack.get("/notify/channels").await;
    assert_eq!(v["channels"][0]["config"]["url"], hook.url());
    assert_eq!(v["channels"][0]["secret"], "set");

    // Changing the kind without the secret is refused too.
    let (st, v) = stack
        .put(&path, &json!({"name": "signed", "kind": "bus"}))
        .await;
    assert_eq!(st, 400, "{v}");

    // With an explicit removal the change goes through, without the secret.
    let (st, v) = stack
        .put(
            &path,
            &json!({"name": "signed", "kind": "webhook",
            "config": {"url": other}, "secret": ""}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["secret"], "not set");

    // An email channel: changing the SMTP host without the password is refused.
    let mail = json!({"host": "127.0.0.1", "port": 2525, "tls": "starttls",
        "from": "drover@example.test", "to": ["ops@example.test"], "username": "drover"});
    let m = stack
        .add_channel(json!({"name": "mail", "kind": "email", "config": mail,
            "secret": "smtp-password-1", "enabled": false}))
        .await;
    let mpath = format!("/notify/channels/{}", m["id"].as_str().unwrap());
    let mut moved = mail.clone();
    moved["host"] = json!("127.0.0.2");
    let (st, v) = stack
        .put(
            &mpath,
            &json!({"name": "mail", "kind": "email", "config": moved, "enabled": false}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let mut port = mail.clone();
    port["port"] = json!(2526);
    let (st, v) = stack
        .put(
            &mpath,
            &json!({"name": "mail", "kind": "email", "config": port, "enabled": false}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    // Same destination, other recipients: the password stays.
    let mut to = mail.clone();
    to["to"] = json!(["other@example.test"]);
    let (st, v) = stack
        .put(
            &mpath,
            &json!({"name": "mail", "kind": "email", "config": to, "enabled": false}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["secret"], "set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_credentials_need_tls() {
    let stack = Stack::start().await;
    let (st, v) = stack
        .post(
            "/notify/channels",
            &json!({"name": "clear", "kind": "email",
            "config": {"host": "127.0.0.1", "port": 25, "tls": "none",
                "from": "drover@example.test", "to": ["ops@example.test"], "username": "drover"},
            "secret": "smtp-password-1"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("starttls or tls"),
        "{v}"
    );
    let (_, v) = stack.get("/notify/channels").await;
    assert_eq!(v["channels"], json!([]), "nothing stored");
    // Without credentials, tls none stays allowed.
    stack
        .add_channel(json!({"name": "plain", "kind": "email",
            "config": {"host": "127.0.0.1", "port": 25, "tls": "none",
                "from": "drover@example.test", "to": ["ops@example.test"]}, "enabled": false}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_webhook_keys_are_refused() {
    let stack = Stack::start().await;
    let (st, v) = stack
        .post(
            "/notify/channels",
            &json!({"name": "weak", "kind": "webhook",
                "config": {"url": "https://hooks.example/x"}, "secret": "fifteen-bytes!!"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("at least 16 bytes"),
        "{v}"
    );
    let (_, v) = stack.get("/notify/channels").await;
    assert_eq!(v["channels"], json!([]), "nothing stored");
    let ch = stack
        .add_channel(json!({"name": "strong", "kind": "webhook",
            "config": {"url": "https://hooks.example/x"}, "secret": "sixteen-bytes!!!"}))
        .await;
    assert_eq!(ch["secret"], "set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_never_holds_a_webhook_url_token() {
    let stack = Stack::start().await;
    let token = "T000/B000/XXXXsecretpathtoken";
    stack
        .add_channel(json!({"name": "slack", "kind": "webhook",
            "config": {"url": format!("https://hooks.example:8443/services/{token}?k=qtoken"),
                "format": "slack"}}))
        .await;
    let (st, audit) = stack.get("/audit").await;
    assert_eq!(st, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("https://hooks.example:8443/…"), "{text}");
    assert!(!text.contains(token) && !text.contains("qtoken"), "{text}");
}
