//! Ed25519 signing of commands by the control plane, and the checks that the
//! agent and rootd both run before they act on one.

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::{Command, SignedCommand};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key {0} is not a valid Ed25519 key (expected 32 bytes, base64)")]
    BadKey(String),
}

/// Why a command was refused. The `label` is what operators see counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("signature does not verify against the pinned control-plane key")]
    BadSignature,
    #[error("command body is malformed: {0}")]
    Malformed(String),
    #[error("command is addressed to agent {addressed}, this is {me}")]
    WrongAgent { addressed: String, me: String },
    #[error("command expired at {expires_at} (now {now})")]
    Expired { expires_at: i64, now: i64 },
    #[error("command {0} was already seen (replay)")]
    Replayed(String),
    #[error("action {0} is not known here")]
    UnknownAction(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The host's clock disagrees with the control plane's by more than
    /// [`crate::clock::CLOCK_SKEW_TOLERANCE_MS`]; `skew_ms` is positive when
    /// the host is ahead. Not a security refusal: nothing was attacked.
    #[error(
        "clock skew: this host's clock is {} the control plane's, beyond the tolerance of {} s; {}",
        crate::clock::describe_skew(*skew_ms),
        crate::clock::CLOCK_SKEW_TOLERANCE_MS / 1000,
        crate::clock::CLOCK_SKEW_ADVICE
    )]
    ClockSkew { skew_ms: i64 },
}

impl Refusal {
    /// The fixed reason operators see counted.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Refusal::BadSignature => RefusalReason::BadSignature,
            Refusal::Malformed(_) => RefusalReason::Malformed,
            Refusal::WrongAgent { .. } => RefusalReason::WrongAgent,
            Refusal::Expired { .. } => RefusalReason::Expired,
            Refusal::Replayed(_) => RefusalReason::Replayed,
            Refusal::UnknownAction(_) => RefusalReason::UnknownAction,
            Refusal::InvalidParams(_) => RefusalReason::InvalidParams,
            Refusal::ClockSkew { .. } => RefusalReason::ClockSkew,
        }
    }

    pub fn label(&self) -> &'static str {
        self.reason().as_str()
    }
}

/// Why something was refused, as a fixed vocabulary: the reason of a
/// refusal report and of every refusal the control plane records. A reason
/// this version does not know decodes as [`RefusalReason::Other`], so a
/// sender cannot grow the set of groups operators see; free text travels
/// only as a bounded detail ([`MAX_REFUSAL_DETAIL_CHARS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    BadSignature,
    Malformed,
    WrongAgent,
    Expired,
    Replayed,
    UnknownAction,
    InvalidParams,
    /// A job submission signed by a key the control plane does not know.
    UnknownKey,
    /// A job submission by a key whose role may not submit.
    Forbidden,
    /// A job submission whose idempotency key already named another request.
    IdempotencyConflict,
    /// The host's clock is off beyond the tolerance. Not a security
    /// refusal ([`RefusalReason::is_security`]).
    ClockSkew,
    #[serde(other)]
    Other,
}

/// Longest refusal detail kept, in characters; longer text is cut.
pub const MAX_REFUSAL_DETAIL_CHARS: usize = 512;

impl RefusalReason {
    pub const ALL: [RefusalReason; 12] = [
        Self::BadSignature,
        Self::Malformed,
        Self::WrongAgent,
        Self::Expired,
        Self::Replayed,
        Self::UnknownAction,
        Self::InvalidParams,
        Self::UnknownKey,
        Self::Forbidden,
        Self::IdempotencyConflict,
        Self::ClockSkew,
        Self::Other,
    ];

    /// Whether a refusal for this reason may be an attack, and so counts on
    /// the Security page. A skewed clock is an operations fault.
    pub fn is_security(self) -> bool {
        !matches!(self, Self::ClockSkew)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::Malformed => "malformed",
            Self::WrongAgent => "wrong_agent",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::UnknownAction => "unknown_action",
            Self::InvalidParams => "invalid_params",
            Self::UnknownKey => "unknown_key",
            Self::Forbidden => "forbidden",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::ClockSkew => "clock_skew",
            Self::Other => "other",
        }
    }

    /// The reason named `s`; anything unknown is [`RefusalReason::Other`].
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or(Self::Other)
    }
}

/// `detail` cut to [`MAX_REFUSAL_DETAIL_CHARS`] characters.
pub fn bounded_detail(detail: &str) -> String {
    detail.chars().take(MAX_REFUSAL_DETAIL_CHARS).collect()
}

