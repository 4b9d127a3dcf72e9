//! The web UI in a real browser: headless Chromium from Debian's packages,
//! driven through chromedriver with fantoccini, against a real stack (nats,
//! `drover serve`, rootd, agent). `scripts/test-deps/chromium.sh` installs
//! them. Each page is screenshotted into `docs/screenshots/` (into a
//! temporary directory when `CI` is set, so CI never dirties the tree).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const PW: &str = "a-long-test-password";

/// chromedriver on a free port, killed on drop, and a session on it.
struct Browser {
    client: Option<Client>,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect(
                "chromedriver is missing: run scripts/test-deps/chromium.sh (`just test` does)",
            );
        let profile = tempfile::Builder::new()
            .prefix("drover-chromium-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd, profile.path().join("chromedriver.log"));
        wait_for(
            "chromedriver to listen",
            Duration::from_secs(20),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1440,900",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ]
            }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session through chromedriver");
        Self {
            client: Some(client),
            _driver: driver,
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver (killed by its Proc) takes Chromium with it; closing
        // the session first is polite but may not be possible from Drop.
        if let Some(c) = self.client.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
                })
            });
        }
    }
}

fn shots_dir() -> PathBuf {
    if std::env::var_os("CI").is_some() {
        let d = std::env::temp_dir().join("drover-screenshots");
        std::fs::create_dir_all(&d).unwrap();
        d
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    }
}

