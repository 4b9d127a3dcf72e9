//! The control plane's command signing: [`CommandSigner`] (the seed in the
//! control plane's data directory) signs each [`Command`]; [`VerifyingKey`]
//! (pinned by the agent and rootd) checks version, signature, addressee and
//! expiry. Replay memory is the verifier's own, not this module's.

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};
use std::path::Path;

use super::{check_version, fingerprint, Refusal, SigningError, PROTOCOL_VERSION};
use crate::{Command, SignedCommand};

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

    /// The 32 raw key bytes.
    pub fn raw_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// True when `signature` is this key's Ed25519 signature over `bytes`
    /// exactly. Only for [`super::artifact`]: commands are checked with
    /// [`VerifyingKey::open`].
    pub(crate) fn verify_raw(&self, bytes: &[u8], signature: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|sig| self.0.verify(bytes, &sig).is_ok())
    }

    /// `SHA256:<base64>` of the raw key, as people compare it in logs and the UI.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }

    /// Checks the protocol version and the signature, then decodes the body. Nothing in the body is
    /// trusted before the signature holds.
    pub fn open(&self, signed: &SignedCommand) -> Result<Command, Refusal> {
        check_version(signed.v, "agent").map_err(|e| Refusal::Malformed(e.to_string()))?;
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
        check_opened(cmd, me, now_ms)
    }
}

/// The checks after the signature: addressee, clock skew, expiry.
pub(crate) fn check_opened(cmd: Command, me: &str, now_ms: i64) -> Result<Command, Refusal> {
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

/// Prefixed to an audit archive trailer before it is signed, so such a
/// signature can never be taken for one over a command body or anything
/// else the command-signing key signs.
const AUDIT_ARCHIVE_DOMAIN: &[u8] = b"drover audit archive trailer v1\0";

impl VerifyingKey {
    /// True when `signature` is [`CommandSigner::sign_audit_archive`] of
    /// `trailer` (the canonical trailer JSON without its signature).
    pub fn verify_audit_archive(&self, trailer: &[u8], signature: &[u8]) -> bool {
        let mut bytes = AUDIT_ARCHIVE_DOMAIN.to_vec();
        bytes.extend_from_slice(trailer);
        self.verify_raw(&bytes, signature)
    }
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

    /// The Ed25519 signature over `bytes` exactly. Only for
    /// [`super::artifact`], which signs nothing but packages.
    pub(crate) fn sign_raw(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }

    /// The signature over an audit archive's trailer (the canonical
    /// trailer JSON without its signature), domain-separated from
    /// everything else this key signs.
    pub fn sign_audit_archive(&self, trailer: &[u8]) -> [u8; 64] {
        let mut bytes = AUDIT_ARCHIVE_DOMAIN.to_vec();
        bytes.extend_from_slice(trailer);
        self.key.sign(&bytes).to_bytes()
    }

    pub fn sign(&self, cmd: &Command) -> SignedCommand {
        let body = crate::encode(cmd);
        let signature = self.key.sign(&body).to_bytes().to_vec();
        SignedCommand {
            v: PROTOCOL_VERSION,
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
    use crate::{RefusalReason, Source};

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
    fn key_text_round_trip() {
        let s = CommandSigner::generate();
        let k = VerifyingKey::parse(&s.public().to_base64()).unwrap();
        assert_eq!(k, s.public());
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert!(VerifyingKey::parse("nope").is_err());
    }

    #[test]
    fn other_protocol_versions_are_refused_before_the_signature() {
        let s = CommandSigner::generate();
        let signed = s.sign(&cmd("A", 100));
        assert_eq!(signed.v, PROTOCOL_VERSION);
        for v in [0, PROTOCOL_VERSION + 1, u16::MAX] {
            let mut other = signed.clone();
            other.v = v;
            let err = s.public().verify_for(&other, "A", 50).unwrap_err();
            assert_eq!(err.reason(), RefusalReason::Malformed);
            assert!(
                err.to_string().contains(&format!(
                    "protocol version {v} is not supported by this agent"
                )),
                "{err}"
            );
        }
        // A version field on the wire is required: an envelope without one
        // is not a command.
        #[derive(serde::Serialize)]
        struct Unversioned {
            #[serde(with = "serde_bytes")]
            body: Vec<u8>,
            #[serde(with = "serde_bytes")]
            signature: Vec<u8>,
            key_id: String,
        }
        let bytes = crate::encode(&Unversioned {
            body: signed.body.clone(),
            signature: signed.signature.clone(),
            key_id: signed.key_id.clone(),
        });
        assert!(crate::decode::<SignedCommand>(&bytes, None).is_err());
        let back: SignedCommand = crate::decode(&crate::encode(&signed), None).unwrap();
        assert_eq!(back, signed);
    }
}
