//! Enrolment (`drover.enroll`, request/reply) and the refusal report. The
//! agent-signed envelope that carries claims, results and refusal reports is
//! [`crate::signing::agent`]'s, re-exported here.
//!
//! Every enrolling host shares one broker user, so each can read every
//! enrolment inbox. The answer is therefore sealed ([`seal_reply`]) to a curve
//! key the claimant names in its signed claim, and bound to that claim
//! ([`open_answer`] checks agent id and claim time). This module owns the
//! wire shapes and the sealing; who may publish where is the broker's
//! (`control-plane/src/nats_auth.rs`).

use serde::{Deserialize, Serialize};

pub use crate::signing::agent::{
    agent_open, agent_sign, sign_result, AgentSignatureError, AgentSigned,
};

/// What a new agent claims about itself. Signed by the key it names, which
/// proves it holds the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollClaim {
    /// The registration token, in clear (it travels once, hashed on arrival).
    pub token: String,
    /// The agent's public nkey (`U...`): its id from now on.
    pub public_key: String,
    pub machine_id: String,
    pub hostname: String,
    #[serde(default)]
    pub facts: serde_json::Value,
    /// Milliseconds since the epoch; stale claims are refused.
    pub at: i64,
    /// A curve public key (`X...`, a NATS xkey) the claimant made for this
    /// enrolment: the answer is sealed to it, so only the claimant can read
    /// it. A claim without a valid one is refused.
    #[serde(default)]
    pub reply_key: String,
    /// The name operators see for this host (the agent's `display_name`,
    /// e.g. from `install.sh --name`); `None` shows the host name. The
    /// control plane checks it (1..=64 printable characters) and refuses a
    /// claim with a bad one.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Labels the host asks for (the agent's `labels`, e.g. from
    /// `install.sh --labels`). Keys and values are checked like a token's
    /// labels; the token's labels win on a conflicting key.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The wire protocol version the agent speaks
    /// ([`crate::signing::PROTOCOL_VERSION`] of its build); absent = 1. The
    /// envelope's `v` stays readable across versions so that the control
    /// plane can answer a claim of another version with a sealed refusal
    /// that says why, instead of an unreadable drop.
    #[serde(default = "crate::signing::protocol_version_absent")]
    pub protocol_version: u16,
    /// rootd's public box key (base64, [`crate::sealed`]) when rootd
    /// answered at enrolment; pinned with the enrolment. `None`: learnt
    /// from the first heartbeat that carries it.
    #[serde(default)]
    pub rootd_box_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollStatus {
    Approved,
    Pending,
    Rejected,
}

/// The control plane's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollReply {
    pub status: EnrollStatus,
    /// For people: why pending or rejected, or what to do next.
    pub message: String,
    /// The agent's NATS user JWT (only when approved).
    #[serde(default)]
    pub user_jwt: Option<String>,
    /// The control plane's command-signing public key (base64), to pin.
    pub control_plane_key: String,
    pub control_plane_fingerprint: String,
    /// The agent id (claim's public key) this answer is for.
    #[serde(default)]
    pub agent_id: String,
    /// The `at` of the claim this answers: an answer to an older request of
    /// the same host, or to anyone else's, is not taken for this one.
    #[serde(default)]
    pub claim_at: i64,
}

/// What travels back on the requester's enrolment inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollAnswer {
    /// An [`EnrollReply`] (MessagePack) sealed with NATS xkey v1
    /// (X25519 + XSalsa20-Poly1305, random nonce) from a one-off `sender`
    /// key to the claim's `reply_key`.
    Sealed {
        /// The one-off sender's public xkey (`X...`).
        sender: String,
        #[serde(with = "serde_bytes")]
        sealed: Vec<u8>,
    },
    /// The request could not be read far enough to find a key to seal to.
    /// Carries only why, for people; never credentials or approval state,
    /// and a claimant does not take it as an answer to its claim.
    Unreadable { message: String },
}

/// Why an [`EnrollAnswer`] is not an answer to this host's claim.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("not an enrolment answer: {0}")]
    Malformed(String),
    #[error("the control plane could not read the request: {0}")]
    Unreadable(String),
    #[error("the answer is not sealed to this host's reply key")]
    NotForUs,
    #[error("the answer is for another claim (agent {agent_id}, claim time {claim_at})")]
    OtherClaim { agent_id: String, claim_at: i64 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("{0:?} is not a curve public key (X...)")]
    BadReplyKey(String),
    #[error("sealing failed: {0}")]
    Seal(String),
}

