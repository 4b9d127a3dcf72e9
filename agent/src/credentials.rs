//! The agent's NATS user JWT over time: it expires (the control plane sets
//! its life), so the agent renews it at about two thirds of its life with a
//! request signed by its own key on its own connection
//! (`drover.auth.renew.<id>`), keeps the fresh one (written atomically to
//! the state directory) and reconnects with it; the durable command
//! consumer keeps anything in flight meanwhile. An agent whose JWT expired
//! (offline too long, or every renewal failed) re-authenticates through the
//! enrolment user with a signed claim — no registration token — unless the
//! control plane refuses (revoked, rejected): then it stops and says to
//! enrol again.
//!
//! Owns [`Creds`] (the JWT the connection authenticates with), the renewal
//! loop and re-authentication. Enrolment itself is `enroll`'s; the
//! connection and its events are `run`'s.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus_schema::credentials::{
    jwt_subject, jwt_times, renew_subject, RenewReply, RenewRequest, RenewStatus,
};
use bus_schema::enroll::EnrollStatus;
use bus_schema::subjects;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::config::AgentConfig;
use crate::enroll::{ask, AskError};
use crate::identity::Identity;

/// Exit status when the control plane refuses this agent's credentials
/// (revoked or rejected): the service manager should not restart it.
pub const EXIT_REFUSED: i32 = 78;

/// The JWT the broker connection authenticates with, shared by the auth
/// callback (read at every connect) and the renewal loop (which replaces
/// it).
pub struct Creds {
    jwt: std::sync::RwLock<String>,
    /// Wakes the renewal loop early (the broker refused an expired JWT).
    pub wake: Notify,
}

impl Creds {
    pub fn new(jwt: String) -> Arc<Self> {
        Arc::new(Self {
            jwt: std::sync::RwLock::new(jwt),
            wake: Notify::new(),
        })
    }

    /// The JWT in use now.
    pub fn current(&self) -> String {
        self.jwt.read().expect("creds lock").clone()
    }

    fn set(&self, jwt: String) {
        *self.jwt.write().expect("creds lock") = jwt;
    }

    /// True when the JWT in use has expired, or expires within `margin`.
    pub fn expired_within(&self, margin: Duration) -> bool {
        expired_within(&self.current(), margin)
    }
}

fn now_secs() -> i64 {
    bus_schema::now_ms() / 1000
}

/// True when `jwt` has an expiry and it is within `margin` from now (or
/// past). A JWT that cannot be read counts as expired.
pub fn expired_within(jwt: &str, margin: Duration) -> bool {
    match jwt_times(jwt) {
        Some((_, Some(exp))) => exp <= now_secs() + margin.as_secs() as i64,
        Some((_, None)) => false,
        None => true,
    }
}

/// Writes `jwt` to the state directory atomically (a 0600 temporary file
/// renamed over the old one), so a crash never leaves half a JWT.
pub fn store(state_dir: &Path, jwt: &str) -> anyhow::Result<()> {
    let path = crate::enroll::jwt_path(state_dir);
    let tmp = path.with_extension("jwt.new");
    let _ = std::fs::remove_file(&tmp);
    bus_schema::signing::write_secret_file(&tmp, jwt.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
}

/// Why re-authentication gave no JWT.
#[derive(Debug, thiserror::Error)]
pub enum ReauthError {
    /// The control plane said no: revoked, rejected, or another machine.
    #[error("the control plane refused to re-authenticate this agent: {0}")]
    Refused(String),
    /// Not answered, or not reachable: worth trying again later.
    #[error("re-authentication failed: {0}")]
    Failed(String),
}

/// Asks for a fresh JWT through the enrolment user (`enroll_creds`) with a
/// claim signed by the agent's key. No registration token is needed for an
/// agent the control plane knows and has approved.
pub async fn reauth(cfg: &AgentConfig, id: &Identity) -> Result<String, ReauthError> {
    let creds = cfg.enroll_creds.clone().ok_or_else(|| {
        ReauthError::Failed(
            "the JWT expired and enroll_creds is not set: set it to the enrolment credentials file (enroll.creds) so the agent can re-authenticate".into(),
        )
    })?;
    let fail = |e: &dyn std::fmt::Display| ReauthError::Failed(e.to_string());
    let machine_id = crate::enroll::machine_id(cfg).map_err(|e| fail(&e))?;
    let opts = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .map_err(|e| fail(&format!("reading {}: {e}", creds.display())))?;
    let client = cfg
        .tls(opts)
        .name("drover-agent re-authentication")
        .custom_inbox_prefix(subjects::ENROLL_INBOX_PREFIX)
        .connect(crate::config::server_addrs(&cfg.nats_url))
        .await
        .map_err(|e| fail(&format!("connecting to {}: {e}", cfg.nats_url)))?;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| fail(&e))?;
    let reply_key = bus_schema::enroll::new_reply_key();
    let token = cfg.enroll_token.clone().unwrap_or_default();
    let claim = crate::enroll::claim(cfg, id, &token, &machine_id, &reply_key, None);
    let answer = ask(
        &client,
        &inbox,
        &mut sub,
        &claim,
        id.key(),
        &reply_key,
        Duration::from_secs(10),
    )
    .await;
    let _ = client.drain().await;
    let reply = answer.map_err(|e: AskError| fail(&e))?;
    match reply.status {
        EnrollStatus::Approved => {
            let jwt = reply
                .user_jwt
                .ok_or_else(|| fail(&"approved without credentials"))?;
            check_jwt(&jwt, &id.agent_id()).map_err(|e| fail(&e))?;
            Ok(jwt)
        }
        EnrollStatus::Rejected => Err(ReauthError::Refused(reply.message)),
        EnrollStatus::Pending => Err(fail(&format!("still pending: {}", reply.message))),
    }
}

