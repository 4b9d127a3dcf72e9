//! Enrolment on `drover.enroll`: a new agent presents a registration token,
//! its public key, its machine-id and a one-off curve key, signed with its
//! key. The answer is approved (with the agent's NATS credentials), pending
//! (an operator must approve) or rejected, always with the command-signing
//! key to pin, and sealed to the claim's curve key.
//!
//! The responder runs on its own broker connection, as a user that may
//! publish only under the enrolment inbox prefix: a reply subject is chosen
//! by the requester, so the control plane's unrestricted user never answers
//! one. It also checks the subject itself ([`subjects::is_enroll_inbox`]) and
//! drops, counts and (rate-limited, at debug) logs anything else. It does not
//! own the users' permissions (`nats_auth`) or the token rules (`tokens`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bus_schema::enroll::{
    agent_open, seal_reply, AgentSigned, EnrollAnswer, EnrollClaim, EnrollReply, EnrollStatus,
};
use bus_schema::{codec, now_ms, subjects};
use futures::StreamExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tracing::{debug, info, warn};

use crate::db::entities::{agent, binding_conflict};
use crate::state::AppState;
use crate::tokens;

/// Claims older (or newer) than this are refused: a captured request cannot
/// be replayed later.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Requests dropped unanswered since this process started: no reply subject,
/// or one outside the enrolment inbox prefix.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// When a drop was last logged (ms since the epoch).
static LAST_DROP_LOG: AtomicI64 = AtomicI64::new(0);
/// At most one drop log line per this many milliseconds.
const DROP_LOG_EVERY_MS: i64 = 10_000;

/// Enrolment requests this process dropped unanswered because their reply
/// subject was missing or outside the enrolment inbox prefix (shown by
/// `GET /api/v1/security`).
pub fn dropped_requests() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Requests answered only with "unreadable" since this process started:
/// bytes that are no signed claim, or a claim whose signature or reply key
/// does not hold. Core NATS requests are not in a stream, so there is
/// nothing to terminate; they are counted here and logged at most once per
/// [`DROP_LOG_EVERY_MS`].
static UNREADABLE: AtomicU64 = AtomicU64::new(0);
/// When an unreadable request was last logged (ms since the epoch).
static LAST_UNREADABLE_LOG: AtomicI64 = AtomicI64::new(0);

/// Enrolment requests this process could not read (shown by
/// `GET /api/v1/security` as `enrolment.unreadable_requests`).
pub fn unreadable_requests() -> u64 {
    UNREADABLE.load(Ordering::Relaxed)
}

