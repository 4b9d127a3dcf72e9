//! rootd's record of agent updates and the release directory it installs
//! into. Owns the state file (`<state_dir>/agent-updates.json`: the last
//! [`KEEP_RECORDS`] [`UpdateRecord`]s, newest first, the version each
//! pending update would go back to, and the highest version ever
//! installed), written to a temporary file, fsynced and renamed, so a
//! crash leaves either the old or the new file; and the layout of
//! `agent_releases_dir` (`<dir>/<version>/drover-agent`, `release.json`,
//! `<dir>/current` → `<version>`), with the atomic switch of `current`.
//!
//! It does not verify releases or run the agent (`actions::agent_update`,
//! `supervise`).

use std::path::{Path, PathBuf};

use bus_schema::rootd_proto::{UpdateRecord, UpdateState};
use serde::{Deserialize, Serialize};

/// Update records kept (older ones are dropped).
pub const KEEP_RECORDS: usize = 10;
/// Installed release directories kept (the current, the previous and one
/// more); older ones are removed after an update proves healthy.
pub const KEEP_RELEASES: usize = 3;
/// The symlink naming the running release.
pub const CURRENT: &str = "current";
/// The agent binary inside a release directory.
pub const AGENT_BIN: &str = "drover-agent";

/// One record and what rootd needs to undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub record: UpdateRecord,
    /// The release directory name (a version) `current` pointed to before.
    pub previous: String,
}

/// The state file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateBook {
    /// Newest first.
    #[serde(default)]
    pub updates: Vec<Stored>,
    /// The highest version ever installed here ("" = none yet): a lower
    /// one needs `allow_downgrade`.
    #[serde(default)]
    pub highest: String,
    /// Install order of the release directories, oldest first (pruning).
    #[serde(default)]
    pub installed: Vec<String>,
}