/// Re-authenticates until it works (transport failures are retried with a
/// growing pause, at most a minute); a refusal is returned.
pub async fn reauth_until_answered(cfg: &AgentConfig, id: &Identity) -> Result<String, String> {
    let mut delay = Duration::from_secs(1);
    loop {
        match reauth(cfg, id).await {
            Ok(jwt) => return Ok(jwt),
            Err(ReauthError::Refused(m)) => return Err(m),
            Err(e) => {
                warn!(error = %e, retry_in = ?delay, "re-authentication failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Logs that the control plane refused this agent and what to do, then
/// ends the process with [`EXIT_REFUSED`].
pub fn refused_exit(why: &str) -> ! {
    error!(
        reason = %why,
        "the control plane refused to renew this agent's credentials (revoked or rejected); stopping. \
         To bring the host back, remove the state directory and enrol it again with a new registration token."
    );
    std::process::exit(EXIT_REFUSED)
}

/// A JWT fit to use: names this agent and has not expired.
fn check_jwt(jwt: &str, agent_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        jwt_subject(jwt).as_deref() == Some(agent_id),
        "the JWT received names another user"
    );
    anyhow::ensure!(
        !expired_within(jwt, Duration::ZERO),
        "the JWT received has already expired"
    );
    Ok(())
}

/// Asks for a fresh JWT on the agent's own connection.
async fn renew_once(client: &async_nats::Client, id: &Identity) -> Result<String, (bool, String)> {
    let agent_id = id.agent_id();
    let req = RenewRequest {
        agent_id: agent_id.clone(),
        at: bus_schema::now_ms(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
    };
    let signed = bus_schema::signing::agent_sign(id.key(), &req);
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(renew_subject(&agent_id), bus_schema::encode(&signed).into()),
    )
    .await
    .map_err(|_| (false, "no answer within 10s".to_string()))?
    .map_err(|e| (false, e.to_string()))?;
    let reply: RenewReply = bus_schema::codec::decode(&msg.payload, None)
        .map_err(|e| (false, format!("unreadable answer: {e}")))?;
    if reply.agent_id != agent_id || reply.nonce != req.nonce {
        return Err((false, "the answer is not to this request".into()));
    }
    match (reply.status, reply.user_jwt) {
        (RenewStatus::Renewed, Some(jwt)) => {
            check_jwt(&jwt, &agent_id).map_err(|e| (false, e.to_string()))?;
            Ok(jwt)
        }
        (_, _) => Err((true, reply.message)),
    }
}

/// When the JWT in use should be renewed (seconds since the epoch): at two
/// thirds of its life. `None` when it does not expire.
fn renew_at(jwt: &str) -> Option<(i64, i64)> {
    match jwt_times(jwt) {
        Some((iat, Some(exp))) => Some((iat + (exp - iat).max(0) * 2 / 3, exp)),
        Some((_, None)) => None,
        // Unreadable: renew now.
        None => Some((0, 0)),
    }
}

/// Takes `jwt` into use: stored, shared with the auth callback, and a
/// reconnect so the broker sees it now rather than at the old one's expiry.
async fn adopt(
    creds: &Creds,
    client: &async_nats::Client,
    state_dir: &Path,
    jwt: String,
    via: &str,
) {
    if let Err(e) = store(state_dir, &jwt) {
        // Still usable for this run; the next start re-authenticates.
        warn!(error = %e, "the fresh JWT was not saved");
    }
    let exp = jwt_times(&jwt).and_then(|(_, e)| e);
    creds.set(jwt);
    info!(via, expires_at = ?exp, "credentials renewed; reconnecting with them");
    if let Err(e) = client.force_reconnect().await {
        warn!(error = %e, "reconnect after renewal not started");
    }
}

/// Renews the JWT before it expires, for as long as the agent runs; after
/// an expiry, re-authenticates through enrolment. Ends the process when the
/// control plane refuses a re-authentication.
pub async fn renew_loop(
    cfg: AgentConfig,
    id: Arc<Identity>,
    creds: Arc<Creds>,
    client: async_nats::Client,
) {
    let mut failures: u32 = 0;
    // A JWT without expiry (issued before expiring credentials, or by a
    // control plane with `agent_jwt_ttl_secs = 0`) is renewed a few times
    // per run, so a fleet enrolled earlier moves to expiring JWTs; if the
    // answer has no expiry either, there is nothing more to do.
    let mut unexpiring_tries: u32 = 0;
    loop {
        let jwt = creds.current();
        let (due, exp) = match renew_at(&jwt) {
            Some(t) => t,
            None if unexpiring_tries < 3 => {
                unexpiring_tries += 1;
                (0, i64::MAX)
            }
            None => {
                // Nothing to renew until a new JWT says otherwise.
                creds.wake.notified().await;
                continue;
            }
        };
        let now = now_secs();
        if now < due {
            let wait = Duration::from_secs((due - now) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = creds.wake.notified() => {}
            }
            if now_secs() < due && !creds.expired_within(Duration::from_secs(1)) {
                continue;
            }
        }
        let outcome = if now_secs() < exp {
            match renew_once(&client, &id).await {
                Ok(jwt) => Ok((jwt, "renewal")),
                Err((refused, why)) => {
                    warn!(refused, reason = %why, "credential renewal failed");
                    Err(())
                }
            }
        } else {
            info!("the JWT has expired; re-authenticating with the agent's key");
            match reauth(&cfg, &id).await {
                Ok(jwt) => Ok((jwt, "re-authentication")),
                Err(ReauthError::Refused(why)) => refused_exit(&why),
                Err(e) => {
                    warn!(error = %e, "re-authentication failed");
                    Err(())
                }
            }
        };
        match outcome {
            Ok((jwt, via)) => {
                failures = 0;
                adopt(&creds, &client, &cfg.state_dir, jwt, via).await;
            }
            Err(()) => {
                failures = failures.saturating_add(1);
                // A tenth of what is left, between 1 s and 30 s.
                let left = (exp - now_secs()).max(0) as u64;
                let pause = Duration::from_secs((left / 10).clamp(1, 30));
                tokio::select! {
                    _ = tokio::time::sleep(pause.min(Duration::from_secs(failures as u64 * 5))) => {}
                    _ = creds.wake.notified() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(iat: i64, exp: Option<i64>) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c = serde_json::json!({"iat": iat, "sub": "UX"});
        if let Some(exp) = exp {
            c["exp"] = exp.into();
        }
        format!("{}.{}.s", e.encode("{}"), e.encode(c.to_string()))
    }

    #[test]
    fn renews_at_two_thirds_and_reads_expiry() {
        assert_eq!(renew_at(&jwt(100, Some(160))), Some((140, 160)));
        assert_eq!(renew_at(&jwt(100, None)), None);
        assert_eq!(renew_at("garbage"), Some((0, 0)));
        let now = now_secs();
        assert!(expired_within(
            &jwt(now - 10, Some(now - 1)),
            Duration::ZERO
        ));
        assert!(!expired_within(
            &jwt(now, Some(now + 3600)),
            Duration::from_secs(5)
        ));
        assert!(!expired_within(&jwt(now, None), Duration::from_secs(5)));
        assert!(expired_within("garbage", Duration::ZERO));
    }

    #[test]
    fn stores_atomically() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), "a.b.c").unwrap();
        store(d.path(), "d.e.f").unwrap();
        let p = crate::enroll::jwt_path(d.path());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "d.e.f");
        assert!(!p.with_extension("jwt.new").exists());
    }
}
