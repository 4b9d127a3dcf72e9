//! Enrolment (`drover.enroll`, request/reply) and the agent-signed envelopes:
//! results and refusal reports are signed with the agent's nkey, whose public
//! key is the agent id, so anyone can check them against the id on record.

use serde::{Deserialize, Serialize};

use crate::CommandResult;

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
}

/// An agent-signed body: the exact MessagePack bytes and an Ed25519
/// signature by the agent's nkey over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSigned {
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentSignatureError {
    #[error("{0} is not an agent public key")]
    BadKey(String),
    #[error("signature does not verify against agent key {0}")]
    BadSignature(String),
    #[error("signed body is malformed: {0}")]
    Malformed(String),
}

/// Signs `value` with an agent's nkey.
pub fn agent_sign<T: Serialize>(key: &nkeys::KeyPair, value: &T) -> AgentSigned {
    let body = crate::encode(value);
    let signature = key.sign(&body).expect("a seed-holding key signs");
    AgentSigned { body, signature }
}

/// Verifies an agent-signed body against `public_key`, then decodes it.
pub fn agent_open<T: serde::de::DeserializeOwned>(
    public_key: &str,
    signed: &AgentSigned,
) -> Result<T, AgentSignatureError> {
    let key = nkeys::KeyPair::from_public_key(public_key)
        .map_err(|_| AgentSignatureError::BadKey(public_key.to_string()))?;
    key.verify(&signed.body, &signed.signature)
        .map_err(|_| AgentSignatureError::BadSignature(public_key.to_string()))?;
    crate::codec::decode_msgpack(&signed.body)
        .map_err(|e| AgentSignatureError::Malformed(e.to_string()))
}

/// A result as it travels on `drover.res.<agent>.<command>`.
pub fn sign_result(key: &nkeys::KeyPair, r: &CommandResult) -> AgentSigned {
    agent_sign(key, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommandStatus;

    #[test]
    fn agent_signatures() {
        let k = nkeys::KeyPair::new_user();
        let other = nkeys::KeyPair::new_user();
        let r = CommandResult {
            command_id: "c".into(),
            agent_id: k.public_key(),
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            summary: String::new(),
            data: serde_json::Value::Null,
            attempt: 1,
            at: 1,
        };
        let s = sign_result(&k, &r);
        assert_eq!(agent_open::<CommandResult>(&k.public_key(), &s).unwrap(), r);
        assert!(matches!(
            agent_open::<CommandResult>(&other.public_key(), &s),
            Err(AgentSignatureError::BadSignature(_))
        ));
        assert!(matches!(
            agent_open::<CommandResult>("nope", &s),
            Err(AgentSignatureError::BadKey(_))
        ));
    }
}