/// True when a log line is due for a counter last logged at `last`.
fn log_due(last: &AtomicI64) -> bool {
    let now = now_ms();
    let at = last.load(Ordering::Relaxed);
    now - at >= DROP_LOG_EVERY_MS
        && last
            .compare_exchange(at, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

fn drop_request(reply_to: Option<&str>) {
    let total = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if log_due(&LAST_DROP_LOG) {
        // The subject is the requester's choice: bounded and escaped.
        let shown: Option<String> = reply_to.map(|s| s.chars().take(80).collect());
        debug!(
            reply_to = ?shown,
            dropped_total = total,
            "enrolment request dropped: its reply subject is not an enrolment inbox"
        );
    }
}

/// Enrolment requests answered at once by one control plane. Every
/// decision that must be atomic — the key and machine-id bindings, the
/// token's uses, the agent's row — is taken in `decide` inside one write
/// transaction under the single writer's turn (`AppState::writer`), so
/// concurrent claims are still judged one after another, exactly as before;
/// what overlaps is the rest of each answer: decoding and the signature
/// check, the broker's round trips to declare the agent's queue, minting
/// its JWT and sealing the reply. One at a time, a 10,000-host fleet took
/// over a minute to enrol (docs/performance.md, "Issue 18").
const IN_FLIGHT: usize = 64;

/// Answers enrolment requests on `responder`, a connection as the
/// enrolment responder's user (`nats_auth::NatsAuth::enroll_responder_creds`).
pub async fn serve(state: AppState, responder: async_nats::Client) {
    loop {
        let sub = match responder
            .queue_subscribe(subjects::ENROLL, "control-plane".into())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot listen for enrolments; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Up to IN_FLIGHT requests at once (see there for why that is safe).
        sub.for_each_concurrent(IN_FLIGHT, |msg| {
            let (state, responder) = (&state, &responder);
            async move {
                let reply_to = match msg.reply {
                    Some(r) if subjects::is_enroll_inbox(&r) => r,
                    other => {
                        drop_request(other.as_deref());
                        return;
                    }
                };
                let answer = answer(state, &msg.payload).await;
                if let Err(e) = responder
                    .publish(reply_to, bus_schema::encode(&answer).into())
                    .await
                {
                    warn!(error = %e, "enrolment reply not sent");
                }
            }
        })
        .await;
    }
}

fn reply(
    state: &AppState,
    claim: &EnrollClaim,
    status: EnrollStatus,
    message: impl Into<String>,
    user_jwt: Option<String>,
) -> EnrollReply {
    // New hosts pin the current generation.
    let (_, key) = state.keys.current();
    EnrollReply {
        status,
        message: message.into(),
        user_jwt,
        control_plane_key: key.to_base64(),
        control_plane_fingerprint: key.fingerprint(),
        agent_id: claim.public_key.clone(),
        claim_at: claim.at,
    }
}

/// True when `s` may be a label key or value: 1..=64 of `[A-Za-z0-9-_./]`
/// (the same rule for a token's labels and a claim's; `install.sh` checks
/// it too).
pub fn valid_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

/// Checks a claimed display name: 1..=64 characters, none a control
/// character, not blank.
pub fn check_display_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 64 || name.trim().is_empty() {
        return Err("display_name must be 1..=64 characters, not blank".into());
    }
    if name.chars().any(char::is_control) {
        return Err("display_name must not contain control characters".into());
    }
    Ok(())
}

/// Most labels a claim may ask for.
pub const MAX_CLAIM_LABELS: usize = 32;

/// The agent's labels: the claim's, checked, with the token's (a JSON
/// object) laid over them, so a token's label wins on a conflicting key.
/// Returns the JSON text to store, or why the claim's labels are refused.
pub fn merge_labels(
    claimed: &std::collections::BTreeMap<String, String>,
    token_labels: &str,
) -> Result<String, String> {
    if claimed.len() > MAX_CLAIM_LABELS {
        return Err(format!("at most {MAX_CLAIM_LABELS} labels"));
    }
    for (k, v) in claimed {
        if !valid_label_part(k) || !valid_label_part(v) {
            return Err(format!(
                "label {k}={v}: keys and values are 1..=64 of [A-Za-z0-9-_./]"
            ));
        }
    }
    let mut out: serde_json::Map<String, serde_json::Value> = claimed
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    if let Ok(serde_json::Value::Object(t)) = serde_json::from_str(token_labels) {
        out.extend(t);
    }
    Ok(serde_json::Value::Object(out).to_string())
}

fn valid_machine_id(s: &str) -> bool {
    (8..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The answer to one request: the reply sealed to the claim's reply key, or
/// (when the request cannot be read far enough to find that key) why not.
pub async fn answer(state: &AppState, payload: &[u8]) -> EnrollAnswer {
    let claim = match read_claim(payload) {
        Ok(c) => c,
        Err(why) => {
            let total = UNREADABLE.fetch_add(1, Ordering::Relaxed) + 1;
            if log_due(&LAST_UNREADABLE_LOG) {
                warn!(reason = %why, unreadable_total = total, "enrolment request unreadable");
            }
            return EnrollAnswer::Unreadable { message: why };
        }
    };
    let reply = handle(state, &claim).await;
    seal_reply(&reply, &claim.reply_key).unwrap_or_else(|e| {
        warn!(error = %e, "enrolment reply not sealed");
        EnrollAnswer::Unreadable {
            message: e.to_string(),
        }
    })
}

/// Decodes the signed claim, checks its signature under the key it names and
/// its reply key. Nothing is stored before this holds.
/// A string fact of an enrolment claim (`os`, `kernel`, ...) as stored:
/// empty when absent, control characters as spaces, at most `max` chars.
fn fact(claim: &EnrollClaim, name: &str, max: usize) -> String {
    bus_schema::text::storable(claim.facts[name].as_str().unwrap_or(""), max)
}

fn read_claim(payload: &[u8]) -> Result<EnrollClaim, String> {
    let signed: AgentSigned =
        codec::decode(payload, None).map_err(|e| format!("malformed enrolment request: {e}"))?;
    // The claim names its own key; the signature must hold under that key.
    let unverified: EnrollClaim = codec::decode_msgpack(&signed.body)
        .map_err(|e| format!("malformed enrolment claim: {e}"))?;
    let claim: EnrollClaim =
        agent_open(&unverified.public_key, &signed).map_err(|e| e.to_string())?;
    if nkeys::XKey::from_public_key(&claim.reply_key).is_err() {
        return Err(
            "the claim's reply_key must be a curve public key (X...) to seal the answer to; upgrade the agent"
                .into(),
        );
    }
    Ok(claim)
}

async fn handle(state: &AppState, claim: &EnrollClaim) -> EnrollReply {
    let rejected = |why: String| {
        warn!(reason = %why, "enrolment refused");
        reply(state, claim, EnrollStatus::Rejected, why, None)
    };
    // First: a claimant of another protocol version would misread anything
    // else this control plane sends it. Nothing is stored, no token used.
    if claim.protocol_version != bus_schema::signing::PROTOCOL_VERSION {
        return rejected(protocol_refusal(claim.protocol_version));
    }
    if !claim.public_key.starts_with('U') {
        return rejected("the key must be a NATS user nkey (U...)".into());
    }
    if (now_ms() - claim.at).abs() > MAX_CLOCK_SKEW_MS {
        return rejected(
            "the claim's time is more than 5 minutes off; check the host's clock".into(),
        );
    }
    if !valid_machine_id(&claim.machine_id) {
        return rejected("machine-id must be 8..=128 characters of [0-9a-zA-Z-]".into());
    }
    if let Err(why) = bus_schema::check_hostname(&claim.hostname) {
        return rejected(format!("hostname {why}"));
    }
    if let Some(name) = &claim.display_name {
        if let Err(why) = check_display_name(name) {
            return rejected(why);
        }
    }
    if let Err(why) = merge_labels(&claim.labels, "{}") {
        return rejected(why);
    }
    match decide(state, claim).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "enrolment failed");
            reply(
                state,
                claim,
                EnrollStatus::Pending,
                "the control plane could not record the enrolment; retrying",
                None,
            )
        }
    }
}

