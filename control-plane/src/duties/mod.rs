//! Periodic duties: work that must run on exactly one control-plane
//! replica (the offline sweep, the queue keeper, scheduled scans, the
//! maintenance-window runner, alert evaluation, retention). Each duty is a
//! plain `tick(state, now_ms)` doing one round of work; [`run`] calls each
//! at its own period while this replica holds the duties lease
//! (`crate::lease`), stops a running tick at once when the lease is lost,
//! and records each duty's last run and error on the [`Board`]
//! (`board.rs`) that `GET /api/v1/duties` shows. A failing or panicking
//! tick is logged and recorded, never fatal.
//!
//! One exception to "exactly one": a duty marked [`Duty::without_broker`]
//! (the offline sweep) also runs on a replica that has lost the broker,
//! where no replica can show it holds the lease; its writes are conditional
//! transitions, so a second runner changes nothing.
//!
//! Owns the runner and the list of duties; not the lease protocol
//! (the `lease` module) nor what a duty does (its own module).

pub mod board;

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, warn};

use crate::lease::LeaseStatus;
use crate::state::AppState;
pub use board::{Board, DutyRun};

/// One round of a duty's work at `now_ms` (milliseconds since the epoch).
pub type Tick = fn(AppState, i64) -> BoxFuture<'static, anyhow::Result<()>>;

/// A periodic duty.
#[derive(Clone, Copy)]
pub struct Duty {
    /// Shown by `GET /api/v1/duties` and in logs.
    pub name: &'static str,
    /// Time between the starts of two ticks.
    pub period: Duration,
    /// A tick running longer than this is stopped and recorded as failed.
    pub timeout: Duration,
    /// Also runs, without the lease, on a replica that has lost the broker.
    /// No replica can then show that it holds the lease, yet a control
    /// plane that hears nothing must still infer what it can (agents gone
    /// offline, commands nobody will report on). Only for a duty whose
    /// writes are conditional transitions, so that two replicas running it
    /// at once agree and the second changes nothing.
    pub without_broker: bool,
    pub tick: Tick,
}

/// Every duty, in the order they run when due together.
pub fn registered() -> Vec<Duty> {
    vec![
        // Agents that stopped sending heartbeats go offline; commands nobody
        // will report on end through the ledger.
        Duty {
            name: "offline_sweep",
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            // Its updates are guarded by the row's status and last-seen
            // time, and the ledger judges every command transition.
            without_broker: true,
            tick: |s, _now| Box::pin(async move { crate::ingest::sweep_once(&s).await }),
        },
        // Every approved agent keeps its command queue on the broker.
        Duty {
            name: "queue_keeper",
            period: crate::queues::CHECK_EVERY,
            timeout: Duration::from_secs(120),
            without_broker: false,
            tick: |s, _now| {
                Box::pin(async move { crate::queues::check_once(&s).await.map(|_| ()) })
            },
        },
        Duty {
            name: "schedules",
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::schedules::tick(&s, now).await }),
        },
        // The maintenance-window runner: runs, batches, reboots.
        Duty {
            name: "windows",
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(120),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::windows::runner::tick(&s, now).await }),
        },
        // Staged agent rollouts: canary, waves, pauses, halts.
        Duty {
            name: "rollouts",
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::rollouts::engine::tick(&s, now).await }),
        },
        // The self-test that proves an updated agent works.
        Duty {
            name: "update_proofs",
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            without_broker: false,
            tick: |s, now| {
                Box::pin(async move { crate::agent_releases::selftest::tick(&s, now).await })
            },
        },
        // Watch lists sent to hosts whose list differs from their selectors'.
        Duty {
            name: "service_watch",
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::services::watch::tick(&s, now).await }),
        },
        // Alert rules against the current state: pending, firing, resolved.
        Duty {
            name: "alerts",
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::alerts::evaluate::tick(&s, now).await }),
        },
        // Alert transitions from the outbox onto the notification stream.
        Duty {
            name: "notifications",
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::notify::dispatch::tick(&s, now).await }),
        },
        // Pruning and rollups in bounded batches; a round runs at most
        // every `retention_every_secs` (the tick checks).
        Duty {
            name: "retention",
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(120),
            without_broker: false,
            tick: |s, now| Box::pin(async move { crate::retention::tick(&s, now).await }),
        },
    ]
}

