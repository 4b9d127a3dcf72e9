//! Agent releases for self-update: the [`ReleaseManifest`] that describes
//! one agent binary (name, version, platform, channel, SHA-256, size,
//! minimum control-plane version), the release key that signs it
//! ([`ReleaseSigner`], an Ed25519 key kept apart from the command-signing
//! key, normally only on the operator's machine) and the check every reader
//! makes ([`ReleaseKey::open`] then [`ReleaseManifest::check_bytes`]).
//!
//! The signature covers the manifest's JSON text exactly, behind the domain
//! prefix [`SIGNED_PREFIX`], so a release signature can never pass for a
//! command's or an artifact's (those sign MessagePack bodies and package
//! files, neither of which starts with `drover-release`). The manifest names
//! the binary by its SHA-256 and size, so the bytes the object store serves
//! are pinned by the signature, and name and version are covered too.
//!
//! Owns the shapes, the signing and the version order ([`compare_versions`]).
//! It does not fetch, store or install anything (agent, rootd and the
//! control plane's `agent_releases`).

use std::cmp::Ordering;
use std::path::Path;

use base64::{engine::general_purpose::STANDARD, Engine};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fingerprint;

/// The bytes in front of the manifest's JSON text that the signature covers.
pub const SIGNED_PREFIX: &[u8] = b"drover-release-manifest-v1\n";
/// The only binary released this way today.
pub const AGENT_BINARY: &str = "drover-agent";
/// The file beside an installed agent binary that holds its manifest and
/// signature ([`InstalledRelease`]); the agent reports its version from it.
pub const INSTALLED_RELEASE_FILE: &str = "release.json";
/// Longest manifest text accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024;
/// Longest release notes, in characters.
pub const MAX_NOTES_CHARS: usize = 2000;
/// The release channels.
pub const CHANNELS: &[&str] = &["stable", "beta"];

/// What one release is. Serialised as JSON; that exact text is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// The binary: [`AGENT_BINARY`].
    pub name: String,
    /// Semantic version, `MAJOR.MINOR.PATCH` with an optional `-pre`.
    pub version: String,
    /// `linux-<arch>` as [`platform`] spells it, e.g. `linux-x86_64`.
    pub platform: String,
    /// One of [`CHANNELS`].
    pub channel: String,
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    /// The binary's size in bytes.
    pub size: u64,
    /// The oldest control-plane version this agent works with ("" = any).
    #[serde(default)]
    pub min_control_plane: String,
    /// When it was signed, ms since the epoch.
    pub published_at: i64,
    /// Free text shown on the Releases page.
    #[serde(default)]
    pub notes: String,
}

/// Why a release was refused. The text is shown to operators as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("the release manifest is not valid: {0}")]
    Malformed(String),
    #[error("the release signature does not verify with the pinned release key {0}: the artifact was not signed by this fleet's release key")]
    BadSignature(String),
    #[error("the binary is {got} bytes, the signed manifest says {want}: the artifact was altered or truncated")]
    WrongSize { want: u64, got: u64 },
    #[error(
        "the binary's SHA-256 is {got}, the signed manifest says {want}: the artifact was altered"
    )]
    WrongDigest { want: String, got: String },
    #[error("the release is for {release}, this host is {host}")]
    WrongPlatform { release: String, host: String },
    #[error("release key: {0}")]
    BadKey(String),
}

