//! A second (third, ...) `drover serve` replica beside a [`Stack`]: same
//! database and broker, its own copy of the data directory (keys and
//! credentials) and its own HTTP port. Owns starting, asking and killing
//! such a replica; not the stack itself (`stack.rs`) nor any assertion.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{api_request, free_port, wait_for, Proc, Stack};

/// One extra control-plane replica.
pub struct Replica {
    pub cp: Proc,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
    token: String,
}

impl Replica {
    /// Copies `stack`'s data directory to `<tmp>/<name>` and starts
    /// `drover serve` there against the stack's broker and database; waits
    /// (up to 30 s) until it answers `/readyz` with 200.
    pub async fn start(stack: &Stack, name: &str) -> Self {
        let data_dir = stack.tmp.path().join(name);
        let st = Command::new("cp")
            .arg("-a")
            .arg(&stack.data_dir)
            .arg(&data_dir)
            .status()
            .unwrap();
        assert!(st.success(), "copying the data directory");
        let _ = std::fs::remove_file(data_dir.join("control-plane.log"));
        let port = free_port();
        let cp = Stack::spawn_cp(&data_dir, &stack.nats.url(), port);
        let r = Self {
            cp,
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            http: reqwest::Client::new(),
            token: stack.token.clone(),
        };
        r.wait_ready().await;
        r
    }

    /// Waits up to 30 s for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        wait_for(
            &format!("replica {} ready", self.base),
            Duration::from_secs(30),
            || async { (readyz(&self.http, &self.base).await.0 == 200).then_some(()) },
        )
        .await;
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::GET,
            path,
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::POST,
            path,
            Some(body),
        )
        .await
    }
}

/// `GET <base>/readyz` without credentials: (status, body); (0, null) when
/// nothing answers.
pub async fn readyz(http: &reqwest::Client, base: &str) -> (u16, Value) {
    match http.get(format!("{base}/readyz")).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Runs of duty `name` on the replica at `base` (from `GET /duties`).
pub fn duty_runs(duties: &Value, name: &str) -> u64 {
    duties["duties"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == name))
        .and_then(|d| d["runs"].as_u64())
        .unwrap_or(0)
}
