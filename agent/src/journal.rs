//! The agent's journal: every command id it has seen, with the final result
//! once there is one and whether the broker confirmed that result.
//!
//! It is what makes "never run twice" and "never lose a result" hold across a
//! `kill -9`: an id is written (and fsynced) before the action starts, the
//! result before it is published, the confirmation after the broker's ack.
//! On start, results without a confirmation are published again.
//! Append-only JSON lines, compacted on open.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use bus_schema::CommandResult;
use serde::{Deserialize, Serialize};

/// How long a finished, confirmed entry is kept after the command's expiry.
const KEEP_AFTER_EXPIRY_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub expires_at: i64,
    #[serde(default)]
    pub result: Option<CommandResult>,
    #[serde(default)]
    pub confirmed: bool,
    /// Cancelled before it arrived: when it comes, it ends `cancelled`
    /// without running.
    #[serde(default)]
    pub precancelled: bool,
    /// The stream sequence of the message that carried the command: a later
    /// delivery of the same message is a redelivery; the same command in
    /// another message is a replay. `None` in entries older than this field.
    #[serde(default)]
    pub stream_seq: Option<u64>,
    /// The broker's delivery count of the delivery that ran it (0: unknown).
    #[serde(default)]
    pub delivered: u32,
    /// The action was started (written, fsynced, just before it starts). A
    /// command taken but still waiting for a slot when the agent stopped
    /// was never started and may run on its redelivery. Entries older than
    /// this field count as started.
    #[serde(default = "started_unknown")]
    pub started: bool,
}

fn started_unknown() -> bool {
    true
}

/// What [`Journal::claim`] decided for one delivery.
#[derive(Debug)]
pub enum Claim {
    /// Never seen: recorded, run it.
    Fresh,
    /// Seen before (run, running or interrupted): never run again.
    Seen(Entry),
    /// Not seen, but past its expiry: do not start it.
    Expired,
}

pub struct Journal {
    entries: HashMap<String, Entry>,
    file: std::fs::File,
}