impl ReleaseManifest {
    /// The manifest's JSON text: what is signed and carried.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a manifest always serialises")
    }

    /// Checks every field's shape (not the signature).
    pub fn check(&self) -> Result<(), ReleaseError> {
        let bad = |m: String| Err(ReleaseError::Malformed(m));
        if self.name != AGENT_BINARY {
            return bad(format!(
                "name {:?}: only {AGENT_BINARY} is released",
                self.name
            ));
        }
        if semver::Version::parse(&self.version).is_err() {
            return bad(format!(
                "version {:?} is not a semantic version (MAJOR.MINOR.PATCH)",
                self.version
            ));
        }
        if !self.min_control_plane.is_empty()
            && semver::Version::parse(&self.min_control_plane).is_err()
        {
            return bad(format!(
                "min_control_plane {:?} is not a semantic version",
                self.min_control_plane
            ));
        }
        if !CHANNELS.contains(&self.channel.as_str()) {
            return bad(format!(
                "channel {:?}: one of {}",
                self.channel,
                CHANNELS.join(", ")
            ));
        }
        let plat_ok = self.platform.strip_prefix("linux-").is_some_and(|a| {
            !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !plat_ok {
            return bad(format!(
                "platform {:?}: expected linux-<arch>",
                self.platform
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        {
            return bad("sha256: 64 lower-case hex digits".into());
        }
        if self.size == 0 {
            return bad("size: an empty binary".into());
        }
        if self.notes.chars().count() > MAX_NOTES_CHARS {
            return bad(format!("notes: at most {MAX_NOTES_CHARS} characters"));
        }
        Ok(())
    }

    /// The object's name in the releases bucket:
    /// `drover-agent-<version>-<platform>` (no `/`, no `..`: every field
    /// was checked by [`ReleaseManifest::check`]).
    pub fn object_name(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.platform)
    }

    /// Checks `bytes` against the size and SHA-256 the manifest names.
    pub fn check_bytes(&self, bytes: &[u8]) -> Result<(), ReleaseError> {
        if bytes.len() as u64 != self.size {
            return Err(ReleaseError::WrongSize {
                want: self.size,
                got: bytes.len() as u64,
            });
        }
        let got = hex::encode(Sha256::digest(bytes));
        if got != self.sha256 {
            return Err(ReleaseError::WrongDigest {
                want: self.sha256.clone(),
                got,
            });
        }
        Ok(())
    }

    /// Refuses a release built for another platform than this process's.
    pub fn check_platform(&self) -> Result<(), ReleaseError> {
        let host = platform();
        if self.platform != host {
            return Err(ReleaseError::WrongPlatform {
                release: self.platform.clone(),
                host,
            });
        }
        Ok(())
    }
}

/// This process's platform: `linux-` and the architecture as Rust names it
/// (`x86_64`, `aarch64`).
pub fn platform() -> String {
    format!("linux-{}", std::env::consts::ARCH)
}

/// Orders two versions as semantic versions; text that is not one sorts
/// before every version, so it never counts as newer.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The pinned public release key (agent, rootd and control plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseKey(ed25519_dalek::VerifyingKey);

impl ReleaseKey {
    /// Parses base64 of the 32 raw key bytes.
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| ReleaseError::BadKey("not base64".into()))?;
        let arr: [u8; 32] = raw
            .try_into()
            .map_err(|_| ReleaseError::BadKey("expected 32 bytes".into()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|_| ReleaseError::BadKey("not an Ed25519 public key".into()))
    }

    /// Reads a file holding the key as base64 (what `drover releases keygen`
    /// writes as `<name>.pub`).
    pub fn load(path: &Path) -> Result<Self, ReleaseError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReleaseError::BadKey(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// A `release_key` setting as agent.toml, rootd.toml and drover.toml
    /// take it: base64 of the key, or else the path of a file holding it.
    /// The error names what was tried.
    pub fn from_setting(text: &str) -> Result<Self, ReleaseError> {
        let text = text.trim();
        Self::parse(text).or_else(|_| {
            Self::load(Path::new(text)).map_err(|e| {
                ReleaseError::BadKey(format!(
                    "release_key is neither a base64 key nor a readable key file ({e})"
                ))
            })
        })
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// `SHA256:<base64>` of the raw key.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }

    /// Checks `signature` (base64) over `manifest_text` and parses and
    /// checks the manifest. Nothing in it is believed before the signature
    /// holds.
    pub fn open(
        &self,
        manifest_text: &str,
        signature: &str,
    ) -> Result<ReleaseManifest, ReleaseError> {
        if manifest_text.len() > MAX_MANIFEST_BYTES {
            return Err(ReleaseError::Malformed(format!(
                "the manifest is over {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let sig = STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or_else(|| ReleaseError::BadSignature(self.fingerprint()))?;
        self.0
            .verify(&signed_bytes(manifest_text), &sig)
            .map_err(|_| ReleaseError::BadSignature(self.fingerprint()))?;
        // The same depth and length limits as every other outside JSON.
        let m: ReleaseManifest = crate::codec::decode_with(
            manifest_text.as_bytes(),
            Some(crate::codec::CONTENT_TYPE_JSON),
            crate::codec::Limits::MESSAGE.with_max_bytes(MAX_MANIFEST_BYTES),
        )
        .map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        m.check()?;
        Ok(m)
    }
}

fn signed_bytes(manifest_text: &str) -> Vec<u8> {
    let mut v = SIGNED_PREFIX.to_vec();
    v.extend_from_slice(manifest_text.as_bytes());
    v
}

/// The release key's private half. Never printed.
pub struct ReleaseSigner(ed25519_dalek::SigningKey);

impl std::fmt::Debug for ReleaseSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleaseSigner({})", self.public().fingerprint())
    }
}

impl ReleaseSigner {
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The seed as base64 (what the key file holds).
    pub fn seed_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// Reads a seed file (base64 of 32 bytes).
    pub fn load(path: &Path) -> Result<Self, ReleaseError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReleaseError::BadKey(format!("{}: {e}", path.display())))?;
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| ReleaseError::BadKey(format!("{}: not base64", path.display())))?;
        let seed: [u8; 32] = raw
            .try_into()
            .map_err(|_| ReleaseError::BadKey(format!("{}: expected 32 bytes", path.display())))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> ReleaseKey {
        ReleaseKey(self.0.verifying_key())
    }

    /// The signature over `bytes` exactly. Only for [`super::rotation`],
    /// whose signed bytes carry their own domain prefix.
    pub(crate) fn sign_raw(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(bytes).to_bytes()
    }

    /// Checks the manifest and signs its text; returns (text, base64
    /// signature).
    pub fn sign(&self, m: &ReleaseManifest) -> Result<(String, String), ReleaseError> {
        m.check()?;
        let text = m.to_text();
        let sig = self.0.sign(&signed_bytes(&text));
        Ok((text, STANDARD.encode(sig.to_bytes())))
    }
}

/// A manifest for `bytes` (SHA-256 and size computed here).
pub fn manifest_for(
    bytes: &[u8],
    version: &str,
    platform: &str,
    channel: &str,
    min_control_plane: &str,
    notes: &str,
    published_at: i64,
) -> ReleaseManifest {
    ReleaseManifest {
        name: AGENT_BINARY.into(),
        version: version.into(),
        platform: platform.into(),
        channel: channel.into(),
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
        min_control_plane: min_control_plane.into(),
        published_at,
        notes: notes.into(),
    }
}

/// What rootd writes beside an installed agent binary
/// ([`INSTALLED_RELEASE_FILE`]): the signed manifest it installed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledRelease {
    /// The manifest's JSON text, exactly as signed.
    pub manifest: String,
    /// Base64 signature over it.
    pub signature: String,
}

impl InstalledRelease {
    /// The manifest beside the running executable, if there is one and it
    /// parses (not verified: it only names the version to report).
    pub fn beside_current_exe() -> Option<ReleaseManifest> {
        let exe = std::env::current_exe().ok()?;
        let text = std::fs::read_to_string(exe.parent()?.join(INSTALLED_RELEASE_FILE)).ok()?;
        let ir: InstalledRelease = serde_json::from_str(&text).ok()?;
        serde_json::from_str(&ir.manifest).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(bytes: &[u8]) -> ReleaseManifest {
        manifest_for(bytes, "1.2.3", "linux-x86_64", "stable", "", "", 1)
    }

    #[test]
    fn a_signed_manifest_opens_and_pins_the_bytes() {
        let s = ReleaseSigner::generate();
        let (text, sig) = s.sign(&manifest(b"binary")).unwrap();
        let m = s.public().open(&text, &sig).unwrap();
        assert!(m.check_bytes(b"binary").is_ok());
        assert!(matches!(
            m.check_bytes(b"binarY"),
            Err(ReleaseError::WrongDigest { .. })
        ));
        assert!(matches!(
            m.check_bytes(b"bin"),
            Err(ReleaseError::WrongSize { .. })
        ));
    }

    #[test]
    fn another_key_or_an_edited_manifest_is_refused() {
        let s = ReleaseSigner::generate();
        let (text, sig) = s.sign(&manifest(b"x")).unwrap();
        let other = ReleaseSigner::generate().public();
        assert!(matches!(
            other.open(&text, &sig),
            Err(ReleaseError::BadSignature(_))
        ));
        let edited = text.replace("1.2.3", "9.9.9");
        assert!(matches!(
            s.public().open(&edited, &sig),
            Err(ReleaseError::BadSignature(_))
        ));
    }

    #[test]
    fn bad_fields_are_refused_before_signing() {
        let s = ReleaseSigner::generate();
        for edit in [
            |m: &mut ReleaseManifest| m.version = "1.2".into(),
            |m: &mut ReleaseManifest| m.platform = "linux-../x".into(),
            |m: &mut ReleaseManifest| m.channel = "nightly".into(),
            |m: &mut ReleaseManifest| m.name = "sh".into(),
        ] {
            let mut m = manifest(b"x");
            edit(&mut m);
            assert!(matches!(s.sign(&m), Err(ReleaseError::Malformed(_))));
        }
    }

    #[test]
    fn versions_order_as_semver() {
        assert_eq!(compare_versions("0.10.0", "0.9.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.0.0-rc.1", "1.0.0"), Ordering::Less);
        assert_eq!(compare_versions("junk", "0.0.1"), Ordering::Less);
    }
}
