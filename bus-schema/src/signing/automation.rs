//! Automation signing: a job submission on `drover.jobs.submit` is signed
//! with an Ed25519 key ([`AutomationKey`]) whose seed stays with the
//! automation. This module owns the envelope ([`SignedJob`]) and its checks;
//! which keys are registered, and the role each has, belong to the control
//! plane.

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

use super::{check_version, PROTOCOL_VERSION};
use crate::jobs::JobSubmission;

/// A submission as it travels: exact bytes, signature, and which key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedJob {
    /// Protocol version ([`PROTOCOL_VERSION`]); checked before anything else.
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Fingerprint of the automation key (`SHA256:...`).
    pub key_id: String,
}

/// An automation key: the seed stays with the automation.
pub struct AutomationKey {
    key: ed25519_dalek::SigningKey,
}

impl AutomationKey {
    pub fn generate() -> Self {
        Self {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_seed_base64(seed: &str) -> Option<Self> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(seed.trim())
            .ok()?;
        let arr: [u8; 32] = raw.try_into().ok()?;
        Some(Self {
            key: ed25519_dalek::SigningKey::from_bytes(&arr),
        })
    }

    pub fn seed_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.key.to_bytes())
    }

    pub fn public_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    pub fn sign(&self, job: &JobSubmission) -> SignedJob {
        let body = crate::encode(job);
        SignedJob {
            v: PROTOCOL_VERSION,
            signature: self.key.sign(&body).to_bytes().to_vec(),
            key_id: super::fingerprint(self.key.verifying_key().as_bytes()),
            body,
        }
    }
}

/// Checks the protocol version, verifies a signed submission against a
/// registered public key (base64), then decodes it.
pub fn open_job(public_base64: &str, signed: &SignedJob) -> Result<JobSubmission, crate::Refusal> {
    use base64::Engine;
    check_version(signed.v, "control plane")
        .map_err(|e| crate::Refusal::Malformed(e.to_string()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(public_base64.trim())
        .map_err(|_| crate::Refusal::BadSignature)?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| crate::Refusal::BadSignature)?;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| crate::Refusal::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_slice(&signed.signature)
        .map_err(|_| crate::Refusal::BadSignature)?;
    key.verify(&signed.body, &sig)
        .map_err(|_| crate::Refusal::BadSignature)?;
    crate::codec::decode_msgpack(&signed.body).map_err(|e| crate::Refusal::Malformed(e.to_string()))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_open() {
        let k = AutomationKey::generate();
        let job = JobSubmission {
            selector: serde_json::json!({"all": true}),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            timeout_secs: None,
            ttl_secs: None,
            idempotency_key: "k".into(),
            issued_at: 1,
            expires_at: 2,
        };
        let s = k.sign(&job);
        assert_eq!(open_job(&k.public_base64(), &s).unwrap(), job);
        let other = AutomationKey::generate();
        assert_eq!(
            open_job(&other.public_base64(), &s),
            Err(crate::Refusal::BadSignature)
        );
        let again = AutomationKey::from_seed_base64(&k.seed_base64()).unwrap();
        assert_eq!(again.public_base64(), k.public_base64());
    }

    #[test]
    fn other_protocol_versions_are_malformed() {
        let k = AutomationKey::generate();
        let job = JobSubmission {
            selector: serde_json::json!({"all": true}),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            timeout_secs: None,
            ttl_secs: None,
            idempotency_key: "k".into(),
            issued_at: 1,
            expires_at: 2,
        };
        let mut s = k.sign(&job);
        assert_eq!(s.v, PROTOCOL_VERSION);
        s.v = 0;
        let err = open_job(&k.public_base64(), &s).unwrap_err();
        assert_eq!(err.reason(), crate::RefusalReason::Malformed);
        assert!(err
            .to_string()
            .contains("protocol version 0 is not supported by this control plane"));
    }
}
