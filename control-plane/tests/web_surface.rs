//! The hardened web surface over real HTTP(S) against a real `drover serve`:
//! security headers on real responses (HSTS only over TLS), the login
//! form's own CSRF token, API rate limits per token and per address (429
//! with `Retry-After`), required TOTP for admins, and the other sessions
//! ending on a password change. Browser behaviour under the CSP is covered
//! by `tests/browser.rs` and the `*_pages.rs` tests.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use reqwest::Method;
use serde_json::json;

const PW: &str = "a-long-test-password";

fn client_from(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The headers every response carries; HSTS only when `tls`.
fn assert_secure_headers(r: &reqwest::Response, tls: bool, what: &str) {
    let csp = header(r, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("style-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(
        header(r, "x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        header(r, "referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        header(r, "x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    let hsts = header(r, "strict-transport-security");
    if tls {
        assert!(
            hsts.as_deref().is_some_and(|h| h.starts_with("max-age=")),
            "{what}: {hsts:?}"
        );
    } else {
        assert!(hsts.is_none(), "{what}: HSTS over plain HTTP: {hsts:?}");
    }
}

/// No inline script, event handler attribute or style attribute in a page.
fn assert_no_inline_code(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        assert!(
            rest[i..tag_end].contains(" src="),
            "{what}: inline script: {}",
            &rest[i..(tag_end + 60).min(rest.len())]
        );
        rest = &rest[tag_end..];
    }
    assert!(!lower.contains(" style="), "{what}: a style attribute");
    for ev in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onchange=",
        " onerror=",
    ] {
        assert!(!lower.contains(ev), "{what}: {ev}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.add_user("olga", "operator", PW);
    let anon = client_from(None);
    for path in [
        "/login",
        "/healthz",
        "/ui/app.js",
        "/ui/app.css",
        "/api/v1/agents",
        "/fleet",
        "/no-such-page",
    ] {
        let r = anon
            .get(format!("{}{path}", stack.base))
            .send()
            .await
            .unwrap();
        assert_secure_headers(&r, false, path);
        if path == "/login" {
            assert_no_inline_code(&r.text().await.unwrap(), path);
        }
    }
    // A refused login (no token) and an API answer with a bearer token.
    let r = anon
        .post(format!("{}/login", stack.base))
        .form(&[("name", "olga"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_secure_headers(&r, false, "refused login");
    let r = anon
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_secure_headers(&r, false, "API with a token");
    // Logged-in pages (the fleet shows a host with its meters): no inline
    // code the CSP would block.
    let op = stack.login("olga", PW).await;
    wait_for(
        "the host's usage bars on the fleet page",
        std::time::Duration::from_secs(60),
        || async {
            let (_, html) = op.get_html("/fleet").await;
            html.contains("data-w=").then_some(())
        },
    )
    .await;
    let agent_page = format!("/agents/{}", host.id);
    for path in [
        "/fleet",
        &agent_page,
        "/jobs",
        "/account",
        "/audit",
        "/rollouts",
    ] {
        let (code, html) = op.get_html(path).await;
        assert_eq!(code, 200, "{path}");
        assert_no_inline_code(&html, path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hsts_only_over_https() {
    let stack = TlsStack::start().await;
    for path in ["/healthz", "/login", "/api/v1/agents"] {
        let r = stack
            .http
            .get(format!("{}{path}", stack.base))
            .send()
            .await
            .unwrap();
        assert_secure_headers(&r, true, path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_post_without_the_forms_token_is_refused() {
    let stack = Stack::start().await;
    stack.add_user("olga", "operator", PW);
    let http = client_from(None);
    let url = format!("{}/login", stack.base);
    let no_session = |r: &reqwest::Response| {
        !r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("drover_session="))
    };
    // A cross-site form: right password, no cookie, no field.
    let r = http
        .post(&url)
        .header("Origin", "https://evil.example")
        .form(&[("name", "olga"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(no_session(&r));
    let body = r.text().await.unwrap();
    assert!(body.contains("Reload this page"), "{body}");
    // The field without its cookie, the cookie without the field, and a
    // cookie and field from two different forms: all refused.
    let (cookie_a, token_a) = login_token(&http, &stack.base).await;
    let (_cookie_b, token_b) = login_token(&http, &stack.base).await;
    let attempts: [(Option<&str>, Option<&str>); 3] = [
        (None, Some(&token_a)),
        (Some(&cookie_a), None),
        (Some(&cookie_a), Some(&token_b)),
    ];
    for (cookie, field) in attempts {
        let mut form = vec![("name", "olga"), ("password", PW)];
        if let Some(f) = field {
            form.push(("login_csrf", f));
        }
        let mut rq = http.post(&url).form(&form);
        if let Some(c) = cookie {
            rq = rq.header("Cookie", c);
        }
        let r = rq.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "{cookie:?} {field:?}");
        assert!(no_session(&r));
    }
    // Showing the form again to the same browser keeps its token (a reload
    // must not break a form open in another tab).
    let r = http
        .get(&url)
        .header("Cookie", &cookie_a)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains(&token_a));
    // A planted cookie with a matching field but not signed by the server.
    let forged = format!("9999999999999.{}.{}", "ab".repeat(16), "0".repeat(64));
    let r = http
        .post(&url)
        .header("Cookie", format!("drover_login={forged}"))
        .form(&[("name", "olga"), ("password", PW), ("login_csrf", &forged)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Refusals are not failed attempts (six of them would have locked the
    // account): the real form still logs in.
    let r = stack.login_form("olga", PW, "").await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(!no_session(&r));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_a_tokens_rate_get_429_and_other_tokens_do_not() {
    let mut stack = Stack::start().await;
    let (code, t) = stack
        .post("/api-tokens", &json!({"name": "second", "role": "viewer"}))
        .await;
    assert_eq!(code, 201, "{t}");
    let second = t["token"].as_str().unwrap().to_string();
    stack
        .restart_cp_with(&[
            ("DROVER_HTTP_RATE_PER_TOKEN", "1"),
            ("DROVER_HTTP_RATE_PER_ADDRESS", "0"),
            ("DROVER_HTTP_RATE_BURST", "5"),
        ])
        .await;
    let http = client_from(None);
    let get = |token: String| {
        let http = http.clone();
        let url = format!("{}/api/v1/agents", stack.base);
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let mut limited = None;
    for i in 0..30 {
        let r = get(stack.token.clone()).await;
        match r.status().as_u16() {
            200 => assert!(i < 29),
            429 => {
                limited = Some(r);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let r = limited.expect("a 429 within 30 requests at 1/s with a burst of 5");
    let retry: u64 = header(&r, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_secure_headers(&r, false, "429");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    // Another token from the same address is unaffected.
    let r = get(second.clone()).await;
    assert_eq!(r.status().as_u16(), 200);
    // Health checks are not counted.
    for _ in 0..10 {
        let r = http
            .get(format!("{}/healthz", stack.base))
            .bearer_auth(&stack.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_an_addresss_rate_get_429_and_other_addresses_do_not() {
    let mut stack = Stack::start().await;
    stack
        .restart_cp_with(&[
            ("DROVER_HTTP_RATE_PER_TOKEN", "0"),
            ("DROVER_HTTP_RATE_PER_ADDRESS", "1"),
            ("DROVER_HTTP_RATE_BURST", "5"),
        ])
        .await;
    let noisy = client_from(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    let quiet = client_from(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
    let mut limited = None;
    for _ in 0..30 {
        // Anonymous requests count too (a login page, a refused API call).
        let r = noisy
            .get(format!("{}/api/v1/agents", stack.base))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = limited.expect("a 429 within 30 requests at 1/s with a burst of 5");
    assert!(header(&r, "retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // The limited address gets 429 even with a valid token; another
    // address is served.
    let r = noisy
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let r = quiet
        .get(format!("{}/api/v1/agents", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = noisy
        .get(format!("{}/healthz", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "health checks are not counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_without_totp_must_enrol_before_admin_powers() {
    let mut stack = Stack::start().await;
    stack
        .restart_cp_with(&[("DROVER_AUTH_REQUIRE_2FA_ADMINS", "true")])
        .await;
    stack.add_user("ada", "admin", PW);
    stack.add_user("olga", "operator", PW);
    // Logging in works, and sends the admin to the account page.
    let r = stack.login_form("ada", PW, "").await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/account"));
    // An operator is not concerned.
    let r = stack.login_form("olga", PW, "").await;
    assert_eq!(header(&r, "location").as_deref(), Some("/fleet"));

    let ada = stack.login("ada", PW).await;
    let (code, v) = ada.send(Method::GET, "/api/v1/users", None, false).await;
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("two-factor"), "{v}");
    let (code, v) = ada
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&json!({"name": "eve", "role": "admin"})),
            true,
        )
        .await;
    assert_eq!(code, 403, "{v}");
    let (code, html) = ada.get_html("/users").await;
    assert_eq!(code, 403);
    assert!(html.contains("two-factor"), "{html}");
    // Nothing was created.
    let (_, users) = stack.get("/users").await;
    assert!(!users.to_string().contains("\"eve\""), "{users}");
    // API tokens are not accounts: the admin token keeps working.
    let (code, _) = stack.get("/users").await;
    assert_eq!(code, 200);

    // Enrol TOTP with a real code; admin powers follow in the same session.
    let (code, t) = ada
        .send(Method::POST, "/api/v1/account/totp", None, true)
        .await;
    assert_eq!(code, 200, "{t}");
    let totp = control_plane::auth::totp_for(t["secret"].as_str().unwrap(), "ada").unwrap();
    let (code, v) = ada
        .send(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&json!({"code": totp.generate_current().unwrap()})),
            true,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = ada.send(Method::GET, "/api/v1/users", None, false).await;
    assert_eq!(code, 200, "{v}");
    let r = stack
        .login_form("ada", PW, &totp.generate_current().unwrap())
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(header(&r, "location").as_deref(), Some("/fleet"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_ends_the_other_sessions() {
    let stack = Stack::start().await;
    stack.add_user("vic", "viewer", PW);
    let here = stack.login("vic", PW).await;
    let there = stack.login("vic", PW).await;
    let (code, _) = there.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 200);
    // Bad input changes nothing.
    let (code, _) = here
        .send(
            Method::POST,
            "/api/v1/account/password",
            Some(&json!({"current": "wrong-password-here", "new": "another-long-password"})),
            true,
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = there.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 200);

    let new_pw = "another-long-password";
    let (code, v) = here
        .send(
            Method::POST,
            "/api/v1/account/password",
            Some(&json!({"current": PW, "new": new_pw})),
            true,
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["sessions_ended"], 1, "{v}");
    let (code, _) = there.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 401);
    let (code, _) = there.get_html("/fleet").await;
    assert_eq!(code, 303, "the other browser is sent to the login page");
    // The session that changed it stays.
    let (code, _) = here.send(Method::GET, "/api/v1/agents", None, false).await;
    assert_eq!(code, 200);
    assert_eq!(stack.login_form("vic", PW, "").await.status().as_u16(), 401);
    assert_eq!(
        stack.login_form("vic", new_pw, "").await.status().as_u16(),
        303
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_browser_the_login_works_and_bars_get_their_width_under_the_csp() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.add_user("olga", "operator", PW);
    let b = Chrome::start().await;
    // The login form (with its token) in a real browser.
    b.login(&stack.base, "olga", PW).await;
    let c = b.c();
    c.goto(&format!("{}/agents/{}", stack.base, host.id))
        .await
        .unwrap();
    // The usage bars carry data-w; app.js (allowed by the CSP) sets their
    // width, which an inline style attribute could no longer do.
    let widths = wait_for(
        "the agent page's usage bars with a width",
        std::time::Duration::from_secs(60),
        || async {
            let v = c
                .execute(
                    "return Array.from(document.querySelectorAll('[data-w]')).map(e => e.style.width)",
                    vec![],
                )
                .await
                .ok()?;
            let w: Vec<String> = serde_json::from_value(v).ok()?;
            (!w.is_empty() && w.iter().all(|x| x.ends_with('%'))).then_some(w)
        },
    )
    .await;
    assert!(!widths.is_empty());
}
