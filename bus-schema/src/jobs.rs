//! Job submission on `drover.jobs.submit`, for automation: the submission is
//! signed with an Ed25519 key the control plane knows and has bound to a
//! role.

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

/// What automation asks for. The selector uses the same fields as the API's
/// (`all`, `agents`, `labels`, `hostname`, `facts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    pub selector: serde_json::Value,
    pub action: String,
    #[serde(default)]
    pub params: serde_json::Value,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Required on the bus: a redelivered or repeated submission is the same job.
    pub idempotency_key: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// A submission as it travels: exact bytes, signature, and which key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedJob {
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
            signature: self.key.sign(&body).to_bytes().to_vec(),
            key_id: crate::signing::fingerprint(self.key.verifying_key().as_bytes()),
            body,
        }
    }
}

/// Verifies a signed submission against a registered public key (base64).
pub fn open_job(public_base64: &str, signed: &SignedJob) -> Result<JobSubmission, crate::Refusal> {
    use base64::Engine;
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
}
