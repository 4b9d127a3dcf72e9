//! Key rotation: the [`KeyRotation`] message that introduces a new
//! command-signing or release key, signed by the key it replaces, and the
//! [`KeyRing`] every host keeps per kind of key: the key it trusts now, the
//! one it trusted before (accepted until the overlap ends) and the
//! generation, which only ever grows, so an older rotation can never be
//! played back to roll a host back to a retired key.
//!
//! The signature covers the rotation's JSON text behind the domain prefix
//! [`SIGNED_PREFIX`], so it can never pass for a command's (a MessagePack
//! map), a release manifest's (`drover-release-manifest-v1`), an audit
//! trailer's or a package's signature.
//!
//! Owns the shapes, the signing and the checks. It stores nothing: agent and
//! rootd persist their rings ([`KeyRing::to_json`]) in their own state
//! directories; the control plane keeps its generations in its database.

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::Verifier;
use serde::{Deserialize, Serialize};

use super::fingerprint;
use super::release::{ReleaseError, ReleaseKey, ReleaseManifest};
use super::{Refusal, VerifyingKey};
use crate::{Command, SignedCommand};

/// The bytes in front of the rotation's JSON text that the signature covers.
pub const SIGNED_PREFIX: &[u8] = b"drover-key-rotation-v1\n";
/// Longest rotation text accepted, in bytes.
pub const MAX_ROTATION_BYTES: usize = 1024;
/// Longest overlap a rotation may ask for, in ms (30 days).
pub const MAX_OVERLAP_MS: i64 = 30 * 86_400_000;

/// Which key a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The control plane's command-signing key (`control_plane_key`).
    Command,
    /// The key that signs agent releases (`release_key`).
    Release,
}

impl KeyKind {
    /// `command` or `release`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Command => "command",
            KeyKind::Release => "release",
        }
    }

    /// The kind named `s` (`command` or `release`).
    pub fn parse(s: &str) -> Result<Self, RotationError> {
        match s {
            "command" => Ok(KeyKind::Command),
            "release" => Ok(KeyKind::Release),
            other => Err(RotationError::Malformed(format!(
                "unknown key kind {other:?}: command or release"
            ))),
        }
    }
}

/// "From now on trust `new_key` as generation `generation`; keep accepting
/// the key that signed this until `overlap_end_ms`." Serialised as JSON;
/// that exact text is signed by the old key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    pub which: KeyKind,
    /// The new key's generation: greater than every generation before
    /// (the key pinned at enrolment or in the config is generation 0).
    pub generation: u32,
    /// The new public key, base64 of its 32 raw bytes.
    pub new_key: String,
    /// Until when (ms since the epoch) the old key is still accepted.
    pub overlap_end_ms: i64,
    /// When the rotation was made, ms since the epoch.
    pub at_ms: i64,
}

/// Why a rotation (or a key) was refused. Shown to operators as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("the key rotation is not valid: {0}")]
    Malformed(String),
    #[error(
        "the key rotation is not signed by the {which} key this host trusts ({trusted}); refused"
    )]
    BadSignature {
        which: &'static str,
        trusted: String,
    },
    #[error("the key rotation introduces generation {got}, this host already holds generation {held}: an old rotation played back is refused")]
    Stale { got: u32, held: u32 },
    #[error("the key rotation is for the {got} key, this is the {want} key ring")]
    WrongKind {
        got: &'static str,
        want: &'static str,
    },
    #[error("no {0} key is pinned on this host, so no rotation of it can be checked")]
    NothingPinned(&'static str),
}

fn parse_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, RotationError> {
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|_| RotationError::Malformed("key: not base64".into()))?;
    let arr: [u8; 32] = raw
        .try_into()
        .map_err(|_| RotationError::Malformed("key: expected 32 bytes".into()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&arr)
        .map_err(|_| RotationError::Malformed("key: not an Ed25519 public key".into()))
}

/// `SHA256:<base64>` of a base64 public key ("" when it does not decode).
pub fn key_fingerprint(key_b64: &str) -> String {
    STANDARD
        .decode(key_b64.trim())
        .map(|raw| fingerprint(&raw))
        .unwrap_or_default()
}

