//! Enrolment: at first start the agent presents its registration token, its
//! public key and its machine-id (signed with its key) on `drover.enroll`,
//! through the enrolment-only NATS user. Approved, it keeps its NATS user JWT
//! and pins the control plane's command-signing key; pending, it asks again
//! until an operator decides; rejected, it stops and says why.
//!
//! Every enrolling host shares one broker user and so can read every
//! enrolment inbox: the claim names a one-off curve key, the control plane
//! seals its answer to it, and [`ask`] takes only an answer that opens with
//! that key and names this claim, skipping anything else that lands on the
//! inbox. This module does not decide anything about the host's identity
//! beyond enrolment (`identity`) or run commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bus_schema::enroll::{
    agent_sign, open_answer, AnswerError, EnrollClaim, EnrollReply, EnrollStatus,
};
use bus_schema::{subjects, VerifyingKey};
use futures::StreamExt;
use tracing::{debug, info, warn};

use crate::config::AgentConfig;
use crate::identity::Identity;

/// What enrolment leaves in the state directory.
pub struct Enrolment {
    pub user_jwt: String,
    pub control_plane_key: VerifyingKey,
}

/// Where the agent keeps its NATS user JWT.
pub(crate) fn jwt_path(state: &Path) -> PathBuf {
    state.join("agent.jwt")
}

fn pinned_key_path(state: &Path) -> PathBuf {
    state.join("control-plane.key")
}

/// The host's machine-id: the configured file, else `/etc/machine-id`, else
/// `/var/lib/dbus/machine-id`.
pub fn machine_id(cfg: &AgentConfig) -> anyhow::Result<String> {
    let candidates: Vec<PathBuf> = match &cfg.machine_id_file {
        Some(p) => vec![p.clone()],
        None => vec!["/etc/machine-id".into(), "/var/lib/dbus/machine-id".into()],
    };
    for p in &candidates {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim().to_string();
            if !s.is_empty() {
                return Ok(s);
            }
        }
    }
    bail!("no machine-id found (tried {candidates:?}); systemd-machine-id-setup creates one")
}

/// Why [`ask`] came back without an answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("the enrolment request could not be sent: {0}")]
    Publish(String),
    #[error("the enrolment inbox subscription ended")]
    Closed,
    #[error("the control plane could not read the enrolment request: {0}")]
    Unreadable(String),
    #[error("no answer to the enrolment request within {0:?}")]
    Timeout(Duration),
}

/// Most messages looked at on the inbox for one request before giving up on
/// it (the rest are someone else's or noise).
const MAX_SKIPPED: usize = 1000;

