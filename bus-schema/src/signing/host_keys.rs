//! [`HostKeys`]: the key rings one host process (agent or rootd) keeps in
//! its own state directory: the command-signing keys it accepts and, when a
//! release key is pinned, the release keys. Loaded at start, changed only by
//! a verified `agent.rotate_key` ([`HostKeys::rotate`]), saved before the
//! change takes effect. Owns the persistence and the locking; the checks are
//! [`super::rotation::KeyRing`]'s.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::release::{ReleaseError, ReleaseKey, ReleaseManifest};
use super::rotation::{ring_file, KeyKind, KeyRing, KeyRotation, RotationError};
use super::{Refusal, VerifyingKey};
use crate::{Command, SignedCommand};

/// The command and release key rings of one host process.
#[derive(Debug)]
pub struct HostKeys {
    dir: PathBuf,
    command: RwLock<KeyRing>,
    release: RwLock<Option<KeyRing>>,
}

/// What [`HostKeys::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The rotation was applied now.
    Applied(KeyRotation),
    /// This exact rotation was applied before (a redelivery, or the same
    /// rotation sent again after rootd failed): nothing changed.
    AlreadyHeld(KeyRotation),
}

impl HostKeys {
    /// The rings saved in `state_dir`, or the pinned keys (generation 0)
    /// when none was saved yet. A ring file that does not parse is an
    /// error: the host must not fall back to a retired key.
    pub fn load(
        state_dir: &Path,
        pinned_command: &VerifyingKey,
        pinned_release: Option<&ReleaseKey>,
    ) -> Result<Self, RotationError> {
        let command = KeyRing::load_or_pinned(
            &state_dir.join(ring_file(KeyKind::Command)),
            KeyKind::Command,
            &pinned_command.to_base64(),
        )?;
        let release_path = state_dir.join(ring_file(KeyKind::Release));
        let release = match pinned_release {
            Some(k) => Some(KeyRing::load_or_pinned(
                &release_path,
                KeyKind::Release,
                &k.to_base64(),
            )?),
            None if release_path.exists() => Some(KeyRing::load_or_pinned(
                &release_path,
                KeyKind::Release,
                "",
            )?),
            None => None,
        };
        Ok(Self {
            dir: state_dir.to_path_buf(),
            command: RwLock::new(command),
            release: RwLock::new(release),
        })
    }

    /// A copy of the command ring.
    pub fn command_ring(&self) -> KeyRing {
        self.command.read().expect("key ring lock").clone()
    }

    /// A copy of the release ring, if a release key is pinned.
    pub fn release_ring(&self) -> Option<KeyRing> {
        self.release.read().expect("key ring lock").clone()
    }

    /// The fingerprint of the command key trusted now (generation's key).
    pub fn command_fingerprint(&self) -> String {
        super::rotation::key_fingerprint(&self.command_ring().current)
    }

    /// Every key fingerprint accepted at `now_ms`: command keys, then
    /// release keys. What heartbeats report.
    pub fn fingerprints(&self, now_ms: i64) -> Vec<String> {
        let mut out = self.command_ring().fingerprints(now_ms);
        if let Some(r) = self.release_ring() {
            out.extend(r.fingerprints(now_ms));
        }
        out
    }

    /// [`KeyRing::open_command`] with the command ring.
    pub fn open_command(&self, signed: &SignedCommand, now_ms: i64) -> Result<Command, Refusal> {
        self.command
            .read()
            .expect("key ring lock")
            .open_command(signed, now_ms)
    }

    /// [`KeyRing::verify_command_for`] with the command ring.
    pub fn verify_command_for(
        &self,
        signed: &SignedCommand,
        me: &str,
        now_ms: i64,
    ) -> Result<Command, Refusal> {
        self.command
            .read()
            .expect("key ring lock")
            .verify_command_for(signed, me, now_ms)
    }

