//! Asking the REST API the ways many tests ask it, as the admin token:
//! creating one command for a host, the refusal of an action the host
//! cannot run, and a raw (possibly malformed) JSON body with its 400. It
//! starts nothing and knows no page; what a test expects beyond the status
//! and the error's words stays in the test.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// One admin request to `{base}/api/v1{path}`: the HTTP status and the JSON
/// answer (`Null` when the answer is not JSON). What [`Stack`] and
/// `TlsStack` ask through.
pub async fn api_request(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = http
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

impl Stack {
    /// `POST /api/v1/agents/{agent}/commands` with `body` (e.g.
    /// `{"action": "sys.ping", "params": {...}}`): the HTTP status and the
    /// JSON answer (`Null` when the answer is not JSON).
    pub async fn command(&self, agent: &str, body: &Value) -> (u16, Value) {
        self.post(&format!("/agents/{agent}/commands"), body).await
    }

    /// Creates the command `{"action": action, "params": params}` for
    /// `agent`, asserts it was accepted (201), and waits up to `max` until
    /// it is final; returns the final command as `GET /commands/{id}`
    /// shows it.
    pub async fn run_final(
        &self,
        agent: &str,
        action: &str,
        params: Value,
        max: Duration,
    ) -> Value {
        let (code, created) = self
            .command(agent, &json!({"action": action, "params": params}))
            .await;
        assert_eq!(code, 201, "{action} {params}: {created}");
        self.wait_final(created["id"].as_str().unwrap(), max).await
    }

    /// Asserts that the control plane refuses `body` for `agent` at once
    /// with 409 Conflict (the host said it cannot run it, or cannot be
    /// asked now), and that the refusal's `error` contains every one of
    /// `says`. Returns the answer for further checks.
    pub async fn assert_refused(&self, agent: &str, body: &Value, says: &[&str]) -> Value {
        let (code, v) = self.command(agent, body).await;
        assert_eq!(code, 409, "{v}");
        let why = v["error"].as_str().unwrap_or_default();
        for s in says {
            assert!(why.contains(s), "the refusal says {s:?}: {v}");
        }
        v
    }

    /// `POST /api/v1{path}` with `body` sent as-is under
    /// `Content-Type: application/json`, for bodies `serde_json` would not
    /// write: the HTTP status and the JSON answer (`Null` if not JSON).
    pub async fn post_raw_json(&self, path: &str, body: String) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Asserts that a raw JSON `body` posted to `path` is refused with 400
    /// Bad Request and an `error` that contains `says`. Returns the answer.
    pub async fn assert_bad_json(&self, path: &str, body: String, says: &str) -> Value {
        let (code, v) = self.post_raw_json(path, body).await;
        assert_eq!(code, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(says),
            "{v}"
        );
        v
    }

    /// How many agents `GET /agents` shows as `online` now.
    pub async fn online_count(&self) -> usize {
        let (_, v) = self.get("/agents").await;
        v["agents"]
            .as_array()
            .map(|a| a.iter().filter(|x| x["status"] == "online").count())
            .unwrap_or(0)
    }

    /// Waits up to `max` until exactly `n` agents are online; `what` names
    /// the wait in the failure.
    pub async fn wait_online_count(&self, what: &str, n: usize, max: Duration) {
        wait_for(what, max, || async {
            (self.online_count().await == n).then_some(())
        })
        .await
    }

    /// Waits (up to 30 s) until the heartbeat of `agent` lists `module`
    /// among the modules its rootd can run; returns the agent as
    /// `GET /agents/{agent}` shows it then.
    pub async fn wait_module_listed(&self, agent: &str, module: &str) -> Value {
        wait_for(
            &format!("the heartbeat to list {module}"),
            Duration::from_secs(30),
            || async {
                let (_, a) = self.get(&format!("/agents/{agent}")).await;
                a["modules"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(module)))
                    .then_some(a)
            },
        )
        .await
    }
}

/// Asserts that the control plane refuses `action` with `params` for `host`
/// before signing anything: a 400 or 422.
pub async fn assert_params_refused(stack: &Stack, host: &Host, action: &str, params: Value) {
    let (code, body) = stack
        .command(&host.id, &json!({"action": action, "params": params}))
        .await;
    assert!(
        code == 422 || code == 400,
        "{action} {params} must be refused with 4xx, got {code}: {body}"
    );
}