/// Why a claim of protocol version `got` is refused, and what to do.
fn protocol_refusal(got: u16) -> String {
    let ours = bus_schema::signing::PROTOCOL_VERSION;
    let what = if got > ours {
        "upgrade the control plane first, or install an agent package that speaks this one"
    } else {
        "install a current agent package on the host, then enrol again"
    };
    format!(
        "the agent speaks wire protocol version {got}, this control plane speaks {ours}; {what}"
    )
}

async fn record_conflict(
    state: &AppState,
    kind: &str,
    claim: &EnrollClaim,
    existing: &str,
) -> anyhow::Result<()> {
    binding_conflict::Entity::insert(binding_conflict::ActiveModel {
        at: Set(now_ms()),
        kind: Set(kind.into()),
        public_key: Set(claim.public_key.clone()),
        machine_id: Set(claim.machine_id.clone()),
        hostname: Set(claim.hostname.clone()),
        existing_agent_id: Set(existing.into()),
        ..Default::default()
    })
    .exec(&state.db)
    .await?;
    Ok(())
}

async fn approved(
    state: &AppState,
    claim: &EnrollClaim,
    message: &str,
) -> anyhow::Result<EnrollReply> {
    let agent_id = &claim.public_key;
    crate::commands::ensure_consumer(state, agent_id).await?;
    // A known agent's claim after its JWT expired is a re-authentication:
    // signed by its key, no token needed (see `credentials`).
    let (jwt, _) = crate::credentials::issue(state, agent_id, crate::credentials::Issue::Claim)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(reply(
        state,
        claim,
        EnrollStatus::Approved,
        message,
        Some(jwt),
    ))
}