    /// [`KeyRing::open_release`] with the release ring; `None` when no
    /// release key is pinned.
    pub fn open_release(
        &self,
        manifest_text: &str,
        signature: &str,
        now_ms: i64,
    ) -> Option<Result<ReleaseManifest, ReleaseError>> {
        self.release
            .read()
            .expect("key ring lock")
            .as_ref()
            .map(|r| r.open_release(manifest_text, signature, now_ms))
    }

    /// Applies a signed rotation to the ring of its kind and saves it
    /// before it takes effect. On any error nothing changes.
    pub fn rotate(&self, text: &str, signature: &str) -> Result<Rotated, RotateError> {
        let r = KeyRotation::parse_unverified(text)?;
        let lock = match r.which {
            KeyKind::Command => Some(&self.command),
            KeyKind::Release => None,
        };
        match lock {
            Some(l) => {
                let mut guard = l.write().expect("key ring lock");
                self.apply_to(&mut guard, &r, text, signature)
            }
            None => {
                let mut guard = self.release.write().expect("key ring lock");
                let ring = guard
                    .as_mut()
                    .ok_or(RotationError::NothingPinned("release"))?;
                self.apply_to(ring, &r, text, signature)
            }
        }
    }

    fn apply_to(
        &self,
        ring: &mut KeyRing,
        r: &KeyRotation,
        text: &str,
        signature: &str,
    ) -> Result<Rotated, RotateError> {
        if ring.generation == r.generation && ring.current == r.new_key {
            // Same generation, same key: this rotation was adopted already
            // (only a rotation signed by the key before could have put it
            // there).
            return Ok(Rotated::AlreadyHeld(r.clone()));
        }
        let mut next = ring.clone();
        let applied = next.apply(text, signature)?;
        let path = self.dir.join(ring_file(ring.which));
        next.save(&path).map_err(|e| RotateError::Save {
            path: path.display().to_string(),
            source: e,
        })?;
        *ring = next;
        Ok(Rotated::Applied(applied))
    }
}

/// Why [`HostKeys::rotate`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Refused(#[from] RotationError),
    #[error("saving the key ring to {path}: {source}")]
    Save {
        path: String,
        source: std::io::Error,
    },
}

impl RotateError {
    /// The refusal to report for it, when it is one a sender could have
    /// provoked on purpose (a forged or played-back rotation).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            RotateError::Refused(RotationError::BadSignature { .. }) => Some(Refusal::BadSignature),
            RotateError::Refused(e @ RotationError::Stale { .. }) => {
                Some(Refusal::Replayed(e.to_string()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommandSigner;

    #[test]
    fn a_rotation_is_saved_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let old = CommandSigner::generate();
        let new = CommandSigner::generate();
        let keys = HostKeys::load(dir.path(), &old.public(), None).unwrap();
        let rot = KeyRotation {
            which: KeyKind::Command,
            generation: 1,
            new_key: new.public().to_base64(),
            overlap_end_ms: 10_000,
            at_ms: 1,
        };
        let (text, sig) = rot.sign_command(&old).unwrap();
        assert!(matches!(keys.rotate(&text, &sig), Ok(Rotated::Applied(_))));
        assert!(matches!(
            keys.rotate(&text, &sig),
            Ok(Rotated::AlreadyHeld(_))
        ));
        let again = HostKeys::load(dir.path(), &old.public(), None).unwrap();
        assert_eq!(again.command_ring().generation, 1);
        assert_eq!(again.fingerprints(5_000).len(), 2);
        assert_eq!(again.fingerprints(10_000), vec![new.public().fingerprint()]);
        // No release key pinned: a release rotation is refused.
        let rel = crate::signing::release::ReleaseSigner::generate();
        let rrot = KeyRotation {
            which: KeyKind::Release,
            ..rot
        };
        let (t, s) = rrot.sign_release(&rel).unwrap();
        assert!(keys.rotate(&t, &s).is_err());
    }
}