impl Journal {
    pub fn open(state_dir: &Path, now_ms: i64) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("journal.jsonl");
        let mut entries: HashMap<String, Entry> = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                // A torn last line after a crash is skipped, not fatal.
                if let Ok(e) = serde_json::from_str::<Entry>(line) {
                    entries.insert(e.id.clone(), e);
                }
            }
        }
        entries.retain(|_, e| !e.confirmed || e.expires_at + KEEP_AFTER_EXPIRY_MS > now_ms);
        let tmp = state_dir.join("journal.jsonl.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            for e in entries.values() {
                writeln!(f, "{}", serde_json::to_string(e)?)?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(Self { entries, file })
    }

    fn append(&mut self, e: &Entry, sync: bool) -> std::io::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(e)?)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Decide, in one step, whether this delivery may run: a known id is
    /// never run again, an expired one (past its expiry by more than the
    /// clock-skew tolerance) is not started, and a fresh one is
    /// written down (fsynced) before it is allowed to run. One step because
    /// two deliveries of the same command can be handled concurrently; a
    /// separate look-then-record would let both run.
    ///
    /// `stream_seq` and `delivered` describe the delivery (the broker's
    /// stream sequence and delivery count), kept to tell a later redelivery
    /// from a replay.
    pub fn claim(
        &mut self,
        id: &str,
        expires_at: i64,
        now_ms: i64,
        stream_seq: Option<u64>,
        delivered: u32,
    ) -> std::io::Result<Claim> {
        if let Some(e) = self.entries.get(id) {
            return Ok(Claim::Seen(e.clone()));
        }
        if bus_schema::clock::expired(expires_at, now_ms) {
            return Ok(Claim::Expired);
        }
        self.record_seen(id, expires_at, stream_seq, delivered)?;
        Ok(Claim::Fresh)
    }

    /// Remembers a cancel for a command not seen yet. Returns false when the
    /// command is already known (running or done: nothing to remember).
    pub fn precancel(&mut self, id: &str, keep_until: i64) -> std::io::Result<bool> {
        if self.entries.contains_key(id) {
            return Ok(false);
        }
        let e = Entry {
            id: id.to_string(),
            expires_at: keep_until,
            result: None,
            confirmed: true,
            precancelled: true,
            stream_seq: None,
            delivered: 0,
            started: false,
        };
        self.append(&e, true)?;
        self.entries.insert(id.to_string(), e);
        Ok(true)
    }

    /// Taken but never started (nor finished): a cancel still applies.
    /// Returns false when there is no such entry.
    pub fn precancel_waiting(&mut self, id: &str) -> std::io::Result<bool> {
        let Some(mut e) = self.entries.get(id).cloned() else {
            return Ok(false);
        };
        if e.started || e.result.is_some() {
            return Ok(false);
        }
        e.precancelled = true;
        e.confirmed = true;
        self.append(&e, true)?;
        self.entries.insert(id.to_string(), e);
        Ok(true)
    }

    /// Written (fsynced) just before the action starts: from here on, an
    /// agent that stops leaves the command interrupted, never run again.
    pub fn mark_started(&mut self, id: &str) -> std::io::Result<()> {
        if let Some(mut e) = self.entries.get(id).cloned() {
            e.started = true;
            self.append(&e, true)?;
            self.entries.insert(id.to_string(), e);
        }
        Ok(())
    }

    /// Written before the action starts.
    fn record_seen(
        &mut self,
        id: &str,
        expires_at: i64,
        stream_seq: Option<u64>,
        delivered: u32,
    ) -> std::io::Result<()> {
        let e = Entry {
            id: id.to_string(),
            expires_at,
            result: None,
            confirmed: false,
            precancelled: false,
            stream_seq,
            delivered,
            started: false,
        };
        self.append(&e, true)?;
        self.entries.insert(id.to_string(), e);
        Ok(())
    }

    /// Written before the result is published.
    pub fn record_result(
        &mut self,
        expires_at: i64,
        result: &CommandResult,
    ) -> std::io::Result<()> {
        let seen = self.entries.get(&result.command_id);
        let e = Entry {
            id: result.command_id.clone(),
            expires_at,
            result: Some(result.clone()),
            confirmed: false,
            precancelled: false,
            stream_seq: seen.and_then(|e| e.stream_seq),
            delivered: seen.map(|e| e.delivered).unwrap_or(0),
            started: seen.map(|e| e.started).unwrap_or(true),
        };
        self.append(&e, true)?;
        self.entries.insert(e.id.clone(), e);
        Ok(())
    }

    /// The broker has the result. Not fsynced: losing this line only means
    /// one harmless re-send (the control plane applies a result once).
    pub fn confirm(&mut self, id: &str) -> std::io::Result<()> {
        if let Some(mut e) = self.entries.get(id).cloned() {
            e.confirmed = true;
            self.append(&e, false)?;
            self.entries.insert(id.to_string(), e);
        }
        Ok(())
    }

    /// Commands started ([`Journal::mark_started`]) that never got a
    /// result: an earlier run of the agent stopped while they ran.
    pub fn interrupted(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .entries
            .values()
            .filter(|e| e.started && e.result.is_none() && !e.precancelled)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Results the broker never confirmed, oldest first.
    pub fn unconfirmed(&self) -> Vec<(i64, CommandResult)> {
        let mut v: Vec<_> = self
            .entries
            .values()
            .filter(|e| !e.confirmed)
            .filter_map(|e| e.result.clone().map(|r| (e.expires_at, r)))
            .collect();
        v.sort_by_key(|(_, r)| r.at);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::CommandStatus;

    fn result(id: &str) -> CommandResult {
        CommandResult {
            command_id: id.into(),
            agent_id: "A".into(),
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            summary: "ok".into(),
            data: serde_json::Value::Null,
            attempt: 1,
            at: 1,
        }
    }

    #[test]
    fn survives_reopen_and_keeps_unconfirmed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), 0).unwrap();
            j.record_seen("a", 1000, Some(1), 1).unwrap();
            j.record_seen("b", 1000, Some(2), 1).unwrap();
            j.record_result(1000, &result("a")).unwrap();
            j.record_result(1000, &result("b")).unwrap();
            j.confirm("b").unwrap();
        }
        let mut j = Journal::open(dir.path(), 10).unwrap();
        assert!(matches!(
            j.claim("a", 1000, 10, Some(7), 1).unwrap(),
            Claim::Seen(_)
        ));
        assert!(matches!(
            j.claim("b", 1000, 10, Some(7), 1).unwrap(),
            Claim::Seen(_)
        ));
        let un = j.unconfirmed();
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].1.command_id, "a");
        // Long after expiry, confirmed entries are dropped, unconfirmed kept.
        drop(j);
        let now = 1000 + KEEP_AFTER_EXPIRY_MS + 1;
        let mut j = Journal::open(dir.path(), now).unwrap();
        assert!(matches!(
            j.claim("a", 1000, now, Some(7), 1).unwrap(),
            Claim::Seen(_)
        ));
        assert!(matches!(
            j.claim("b", 1000, now, Some(7), 1).unwrap(),
            Claim::Expired
        ));
    }

    #[test]
    fn a_cancel_before_arrival_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), 0).unwrap();
            assert!(j.precancel("c", 1_000).unwrap());
            assert!(matches!(
                j.claim("x", 100, 0, Some(7), 1).unwrap(),
                Claim::Fresh
            ));
            assert!(
                !j.precancel("x", 1_000).unwrap(),
                "known ids are not precancelled"
            );
        }
        let mut j = Journal::open(dir.path(), 1).unwrap();
        assert!(
            matches!(j.claim("c", 100, 1, Some(7), 1).unwrap(), Claim::Seen(e) if e.precancelled)
        );
        assert!(j.unconfirmed().is_empty(), "nothing to re-send");
    }

    #[test]
    fn a_started_command_without_result_is_interrupted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), 0).unwrap();
            assert!(matches!(
                j.claim("r", 100, 0, Some(9), 1).unwrap(),
                Claim::Fresh
            ));
            j.mark_started("r").unwrap();
            assert!(matches!(
                j.claim("d", 100, 0, Some(10), 1).unwrap(),
                Claim::Fresh
            ));
            j.mark_started("d").unwrap();
            // Taken, still waiting for a slot: not started, not interrupted.
            assert!(matches!(
                j.claim("w", 100, 0, Some(12), 1).unwrap(),
                Claim::Fresh
            ));
            j.record_result(100, &result("d")).unwrap();
            j.precancel("p", 100).unwrap();
        }
        let j = Journal::open(dir.path(), 1).unwrap();
        let i = j.interrupted();
        assert_eq!(i.len(), 1, "{i:?}");
        assert_eq!(i[0].id, "r");
        assert_eq!(i[0].stream_seq, Some(9), "the delivery is remembered");
        let Some(Claim::Seen(d)) = Journal::open(dir.path(), 1)
            .unwrap()
            .claim("d", 100, 1, Some(11), 1)
            .ok()
        else {
            panic!("d is known");
        };
        assert_eq!(d.stream_seq, Some(10), "a result keeps its delivery");
        let mut j = Journal::open(dir.path(), 1).unwrap();
        let Ok(Claim::Seen(w)) = j.claim("w", 100, 1, Some(12), 2) else {
            panic!("w is known");
        };
        assert!(!w.started && w.result.is_none(), "{w:?}");
        assert!(
            j.precancel_waiting("w").unwrap(),
            "a waiting one can be cancelled"
        );
        assert!(!j.precancel_waiting("r").unwrap(), "a started one cannot");
    }

    #[test]
    fn claim_lets_a_command_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 0).unwrap();
        assert!(matches!(
            j.claim("x", 100, 0, Some(7), 1).unwrap(),
            Claim::Fresh
        ));
        // The second delivery of the same id, even while the first still
        // runs, is never Fresh.
        assert!(matches!(
            j.claim("x", 100, 1, Some(7), 1).unwrap(),
            Claim::Seen(_)
        ));
        let late = 100 + bus_schema::clock::CLOCK_SKEW_TOLERANCE_MS;
        assert!(matches!(
            j.claim("y", 100, late, Some(7), 1).unwrap(),
            Claim::Expired
        ));
        assert!(
            matches!(j.claim("y", 100, late, Some(7), 1).unwrap(), Claim::Expired),
            "expired ids are not recorded"
        );
    }
}