/// The control plane's public command-signing key, as the agent and rootd pin it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses `base64` of the 32 raw key bytes.
    pub fn parse(text: &str) -> Result<Self, SigningError> {
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| SigningError::BadKey(text.trim().to_string()))?;
        let arr: [u8; 32] = raw
            .try_into()
            .map_err(|_| SigningError::BadKey(text.trim().to_string()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|_| SigningError::BadKey(text.trim().to_string()))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// `SHA256:<base64>` of the raw key, as people compare it in logs and the UI.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }

    /// Checks the signature, then decodes the body. Nothing in the body is
    /// trusted before the signature holds.
    pub fn open(&self, signed: &SignedCommand) -> Result<Command, Refusal> {
        let sig = ed25519_dalek::Signature::from_slice(&signed.signature)
            .map_err(|_| Refusal::BadSignature)?;
        self.0
            .verify(&signed.body, &sig)
            .map_err(|_| Refusal::BadSignature)?;
        crate::codec::decode_msgpack(&signed.body).map_err(|e| Refusal::Malformed(e.to_string()))
    }

    /// Everything the agent and rootd check except replay (which needs their
    /// own memory): signature, addressee, clock skew, expiry (with the skew
    /// tolerance, [`crate::clock`]).
    pub fn verify_for(
        &self,
        signed: &SignedCommand,
        me: &str,
        now_ms: i64,
    ) -> Result<Command, Refusal> {
        let cmd = self.open(signed)?;
        if cmd.agent_id != me {
            return Err(Refusal::WrongAgent {
                addressed: cmd.agent_id,
                me: me.to_string(),
            });
        }
        crate::clock::check_skew(&cmd, now_ms)?;
        if crate::clock::expired(cmd.expires_at, now_ms) {
            return Err(Refusal::Expired {
                expires_at: cmd.expires_at,
                now: now_ms,
            });
        }
        Ok(cmd)
    }
}

/// `SHA256:<unpadded base64>` of some public key bytes.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The control plane's signing key. The seed never leaves the control plane's
/// data directory.
pub struct CommandSigner {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for CommandSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        write!(f, "CommandSigner({})", self.public().fingerprint())
    }
}

impl CommandSigner {
    pub fn generate() -> Self {
        Self {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Loads the seed file (base64 of 32 bytes).
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| SigningError::BadKey(path.display().to_string()))?;
        let seed: [u8; 32] = raw
            .try_into()
            .map_err(|_| SigningError::BadKey(path.display().to_string()))?;
        Ok(Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Writes the seed to a new 0600 file; refuses to overwrite.
    pub fn save_new(&self, path: &Path) -> Result<(), SigningError> {
        write_secret_file(path, STANDARD.encode(self.key.to_bytes()).as_bytes()).map_err(|source| {
            SigningError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }

    pub fn public(&self) -> VerifyingKey {
        VerifyingKey(self.key.verifying_key())
    }

    /// A 32-byte secret for `purpose` (SHA-256 of the purpose and the seed):
    /// for keyed hashes the control plane keeps to itself, never for signing.
    /// The same seed and purpose always give the same key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(self.key.to_bytes());
        h.finalize().into()
    }

    pub fn sign(&self, cmd: &Command) -> SignedCommand {
        let body = crate::encode(cmd);
        let signature = self.key.sign(&body).to_bytes().to_vec();
        SignedCommand {
            body,
            signature,
            key_id: self.public().fingerprint(),
        }
    }
}

/// Creates `path` with mode 0600 and writes `bytes`; fails if it exists.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn cmd(agent: &str, expires_at: i64) -> Command {
        Command {
            id: "c1".into(),
            agent_id: agent.into(),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            issued_at: 0,
            expires_at,
            timeout_secs: 10,
            requested_by: "admin".into(),
            source: Source::User,
            job_id: None,
            clock_skew_ms: None,
        }
    }

    #[test]
    fn sign_and_verify() {
        let s = CommandSigner::generate();
        let signed = s.sign(&cmd("A", 100));
        assert_eq!(s.public().verify_for(&signed, "A", 50).unwrap().id, "c1");
        assert!(matches!(
            s.public().verify_for(&signed, "B", 50),
            Err(Refusal::WrongAgent { .. })
        ));
        assert!(matches!(
            s.public()
                .verify_for(&signed, "A", 100 + crate::clock::CLOCK_SKEW_TOLERANCE_MS),
            Err(Refusal::Expired { .. })
        ));
        let other = CommandSigner::generate();
        assert_eq!(
            other.public().verify_for(&signed, "A", 50),
            Err(Refusal::BadSignature)
        );
        let mut tampered = signed.clone();
        let last = tampered.body.len() - 1;
        tampered.body[last] ^= 1;
        assert_eq!(s.public().open(&tampered), Err(Refusal::BadSignature));
    }

    #[test]
    fn refusal_reasons_are_a_fixed_vocabulary() {
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::parse(r.as_str()), r);
            let back: RefusalReason = crate::decode(&crate::encode(&r), None).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(RefusalReason::parse("made up"), RefusalReason::Other);
        let unknown: RefusalReason = crate::decode(&crate::encode(&"a new reason"), None).unwrap();
        assert_eq!(unknown, RefusalReason::Other);
        assert_eq!(bounded_detail(&"é".repeat(2000)).chars().count(), 512);
    }

    #[test]
    fn key_text_round_trip() {
        let s = CommandSigner::generate();
        let k = VerifyingKey::parse(&s.public().to_base64()).unwrap();
        assert_eq!(k, s.public());
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert!(VerifyingKey::parse("nope").is_err());
    }
}
