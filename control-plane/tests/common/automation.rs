//! Automation as a test sets it up: a registered automation key (its
//! private half generated and held by the test, as CI would hold it) and waiting for the
//! jobs submitted under an idempotency key to appear. Building and signing
//! the submissions stays in the tests, which vary them on purpose.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

impl Stack {
    /// Registers an automation key's public half (`public_key`, base64 as
    /// `AutomationKey::public_base64` gives it) as `name` with `role`
    /// (`operator`, `viewer`, ...) through `POST /automation-keys`,
    /// asserting 201. The test keeps the private half for signing.
    pub async fn add_automation_key(&self, name: &str, role: &str, public_key: &str) {
        let (code, v) = self
            .post(
                "/automation-keys",
                &json!({"name": name, "role": role, "public_key": public_key}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }

    /// Waits (up to 30 s) until `GET /jobs` lists a job with idempotency
    /// key `key`; returns the whole list then. Submissions sent before it
    /// on the same subject have been handled by then.
    pub async fn wait_job_keyed(&self, key: &str) -> Vec<Value> {
        wait_for(
            &format!("the job with idempotency key {key:?}"),
            Duration::from_secs(30),
            || async {
                let (_, v) = self.get("/jobs").await;
                let list = v["jobs"].as_array().cloned().unwrap_or_default();
                list.iter()
                    .any(|j| j["idempotency_key"] == key)
                    .then_some(list)
            },
        )
        .await
    }
}
