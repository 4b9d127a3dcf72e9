//! Signatures on release artifacts (the agent's `.deb` and `.rpm` packages
//! the control plane serves to `install.sh`): an Ed25519 signature by the
//! control plane's command-signing key over the file's bytes exactly, so
//! `openssl pkeyutl -verify -rawin` checks it with the key as PEM
//! ([`VerifyingKey::to_pem`]). Owns the artifact kinds and their magic
//! bytes; it does not store, name or serve artifacts (the control plane's
//! `releases`).
//!
//! An artifact's signature can never pass for a command's, nor a command's
//! for an artifact's: a command's signed bytes are the MessagePack encoding
//! of a `Command`, whose first byte is a map or array marker (0x80..=0x9f,
//! 0xdc..=0xdf), while [`sign_artifact`] signs only bytes that begin with a
//! package's magic (`!<arch>\n` for .deb, `0xedabeedb` for .rpm), whose
//! first bytes are 0x21 and 0xed. A verifier that took an artifact's bytes
//! as a command body would find no `Command` in them
//! (`Refusal::Malformed`), and a command body is refused here.

use base64::{engine::general_purpose::STANDARD, Engine};

use super::command::{CommandSigner, VerifyingKey};

/// The package formats the control plane signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactFormat {
    /// A Debian package (`ar` archive, `!<arch>\n`).
    Deb,
    /// An RPM package (lead magic `ed ab ee db`).
    Rpm,
}

impl ArtifactFormat {
    /// `deb` or `rpm`, as the index and `install.sh` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactFormat::Deb => "deb",
            ArtifactFormat::Rpm => "rpm",
        }
    }

    /// The format whose magic `bytes` begin with, if any.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(DEB_MAGIC) {
            Some(ArtifactFormat::Deb)
        } else if bytes.starts_with(RPM_MAGIC) {
            Some(ArtifactFormat::Rpm)
        } else {
            None
        }
    }
}

const DEB_MAGIC: &[u8] = b"!<arch>\n";
const RPM_MAGIC: &[u8] = &[0xed, 0xab, 0xee, 0xdb];

/// Why an artifact was not signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtifactError {
    #[error("not a package: a release artifact must be a .deb (starts with !<arch>) or an .rpm (starts with 0xedabeedb)")]
    NotAPackage,
}

/// Signs `bytes` (a whole package file) with the control plane's key;
/// returns the 64-byte Ed25519 signature and the package's format.
/// Refuses bytes that are not a package (see the module doc: this keeps an
/// artifact signature from ever being a command signature).
pub fn sign_artifact(
    signer: &CommandSigner,
    bytes: &[u8],
) -> Result<([u8; 64], ArtifactFormat), ArtifactError> {
    let format = ArtifactFormat::sniff(bytes).ok_or(ArtifactError::NotAPackage)?;
    Ok((signer.sign_raw(bytes), format))
}

/// True when `signature` (64 bytes) is `key`'s signature over `bytes` and
/// `bytes` is a package.
pub fn verify_artifact(key: &VerifyingKey, bytes: &[u8], signature: &[u8]) -> bool {
    ArtifactFormat::sniff(bytes).is_some() && key.verify_raw(bytes, signature)
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE,
/// AlgorithmIdentifier id-Ed25519 (1.3.101.112), BIT STRING of 32 bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl VerifyingKey {
    /// The key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, RFC 8410), as
    /// `openssl pkeyutl -pubin -inkey` reads it. Ends with a newline.
    pub fn to_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw_bytes());
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Source};

    fn deb_bytes() -> Vec<u8> {
        let mut b = DEB_MAGIC.to_vec();
        b.extend_from_slice(b"debian-binary   0           0     0     100644  4         `\n2.0\n");
        b
    }

    #[test]
    fn sign_and_verify_packages_only() {
        let s = CommandSigner::generate();
        let deb = deb_bytes();
        let (sig, fmt) = sign_artifact(&s, &deb).unwrap();
        assert_eq!(fmt, ArtifactFormat::Deb);
        assert!(verify_artifact(&s.public(), &deb, &sig));
        let mut tampered = deb.clone();
        tampered.push(0);
        assert!(!verify_artifact(&s.public(), &tampered, &sig));
        assert!(!verify_artifact(
            &CommandSigner::generate().public(),
            &deb,
            &sig
        ));
        let rpm = [RPM_MAGIC, b"rest"].concat();
        assert_eq!(sign_artifact(&s, &rpm).unwrap().1, ArtifactFormat::Rpm);
        assert_eq!(
            sign_artifact(&s, b"#!/bin/sh\n").unwrap_err(),
            ArtifactError::NotAPackage
        );
    }

    #[test]
    fn artifact_and_command_signatures_never_collide() {
        let s = CommandSigner::generate();
        let cmd = Command {
            id: "c1".into(),
            agent_id: "A".into(),
            action: "sys.ping".into(),
            params: serde_json::json!({}),
            issued_at: 0,
            expires_at: i64::MAX,
            timeout_secs: 10,
            requested_by: "admin".into(),
            source: Source::User,
            job_id: None,
            clock_skew_ms: None,
        };
        // A command body is not a package: it cannot be signed as one.
        let signed = s.sign(&cmd);
        assert!(ArtifactFormat::sniff(&signed.body).is_none());
        assert_eq!(
            sign_artifact(&s, &signed.body).unwrap_err(),
            ArtifactError::NotAPackage
        );
        // An artifact and its signature dressed up as a command: the
        // signature holds, but the bytes are no command.
        let deb = deb_bytes();
        let (sig, _) = sign_artifact(&s, &deb).unwrap();
        let mut forged = signed.clone();
        forged.body = deb;
        forged.signature = sig.to_vec();
        assert!(matches!(
            s.public().verify_for(&forged, "A", 0),
            Err(crate::signing::Refusal::Malformed(_))
        ));
    }

    #[test]
    fn pem_is_what_openssl_reads() {
        let s = CommandSigner::generate();
        let pem = s.public().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        // With openssl at hand, it verifies what sign_artifact made.
        let Ok(v) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            return;
        };
        if !String::from_utf8_lossy(&v.stdout).starts_with("OpenSSL 3") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let deb = deb_bytes();
        let (sig, _) = sign_artifact(&s, &deb).unwrap();
        std::fs::write(dir.path().join("k.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("p.deb"), &deb).unwrap();
        std::fs::write(dir.path().join("p.sig"), sig).unwrap();
        let verify = |file: &str| {
            std::process::Command::new("openssl")
                .args(["pkeyutl", "-verify", "-pubin", "-inkey", "k.pem", "-rawin"])
                .args(["-in", file, "-sigfile", "p.sig"])
                .current_dir(dir.path())
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify("p.deb"));
        std::fs::write(dir.path().join("q.deb"), [&deb[..], b"x"].concat()).unwrap();
        assert!(!verify("q.deb"));
    }
}
