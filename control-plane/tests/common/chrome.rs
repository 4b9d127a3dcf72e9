//! A headless Chromium session for tests that check a page's scripts
//! (forms sent as JSON, live refreshes): chromedriver on a free port, a
//! throw-away profile, logging in through the real login form. Killed and
//! removed on drop. `scripts/test-deps/chromium.sh` installs the browser.
//! It checks nothing itself; what a page must do stays in the tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use super::*;

/// chromedriver, a Chromium session on it, and its profile directory.
pub struct Chrome {
    client: Option<Client>,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn start() -> Self {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("chromedriver is missing: run scripts/test-deps/chromium.sh");
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
                    "--no-first-run", "--disable-background-networking", "--window-size=1440,900",
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

    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Logs in through the login form and waits for the fleet page.
    pub async fn login(&self, base: &str, name: &str, pw: &str) {
        let c = self.c();
        c.goto(&format!("{base}/login")).await.unwrap();
        self.type_into("#name", name).await;
        self.type_into("#password", pw).await;
        self.click("#login").await;
        wait_for(
            "the fleet page after login",
            Duration::from_secs(20),
            || async move { (c.current_url().await.ok()?.path() == "/fleet").then_some(()) },
        )
        .await;
    }

    /// Waits until `css` matches an element whose text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let c = self.c();
        wait_for(
            &format!("{css} to show {needle:?}"),
            Duration::from_secs(30),
            || async move {
                let t = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
                t.contains(needle).then_some(())
            },
        )
        .await
    }

    /// The text of the element `css` matches. Live pages re-render, so a
    /// found element can go stale before it is read: find and read are
    /// retried together until one read succeeds.
    pub async fn text(&self, css: &str) -> String {
        let c = self.c();
        wait_for(
            &format!("{css} to be read"),
            Duration::from_secs(30),
            || async move { c.find(Locator::Css(css)).await.ok()?.text().await.ok() },
        )
        .await
    }

    /// The texts of every element `css` matches, read in one pass that is
    /// retried whole when an element goes stale mid-way (see [`Chrome::text`]).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let c = self.c();
        wait_for(
            &format!("{css} to be read"),
            Duration::from_secs(30),
            || async move {
                let mut out = Vec::new();
                for e in c.find_all(Locator::Css(css)).await.ok()? {
                    out.push(e.text().await.ok()?);
                }
                Some(out)
            },
        )
        .await
    }

    /// The attribute `name` of the element `css` matches (which must have
    /// it), found and read again when the element goes stale.
    pub async fn attr(&self, css: &str, name: &str) -> String {
        let c = self.c();
        wait_for(
            &format!("{css} to be read for {name}"),
            Duration::from_secs(30),
            || async move {
                c.find(Locator::Css(css))
                    .await
                    .ok()?
                    .attr(name)
                    .await
                    .ok()?
            },
        )
        .await
    }

    /// Clicks the element `css` matches once it is shown. Live pages
    /// re-render, so a found element can go stale before the click lands:
    /// find and click are retried together until one click succeeds.
    pub async fn click(&self, css: &str) {
        let c = self.c();
        wait_for(
            &format!("{css} to be shown and clicked"),
            Duration::from_secs(30),
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

    /// Types `text` into the element `css` matches once it is shown; like
    /// [`Chrome::click`], a stale element is found again (a failed send
    /// types nothing).
    pub async fn type_into(&self, css: &str, text: &str) {
        let c = self.c();
        wait_for(
            &format!("{css} to be shown and typed into"),
            Duration::from_secs(30),
            || async move {
                let e = c.find(Locator::Css(css)).await.ok()?;
                if !e.is_displayed().await.ok()? {
                    return None;
                }
                e.send_keys(text).await.ok()
            },
        )
        .await
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
                })
            });
        }
    }
}
