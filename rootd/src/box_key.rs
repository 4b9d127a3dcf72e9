//! rootd's box key: the X25519 key pair secrets are sealed to
//! ([`bus_schema::sealed`]). Made at first start, kept across restarts as
//! 32 raw bytes in `<state_dir>/box.key` (mode 0600, written through a
//! temporary file and a rename so a crash never leaves half a key).
//!
//! Owns only the key file. Opening sealed params is
//! [`bus_schema::sealed::open_params`], called from the server's admission
//! check; the public half reaches the agent in the `Capabilities` answer.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use bus_schema::sealed::{BoxSecretKey, BOX_KEY_BYTES};

/// The key file's name inside rootd's state directory.
pub const FILE_NAME: &str = "box.key";

/// Where the key lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the key, or makes and stores a new one when there is none. A key
/// file readable by group or others, or not exactly 32 bytes, is an error
/// that says what to do (rootd does not start on it).
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<BoxSecretKey> {
    let file = path(state_dir);
    match std::fs::read(&file) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&file)?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} is readable by others (mode {:o}); run `chmod 600 {}` and start rootd again",
                    file.display(),
                    mode & 0o777,
                    file.display()
                );
            }
            let raw: [u8; BOX_KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
                anyhow::anyhow!(
                    "{} holds {} bytes, not a {BOX_KEY_BYTES}-byte box key; move it away to \
                     make a new key (the control plane will then refuse secrets for this host \
                     until an operator accepts the new key)",
                    file.display(),
                    b.len()
                )
            })?;
            Ok(BoxSecretKey::from_bytes(raw))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(state_dir, &file),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

fn create(state_dir: &Path, file: &Path) -> anyhow::Result<BoxSecretKey> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let key = BoxSecretKey::generate();
    let tmp = state_dir.join(format!("{FILE_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&key.to_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file).with_context(|| format!("storing {}", file.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_after_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::set_permissions(path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(dir.path()).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(path(dir.path()), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(path(dir.path()), b"short").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