async fn decide(state: &AppState, claim: &EnrollClaim) -> anyhow::Result<EnrollReply> {
    let _turn = state.writer.lock().await;
    let txn = crate::db::begin_write(&state.db).await?;
    if let Some(a) = agent::Entity::find_by_id(claim.public_key.clone())
        .one(&txn)
        .await?
    {
        txn.commit().await?;
        drop(_turn);
        if a.machine_id != claim.machine_id {
            record_conflict(state, "key_on_other_machine", claim, &a.id).await?;
            warn!(agent_id = %a.id, bound = %a.machine_id, presented = %claim.machine_id, "enrolment refused: known key from another machine");
            return Ok(reply(
                state,
                claim,
                EnrollStatus::Rejected,
                format!("this key is bound to another machine (agent {}); a copied identity is not accepted", a.id),
                None,
            ));
        }
        return match a.status.as_str() {
            "pending" => Ok(reply(state, claim, EnrollStatus::Pending, format!("waiting for an operator: drover agents approve {}", a.id), None)),
            "rejected" => Ok(reply(state, claim, EnrollStatus::Rejected, "an operator rejected this agent", None)),
            "revoked" => Ok(reply(
                state,
                claim,
                EnrollStatus::Rejected,
                "this agent was revoked; remove its state directory to make a new identity, then enrol again",
                None,
            )),
            _ => approved(state, claim, "approved").await,
        };
    }
    let holder = agent::Entity::find()
        .filter(agent::Column::MachineId.eq(claim.machine_id.clone()))
        .filter(agent::Column::Status.is_not_in(["revoked", "rejected"]))
        .one(&txn)
        .await?;
    if let Some(h) = holder {
        txn.commit().await?;
        drop(_turn);
        record_conflict(state, "machine_id_taken", claim, &h.id).await?;
        warn!(existing = %h.id, presented = %claim.public_key, machine_id = %claim.machine_id, "enrolment refused: machine-id already enrolled under another key");
        return Ok(reply(
            state,
            claim,
            EnrollStatus::Rejected,
            format!(
                "machine-id {} is already enrolled as agent {}; if the host was rebuilt, revoke that agent first (drover agents revoke {})",
                claim.machine_id, h.id, h.id
            ),
            None,
        ));
    }
    let token = match tokens::consume(&txn, &claim.token).await? {
        Ok(t) => t,
        Err(refusal) => {
            txn.rollback().await?;
            warn!(reason = %refusal, hostname = %claim.hostname, "enrolment refused");
            return Ok(reply(
                state,
                claim,
                EnrollStatus::Rejected,
                refusal.to_string(),
                None,
            ));
        }
    };
    let now = now_ms();
    let status = if token.auto_approve {
        "offline"
    } else {
        "pending"
    };
    agent::Entity::insert(agent::ActiveModel {
        id: Set(claim.public_key.clone()),
        hostname: Set(claim.hostname.clone()),
        status: Set(status.into()),
        machine_id: Set(claim.machine_id.clone()),
        facts: Set(claim.facts.to_string()),
        token_id: Set(Some(token.id.clone())),
        approved_by: Set(token.auto_approve.then(|| format!("token:{}", token.id))),
        revoked_at: Set(None),
        first_seen: Set(now),
        last_seen: Set(now),
        last_seq: Set(0),
        heartbeat_secs: Set(30),
        // The host's own words until its first heartbeat: storable text.
        os: Set(fact(claim, "os", 256)),
        kernel: Set(fact(claim, "kernel", 256)),
        agent_version: Set(fact(claim, "agent_version", 64)),
        metrics: Set("{}".into()),
        modules: Set("[]".into()),
        operations: Set("[]".into()),
        labels: Set(
            merge_labels(&claim.labels, &token.labels).unwrap_or_else(|_| token.labels.clone())
        ),
        rootd_error: Set(None),
        display_name: Set(claim.display_name.clone()),
        boot_id: Set(None),
        booted_at: Set(None),
        agent_channel: Set(claim.facts["agent_channel"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(32)
            .collect()),
        protocol_version: Set(claim.protocol_version as i32),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    drop(_turn);
    if let Some(key) = &claim.rootd_box_key {
        let report = [(claim.public_key.clone(), key.clone())];
        crate::sealing::observe(state, &report, "enrolment").await?;
    }
    info!(agent_id = %claim.public_key, hostname = %claim.hostname, display_name = ?claim.display_name, token = %token.id, status, "agent enrolled");
    if token.auto_approve {
        approved(state, claim, "approved by token policy").await
    } else {
        Ok(reply(
            state,
            claim,
            EnrollStatus::Pending,
            format!(
                "waiting for an operator: drover agents approve {}",
                claim.public_key
            ),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_labels_are_checked_and_token_labels_win() {
        let claimed = [("env", "test"), ("rack", "r1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let merged: serde_json::Value =
            serde_json::from_str(&merge_labels(&claimed, r#"{"env":"prod"}"#).unwrap()).unwrap();
        assert_eq!(merged, serde_json::json!({"env": "prod", "rack": "r1"}));
        for (k, v) in [
            ("", "x"),
            ("a b", "x"),
            ("k", "$(id)"),
            ("k", &"v".repeat(65)),
        ] {
            let bad = [(k.to_string(), v.to_string())].into();
            assert!(merge_labels(&bad, "{}").is_err(), "{k}={v}");
        }
    }

    #[test]
    fn display_names() {
        assert!(check_display_name("web-1").is_ok());
        assert!(check_display_name("Web server (rack 2)").is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
    }
}