fn signed_bytes(text: &str) -> Vec<u8> {
    let mut v = SIGNED_PREFIX.to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

impl KeyRotation {
    /// The JSON text that is signed and carried.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a rotation always serialises")
    }

    /// Checks the fields' shapes (not the signature).
    pub fn check(&self) -> Result<(), RotationError> {
        parse_key(&self.new_key)?;
        if self.generation == 0 {
            return Err(RotationError::Malformed(
                "generation 0 is the pinned key; rotations start at 1".into(),
            ));
        }
        if self.overlap_end_ms < self.at_ms || self.overlap_end_ms - self.at_ms > MAX_OVERLAP_MS {
            return Err(RotationError::Malformed(format!(
                "the overlap must end after the rotation and within {} days",
                MAX_OVERLAP_MS / 86_400_000
            )));
        }
        Ok(())
    }

    fn sign_with(
        &self,
        which: KeyKind,
        sign: impl Fn(&[u8]) -> [u8; 64],
    ) -> Result<(String, String), RotationError> {
        self.check()?;
        if self.which != which {
            return Err(RotationError::WrongKind {
                got: self.which.as_str(),
                want: which.as_str(),
            });
        }
        let text = self.to_text();
        let sig = sign(&signed_bytes(&text));
        Ok((text, STANDARD.encode(sig)))
    }

    /// Checks a command-key rotation and signs it with the old command key;
    /// returns (text, base64 signature).
    pub fn sign_command(
        &self,
        old: &super::CommandSigner,
    ) -> Result<(String, String), RotationError> {
        self.sign_with(KeyKind::Command, |b| old.sign_raw(b))
    }

    /// Checks a release-key rotation and signs it with the old release key;
    /// returns (text, base64 signature).
    pub fn sign_release(
        &self,
        old: &super::release::ReleaseSigner,
    ) -> Result<(String, String), RotationError> {
        self.sign_with(KeyKind::Release, |b| old.sign_raw(b))
    }

    /// Parses `text` (not verified: only to read the generation and kind
    /// before the signature is checked against the right key).
    pub fn parse_unverified(text: &str) -> Result<Self, RotationError> {
        if text.len() > MAX_ROTATION_BYTES {
            return Err(RotationError::Malformed(format!(
                "over {MAX_ROTATION_BYTES} bytes"
            )));
        }
        let r: KeyRotation =
            serde_json::from_str(text).map_err(|e| RotationError::Malformed(e.to_string()))?;
        r.check()?;
        Ok(r)
    }

    /// True when `signature` (base64) is `key_b64`'s signature over `text`.
    pub fn verify(text: &str, signature: &str, key_b64: &str) -> bool {
        let Ok(key) = parse_key(key_b64) else {
            return false;
        };
        STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .is_some_and(|sig| key.verify(&signed_bytes(text), &sig).is_ok())
    }
}

/// The keys of one kind a host trusts. Persisted as JSON by agent and rootd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub which: KeyKind,
    /// The generation of `current` (0: the key pinned at enrolment or in
    /// the config).
    pub generation: u32,
    /// The key trusted now, base64.
    pub current: String,
    /// The key `current` replaced, accepted until `overlap_end_ms`.
    #[serde(default)]
    pub previous: Option<String>,
    /// Until when (ms since the epoch) `previous` is accepted.
    #[serde(default)]
    pub overlap_end_ms: i64,
}

impl KeyRing {
    /// A ring holding only the pinned key (generation 0).
    pub fn pinned(which: KeyKind, key_b64: &str) -> Self {
        Self {
            which,
            generation: 0,
            current: key_b64.trim().to_string(),
            previous: None,
            overlap_end_ms: 0,
        }
    }

    /// The keys (base64) accepted at `now_ms`: the current one, then the
    /// previous one while the overlap lasts.
    pub fn accepted(&self, now_ms: i64) -> Vec<&str> {
        let mut keys = vec![self.current.as_str()];
        if let Some(p) = &self.previous {
            if now_ms < self.overlap_end_ms {
                keys.push(p.as_str());
            }
        }
        keys
    }

    /// Fingerprints of [`KeyRing::accepted`], as heartbeats report them.
    pub fn fingerprints(&self, now_ms: i64) -> Vec<String> {
        self.accepted(now_ms)
            .into_iter()
            .map(key_fingerprint)
            .collect()
    }