/// Reading or writing the state file failed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid update record file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl UpdateBook {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("agent-updates.json")
    }

    /// Loads the book; a missing file is an empty book.
    pub fn load(state_dir: &Path) -> Result<Self, BookError> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| BookError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(BookError::Io { path, source }),
        }
    }

    /// Loads the book like [`UpdateBook::load`], but a file that does not
    /// parse (a torn disk, a hand edit) does not stop rootd: it is renamed
    /// to `agent-updates.json.corrupt-<ms>` for a person to read, and an
    /// empty book is returned whose downgrade floor is the release `current`
    /// points at in `releases_dir` (so the floor never drops below what
    /// runs). The second value is where the corrupt file went. Read errors
    /// other than "not found" are still errors.
    pub fn load_or_quarantine(
        state_dir: &Path,
        releases_dir: &Path,
    ) -> Result<(Self, Option<PathBuf>), BookError> {
        match Self::load(state_dir) {
            Err(BookError::Parse { path, .. }) => {
                let aside = state_dir.join(format!(
                    "agent-updates.json.corrupt-{}",
                    bus_schema::now_ms()
                ));
                std::fs::rename(&path, &aside).map_err(|source| BookError::Io {
                    path: path.clone(),
                    source,
                })?;
                let mut book = Self::default();
                if let Some(v) = current(releases_dir) {
                    book.note_installed(&v);
                }
                Ok((book, Some(aside)))
            }
            other => other.map(|b| (b, None)),
        }
    }

    /// Writes the book durably (temp file, fsync, rename, fsync of the dir).
    pub fn save(&self, state_dir: &Path) -> Result<(), BookError> {
        let path = Self::path(state_dir);
        let io = |source| BookError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let tmp = state_dir.join("agent-updates.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("the book serialises");
        write_synced(&tmp, &text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(state_dir).map_err(io)
    }

    /// The pending update, if one is in progress.
    pub fn pending(&self) -> Option<&Stored> {
        self.updates
            .iter()
            .find(|s| s.record.state == UpdateState::Pending)
    }

    /// Adds a record in front and drops the oldest beyond [`KEEP_RECORDS`].
    pub fn push(&mut self, s: Stored) {
        self.updates.insert(0, s);
        self.updates.truncate(KEEP_RECORDS);
    }

    /// Records that a release directory was installed (and the highest).
    pub fn note_installed(&mut self, version: &str) {
        self.installed.retain(|v| v != version);
        self.installed.push(version.to_string());
        if bus_schema::signing::release::compare_versions(version, &self.highest).is_gt() {
            self.highest = version.to_string();
        }
    }

    /// The records as `UpdateStatus` answers them.
    pub fn records(&self) -> Vec<UpdateRecord> {
        self.updates.iter().map(|s| s.record.clone()).collect()
    }
}

/// Writes `bytes` to `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The release directory `current` points to (its name: a version).
pub fn current(dir: &Path) -> Option<String> {
    let target = std::fs::read_link(dir.join(CURRENT)).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Points `current` at `<dir>/<version>` atomically: a new symlink beside
/// it renamed over it (rename replaces atomically), then the directory is
/// fsynced.
pub fn switch_current(dir: &Path, version: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{CURRENT}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version, &tmp)?;
    std::fs::rename(&tmp, dir.join(CURRENT))?;
    sync_dir(dir)
}

/// Removes release directories beyond the newest [`KEEP_RELEASES`] in
/// install order, never `keep` (the current and the previous).
pub fn prune(dir: &Path, book: &mut UpdateBook, keep: &[&str]) {
    while book.installed.len() > KEEP_RELEASES {
        let Some(pos) = book
            .installed
            .iter()
            .position(|v| !keep.contains(&v.as_str()))
        else {
            return;
        };
        let old = book.installed.remove(pos);
        if let Err(e) = std::fs::remove_dir_all(dir.join(&old)) {
            tracing::warn!(version = %old, error = %e, "could not remove an old agent release");
        } else {
            tracing::info!(version = %old, "removed an old agent release");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, state: UpdateState) -> Stored {
        Stored {
            record: UpdateRecord {
                command_id: id.into(),
                from_version: "1.0.0".into(),
                to_version: "1.1.0".into(),
                state,
                reason: String::new(),
                started_at: 1,
                deadline_at: 2,
            },
            previous: "1.0.0".into(),
        }
    }

    #[test]
    fn the_book_survives_a_reload_and_keeps_the_last_ten() {
        let d = tempfile::tempdir().unwrap();
        let mut b = UpdateBook::default();
        for i in 0..12 {
            b.push(rec(&format!("c{i}"), UpdateState::Healthy));
        }
        b.push(rec("p", UpdateState::Pending));
        b.note_installed("1.1.0");
        b.note_installed("1.0.0");
        b.save(d.path()).unwrap();
        let b = UpdateBook::load(d.path()).unwrap();
        assert_eq!(b.updates.len(), KEEP_RECORDS);
        assert_eq!(b.records()[0].command_id, "p");
        assert_eq!(b.pending().unwrap().record.command_id, "p");
        assert_eq!(b.highest, "1.1.0");
    }

    #[test]
    fn a_corrupt_book_is_set_aside_and_the_floor_is_the_running_release() {
        let state = tempfile::tempdir().unwrap();
        let releases = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(releases.path().join("1.4.0")).unwrap();
        switch_current(releases.path(), "1.4.0").unwrap();
        std::fs::write(UpdateBook::path(state.path()), b"{\"updates\": [tor").unwrap();
        assert!(matches!(
            UpdateBook::load(state.path()),
            Err(BookError::Parse { .. })
        ));
        let (b, aside) = UpdateBook::load_or_quarantine(state.path(), releases.path()).unwrap();
        let aside = aside.expect("the corrupt file was set aside");
        assert_eq!(std::fs::read(&aside).unwrap(), b"{\"updates\": [tor");
        assert!(!UpdateBook::path(state.path()).exists());
        assert!(b.updates.is_empty());
        assert_eq!(b.highest, "1.4.0");
        // A sound book is read as it is, nothing set aside.
        b.save(state.path()).unwrap();
        let (again, aside) = UpdateBook::load_or_quarantine(state.path(), releases.path()).unwrap();
        assert!(aside.is_none());
        assert_eq!(again.highest, "1.4.0");
    }

    #[test]
    fn switching_current_replaces_the_link_and_pruning_keeps_the_running_ones() {
        let d = tempfile::tempdir().unwrap();
        let mut b = UpdateBook::default();
        for v in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"] {
            std::fs::create_dir_all(d.path().join(v)).unwrap();
            b.note_installed(v);
        }
        switch_current(d.path(), "1.0.0").unwrap();
        switch_current(d.path(), "1.3.0").unwrap();
        assert_eq!(current(d.path()).as_deref(), Some("1.3.0"));
        prune(d.path(), &mut b, &["1.3.0", "1.0.0"]);
        assert!(d.path().join("1.0.0").exists());
        assert!(!d.path().join("1.1.0").exists());
        assert!(d.path().join("1.2.0").exists());
        assert_eq!(b.installed, ["1.0.0", "1.2.0", "1.3.0"]);
    }
}
