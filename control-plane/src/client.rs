//! The CLI's view of the API: a small HTTP client with the token attached and
//! errors turned into sentences; over HTTPS it trusts the CA it is given
//! (`--ca`), not the public roots.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Like [`ApiClient::new`], trusting only the CA in the PEM file `ca`
    /// (e.g. the `tls/ca.pem` `drover init` made) for an `https://` base
    /// instead of the built-in public roots. Errors: `ca` unreadable or not
    /// a PEM certificate.
    pub fn with_ca(base: &str, token: String, ca: Option<&Path>) -> anyhow::Result<Self> {
        let Some(ca) = ca else {
            return Ok(Self::new(base, token));
        };
        let pem = std::fs::read(ca).with_context(|| format!("reading the CA {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate file", ca.display()))?;
        if certs.is_empty() {
            bail!("{} holds no certificate", ca.display());
        }
        let mut http = reqwest::Client::builder().tls_built_in_root_certs(false);
        for c in certs {
            http = http.add_root_certificate(c);
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: http.build().context("building the HTTPS client")?,
        })
    }

    async fn check(&self, resp: reqwest::Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no details")
            .to_string();
        Err(ClientError::Status { status, message }.into())
    }

    /// `GET /api/v1{path}` with the token; the answer unread.
    async fn send_get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.send_get(path).await?;
        self.check(resp).await
    }

    /// `GET /api/v1/events`: the server-sent event stream (`event: <kind>`
    /// and `data: <JSON>` lines), open; read it with `bytes_stream()`.
    /// Errors as [`Self::get`].
    pub async fn events(&self) -> anyhow::Result<reqwest::Response> {
        let resp = self.send_get("/events").await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        match self.check(resp).await {
            Err(e) => Err(e),
            Ok(_) => bail!("the event stream answered without success"),
        }
    }

    /// A GET whose answer is text (CSV exports); errors as [`Self::get`].
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.send_get(path).await?;
        if resp.status().is_success() {
            return Ok(resp.text().await?);
        }
        self.check(resp).await.map(|v| v.to_string())
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .delete(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))?;
        self.check(resp).await
    }

    /// `POST /api/v1{path}` with a raw body (`application/octet-stream`)
    /// and extra headers (`drover releases publish` sends an agent binary
    /// this way); errors as [`Self::get`].
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: reqwest::Body,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))?;
        self.check(resp).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, e))?;
        self.check(resp).await
    }
}

/// Why a request did not get an answer, said so that the operator knows
/// what to change: plain HTTP sent to an HTTPS port, a certificate not
/// signed by the CA in use, or nothing listening.
fn unreachable(base: &str, e: reqwest::Error) -> anyhow::Error {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    let hint = if lower.contains("invalid http version") || lower.contains("http/0.9") {
        format!(
            "the control plane at {base} speaks HTTPS: use --api {}",
            base.replacen("http://", "https://", 1)
        )
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "the certificate of {base} is not signed by the CA this client trusts: \
             pass the control plane's CA with --ca (DROVER_CA; default <data_dir>/tls/ca.pem)"
        )
    } else {
        format!(
            "cannot reach the control plane at {base}; is `drover serve` (or `drover dev`) \
             running? Set --api or DROVER_API"
        )
    };
    ClientError::Unreachable(format!("{hint} ({chain})")).into()
}

/// Why a request failed, typed so that the CLI can map it to an exit code
/// (downcast it from the `anyhow::Error` the methods return).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The control plane answered with a non-success status; `message` is
    /// the `error` field of its JSON body (`no details` without one).
    #[error("{status}: {message}")]
    Status {
        status: reqwest::StatusCode,
        message: String,
    },
    /// No answer: nothing listening, TLS mismatch, or a timeout; the text
    /// says what to change.
    #[error("{0}")]
    Unreachable(String),
}

/// `key=value` pairs into a JSON object; values that parse as JSON (numbers,
/// booleans, arrays) keep their type, anything else is a string.
pub fn parse_params(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("parameter {p:?} is not key=value");
        };
        if k.is_empty() {
            bail!("parameter {p:?} has an empty key");
        }
        let val = bus_schema::codec::decode_json::<Value>(v.as_bytes())
            .unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), val);
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let v = parse_params(&["a=1".into(), "b=x y".into(), "c=true".into()]).unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": "x y", "c": true}));
        assert!(parse_params(&["nope".into()]).is_err());
    }
}
