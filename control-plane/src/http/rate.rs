//! Request-rate limits for the whole server, in front of the gate: one
//! token bucket per API token (keyed by the token's SHA-256, whether or not
//! the token is valid) and one per client address. A request over either
//! gets 429 with `Retry-After` (whole seconds) and reaches nothing behind.
//! `/healthz`, `/readyz` and the UI's static files (`/ui/...`) are not counted; a
//! long-lived request (the event stream, a `?wait=` poll) counts once, when
//! it starts. It does not authenticate (the gate does) and is separate from
//! the failed-login limit of [`crate::auth`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::error::ApiError;

/// Buckets kept before idle, full ones are swept.
const MAX_KEYS: usize = 50_000;

/// One keyed family of token buckets: `rate` tokens per second refill up to
/// `burst`; a request takes one.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: f64,
    burst: f64,
    map: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    /// `rate` per second (0: unlimited), `burst` at most at once (at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        Buckets {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`: `Ok(())`, or `Err(seconds)` to wait
    /// before the next one is there (at least 1).
    pub fn take(&self, key: &K, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut map = self.map.lock().expect("rate buckets lock");
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = map.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// The server's limits: per token and per address.
#[derive(Debug)]
pub struct Limits {
    pub per_token: Buckets<[u8; 32]>,
    pub per_address: Buckets<IpAddr>,
}

impl Limits {
    /// From the configuration's `http_rate_per_token`,
    /// `http_rate_per_address` and `http_rate_burst`.
    pub fn from_config(cfg: &crate::config::Config) -> Arc<Self> {
        Arc::new(Limits {
            per_token: Buckets::new(cfg.http_rate_per_token, cfg.http_rate_burst),
            per_address: Buckets::new(cfg.http_rate_per_address, cfg.http_rate_burst),
        })
    }
}

fn counted(path: &str) -> bool {
    !(path == "/healthz" || path == "/readyz" || path.starts_with("/ui/"))
}

/// Middleware: refuses a request over its token's or its address's rate.
pub async fn limit(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    if !counted(req.uri().path()) {
        return next.run(req).await;
    }
    let now = Instant::now();
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| {
            use sha2::Digest;
            <[u8; 32]>::from(sha2::Sha256::digest(t.trim().as_bytes()))
        });
    let over = ip
        .and_then(|ip| {
            limits
                .per_address
                .take(&ip, now)
                .err()
                .map(|s| (s, "address"))
        })
        .or_else(|| token.and_then(|t| limits.per_token.take(&t, now).err().map(|s| (s, "token"))));
    let Some((secs, what)) = over else {
        return next.run(req).await;
    };
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from this {what}: wait {secs} s (Retry-After) and send fewer requests per second"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let b = Buckets::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.take(&"a", t0), Ok(()));
        }
        assert_eq!(b.take(&"a", t0), Err(1));
        // Another key has its own bucket.
        assert_eq!(b.take(&"b", t0), Ok(()));
        // Half a second later one token (2/s) is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(&"a", t1), Ok(()));
        assert!(b.take(&"a", t1).is_err());
    }

    #[test]
    fn rate_zero_is_unlimited() {
        let b = Buckets::new(0, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(b.take(&1u8, t0), Ok(()));
        }
    }
}
