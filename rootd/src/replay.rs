//! Replay memory: ids of commands already accepted, kept until they expire
//! (plus the clock-skew tolerance, as long as the expiry check would still
//! admit them) so a replay is refused even after a restart. An append-only file, compacted
//! on load.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub struct ReplayMemory {
    seen: HashMap<String, i64>,
    file: std::fs::File,
}

impl ReplayMemory {
    pub fn open(dir: &Path, now_ms: i64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("seen-commands");
        let mut seen = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Some((id, exp)) = line.split_once(' ') {
                    if let Ok(exp) = exp.parse::<i64>() {
                        // Kept as long as the expiry check, with its
                        // skew tolerance, could still admit the command.
                        if !bus_schema::clock::expired(exp, now_ms) {
                            seen.insert(id.to_string(), exp);
                        }
                    }
                }
            }
        }
        // Compact: rewrite only live entries, then append from here on.
        let tmp = dir.join("seen-commands.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            for (id, exp) in &seen {
                writeln!(f, "{id} {exp}")?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(Self { seen, file })
    }

    /// Records `id`; false if it was already there (a replay).
    pub fn first_sight(&mut self, id: &str, expires_at: i64) -> std::io::Result<bool> {
        if self.seen.contains_key(id) {
            return Ok(false);
        }
        writeln!(self.file, "{id} {expires_at}")?;
        self.file.sync_data()?;
        self.seen.insert(id.to_string(), expires_at);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_restart_until_expiry() {
        let dir = tempfile_dir();
        {
            let mut m = ReplayMemory::open(&dir, 0).unwrap();
            assert!(m.first_sight("a", 100).unwrap());
            assert!(m.first_sight("b", 10).unwrap());
            assert!(!m.first_sight("a", 100).unwrap());
        }
        let tolerance = bus_schema::clock::CLOCK_SKEW_TOLERANCE_MS;
        // Past b's expiry but within the skew tolerance: still remembered.
        let mut m = ReplayMemory::open(&dir, 50).unwrap();
        assert!(!m.first_sight("a", 100).unwrap());
        assert!(!m.first_sight("b", 10).unwrap());
        drop(m);
        let mut m = ReplayMemory::open(&dir, 10 + tolerance).unwrap();
        assert!(!m.first_sight("a", 100).unwrap());
        // b expired, tolerance included, before the restart: forgotten (the
        // expiry check refuses it anyway).
        assert!(m.first_sight("b", 10).unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rootd-replay-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        d
    }
}