/// `GET /api/v1/duties`: the lease as this replica sees it and each
/// registered duty's last run here (see [`Board::json`]).
pub fn status(state: &AppState) -> Value {
    let list: Vec<(&'static str, Duration)> =
        registered().iter().map(|d| (d.name, d.period)).collect();
    state.duties.json(&list)
}

/// Whether `d` may run on this replica now: it holds the lease, or `d`
/// runs [`Duty::without_broker`] and the broker is out of reach.
fn may_run(state: &AppState, d: &Duty, lease: &watch::Receiver<LeaseStatus>) -> bool {
    lease.borrow().is_held() || (d.without_broker && broker_lost(state))
}

fn broker_lost(state: &AppState) -> bool {
    state.nats.connection_state() != async_nats::connection::State::Connected
}

/// Runs the duties while `state.duties`' lease is held (and the
/// [`Duty::without_broker`] ones while the broker is lost); never returns.
pub async fn run(state: AppState) {
    let duties = registered();
    let mut lease = state.duties.lease();
    let mut next: Vec<Instant> = duties.iter().map(|_| Instant::now()).collect();
    let mut was_held = false;
    loop {
        let held = lease.borrow().is_held();
        if held && !was_held {
            // Freshly taken: everything is due now.
            let now = Instant::now();
            next.iter_mut().for_each(|n| *n = now);
        }
        was_held = held;
        if !held && !broker_lost(&state) {
            // Woken by any lease change, at least every second (a lease
            // whose renewal is overdue changes nothing it sends).
            changed_or(&mut lease, Instant::now() + Duration::from_secs(1)).await;
            continue;
        }
        for (i, d) in duties.iter().enumerate() {
            if Instant::now() < next[i] || !may_run(&state, d, &lease) {
                continue;
            }
            next[i] = Instant::now() + d.period;
            run_one(&state, d, &mut lease).await;
        }
        // The soonest due among the duties allowed to run, at least every
        // second (the broker's return or loss changes which ones are).
        let soonest = duties
            .iter()
            .zip(&next)
            .filter(|(d, _)| may_run(&state, d, &lease))
            .map(|(_, n)| *n)
            .min()
            .unwrap_or(Instant::now() + Duration::from_secs(1))
            .min(Instant::now() + Duration::from_secs(1));
        // Stop waiting at a lease change too (a loss is acted on at once).
        changed_or(&mut lease, soonest).await;
    }
}

/// Waits for a lease change or `until`, whichever is first (only `until`
/// once the lease task is gone).
async fn changed_or(lease: &mut watch::Receiver<LeaseStatus>, until: Instant) {
    if let Ok(Err(_)) = tokio::time::timeout_at(until, lease.changed()).await {
        tokio::time::sleep_until(until).await;
    }
}

/// One tick of `d`, stopped if the lease is lost or the tick times out;
/// a panic in it is caught by its task.
async fn run_one(state: &AppState, d: &Duty, lease: &mut watch::Receiver<LeaseStatus>) {
    let started = Instant::now();
    let at = bus_schema::now_ms();
    let mut task = tokio::spawn((d.tick)(state.clone(), at));
    let deadline = started + d.timeout;
    let outcome: Result<(), String> = loop {
        // Re-checked at least every second: `held_until` passes silently.
        let step = deadline.min(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = &mut task => break match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(e) if e.is_panic() => Err("the tick panicked (see the log)".into()),
                Err(e) => Err(e.to_string()),
            },
            _ = changed_or(lease, step) => {}
        }
        if !may_run(state, d, lease) {
            task.abort();
            break Err("stopped: this replica lost the duties lease".into());
        }
        if Instant::now() >= deadline {
            task.abort();
            break Err(format!("timed out after {:?}", d.timeout));
        }
    };
    if let Err(e) = &outcome {
        if e.starts_with("stopped:") {
            warn!(duty = d.name, "{e}");
        } else {
            error!(duty = d.name, error = %e, "periodic duty failed");
        }
    }
    state.duties.record(d.name, at, started.elapsed(), outcome);
}
