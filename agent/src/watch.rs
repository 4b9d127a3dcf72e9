//! Watched services on this host: the list `agent.watch` sets (kept in the
//! state directory as `watch.json`, so it survives a restart), and what the
//! heartbeat reports of it: each unit's state as rootd reads it, only the
//! changed ones normally, the full list on start, after a watch change and
//! every [`FULL_EVERY`]th heartbeat.
//!
//! Owns the list and the change tracking; not reading states (rootd) nor
//! sending heartbeats (`heartbeat`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bus_schema::catalogue::agent::{watch_revision, WatchParams};
use bus_schema::{Command, Outcome, ServiceState};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Every this many heartbeats the full list goes out.
pub const FULL_EVERY: u64 = 10;

/// How long rootd may take to read the states.
const STATES_WITHIN: Duration = Duration::from_secs(5);

/// The units this host watches (full names, sorted) and their revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    pub units: Vec<String>,
    pub revision: String,
    /// Set when the list changed; the next heartbeat sends the full list.
    #[serde(skip)]
    pub changed: bool,
}

fn file(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("watch.json")
}

/// The stored list; none when the file is absent or unreadable (the
/// control plane then sends it again, seeing revision "").
pub fn load(state_dir: &Path) -> Watch {
    let Ok(text) = std::fs::read_to_string(file(state_dir)) else {
        return Watch::default();
    };
    match serde_json::from_str::<Watch>(&text) {
        Ok(w) if watch_revision(&w.units) == w.revision => Watch { changed: true, ..w },
        _ => {
            tracing::warn!("watch.json is unreadable or inconsistent; watching nothing until the control plane sends the list again");
            Watch::default()
        }
    }
}

/// Writes the list atomically (temporary file, then rename).
fn store(state_dir: &Path, w: &Watch) -> std::io::Result<()> {
    let tmp = state_dir.join("watch.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(w)?)?;
    std::fs::rename(&tmp, file(state_dir))
}

/// `agent.watch`: replaces the list (params validated by the catalogue),
/// stored in `state_dir` and then in `slot` (the agent's current list).
pub fn apply(state_dir: &Path, slot: &std::sync::Mutex<Watch>, cmd: &Command) -> Outcome {
    let p: WatchParams = match bus_schema::catalogue::parse(&cmd.params) {
        Ok(p) => p,
        Err(e) => return Outcome::rejected(format!("invalid params for agent.watch: {e}")),
    };
    let units = match p.normalized() {
        Ok(u) => u,
        Err(e) => return Outcome::rejected(e),
    };
    let w = Watch {
        revision: watch_revision(&units),
        units,
        changed: true,
    };
    if let Err(e) = store(state_dir, &w) {
        return Outcome::failed(format!(
            "could not store the watch list in {}: {e}",
            state_dir.display()
        ));
    }
    let summary = format!("watching {} units", w.units.len());
    let data = json!({ "units": w.units, "revision": w.revision });
    *slot.lock().expect("watch list") = w;
    Outcome::succeeded(summary, data)
}

/// What one heartbeat says of the watched units.
#[derive(Debug, Default)]
pub struct Report {
    pub revision: String,
    pub services: Vec<ServiceState>,
    pub full: bool,
}

/// The states last sent, to report only changes.
#[derive(Debug, Default)]
pub struct Tracker {
    last: HashMap<String, ServiceState>,
    beats: u64,
}

impl Tracker {
    /// The report for this heartbeat from freshly read `states` (`None`
    /// when rootd could not read them: nothing is reported, and the next
    /// successful read sends the full list).
    pub fn report(
        &mut self,
        w: &Watch,
        force_full: bool,
        states: Option<Vec<ServiceState>>,
    ) -> Report {
        self.beats += 1;
        let Some(states) = states else {
            self.last.clear();
            return Report {
                revision: w.revision.clone(),
                ..Default::default()
            };
        };
        let full = force_full || self.beats % FULL_EVERY == 1 || self.last.is_empty();
        let services: Vec<ServiceState> = states
            .iter()
            .filter(|s| full || self.last.get(&s.unit) != Some(*s))
            .cloned()
            .collect();
        self.last = states.into_iter().map(|s| (s.unit.clone(), s)).collect();
        Report {
            revision: w.revision.clone(),
            services,
            full,
        }
    }
}

/// Reads the watched units' states through rootd at `socket` (none
/// watched: an empty list, rootd not asked).
pub async fn read_states(socket: &Path, units: &[String]) -> Option<Vec<ServiceState>> {
    if units.is_empty() {
        return Some(vec![]);
    }
    let asked = tokio::time::timeout(
        STATES_WITHIN,
        crate::rootd_client::service_states(socket, units),
    )
    .await;
    match asked {
        Ok(Ok(s)) if s.len() == units.len() => Some(s),
        Ok(Ok(_)) => {
            tracing::warn!("rootd answered service states for other units than asked");
            None
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "service states unavailable");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(unit: &str, active: &str) -> ServiceState {
        ServiceState {
            unit: unit.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: "x".into(),
        }
    }

    #[test]
    fn only_changes_between_full_lists() {
        let w = Watch {
            units: vec!["a.service".into(), "b.service".into()],
            revision: "r".into(),
            changed: false,
        };
        let mut t = Tracker::default();
        let r = t.report(
            &w,
            false,
            Some(vec![st("a.service", "active"), st("b.service", "active")]),
        );
        assert!(r.full);
        assert_eq!(r.services.len(), 2);
        let r = t.report(
            &w,
            false,
            Some(vec![st("a.service", "active"), st("b.service", "failed")]),
        );
        assert!(!r.full);
        assert_eq!(r.services, vec![st("b.service", "failed")]);
        let r = t.report(
            &w,
            false,
            Some(vec![st("a.service", "active"), st("b.service", "failed")]),
        );
        assert!(r.services.is_empty());
        let r = t.report(
            &w,
            true,
            Some(vec![st("a.service", "active"), st("b.service", "failed")]),
        );
        assert!(r.full && r.services.len() == 2);
        // rootd silent: nothing, then a full list.
        assert!(t.report(&w, false, None).services.is_empty());
        assert!(
            t.report(&w, false, Some(vec![st("a.service", "active")]))
                .full
        );
    }

    #[test]
    fn the_list_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let units = vec!["nginx.service".to_string()];
        let w = Watch {
            revision: watch_revision(&units),
            units,
            changed: true,
        };
        store(dir.path(), &w).unwrap();
        let back = load(dir.path());
        assert_eq!(back.units, w.units);
        assert_eq!(back.revision, w.revision);
        std::fs::write(
            dir.path().join("watch.json"),
            "{\"units\":[\"x\"],\"revision\":\"00\"}",
        )
        .unwrap();
        assert_eq!(load(dir.path()), Watch::default());
    }
}