    /// Applies a signed rotation: it must be for this kind, of a higher
    /// generation than held, and signed by the current key. On success the
    /// current key becomes the previous one (accepted until the overlap
    /// ends) and the new key the current one. On error nothing changes.
    pub fn apply(&mut self, text: &str, signature: &str) -> Result<KeyRotation, RotationError> {
        let r = KeyRotation::parse_unverified(text)?;
        if r.which != self.which {
            return Err(RotationError::WrongKind {
                got: r.which.as_str(),
                want: self.which.as_str(),
            });
        }
        if r.generation <= self.generation {
            return Err(RotationError::Stale {
                got: r.generation,
                held: self.generation,
            });
        }
        if !KeyRotation::verify(text, signature, &self.current) {
            return Err(RotationError::BadSignature {
                which: self.which.as_str(),
                trusted: key_fingerprint(&self.current),
            });
        }
        self.previous = Some(std::mem::replace(&mut self.current, r.new_key.clone()));
        self.generation = r.generation;
        self.overlap_end_ms = r.overlap_end_ms;
        Ok(r)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ring always serialises")
    }

    /// Parses a persisted ring; the kind must match.
    pub fn from_json(text: &str, which: KeyKind) -> Result<Self, RotationError> {
        let r: KeyRing =
            serde_json::from_str(text).map_err(|e| RotationError::Malformed(e.to_string()))?;
        if r.which != which {
            return Err(RotationError::WrongKind {
                got: r.which.as_str(),
                want: which.as_str(),
            });
        }
        parse_key(&r.current)?;
        Ok(r)
    }

    /// Writes the ring to `path` atomically (a temporary file, then a rename).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The ring saved at `path`, or `pinned` (generation 0) when there is
    /// none yet. A file that does not parse is an error: a host must not
    /// silently fall back to a retired key.
    pub fn load_or_pinned(
        path: &std::path::Path,
        which: KeyKind,
        pinned: &str,
    ) -> Result<Self, RotationError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text, which)
                .map_err(|e| RotationError::Malformed(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::pinned(which, pinned)),
            Err(e) => Err(RotationError::Malformed(format!("{}: {e}", path.display()))),
        }
    }
}

