//! Which agent version this process is, as reported to the control plane
//! (heartbeat `agent_version`/`agent_channel`, the enrolment claim's facts,
//! `sys.info`) and printed by `drover-agent --version`.
//!
//! The version comes from the release manifest rootd writes beside an
//! installed agent binary (`release.json`, [`InstalledRelease`]): when that
//! file is there, parses, and names this very executable (its size and
//! SHA-256 match the running binary), its version and channel are the
//! agent's. Otherwise (a build not installed from a release, or a manifest
//! that describes another binary) the agent is its build version
//! (`CARGO_PKG_VERSION`) on no channel (""). Read once per process: rootd
//! installs each release in its own directory and restarts the agent, so
//! the file beside a running binary never changes under it.
//!
//! Owns only this answer. It does not verify the manifest's signature (rootd
//! did, before it installed the binary; the control plane decides what a
//! version means), and it installs nothing.

use std::path::Path;
use std::sync::OnceLock;

use bus_schema::signing::release::{InstalledRelease, ReleaseManifest, INSTALLED_RELEASE_FILE};

/// The version this binary was built as.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the agent reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Semantic version (`MAJOR.MINOR.PATCH[-pre]`).
    pub version: String,
    /// Release channel (`stable`, `beta`); "" for a build not installed
    /// from a release.
    pub channel: String,
}

/// The running agent's version and channel (computed once per process).
pub fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        let found = exe.as_deref().and_then(|e| beside(e).map(|m| (e, m)));
        match found {
            Some((exe, m)) => match names_binary(&m, exe) {
                Ok(()) => Running {
                    version: m.version,
                    channel: m.channel,
                },
                Err(why) => {
                    tracing::warn!(
                        manifest = %exe.with_file_name(INSTALLED_RELEASE_FILE).display(),
                        reason = %why,
                        build = BUILD_VERSION,
                        "the release manifest beside this executable does not describe it; reporting the build version"
                    );
                    build()
                }
            },
            None => build(),
        }
    })
}

/// The build's own answer: [`BUILD_VERSION`], no channel.
fn build() -> Running {
    Running {
        version: BUILD_VERSION.into(),
        channel: String::new(),
    }
}

/// The manifest in `release.json` beside `exe`, if it is there and parses.
/// The same reading as [`InstalledRelease::beside_current_exe`], for any
/// executable path.
fn beside(exe: &Path) -> Option<ReleaseManifest> {
    let text = std::fs::read_to_string(exe.parent()?.join(INSTALLED_RELEASE_FILE)).ok()?;
    let ir: InstalledRelease = serde_json::from_str(&text).ok()?;
    serde_json::from_str(&ir.manifest).ok()
}

/// Checks that `m` describes the file `exe` (size, then SHA-256).
fn names_binary(m: &ReleaseManifest, exe: &Path) -> Result<(), String> {
    let bytes = std::fs::read(exe).map_err(|e| format!("reading {}: {e}", exe.display()))?;
    m.check_bytes(&bytes).map_err(|e| e.to_string())
}

/// What `drover-agent --version` prints after the program name: the
/// version, with the channel and the build version when they add anything
/// (`1.4.0 (stable; built as 0.1.0)`).
pub fn display() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| describe(running()))
}

fn describe(r: &Running) -> String {
    let mut notes: Vec<String> = Vec::new();
    if !r.channel.is_empty() {
        notes.push(format!("channel {}", r.channel));
    }
    if r.version != BUILD_VERSION {
        notes.push(format!("built as {BUILD_VERSION}"));
    }
    if notes.is_empty() {
        r.version.clone()
    } else {
        format!("{} ({})", r.version, notes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::signing::release::{manifest_for, platform, ReleaseSigner};

    /// A copy of this test binary with a `release.json` beside it: what
    /// rootd leaves in `<agent_releases_dir>/<version>/`.
    fn installed(dir: &Path, manifest_bytes: &[u8], version: &str) -> std::path::PathBuf {
        let exe = std::env::current_exe().unwrap();
        let copy = dir.join("drover-agent");
        std::fs::copy(&exe, &copy).unwrap();
        let m = manifest_for(manifest_bytes, version, &platform(), "beta", "", "", 1);
        let (manifest, signature) = ReleaseSigner::generate().sign(&m).unwrap();
        let ir = InstalledRelease {
            manifest,
            signature,
        };
        std::fs::write(
            dir.join(INSTALLED_RELEASE_FILE),
            serde_json::to_string(&ir).unwrap(),
        )
        .unwrap();
        copy
    }

    #[test]
    fn the_manifest_beside_the_binary_names_its_version_only_when_it_describes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let copy = installed(tmp.path(), &bytes, "7.8.9");
        let m = beside(&copy).expect("release.json is read");
        assert_eq!((m.version.as_str(), m.channel.as_str()), ("7.8.9", "beta"));
        assert_eq!(names_binary(&m, &copy), Ok(()));

        // A manifest of other bytes does not make this binary that version.
        let other = tempfile::tempdir().unwrap();
        let copy = installed(other.path(), b"another binary", "9.9.9");
        let m = beside(&copy).unwrap();
        assert!(names_binary(&m, &copy).unwrap_err().contains("bytes"));

        // No file: nothing beside it.
        let bare = tempfile::tempdir().unwrap();
        assert!(beside(&bare.path().join("drover-agent")).is_none());
    }

    #[test]
    fn version_text() {
        assert_eq!(describe(&build()), BUILD_VERSION);
        let r = Running {
            version: "7.8.9".into(),
            channel: "stable".into(),
        };
        assert_eq!(
            describe(&r),
            format!("7.8.9 (channel stable; built as {BUILD_VERSION})")
        );
        // A test binary has no release.json beside it.
        assert_eq!(running(), &build());
    }
}
