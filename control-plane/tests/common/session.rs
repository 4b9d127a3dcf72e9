//! Web UI accounts as a browser holds them: users added with the CLI, the
//! login form, and a [`Session`] (cookie + CSRF token) that sends requests.
//! It does not drive a real browser (that is `tests/browser.rs`).

use std::process::{Command, Stdio};

use serde_json::Value;

use super::*;

/// A browser-like client: a session cookie and its CSRF token.
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// Any method, with the session cookie; `csrf` adds `X-CSRF-Token`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Cookie", &self.cookie);
        if csrf {
            r = r.header("X-CSRF-Token", &self.csrf);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_html(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// `GET /login`: the `drover_login=...` cookie pair and the form's hidden
/// `login_csrf` value.
pub async fn login_token(http: &reqwest::Client, base: &str) -> (String, String) {
    let r = http.get(format!("{base}/login")).send().await.unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("drover_login="))
        .expect("a drover_login cookie from GET /login")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = r.text().await.unwrap();
    let key = "name=\"login_csrf\" value=\"";
    let i = html
        .find(key)
        .expect("a login_csrf field in the login form")
        + key.len();
    let token = html[i..i + html[i..].find('"').unwrap()].to_string();
    (cookie, token)
}

/// The value of `name="csrf-token" content="..."` in a page.
pub fn csrf_from_html(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf-token\" content=\"")?;
    let rest = &html[i + "name=\"csrf-token\" content=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

impl Stack {
    /// Adds a web UI user with `drover users add` (password from the
    /// environment, as scripts do).
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        let mut cmd = Command::new(bin("drover"));
        cmd.args(["users", "add", name, "--role", role])
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_NEW_PASSWORD", password)
            .stdin(Stdio::null());
        if let Some(url) = test_database_url(&self.data_dir) {
            cmd.env("DROVER_DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "drover users add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Posts the login form as a browser does: first `GET /login` for the
    /// sign-in token (cookie + hidden field), then the post with both;
    /// returns the raw response.
    pub async fn login_form(&self, name: &str, password: &str, code: &str) -> reqwest::Response {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (cookie, token) = login_token(&http, &self.base).await;
        http.post(format!("{}/login", self.base))
            .header("Cookie", cookie)
            .form(&[
                ("name", name),
                ("password", password),
                ("code", code),
                ("login_csrf", token.as_str()),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Logs in through the form and reads the CSRF token from a page.
    pub async fn login(&self, name: &str, password: &str) -> Session {
        let r = self.login_form(name, password, "").await;
        assert_eq!(r.status().as_u16(), 303, "login of {name} failed");
        let set = r
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut s = Session {
            http,
            base: self.base.clone(),
            cookie,
            csrf: String::new(),
        };
        let (code, html) = s.get_html("/fleet").await;
        assert_eq!(code, 200, "{html}");
        s.csrf = csrf_from_html(&html).expect("a CSRF token in the page");
        s
    }
}
