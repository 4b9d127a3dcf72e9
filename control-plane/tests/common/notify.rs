//! Real receivers for notification tests: a webhook receiver (an axum HTTP
//! server in the test process on a loopback port, recording each request's
//! headers and body, able to answer 500, to stop — connection refused —
//! and to start again on the same port) and an SMTP server (Python
//! `aiosmtpd`, installed by `scripts/test-deps/smtp.sh`, printing each
//! message it receives to its log). Nothing here is a mock.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// One request the webhook receiver took.
#[derive(Clone, Debug)]
pub struct Hooked {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Hooked {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A webhook receiver on `127.0.0.1:<port>`, path `/hook`.
pub struct Hook {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Hooked>>>,
    failing: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Hook {
    /// Starts on a free port, answering 200.
    pub async fn start() -> Self {
        let mut h = Self {
            port: free_port(),
            got: Arc::default(),
            failing: Arc::default(),
            task: None,
        };
        h.resume().await;
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Answers 500 (`true`) or 200 to what comes next.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops listening: senders get connection refused.
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
        let (got, failing) = (self.got.clone(), self.failing.clone());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (got, failing) = (got.clone(), failing.clone());
                async move {
                    let status = if failing.load(Ordering::SeqCst) {
                        500
                    } else {
                        200
                    };
                    got.lock().unwrap().push(Hooked {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").into()))
                            .collect(),
                        body: body.to_vec(),
                        status,
                    });
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = wait_for(
            "the webhook port to be free",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpListener::bind(("127.0.0.1", self.port))
                    .await
                    .ok()
            },
        )
        .await;
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// The requests answered 200.
    pub fn accepted(&self) -> Vec<Hooked> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.status == 200)
            .cloned()
            .collect()
    }

    /// Every request taken, whatever the answer.
    pub fn all(&self) -> Vec<Hooked> {
        self.got.lock().unwrap().clone()
    }
}

/// `aiosmtpd` on a free loopback port, printing what it receives to `log`.
pub struct Smtp {
    pub port: u16,
    pub proc: Proc,
}

impl Smtp {
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-d",
            "-c",
            "aiosmtpd.handlers.Debugging",
            "-l",
        ])
        .arg(format!("127.0.0.1:{port}"));
        let proc = Proc::spawn("aiosmtpd", cmd, dir.join("smtp.log"));
        wait_for(
            "aiosmtpd to listen (installed by scripts/test-deps/smtp.sh)",
            Duration::from_secs(20),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        Self { port, proc }
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

impl Stack {
    /// `PUT /api/v1{path}` as the admin.
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        api_request(
            &reqwest::Client::new(),
            &self.base,
            &self.token,
            reqwest::Method::PUT,
            path,
            Some(body),
        )
        .await
    }

    /// `DELETE /api/v1{path}` as the admin.
    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        api_request(
            &reqwest::Client::new(),
            &self.base,
            &self.token,
            reqwest::Method::DELETE,
            path,
            None,
        )
        .await
    }

    /// `POST /notify/channels` with `body`, asserting 201: the channel.
    pub async fn add_channel(&self, body: serde_json::Value) -> serde_json::Value {
        let (st, v) = self.post("/notify/channels", &body).await;
        assert_eq!(st, 201, "{v}");
        v
    }

    /// A test notification on `channel` (through the outbox): its
    /// transition id.
    pub async fn test_notify(&self, channel: &str, severity: &str) -> i64 {
        let (st, v) = self
            .post(
                &format!("/notify/channels/{channel}/test"),
                &serde_json::json!({ "severity": severity }),
            )
            .await;
        assert_eq!(st, 202, "{v}");
        v["transition_id"].as_i64().unwrap()
    }

    /// The deliveries of a channel, newest first.
    pub async fn deliveries(&self, channel: &str) -> Vec<serde_json::Value> {
        let (st, v) = self
            .get(&format!("/notify/channels/{channel}/deliveries"))
            .await;
        assert_eq!(st, 200, "{v}");
        v["deliveries"].as_array().unwrap().clone()
    }
}
