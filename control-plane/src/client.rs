//! The CLI's view of the API: a small HTTP client with the token attached and
//! errors turned into sentences; over HTTPS it trusts the CA it is given
//! (`--ca`), not the public roots. A request the server's rate limit
//! refused (429 with `Retry-After`) is sent again after the wait it names. It does not own
//! the rate limit itself (`http/rate.rs`).

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
    /// Whether waiting out a rate limit is said on stderr (not with
    /// `--json`, whose stderr carries only the error document).
    notices: bool,
}

impl ApiClient {
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
            notices: true,
        }
    }

    /// The same client, saying nothing on stderr while it waits out a rate
    /// limit (for `--json`: stderr then carries only the error document).
    pub fn quiet(mut self) -> Self {
        self.notices = false;
        self
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
            notices: true,
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

    /// Sends the request `build` makes for `{base}/api/v1{path}` with the
    /// token, and sends it again while the server's rate limit refuses it
    /// (429 with `Retry-After`, [`rate_wait_secs`]): after the wait it names,
    /// at most [`RATE_RETRIES`] times, saying so on stderr unless
    /// [`Self::quiet`]. Such a request
    /// reached nothing behind the limit (`http/rate.rs`), so sending it again
    /// is safe for any method. A 429 without `Retry-After` (a host's command
    /// queue is full) is a refusal of the request itself and is returned as
    /// is. The answer is returned unread; the last 429 when the retries run
    /// out.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut retries = 0;
        loop {
            let req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token);
            let resp = build(req)
                .send()
                .await
                .map_err(|e| unreachable(&self.base, e))?;
            let Some(secs) = rate_wait_secs(&resp) else {
                return Ok(resp);
            };
            if retries >= RATE_RETRIES {
                return Ok(resp);
            }
            retries += 1;
            if self.notices {
                eprintln!(
                    "the control plane is rate-limiting these requests (429): sending again in \
                     {secs} s ({retries} of {RATE_RETRIES})"
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
        }
    }

    /// `GET /api/v1{path}` with the token; the answer unread.
    async fn send_get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.send(reqwest::Method::GET, path, |r| r).await
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
        let resp = self.send(reqwest::Method::DELETE, path, |r| r).await?;
        self.check(resp).await
    }

    /// `POST /api/v1{path}` with a raw body (`application/octet-stream`)
    /// and extra headers (`drover releases publish` sends an agent binary
    /// this way); errors as [`Self::get`]. Sent once: a streamed body cannot
    /// be sent again, so a 429 is an error here.
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
            .send(reqwest::Method::POST, path, |r| r.json(body))
            .await?;
        self.check(resp).await
    }
}

/// How many times a request the server answered 429 is sent again.
pub const RATE_RETRIES: u32 = 5;

/// The longest wait before sending a 429'd request again, seconds (a
/// larger `Retry-After` is cut to it).
pub const RATE_WAIT_MAX_SECS: u64 = 30;

/// The wait a rate-limited answer asks for: `Some(seconds)` for a 429 with
/// a `Retry-After` header (whole seconds, RFC 9110 §10.2.3, within
/// 1..=[`RATE_WAIT_MAX_SECS`]; an HTTP date counts as 1 s), `None` for any
/// other answer. The server's rate limit (`http/rate.rs`) always sends the
/// header; its other 429 (a host's full command queue) never does.
fn rate_wait_secs(resp: &reqwest::Response) -> Option<u64> {
    if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, RATE_WAIT_MAX_SECS),
    )
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

    /// An answer with `status` and, when given, a `Retry-After` header.
    fn answer(status: u16, retry_after: Option<&'static str>) -> reqwest::Response {
        let mut b = axum::http::Response::builder().status(status);
        if let Some(v) = retry_after {
            b = b.header("retry-after", v);
        }
        reqwest::Response::from(b.body("").unwrap())
    }

    #[test]
    fn only_a_429_with_retry_after_is_waited_out_in_whole_seconds_within_bounds() {
        assert_eq!(rate_wait_secs(&answer(429, Some("3"))), Some(3));
        assert_eq!(rate_wait_secs(&answer(429, Some("0"))), Some(1));
        assert_eq!(
            rate_wait_secs(&answer(429, Some("86400"))),
            Some(RATE_WAIT_MAX_SECS)
        );
        assert_eq!(
            rate_wait_secs(&answer(429, Some("Wed, 21 Oct 2026 07:28:00 GMT"))),
            Some(1)
        );
        // A full command queue: 429 without Retry-After, not sent again.
        assert_eq!(rate_wait_secs(&answer(429, None)), None);
        assert_eq!(rate_wait_secs(&answer(503, Some("3"))), None);
        assert_eq!(rate_wait_secs(&answer(200, None)), None);
    }

    #[test]
    fn params() {
        let v = parse_params(&["a=1".into(), "b=x y".into(), "c=true".into()]).unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": "x y", "c": true}));
        assert!(parse_params(&["nope".into()]).is_err());
    }
}