async fn shot(c: &Client, name: &str) {
    // Let charts and fonts settle is not needed: the page is server-rendered;
    // wait only for pending live refreshes.
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Polls `f` until it yields `Some`; on timeout, saves a screenshot and the
/// page's text next to the other screenshots (as `failure.*`) and fails.
async fn wait_page<T, F, Fut>(c: &Client, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if std::time::Instant::now() >= deadline {
            let dir = std::env::temp_dir().join("drover-browser-failure");
            std::fs::create_dir_all(&dir).unwrap();
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(dir.join("failure.png"), png);
            }
            let text = c.source().await.unwrap_or_default();
            let _ = std::fs::write(dir.join("failure.html"), &text);
            panic!(
                "timed out waiting for {what} on {:?}; page saved in {}",
                c.current_url().await.map(|u| u.to_string()),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` matches a displayed element.
async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    wait_page(c, &format!("{css} to be shown"), || async move {
        match c.find(Locator::Css(css)).await {
            Ok(e) if e.is_displayed().await.unwrap_or(false) => Some(e),
            _ => None,
        }
    })
    .await
}

async fn wait_gone(c: &Client, css: &str) {
    wait_page(c, &format!("{css} to be hidden"), || async move {
        match c.find(Locator::Css(css)).await {
            Ok(e) if e.is_displayed().await.unwrap_or(false) => None,
            _ => Some(()),
        }
    })
    .await
}

async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    wait_page(c, &format!("{css} to contain {needle:?}"), || async move {
        let t = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        t.contains(needle).then_some(t)
    })
    .await
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Clicks the element `css` matches once it is shown. Live pages re-render,
/// so find and click are retried together until one click succeeds (an
/// element found before a re-render is stale).
async fn click(c: &Client, css: &str) {
    wait_page(
        c,
        &format!("{css} to be shown and clicked"),
        || async move {
            let e = c.find(Locator::Css(css)).await.ok()?;
            if !e.is_displayed().await.ok()? {
                return None;
            }
            e.click().await.ok()
        },
    )
    .await
}

/// Chooses the option with `value` in the `<select>` that `css` matches,
/// finding it again if a re-render made it stale.
async fn select(c: &Client, css: &str, value: &str) {
    wait_page(c, &format!("{css} to offer {value:?}"), || async move {
        let e = c.find(Locator::Css(css)).await.ok()?;
        e.select_by_value(value).await.ok()
    })
    .await
}

/// Types `text` into the field that `css` matches, finding it again if a
/// re-render made it stale (a failed send types nothing).
async fn type_into(c: &Client, css: &str, text: &str) {
    wait_page(c, &format!("{css} to take input"), || async move {
        let e = c.find(Locator::Css(css)).await.ok()?;
        e.send_keys(text).await.ok()
    })
    .await
}

async fn login(c: &Client, base: &str, name: &str, pw: &str) {
    c.goto(&format!("{base}/fleet")).await.unwrap();
    // Not logged in: the login page.
    let name_field = wait_css(c, "#name").await;
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    name_field.send_keys(name).await.unwrap();
    type_into(c, "#password", pw).await;
    click(c, "#login").await;
    wait_for(
        "the fleet page after login",
        Duration::from_secs(20),
        || async move { (c.current_url().await.ok()?.path() == "/fleet").then_some(()) },
    )
    .await;
    wait_text(c, "#me", name).await;
}

/// A tiny app: one greeting, a mode, and a secret token asked for only in
/// "secret" mode. Its install script only prints.
fn test_manifests(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("manifests");
    let app = root.join("hello");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("manifest.yml"),
        r#"id: hello
name: Hello
version: "1.0.0"
description: Prints a greeting. Harmless; for the browser tests.
category: demo
inputs:
  - name: greeting
    type: string
    label: Greeting
    required: true
    default: hello
  - name: mode
    type: select
    label: Mode
    allowed_values: [plain, secret]
    default: plain
    required: true
  - name: token
    type: password
    label: Secret token
    help: Only asked for in secret mode.
    visible_if: { mode: secret }
scripts:
  install: install.sh
timeout_secs: 60
idempotent: true
"#,
    )
    .unwrap();
    std::fs::write(
        app.join("install.sh"),
        "#!/bin/sh\necho \"installing hello: $GREETING\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        app.join("install.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    root
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_console_end_to_end() {
    let mtmp = tempfile::tempdir().unwrap();
    let manifests = test_manifests(mtmp.path());
    let mut stack = Stack::start_with_manifests(&manifests).await;
    stack.add_user("ada", "admin", PW);
    let b = Browser::start().await;
    let c = b.c();
    let base = stack.base.clone();

    // Log in, then watch the agent arrive on the fleet page without a reload.
    login(c, &base, "ada", PW).await;
    js(c, "window.__sameDocument = 42; return 1").await;
    wait_text(c, "#live", "live").await;
    let host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;
    let row = format!("tr[data-id=\"{}\"]", host.id);
    wait_text(c, &format!("{row} .pill"), "online").await;
    wait_text(c, "#count-online b", "1").await;
    assert_eq!(
        js(c, "return window.__sameDocument || null").await,
        json!(42)
    );
    shot(c, "fleet").await;

    // The agent page: run sys.ping from the generated form; the result
    // appears without a reload.
    click(c, &format!("{row} a.host")).await;
    wait_css(c, "#run-form").await;
    wait_css(c, "#action option[value=\"sys.ping\"]").await;
    select(c, "#action", "sys.ping").await;
    js(c, "window.__sameDocument = 43; return 1").await;
    click(c, "#run").await;
    wait_css(c, "#run-result[data-status=\"succeeded\"]").await;
    let result = wait_text(c, "#run-result", "sys.ping").await;
    assert!(result.contains("succeeded"), "{result}");
    assert_eq!(
        js(c, "return window.__sameDocument || null").await,
        json!(43)
    );
    // The history region refreshes live with the new command.
    wait_text(c, "#history", "sys.ping").await;
    js(
        c,
        "document.querySelector('#run-card').scrollIntoView({block: 'center'}); return 1",
    )
    .await;
    shot(c, "agent").await;

    // Jobs: the selector previews how many hosts match; the job runs live.
    c.goto(&format!("{base}/jobs")).await.unwrap();
    wait_css(c, "#action option[value=\"sys.ping\"]").await;
    wait_text(c, "#preview", "1 host matches").await;
    select(c, "#sel-mode", "hostname").await;
    type_into(c, "#sel-value", "no-such-host-*").await;
    wait_text(c, "#preview", "0 hosts match").await;
    select(c, "#sel-mode", "all").await;
    wait_text(c, "#preview", "1 host matches").await;
    select(c, "#action", "sys.ping").await;
    click(c, "#submit-job").await;
    wait_css(c, "#job-live[data-done=\"true\"]").await;
    wait_text(c, "#job-hosts", "succeeded").await;
    c.goto(&format!("{base}/jobs")).await.unwrap();
    wait_css(c, "#jobs").await;
    wait_text(c, "#preview", "1 host matches").await;
    shot(c, "jobs").await;

    // Apps: the install form is generated from the manifest; the secret
    // field appears only in secret mode.
    c.goto(&format!("{base}/apps")).await.unwrap();
    {
        click(c, "button[data-install=\"hello\"]").await;
        wait_css(c, "#in-greeting").await;
        wait_gone(c, "[data-input=\"token\"]").await;
        select(c, "#in-mode", "secret").await;
        wait_css(c, "[data-input=\"token\"]").await;
        select(c, "#in-mode", "plain").await;
        wait_gone(c, "[data-input=\"token\"]").await;
        select(c, "#in-mode", "secret").await;
        let token = wait_css(c, "#in-token").await;
        assert_eq!(
            token.attr("type").await.unwrap().as_deref(),
            Some("password")
        );
        type_into(c, "#in-token", "browser-secret-123").await;
        wait_text(c, "#install-card #preview", "1 host matches").await;
        shot(c, "apps").await;
        click(c, "#install").await;
        wait_for(
            "the job page of the install",
            Duration::from_secs(20),
            || async move {
                c.current_url()
                    .await
                    .ok()?
                    .path()
                    .starts_with("/jobs/")
                    .then_some(())
            },
        )
        .await;
        let url = c.current_url().await.unwrap();
        let job_id = url.path().trim_start_matches("/jobs/").to_string();
        let (code, j) = stack.get(&format!("/jobs/{job_id}")).await;
        assert_eq!(code, 200, "{j}");
        assert_eq!(j["action"], "app.install", "{j}");
        let done = stack.wait_job_done(&job_id, Duration::from_secs(60)).await;
        assert_eq!(done["counts"]["succeeded"], 1, "{done}");
        // The page follows the job live, with the script's output tail.
        wait_css(c, "#job-live[data-done=\"true\"]").await;
        wait_text(c, "#job-hosts", "installing hello: hello").await;
        shot(c, "job").await;
        // The secret went to the agent, never into the trail or the job.
        let (_, audit) = stack.get("/audit?action=app&limit=100").await;
        assert!(audit.to_string().contains("app.install"), "{audit}");
        assert!(!audit.to_string().contains("browser-secret-123"));
        assert!(!j.to_string().contains("browser-secret-123"));
    }

    // Enrolment: a token's secret is shown once.
    c.goto(&format!("{base}/enrolment")).await.unwrap();
    wait_css(c, "#token-form").await;
    // `drover init` made the first token; the test's host used another.
    let listed = c
        .find_all(Locator::Css("#tokens tbody tr"))
        .await
        .unwrap()
        .len();
    click(c, "#token-form button.primary").await;
    let secret = wait_css(c, "#token-form .secret")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        secret.contains("shown once")
            && secret.contains("/install.sh | sudo sh -s -- --token drvreg_"),
        "{secret}"
    );
    // The list refreshes by itself with the new token.
    wait_page(c, "the new token in the list", || async move {
        let rows = c.find_all(Locator::Css("#tokens tbody tr")).await.ok()?;
        (rows.len() == listed + 1).then_some(())
    })
    .await;
    shot(c, "enrolment").await;

    c.goto(&format!("{base}/security")).await.unwrap();
    wait_css(c, "#fingerprint").await;
    shot(c, "security").await;

    c.goto(&format!("{base}/audit")).await.unwrap();
    wait_text(c, "#chain", "intact").await;
    wait_text(c, "#audit", "command.create").await;
    wait_text(c, "#audit", "job.create").await;
    shot(c, "audit").await;

    c.goto(&format!("{base}/users")).await.unwrap();
    wait_text(c, "#users", "ada").await;
    shot(c, "users").await;

    c.goto(&format!("{base}/account")).await.unwrap();
    click(c, "#totp-start").await;
    wait_css(c, "#totp-secret").await;
    shot(c, "account").await;

    // The control plane restarts: a calm banner, then back to live by itself.
    c.goto(&format!("{base}/fleet")).await.unwrap();
    wait_text(c, "#live", "live").await;
    stack.cp.stop();
    wait_css(c, "#banner").await;
    wait_text(c, "#live", "reconnecting").await;
    shot(c, "reconnecting").await;
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    stack.cp = Stack::spawn_cp(&stack.data_dir, &stack.nats.url(), port);
    stack.wait_healthy().await;
    wait_gone(c, "#banner").await;
    wait_text(c, "#live", "live").await;

    // The login page, for the README.
    click(c, "#logout").await;
    wait_css(c, "#login").await;
    shot(c, "login").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_cannot_run_anything() {
    let stack = Stack::start().await;
    let host = stack.start_host("h1").await;
    stack.add_user("vic", "viewer", PW);
    let b = Browser::start().await;
    let c = b.c();
    let base = stack.base.clone();
    login(c, &base, "vic", PW).await;
    wait_text(c, &format!("tr[data-id=\"{}\"] .pill", host.id), "online").await;

    // No forms or buttons that change anything.
    c.goto(&format!("{base}/agents/{}", host.id)).await.unwrap();
    wait_css(c, "#history-wrap").await;
    let none = |css: &'static str| async move {
        assert!(
            c.find(Locator::Css(css)).await.is_err(),
            "a viewer sees {css}"
        );
    };
    none("#run-form").await;
    none("#run").await;
    none("button[data-api]").await;
    c.goto(&format!("{base}/jobs")).await.unwrap();
    wait_css(c, "#jobs-wrap").await;
    none("#job-form").await;
    c.goto(&format!("{base}/enrolment")).await.unwrap();
    wait_css(c, "#tokens-wrap").await;
    none("#token-form").await;
    none("button[data-api]").await;
    c.goto(&format!("{base}/users")).await.unwrap();
    wait_text(c, "body", "needs the admin role").await;

    // A forged request with the viewer's own session and CSRF token: 403.
    c.goto(&format!("{base}/fleet")).await.unwrap();
    wait_css(c, "#agents").await;
    let r = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('meta[name=csrf-token]').content;
             fetch('/api/v1/agents/' + arguments[0] + '/commands', {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
               body: JSON.stringify({action: 'sys.ping'})})
               .then(r => r.json().then(j => done([r.status, j.error || ''])))
               .catch(e => done([0, String(e)]));",
            vec![json!(host.id)],
        )
        .await
        .unwrap();
    assert_eq!(r[0], 403, "{r}");
    assert!(r[1].as_str().unwrap().contains("operator"), "{r}");
    let (_, list) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    assert_eq!(list["commands"].as_array().unwrap().len(), 0, "{list}");
}
