//! What this replica knows about the duties lease and each duty's last
//! run: the [`Board`] that `AppState` holds and `GET /api/v1/duties`
//! shows. Plain bookkeeping: it runs nothing and knows no duty by name
//! (the runner in `duties/mod.rs` tells it).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::lease::LeaseStatus;

/// The last run of one duty on this replica.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DutyRun {
    /// Milliseconds since the epoch; `None`: not run on this replica.
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    /// The last tick's error; `None` after a successful one.
    pub last_error: Option<String>,
    /// How long the last tick took, milliseconds.
    pub last_duration_ms: Option<u64>,
    /// Ticks run by this process.
    pub runs: u64,
    /// Ticks that failed in this process (for `/metrics`).
    pub errors: u64,
}

/// What this replica knows about the lease and its duties.
pub struct Board {
    lease: watch::Receiver<LeaseStatus>,
    ttl: Duration,
    runs: Mutex<BTreeMap<&'static str, DutyRun>>,
}

impl Board {
    /// The lease's status as the runner watches it.
    pub fn lease(&self) -> watch::Receiver<LeaseStatus> {
        self.lease.clone()
    }

    pub fn new(lease: watch::Receiver<LeaseStatus>, ttl: Duration) -> Self {
        Self {
            lease,
            ttl,
            runs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one tick of duty `name` that started at `at` (ms).
    pub fn record(&self, name: &'static str, at: i64, took: Duration, r: Result<(), String>) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let e = runs.entry(name).or_default();
        e.last_run_at = Some(at);
        e.last_duration_ms = Some(took.as_millis() as u64);
        e.runs += 1;
        match r {
            Ok(()) => {
                e.last_ok_at = Some(at);
                e.last_error = None;
            }
            Err(msg) => {
                e.errors += 1;
                e.last_error = Some(msg);
            }
        }
    }

    /// Each duty's last run on this replica, by name (for `/metrics`).
    pub fn runs(&self) -> Vec<(&'static str, DutyRun)> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// `GET /api/v1/duties`: `{"lease": {"id", "held", "since", "holder",
    /// "ttl_secs"}, "duties": [{"name", "period_ms", "last_run_at",
    /// "last_ok_at", "last_error", "last_duration_ms", "runs"}]}`.
    /// `duties` names each registered duty with its period.
    pub fn json(&self, duties: &[(&'static str, Duration)]) -> Value {
        let l = self.lease.borrow().clone();
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let duties: Vec<Value> = duties
            .iter()
            .map(|(name, period)| {
                let r = runs.get(name).cloned().unwrap_or_default();
                json!({
                    "name": name,
                    "period_ms": period.as_millis() as u64,
                    "last_run_at": r.last_run_at,
                    "last_ok_at": r.last_ok_at,
                    "last_error": r.last_error,
                    "last_duration_ms": r.last_duration_ms,
                    "runs": r.runs,
                })
            })
            .collect();
        json!({
            "lease": {
                "id": l.id,
                "held": l.is_held(),
                "since": l.since,
                "holder": l.holder,
                "ttl_secs": self.ttl.as_secs(),
            },
            "duties": duties,
        })
    }
}
