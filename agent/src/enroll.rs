//! Enrolment: at first start the agent presents its registration token, its
//! public key and its machine-id (signed with its key) on `drover.enroll`,
//! through the enrolment-only NATS user. Approved, it keeps its NATS user JWT
//! and pins the control plane's command-signing key; pending, it asks again
//! until an operator decides; rejected, it stops and says why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bus_schema::enroll::{agent_sign, EnrollClaim, EnrollReply, EnrollStatus};
use bus_schema::{subjects, VerifyingKey};
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::identity::Identity;

/// What enrolment leaves in the state directory.
pub struct Enrolment {
    pub user_jwt: String,
    pub control_plane_key: VerifyingKey,
}

fn jwt_path(state: &Path) -> PathBuf {
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
    let client = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .with_context(|| format!("reading enrolment credentials {}", creds.display()))?
        .name("drover-agent enrolment")
        .custom_inbox_prefix(subjects::ENROLL_INBOX_PREFIX)
        .retry_on_initial_connect()
        .connect(&cfg.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {} for enrolment", cfg.nats_url))?;

    let mut delay = Duration::from_secs(1);
    let mut told_pending = false;
    loop {
        let claim = EnrollClaim {
            token: token.clone(),
            public_key: id.agent_id(),
            machine_id: machine_id.clone(),
            hostname: crate::metrics::hostname(),
            facts: serde_json::json!({
                "os": crate::metrics::os(),
                "kernel": crate::metrics::kernel(),
                // The distribution (`debian`), for `os:debian` selectors.
                "os_id": sysinfo::System::distribution_id(),
                "arch": sysinfo::System::cpu_arch(),
                "agent_version": env!("CARGO_PKG_VERSION"),
            }),
            at: bus_schema::now_ms(),
        };
        let signed = agent_sign(id.key(), &claim);
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(subjects::ENROLL, bus_schema::encode(&signed).into()),
        )
        .await;
        let reply: EnrollReply = match answer {
            Ok(Ok(m)) => match bus_schema::decode(&m.payload, None) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "unreadable enrolment reply; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
            Ok(Err(e)) => {
                warn!(error = %e, "enrolment request failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(_) => {
                warn!("no answer to the enrolment request within 10s; retrying");
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
