//! Agent credential renewal on the wire: the key-signed request an agent
//! sends on its own connection before its NATS user JWT expires
//! ([`RenewRequest`], on [`renew_subject`]), the control plane's answer
//! ([`RenewReply`]), and reading the times out of a NATS JWT
//! ([`jwt_times`]). Owns only these shapes and their bounds; whether an
//! agent may renew (its status, replay, freshness) is the control plane's,
//! and re-authentication after an expiry goes through enrolment
//! ([`crate::enroll`]).

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Subject an agent asks for a fresh JWT on: `drover.auth.renew.<agent>`.
/// Not in any stream; its permissions allow only its own.
pub fn renew_subject(agent: &str) -> String {
    format!("{}.auth.renew.{agent}", crate::subjects::PREFIX)
}

/// Wildcard the control plane answers renewals on.
pub const RENEW_ALL: &str = "drover.auth.renew.*";

/// Longest nonce accepted, in characters.
pub const MAX_NONCE_LEN: usize = 64;

/// A renewal request, signed with the agent's nkey
/// ([`crate::signing::agent::agent_sign`]) and sent as an
/// [`crate::signing::agent::AgentSigned`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The agent's id (its public nkey); must equal the subject's last token.
    pub agent_id: String,
    /// When the request was made, ms since the epoch. The control plane
    /// refuses a time far from its own and one not later than the last
    /// renewal it answered for this agent (a replay).
    pub at: i64,
    /// Random, 1..=[`MAX_NONCE_LEN`] characters; echoed in the reply so the
    /// agent takes only the answer to this request.
    pub nonce: String,
}

/// Whether a renewal was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewStatus {
    Renewed,
    Refused,
}

/// The control plane's answer to a [`RenewRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewReply {
    pub status: RenewStatus,
    /// Why it was refused, and what to do; "renewed" otherwise.
    pub message: String,
    /// The fresh NATS user JWT (only when renewed).
    #[serde(default)]
    pub user_jwt: Option<String>,
    /// Its expiry, ms since the epoch (`None`: it does not expire).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The request's agent id and nonce, echoed.
    pub agent_id: String,
    pub nonce: String,
}

/// The times in a NATS JWT, read without checking its signature (the
/// broker checks it): `(issued_at, expires_at)` in seconds since the epoch,
/// `expires_at` `None` when it does not expire. `None` when `jwt` is not a
/// JWT.
pub fn jwt_times(jwt: &str) -> Option<(i64, Option<i64>)> {
    let claims = jwt_claims(jwt)?;
    let iat = claims.get("iat")?.as_i64()?;
    let exp = claims.get("exp").and_then(|e| e.as_i64());
    Some((iat, exp))
}

/// The subject (`sub`, the user's public key) of a NATS JWT, unchecked.
pub fn jwt_subject(jwt: &str) -> Option<String> {
    jwt_claims(jwt)?.get("sub")?.as_str().map(str::to_string)
}

fn jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    let mut parts = jwt.trim().split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
            e.encode(claims.to_string())
        )
    }

    #[test]
    fn reads_times_and_subject() {
        let j = jwt(serde_json::json!({"iat": 100, "exp": 160, "sub": "UABC"}));
        assert_eq!(jwt_times(&j), Some((100, Some(160))));
        assert_eq!(jwt_subject(&j).as_deref(), Some("UABC"));
        let never = jwt(serde_json::json!({"iat": 100, "sub": "UABC"}));
        assert_eq!(jwt_times(&never), Some((100, None)));
        for bad in ["", "a.b", "a.b.c.d", "a.!!!.c"] {
            assert_eq!(jwt_times(bad), None, "{bad}");
        }
    }

    #[test]
    fn subject_names_the_agent() {
        assert_eq!(renew_subject("UABC"), "drover.auth.renew.UABC");
    }
}
