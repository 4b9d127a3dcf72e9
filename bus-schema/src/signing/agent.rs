//! Agent signing: results, refusal reports and enrolment claims are signed
//! with the agent's nkey, whose public key is the agent id, so anyone can
//! check them against the id on record. This module owns the envelope
//! ([`AgentSigned`]) and its checks; which key is on record, and what a
//! result means, belong to the control plane.

use serde::{Deserialize, Serialize};

use super::{check_version, PROTOCOL_VERSION};
use crate::CommandResult;

/// An agent-signed body: the exact MessagePack bytes and an Ed25519
/// signature by the agent's nkey over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSigned {
    /// Protocol version ([`PROTOCOL_VERSION`]); checked before anything else.
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
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
    AgentSigned {
        v: PROTOCOL_VERSION,
        body,
        signature,
    }
}

/// Checks the protocol version, verifies an agent-signed body against
/// `public_key`, then decodes it. A version this build does not speak is
/// [`AgentSignatureError::Malformed`], counted like other malformed input.
pub fn agent_open<T: serde::de::DeserializeOwned>(
    public_key: &str,
    signed: &AgentSigned,
) -> Result<T, AgentSignatureError> {
    check_version(signed.v, "control plane")
        .map_err(|e| AgentSignatureError::Malformed(e.to_string()))?;
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

    #[test]
    fn other_protocol_versions_are_malformed() {
        let k = nkeys::KeyPair::new_user();
        let mut s = agent_sign(&k, &"hello");
        assert_eq!(s.v, PROTOCOL_VERSION);
        assert_eq!(agent_open::<String>(&k.public_key(), &s).unwrap(), "hello");
        s.v = PROTOCOL_VERSION + 1;
        let err = agent_open::<String>(&k.public_key(), &s).unwrap_err();
        assert!(matches!(err, AgentSignatureError::Malformed(_)));
        assert!(err
            .to_string()
            .contains("is not supported by this control plane"));
    }
}
