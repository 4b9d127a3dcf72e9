//! Agent credentials that expire and renew: minting an agent's NATS user
//! JWT with the configured life (`agent_jwt_ttl_secs`) and recording it
//! (`agent_credentials`, the audit trail), and answering the key-signed
//! renewal requests agents send on `drover.auth.renew.<agent>` before their
//! JWT expires.
//!
//! A renewal is granted only when the request's signature holds under the
//! agent id of its subject, the agent is approved (not pending, rejected or
//! revoked), its time is within [`MAX_CLOCK_SKEW_MS`] of ours and later
//! than the last renewal answered for the agent (so a captured request
//! replayed is refused, across restarts too). Answers go only to the
//! agent's own inbox. Re-authentication after an expiry is enrolment's
//! (`enroll`): a known, approved agent's signed claim is answered with a
//! fresh JWT and no token. The JWT's permissions are `nats_auth`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus_schema::credentials::{RenewReply, RenewRequest, RenewStatus, MAX_NONCE_LEN, RENEW_ALL};
use bus_schema::signing::agent::{agent_open, AgentSigned};
use bus_schema::{codec, now_ms, subjects};
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::audit;
use crate::db::entities::{agent, agent_credential};
use crate::state::AppState;

/// Requests whose time is further than this from ours are refused.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Renewal requests refused (or dropped for a reply subject outside the
/// agent's inbox) since this process started.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Renewal requests refused since this process started (shown by
/// `GET /api/v1/security` as `credentials.refused_renewals`).
pub fn refused_renewals() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// How a JWT came to be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issue {
    /// A signed enrolment claim: `enrol` the first time, `reauth` after.
    Claim,
    /// A renewal request made at `at` (ms).
    Renew { at: i64 },
}

/// Why a JWT was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("renewal request replayed or out of order (not later than the last one answered)")]
    Replayed,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Mint(#[from] anyhow::Error),
}

/// Mints a JWT for `agent_id` living `agent_jwt_ttl_secs`, and records it:
/// the `agent_credentials` row (expiry, how, counters) and an audit entry.
/// Returns the JWT and its expiry (ms since the epoch; `None`: none).
pub async fn issue(
    state: &AppState,
    agent_id: &str,
    how: Issue,
) -> Result<(String, Option<i64>), IssueError> {
    let (jwt, expires_at) = state
        .auth
        .agent_user_jwt_for(agent_id, state.cfg.agent_jwt_ttl_secs)?;
    let now = now_ms();
    let via = {
        let _turn = state.writer.lock().await;
        let existing = agent_credential::Entity::find_by_id(agent_id.to_string())
            .one(&state.db)
            .await?;
        match (existing, how) {
            (None, how) => {
                let (via, renewals, last) = match how {
                    Issue::Claim => ("enrol", 0, None),
                    Issue::Renew { at } => ("renew", 1, Some(at)),
                };
                agent_credential::Entity::insert(agent_credential::ActiveModel {
                    agent_id: Set(agent_id.to_string()),
                    jwt_expires_at: Set(expires_at),
                    issued_at: Set(now),
                    issued_via: Set(via.into()),
                    renewals: Set(renewals),
                    reauths: Set(0),
                    last_request_at: Set(last),
                })
                .exec(&state.db)
                .await?;
                via
            }
            (Some(c), Issue::Claim) => {
                agent_credential::Entity::update(agent_credential::ActiveModel {
                    agent_id: Set(c.agent_id),
                    jwt_expires_at: Set(expires_at),
                    issued_at: Set(now),
                    issued_via: Set("reauth".into()),
                    reauths: Set(c.reauths + 1),
                    ..Default::default()
                })
                .exec(&state.db)
                .await?;
                "reauth"
            }
            (Some(_), Issue::Renew { at }) => {
                // Conditional on the request being later than the last one
                // answered: two copies of one request never both pass.
                let r = agent_credential::Entity::update_many()
                    .col_expr(
                        agent_credential::Column::JwtExpiresAt,
                        Expr::value(expires_at),
                    )
                    .col_expr(agent_credential::Column::IssuedAt, Expr::value(now))
                    .col_expr(agent_credential::Column::IssuedVia, Expr::value("renew"))
                    .col_expr(
                        agent_credential::Column::Renewals,
                        Expr::col(agent_credential::Column::Renewals).add(1),
                    )
                    .col_expr(agent_credential::Column::LastRequestAt, Expr::value(at))
                    .filter(agent_credential::Column::AgentId.eq(agent_id))
                    .filter(
                        Condition::any()
                            .add(agent_credential::Column::LastRequestAt.is_null())
                            .add(agent_credential::Column::LastRequestAt.lt(at)),
                    )
                    .exec(&state.db)
                    .await?;
                if r.rows_affected == 0 {
                    return Err(IssueError::Replayed);
                }
                "renew"
            }
        }
    };
    let entry = audit::Entry::new(
        &format!("agent:{agent_id}"),
        &format!("credentials.{via}"),
        agent_id,
        "",
        json!({ "expires_at": expires_at }),
    );
    if let Err(e) = audit::record(&state.db, entry).await {
        warn!(error = %e, "credential issue not audited");
    }
    info!(agent_id, via, expires_at = ?expires_at, "agent credentials issued");
    Ok((jwt, expires_at))
}