/// A fresh curve key pair for one enrolment: its public half goes in
/// [`EnrollClaim::reply_key`], the secret half stays in memory.
pub fn new_reply_key() -> nkeys::XKey {
    nkeys::XKey::new()
}

/// Seals `reply` to `reply_key` (an `X...` public key) with a one-off sender
/// key.
pub fn seal_reply(reply: &EnrollReply, reply_key: &str) -> Result<EnrollAnswer, SealError> {
    let recipient = nkeys::XKey::from_public_key(reply_key)
        .map_err(|_| SealError::BadReplyKey(reply_key.chars().take(64).collect()))?;
    let sender = nkeys::XKey::new();
    let sealed = sender
        .seal(&crate::encode(reply), &recipient)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(EnrollAnswer::Sealed {
        sender: sender.public_key(),
        sealed,
    })
}

/// Reads an answer off the enrolment inbox: decodes it, opens it with the
/// claimant's `reply_key`, and checks it answers the claim of `agent_id`
/// made at `claim_at`.
pub fn open_answer(
    payload: &[u8],
    reply_key: &nkeys::XKey,
    agent_id: &str,
    claim_at: i64,
) -> Result<EnrollReply, AnswerError> {
    let answer: EnrollAnswer =
        crate::decode(payload, None).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    let (sender, sealed) = match answer {
        EnrollAnswer::Sealed { sender, sealed } => (sender, sealed),
        EnrollAnswer::Unreadable { message } => return Err(AnswerError::Unreadable(message)),
    };
    let sender = nkeys::XKey::from_public_key(&sender).map_err(|_| AnswerError::NotForUs)?;
    let clear = reply_key
        .open(&sealed, &sender)
        .map_err(|_| AnswerError::NotForUs)?;
    let reply: EnrollReply =
        crate::decode(&clear, None).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    if reply.agent_id != agent_id || reply.claim_at != claim_at {
        return Err(AnswerError::OtherClaim {
            agent_id: reply.agent_id,
            claim_at: reply.claim_at,
        });
    }
    Ok(reply)
}

/// An agent's report that it refused a command (the command's own id is not
/// trusted when the signature failed, so it is only detail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusalReport {
    pub agent_id: String,
    /// Unknown reasons decode as `other`.
    pub reason: crate::signing::RefusalReason,
    pub detail: String,
    pub at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_for(agent_id: &str, claim_at: i64) -> EnrollReply {
        EnrollReply {
            status: EnrollStatus::Approved,
            message: "approved".into(),
            user_jwt: Some("eyJ.secret.jwt".into()),
            control_plane_key: "k".into(),
            control_plane_fingerprint: "f".into(),
            agent_id: agent_id.into(),
            claim_at,
        }
    }

    #[test]
    fn sealed_answers_open_only_for_their_claim() {
        let mine = new_reply_key();
        let eavesdropper = new_reply_key();
        let r = reply_for("UA", 42);
        let answer = crate::encode(&seal_reply(&r, &mine.public_key()).unwrap());
        assert_eq!(open_answer(&answer, &mine, "UA", 42).unwrap(), r);
        // The credentials are not in the bytes on the wire.
        assert!(!answer.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open_answer(&answer, &eavesdropper, "UA", 42),
            Err(AnswerError::NotForUs)
        );
        assert!(matches!(
            open_answer(&answer, &mine, "UB", 42),
            Err(AnswerError::OtherClaim { .. })
        ));
        assert!(matches!(
            open_answer(&answer, &mine, "UA", 41),
            Err(AnswerError::OtherClaim { .. })
        ));
        let unreadable = crate::encode(&EnrollAnswer::Unreadable {
            message: "bad".into(),
        });
        assert!(matches!(
            open_answer(&unreadable, &mine, "UA", 42),
            Err(AnswerError::Unreadable(_))
        ));
        assert!(matches!(
            open_answer(&crate::encode(&r), &mine, "UA", 42),
            Err(AnswerError::Malformed(_))
        ));
        assert!(matches!(
            seal_reply(&r, "UNOTACURVEKEY"),
            Err(SealError::BadReplyKey(_))
        ));
        // A user nkey is not a curve key either.
        let user = nkeys::KeyPair::new_user().public_key();
        assert!(matches!(
            seal_reply(&r, &user),
            Err(SealError::BadReplyKey(_))
        ));
    }
}