impl KeyRing {
    /// Opens a signed command with a command key accepted at `now_ms`
    /// (the envelope's `key_id` is only a hint: every accepted key is
    /// tried). A signature by none of them is [`Refusal::BadSignature`],
    /// also for a key whose overlap has ended.
    pub fn open_command(&self, signed: &SignedCommand, now_ms: i64) -> Result<Command, Refusal> {
        let mut last = Refusal::BadSignature;
        for k in self.accepted(now_ms) {
            let key = VerifyingKey::parse(k).map_err(|_| Refusal::BadSignature)?;
            match key.open(signed) {
                Ok(c) => return Ok(c),
                Err(Refusal::BadSignature) => last = Refusal::BadSignature,
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// [`KeyRing::open_command`], then addressee, clock skew and expiry, as
    /// [`VerifyingKey::verify_for`].
    pub fn verify_command_for(
        &self,
        signed: &SignedCommand,
        me: &str,
        now_ms: i64,
    ) -> Result<Command, Refusal> {
        let cmd = self.open_command(signed, now_ms)?;
        super::command::check_opened(cmd, me, now_ms)
    }

    /// Opens a release manifest with a release key accepted at `now_ms`.
    /// A signature by none of them is the error of the current key.
    pub fn open_release(
        &self,
        manifest_text: &str,
        signature: &str,
        now_ms: i64,
    ) -> Result<ReleaseManifest, ReleaseError> {
        let mut first_err = None;
        for k in self.accepted(now_ms) {
            match ReleaseKey::parse(k).and_then(|key| key.open(manifest_text, signature)) {
                Ok(m) => return Ok(m),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| ReleaseError::BadKey("no release key".into())))
    }
}

/// The file a host keeps its ring of `which` in, inside its state directory.
pub fn ring_file(which: KeyKind) -> &'static str {
    match which {
        KeyKind::Command => "command-keys.json",
        KeyKind::Release => "release-keys.json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (crate::CommandSigner, String) {
        let k = crate::CommandSigner::generate();
        let public = k.public().to_base64();
        (k, public)
    }

    fn rotation(generation: u32, new_key: &str) -> KeyRotation {
        KeyRotation {
            which: KeyKind::Command,
            generation,
            new_key: new_key.into(),
            overlap_end_ms: 2_000,
            at_ms: 1_000,
        }
    }

    #[test]
    fn a_rotation_signed_by_the_current_key_moves_the_ring_forward() {
        let (old_seed, old_pub) = key();
        let (new_seed, new_pub) = key();
        let mut ring = KeyRing::pinned(KeyKind::Command, &old_pub);
        let (text, sig) = rotation(1, &new_pub).sign_command(&old_seed).unwrap();
        ring.apply(&text, &sig).unwrap();
        assert_eq!(ring.generation, 1);
        assert_eq!(
            ring.accepted(1_500),
            vec![new_pub.as_str(), old_pub.as_str()]
        );
        assert_eq!(ring.accepted(2_000), vec![new_pub.as_str()]);
        // Played back: refused, nothing changes.
        let before = ring.clone();
        assert!(matches!(
            ring.apply(&text, &sig),
            Err(RotationError::Stale { got: 1, held: 1 })
        ));
        assert_eq!(ring, before);
        // The next one must be signed by the new key.
        let (_, third) = key();
        let (t2, s2) = rotation(2, &third).sign_command(&old_seed).unwrap();
        assert!(matches!(
            ring.apply(&t2, &s2),
            Err(RotationError::BadSignature { .. })
        ));
        let (t2, s2) = rotation(2, &third).sign_command(&new_seed).unwrap();
        ring.apply(&t2, &s2).unwrap();
        assert_eq!(ring.generation, 2);
        let back = KeyRing::from_json(&ring.to_json(), KeyKind::Command).unwrap();
        assert_eq!(back, ring);
    }

    #[test]
    fn releases_verify_with_the_new_key_and_with_the_old_one_only_during_the_overlap() {
        use crate::signing::release::{manifest_for, ReleaseSigner};
        let old = ReleaseSigner::generate();
        let new = ReleaseSigner::generate();
        let mut ring = KeyRing::pinned(KeyKind::Release, &old.public().to_base64());
        let r = KeyRotation {
            which: KeyKind::Release,
            generation: 1,
            new_key: new.public().to_base64(),
            overlap_end_ms: 2_000,
            at_ms: 1_000,
        };
        let (text, sig) = r.sign_release(&old).unwrap();
        ring.apply(&text, &sig).unwrap();
        let m = manifest_for(b"bin", "1.0.0", "linux-x86_64", "stable", "", "", 1);
        let (t_new, s_new) = new.sign(&m).unwrap();
        let (t_old, s_old) = old.sign(&m).unwrap();
        assert!(ring.open_release(&t_new, &s_new, 1_500).is_ok());
        assert!(ring.open_release(&t_new, &s_new, 9_000).is_ok());
        assert!(ring.open_release(&t_old, &s_old, 1_500).is_ok());
        assert!(matches!(
            ring.open_release(&t_old, &s_old, 2_000),
            Err(ReleaseError::BadSignature(_))
        ));
    }

    #[test]
    fn commands_verify_with_the_old_key_only_during_the_overlap() {
        let (old, old_pub) = key();
        let (new, new_pub) = key();
        let mut ring = KeyRing::pinned(KeyKind::Command, &old_pub);
        let (text, sig) = rotation(1, &new_pub).sign_command(&old).unwrap();
        ring.apply(&text, &sig).unwrap();
        let cmd = Command {
            id: "c".into(),
            agent_id: "A".into(),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            issued_at: 0,
            expires_at: i64::MAX / 2,
            timeout_secs: 1,
            requested_by: "t".into(),
            source: crate::Source::User,
            job_id: None,
            clock_skew_ms: None,
        };
        assert!(ring.open_command(&new.sign(&cmd), 5_000).is_ok());
        assert!(ring.open_command(&old.sign(&cmd), 1_999).is_ok());
        assert_eq!(
            ring.open_command(&old.sign(&cmd), 2_000),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_stranger_edits_or_another_kind_are_refused() {
        let (_, old_pub) = key();
        let (stranger, _) = key();
        let (_, new_pub) = key();
        let mut ring = KeyRing::pinned(KeyKind::Command, &old_pub);
        let (text, sig) = rotation(1, &new_pub).sign_command(&stranger).unwrap();
        assert!(matches!(
            ring.apply(&text, &sig),
            Err(RotationError::BadSignature { .. })
        ));
        let mut release = KeyRing::pinned(KeyKind::Release, &old_pub);
        assert!(matches!(
            release.apply(&text, &sig),
            Err(RotationError::WrongKind { .. })
        ));
        assert_eq!(ring.generation, 0);
        assert!(KeyRotation::parse_unverified("{}").is_err());
        let mut long = rotation(1, &new_pub);
        long.overlap_end_ms = long.at_ms + MAX_OVERLAP_MS + 1;
        assert!(long.check().is_err());
    }
}