/// The agent's credentials as the API shows them (`null` when none were
/// recorded, e.g. an agent enrolled before issue 16):
/// `{ "jwt_expires_at": ms|null, "issued_at": ms, "issued_via":
/// "enrol"|"renew"|"reauth", "renewals": n, "reauths": n }`.
pub async fn view(db: &DatabaseConnection, agent_id: &str) -> Result<Value, sea_orm::DbErr> {
    Ok(agent_credential::Entity::find_by_id(agent_id.to_string())
        .one(db)
        .await?
        .map(|c| {
            json!({
                "jwt_expires_at": c.jwt_expires_at,
                "issued_at": c.issued_at,
                "issued_via": c.issued_via,
                "renewals": c.renewals,
                "reauths": c.reauths,
            })
        })
        .unwrap_or(Value::Null))
}

/// Answers renewal requests on the control plane's connection. Replies go
/// only to the requesting agent's own inbox; anything else is dropped.
pub async fn serve(state: AppState) {
    loop {
        let mut sub = match state
            .nats
            .queue_subscribe(RENEW_ALL, "control-plane".into())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot listen for credential renewals; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(msg) = sub.next().await {
            let subject = msg.subject.as_str();
            let Some(agent_id) = subject
                .rsplit('.')
                .next()
                .filter(|a| subjects::is_valid_token(a) && a.starts_with('U') && a.len() <= 64)
            else {
                continue;
            };
            let inbox = format!("{}.", subjects::inbox_prefix(agent_id));
            let Some(reply_to) = msg
                .reply
                .as_deref()
                .filter(|r| r.starts_with(&inbox) && r.len() <= subjects::MAX_REPLY_SUBJECT)
                .map(str::to_string)
            else {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let answer = renew(&state, agent_id, &msg.payload).await;
            if let Err(e) = state
                .nats
                .publish(reply_to, bus_schema::encode(&answer).into())
                .await
            {
                warn!(error = %e, "renewal reply not sent");
            }
        }
    }
}

fn refused(agent_id: &str, nonce: &str, why: String) -> RenewReply {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    warn!(agent_id, reason = %why, "credential renewal refused");
    RenewReply {
        status: RenewStatus::Refused,
        message: why,
        user_jwt: None,
        expires_at: None,
        agent_id: agent_id.to_string(),
        nonce: nonce.to_string(),
    }
}

fn valid_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NONCE_LEN
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The answer to one renewal request from `agent_id` (the subject's agent).
pub async fn renew(state: &AppState, agent_id: &str, payload: &[u8]) -> RenewReply {
    let signed: AgentSigned = match codec::decode(payload, None) {
        Ok(s) => s,
        Err(e) => return refused(agent_id, "", format!("malformed renewal request: {e}")),
    };
    let req: RenewRequest = match agent_open(agent_id, &signed) {
        Ok(r) => r,
        Err(e) => return refused(agent_id, "", e.to_string()),
    };
    if !valid_nonce(&req.nonce) {
        return refused(
            agent_id,
            "",
            format!("the nonce must be 1..={MAX_NONCE_LEN} of [A-Za-z0-9_-]"),
        );
    }
    if req.agent_id != agent_id {
        return refused(
            agent_id,
            &req.nonce,
            "the request names another agent than its subject".into(),
        );
    }
    if (now_ms() - req.at).abs() > MAX_CLOCK_SKEW_MS {
        return refused(
            agent_id,
            &req.nonce,
            "the request's time is more than 5 minutes off; check the host's clock".into(),
        );
    }
    let status = match agent::Entity::find_by_id(agent_id.to_string())
        .one(&state.db)
        .await
    {
        Ok(Some(a)) => a.status,
        Ok(None) => {
            return refused(
                agent_id,
                &req.nonce,
                "unknown agent; enrol it with a registration token".into(),
            )
        }
        Err(e) => {
            return refused(
                agent_id,
                &req.nonce,
                format!("the control plane could not read the agent ({e}); retry later"),
            )
        }
    };
    match status.as_str() {
        "revoked" | "rejected" => {
            return refused(
                agent_id,
                &req.nonce,
                format!(
                    "this agent was {status}; remove its state directory and enrol it again with a new registration token"
                ),
            )
        }
        "pending" => {
            return refused(
                agent_id,
                &req.nonce,
                "this agent is not approved yet: drover agents approve <id>".into(),
            )
        }
        _ => {}
    }
    match issue(state, agent_id, Issue::Renew { at: req.at }).await {
        Ok((jwt, expires_at)) => RenewReply {
            status: RenewStatus::Renewed,
            message: "renewed".into(),
            user_jwt: Some(jwt),
            expires_at,
            agent_id: agent_id.to_string(),
            nonce: req.nonce,
        },
        Err(e @ IssueError::Replayed) => refused(agent_id, &req.nonce, e.to_string()),
        Err(e) => refused(
            agent_id,
            &req.nonce,
            format!("the control plane could not issue credentials ({e}); retry later"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces() {
        assert!(valid_nonce("abc-DEF_123"));
        for bad in ["", "a b", "a.b", "*", &"x".repeat(MAX_NONCE_LEN + 1)] {
            assert!(!valid_nonce(bad), "{bad:?}");
        }
    }
}
