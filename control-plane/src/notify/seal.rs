//! Sealing channel secrets (webhook HMAC keys, SMTP passwords) so they are
//! never stored in clear: ChaCha20-Poly1305 with a 32-byte key kept in a
//! file the control plane makes at first use (`<data_dir>/notify.key`,
//! mode 0600, or `notify_key_file`). Replicas must share that file.
//!
//! Owns the key file and the sealed format (`v1:` + base64 of the 12-byte
//! nonce then the ciphertext and tag); not which secrets exist.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("notification key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("notification key file {0} is not 32 bytes; restore it from a backup (sealed secrets cannot be opened without it)")]
    BadKey(String),
    #[error("a sealed secret could not be opened (wrong notification key file, or tampered); set the channel's secret again")]
    Open,
    #[error("no randomness available")]
    Random,
}

/// The key: read from `path`, made there (0600) when it does not exist.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], SealError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| SealError::BadKey(shown.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| SealError::Random)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| SealError::KeyFile(shown.clone(), e))?;
            f.write_all(&key)
                .and_then(|_| f.sync_all())
                .map_err(|e| SealError::KeyFile(shown.clone(), e))?;
            Ok(key)
        }
        Err(e) => Err(SealError::KeyFile(shown, e)),
    }
}

/// The key of this control plane: `notify_key_file`, else
/// `<data_dir>/notify.key` (made at first use).
pub fn key(cfg: &crate::config::Config) -> Result<[u8; 32], SealError> {
    let path = cfg
        .notify_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("notify.key"));
    load_or_create(&path)
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"))
}

/// `secret` sealed under `key`, with a fresh random nonce.
pub fn seal(key: &[u8; 32], secret: &str) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    let mut buf = secret.as_bytes().to_vec();
    aead(key)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .map_err(|_| SealError::Open)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(format!(
        "v1:{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// The secret in `sealed` ([`seal`]'s output).
pub fn open(key: &[u8; 32], sealed: &str) -> Result<String, SealError> {
    let raw = sealed
        .strip_prefix("v1:")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or(SealError::Open)?;
    if raw.len() < NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let mut buf = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
    let plain = aead(key)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| SealError::Open)?;
    String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_and_hides_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), key, "the file is reused");
        let s = seal(&key, "hunter2-secret").unwrap();
        assert!(!s.contains("hunter2"));
        assert_eq!(open(&key, &s).unwrap(), "hunter2-secret");
        let other = [7u8; 32];
        assert!(open(&other, &s).is_err(), "another key cannot open it");
        // One bit of the ciphertext flipped (replacing the last base64
        // character with a fixed one left it unchanged once in 64 runs).
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut raw = b64.decode(s.strip_prefix("v1:").unwrap()).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x01;
        let tampered = format!("v1:{}", b64.encode(raw));
        assert!(open(&key, &tampered).is_err());
    }
}