/// Sends one signed claim on `drover.enroll` with `inbox` (which `sub` is
/// subscribed to) as the reply subject, and waits up to `within` for the
/// answer to it: sealed to `reply_key` and naming this claim's agent id and
/// time. Anything else on the inbox is skipped.
pub async fn ask(
    client: &async_nats::Client,
    inbox: &str,
    sub: &mut async_nats::Subscriber,
    claim: &EnrollClaim,
    key: &nkeys::KeyPair,
    reply_key: &nkeys::XKey,
    within: Duration,
) -> Result<EnrollReply, AskError> {
    let signed = agent_sign(key, claim);
    client
        .publish_with_reply(
            subjects::ENROLL,
            inbox.to_string(),
            bus_schema::encode(&signed).into(),
        )
        .await
        .map_err(|e| AskError::Publish(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + within;
    let mut unreadable = None;
    for _ in 0..MAX_SKIPPED {
        let msg = match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(AskError::Closed),
            Err(_) => break,
        };
        match open_answer(&msg.payload, reply_key, &claim.public_key, claim.at) {
            Ok(reply) => return Ok(reply),
            // Not sealed, so not proof it answers us: keep waiting, and
            // say it if nothing better comes.
            Err(AnswerError::Unreadable(m)) => unreadable = Some(m),
            Err(e) => debug!(error = %e, "skipped a message on the enrolment inbox"),
        }
    }
    Err(match unreadable {
        Some(m) => AskError::Unreadable(m),
        None => AskError::Timeout(within),
    })
}

/// A claim for this host, made now, naming `reply_key` for the answer.
/// `token` may be empty for an agent the control plane already knows (a
/// re-authentication after its JWT expired).
pub(crate) fn claim(
    cfg: &AgentConfig,
    id: &Identity,
    token: &str,
    machine_id: &str,
    reply_key: &nkeys::XKey,
    rootd_box_key: Option<String>,
) -> EnrollClaim {
    EnrollClaim {
        token: token.to_string(),
        public_key: id.agent_id(),
        machine_id: machine_id.to_string(),
        hostname: crate::metrics::hostname(),
        facts: serde_json::json!({
            "os": crate::metrics::os(),
            "kernel": crate::metrics::kernel(),
            // The distribution (`debian`), for `os:debian` selectors.
            "os_id": sysinfo::System::distribution_id(),
            "arch": sysinfo::System::cpu_arch(),
            "agent_version": crate::version::running().version,
            "agent_channel": crate::version::running().channel,
        }),
        at: bus_schema::now_ms(),
        reply_key: reply_key.public_key(),
        display_name: cfg.display_name.clone(),
        labels: cfg.labels.clone(),
        protocol_version: bus_schema::signing::PROTOCOL_VERSION,
        rootd_box_key,
    }
}

/// Loads the enrolment from the state directory, or enrols now.
pub async fn ensure(cfg: &AgentConfig, id: &Identity) -> anyhow::Result<Enrolment> {
    let state = &cfg.state_dir;
    let configured = cfg.configured_key()?;
    if let (Ok(jwt), Ok(key)) = (
        std::fs::read_to_string(jwt_path(state)),
        std::fs::read_to_string(pinned_key_path(state)),
    ) {
        let pinned =
            VerifyingKey::parse(&key).context("the pinned control-plane key is corrupt")?;
        if let Some(c) = configured {
            if c != pinned {
                bail!(
                    "the configured control_plane_key ({}) differs from the pinned one ({}); refusing to run",
                    c.fingerprint(),
                    pinned.fingerprint()
                );
            }
        }
        info!(control_plane_key = %pinned.fingerprint(), "enrolled; using the pinned control-plane key");
        return Ok(Enrolment {
            user_jwt: jwt.trim().to_string(),
            control_plane_key: pinned,
        });
    }

    let token = cfg
        .enroll_token
        .clone()
        .context("this agent is not enrolled: set enroll_token (DROVER_AGENT_ENROLL_TOKEN) to a registration token from `drover tokens create`")?;
    let creds = cfg
        .enroll_creds
        .clone()
        .context("this agent is not enrolled: set enroll_creds to the enrolment credentials file the control plane wrote (enroll.creds)")?;
    let machine_id = machine_id(cfg)?;
    let opts = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .with_context(|| format!("reading enrolment credentials {}", creds.display()))?;
    let client = cfg
        .tls(opts)
        .name("drover-agent enrolment")
        .custom_inbox_prefix(subjects::ENROLL_INBOX_PREFIX)
        .retry_on_initial_connect()
        .connect(crate::config::server_addrs(&cfg.nats_url))
        .await
        .with_context(|| format!("connecting to NATS at {} for enrolment", cfg.nats_url))?;

    // One inbox and one curve key for this enrolment; every attempt names
    // both, and its own time.
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .context("subscribing to the enrolment inbox")?;
    let reply_key = bus_schema::enroll::new_reply_key();
    let mut delay = Duration::from_secs(1);
    let mut told_pending = false;
    loop {
        // rootd's box key, pinned with the enrolment when rootd answers;
        // else the first heartbeat that carries it is pinned.
        let rootd_box_key = tokio::time::timeout(
            Duration::from_secs(5),
            crate::rootd_client::capabilities(&cfg.rootd_socket),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|c| c.box_key);
        let claim = claim(cfg, id, &token, &machine_id, &reply_key, rootd_box_key);
        let within = Duration::from_secs(10);
        let reply = match ask(
            &client,
            &inbox,
            &mut sub,
            &claim,
            id.key(),
            &reply_key,
            within,
        )
        .await
        {
            Ok(r) => r,
            Err(e @ AskError::Timeout(_)) => {
                warn!(error = %e, "retrying");
                continue;
            }
            Err(AskError::Closed) => {
                warn!("the enrolment inbox subscription ended; subscribing again");
                sub = client
                    .subscribe(inbox.clone())
                    .await
                    .context("subscribing to the enrolment inbox")?;
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let key = VerifyingKey::parse(&reply.control_plane_key)
            .context("the control plane sent an invalid key")?;
        if let Some(c) = configured {
            if c != key {
                bail!(
                    "the control plane answered with signing key {} but {} is configured; refusing to enrol",
                    key.fingerprint(),
                    c.fingerprint()
                );
            }
        }
        match reply.status {
            EnrollStatus::Approved => {
                let jwt = reply.user_jwt.context("approved without credentials")?;
                bus_schema::signing::write_secret_file(&jwt_path(state), jwt.as_bytes())
                    .with_context(|| format!("writing {}", jwt_path(state).display()))?;
                std::fs::write(pinned_key_path(state), key.to_base64())
                    .with_context(|| format!("writing {}", pinned_key_path(state).display()))?;
                info!(
                    agent_id = %id.agent_id(),
                    control_plane_key = %key.fingerprint(),
                    "enrolled; pinned the control plane's command-signing key"
                );
                let _ = client.drain().await;
                return Ok(Enrolment {
                    user_jwt: jwt,
                    control_plane_key: key,
                });
            }
            EnrollStatus::Pending => {
                if !told_pending {
                    info!(agent_id = %id.agent_id(), message = %reply.message, "enrolment pending");
                    told_pending = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            EnrollStatus::Rejected => bail!("enrolment rejected: {}", reply.message),
        }
    }
}
