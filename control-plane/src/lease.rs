//! The duties lease: which one control-plane replica runs the periodic
//! duties (the `duties` module). A key in the JetStream KV bucket
//! [`BUCKET`] holds the holder's id (random per process), host name, pid
//! and expiry. A replica takes the lease with `create` (refused while
//! another holds it), renews it every third of the TTL with a
//! compare-and-set `update` on the revision it last wrote, and learns at
//! once that it lost the lease when anyone else writes the key (the key is
//! watched) or when a renewal meets another revision. The bucket's max age
//! is the TTL, so a holder that dies stops renewing and its entry ages out;
//! the others poll often enough to take over within the TTL. A holder that
//! cannot reach the broker stops counting itself the holder before its
//! entry can age out ([`LeaseStatus::held_until`]).
//!
//! Owns the lease protocol only: what runs under it is the `duties`
//! module's; the bucket is declared by `bus::ensure_lease_bucket`.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// The KV bucket of control-plane leases (named in `bus-schema`).
pub const BUCKET: &str = bus_schema::subjects::LEASE_BUCKET;
/// The key of the lease the periodic duties run under.
pub const DUTIES_KEY: &str = bus_schema::subjects::DUTIES_LEASE_KEY;

/// What the lease's KV entry holds (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random per process: two replicas on one host differ.
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    /// When the entry ages out unless renewed, milliseconds since the epoch
    /// (the holder's clock; informational, the broker's max age decides).
    pub expires_at: i64,
}

/// This replica's view of the lease.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseStatus {
    /// This replica's holder id.
    pub id: String,
    /// This replica holds the lease (see [`LeaseStatus::is_held`], which
    /// also checks [`LeaseStatus::held_until`]).
    pub held: bool,
    /// Since when this replica holds it, milliseconds since the epoch.
    pub since: Option<i64>,
    /// The holder as last seen in the bucket (this replica or another).
    pub holder: Option<Holder>,
    /// The revision of the entry this replica last wrote.
    pub revision: Option<u64>,
    /// Past this instant the holder no longer counts itself the holder
    /// unless a renewal succeeded: a renewal that cannot reach the broker
    /// must not let two replicas run duties at once.
    #[serde(skip)]
    pub held_until: Option<Instant>,
}

impl LeaseStatus {
    /// Held, and the last successful renewal is recent enough.
    pub fn is_held(&self) -> bool {
        self.held && self.held_until.is_some_and(|u| Instant::now() < u)
    }
}

/// Errors opening a lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the lease TTL must be 3..=3600 seconds, not {0}")]
    BadTtl(u64),
    #[error("watching the lease key: {0}")]
    Watch(#[from] kv::WatchError),
}

/// A running lease participant: a task that takes, renews and watches the
/// lease until [`Lease::release`] or drop (drop is what a killed process
/// does: the entry stays until it ages out).
pub struct Lease {
    status: watch::Receiver<LeaseStatus>,
    task: tokio::task::JoinHandle<()>,
    store: kv::Store,
    key: String,
}

impl Lease {
    /// Starts taking part in the lease `key` of `store` with `ttl` (the
    /// bucket's max age must be the same TTL: `bus::ensure_lease_bucket`).
    pub async fn start(store: kv::Store, key: &str, ttl: Duration) -> Result<Self, LeaseError> {
        if !(3..=3600).contains(&ttl.as_secs()) {
            return Err(LeaseError::BadTtl(ttl.as_secs()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let me = Holder {
            id: id.clone(),
            hostname,
            pid: std::process::id(),
            expires_at: 0,
        };
        let watcher = store.watch(key).await?;
        let (tx, rx) = watch::channel(LeaseStatus {
            id,
            held: false,
            since: None,
            holder: None,
            revision: None,
            held_until: None,
        });
        let task = tokio::spawn(run(store.clone(), key.to_string(), ttl, me, watcher, tx));
        Ok(Self {
            status: rx,
            task,
            store,
            key: key.to_string(),
        })
    }

    /// This replica holds the lease now.
    pub fn is_held(&self) -> bool {
        self.status.borrow().is_held()
    }

    /// This replica's view, changing whenever it takes, renews or loses it.
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// This replica's holder id.
    pub fn id(&self) -> String {
        self.status.borrow().id.clone()
    }

    /// Stops taking part and, when holding, deletes the entry (only if it is
    /// still this replica's revision) so another replica takes over at once.
    pub async fn release(self) {
        self.task.abort();
        let rev = {
            let s = self.status.borrow();
            s.held.then_some(s.revision).flatten()
        };
        if let Some(rev) = rev {
            if let Err(e) = self
                .store
                .delete_expect_revision(&self.key, Some(rev))
                .await
            {
                warn!(error = %e, "releasing the duties lease");
            } else {
                info!("released the duties lease");
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_ms() -> i64 {
    bus_schema::now_ms()
}

/// The take / renew / watch loop of one participant.
async fn run(
    store: kv::Store,
    key: String,
    ttl: Duration,
    mut me: Holder,
    mut watcher: kv::Watch,
    tx: watch::Sender<LeaseStatus>,
) {
    let renew_every = ttl / 3;
    // A free lease is noticed within this (plus the broker's expiry).
    let poll_every = (ttl / 10).max(Duration::from_millis(200));
    // Counted short of the TTL: the broker ages the entry out `ttl` after
    // it stored it, which is after the attempt started.
    let valid_for = ttl - ttl / 10;
    let mut mine: Option<u64> = None;
    let mut watching = true;
    loop {
        let attempt = Instant::now();
        me.expires_at = now_ms() + ttl.as_millis() as i64;
        let value = bytes::Bytes::from(serde_json::to_vec(&me).unwrap_or_default());
        match mine {
            Some(rev) => match store.update(&key, value, rev).await {
                Ok(r) => {
                    mine = Some(r);
                    tx.send_modify(|s| {
                        s.revision = Some(r);
                        s.held_until = Some(attempt + valid_for);
                        s.holder = Some(me.clone());
                    });
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    warn!("lost the duties lease: its entry was written by another replica");
                    mine = None;
                    lost(&tx);
                }
                Err(e) => {
                    // Keep trying with the same revision; `held_until`
                    // stops the duties if this lasts.
                    warn!(error = %e, "renewing the duties lease");
                }
            },
            None => match store.create(&key, value).await {
                Ok(r) => {
                    info!(holder = %me.id, "took the duties lease");
                    mine = Some(r);
                    tx.send_modify(|s| {
                        s.held = true;
                        s.since = Some(now_ms());
                        s.revision = Some(r);
                        s.held_until = Some(attempt + valid_for);
                        s.holder = Some(me.clone());
                    });
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    if tx.borrow().holder.is_none() {
                        if let Ok(Some(h)) = current(&store, &key).await {
                            tx.send_modify(|s| s.holder = Some(h));
                        }
                    }
                }
                Err(e) => warn!(error = %e, "taking the duties lease"),
            },
        }
        let wait = if mine.is_some() {
            renew_every
        } else {
            poll_every
        };
        let until = attempt + wait;
        // Watch events until the next attempt is due.
        for _ in 0..10_000 {
            if !watching {
                tokio::time::sleep_until(until).await;
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                ev = watcher.next() => match ev {
                    Some(Ok(entry)) => {
                        let other: Option<Holder> = serde_json::from_slice(&entry.value).ok();
                        match entry.operation {
                            Operation::Put => {
                                let theirs = other.as_ref().is_none_or(|h| h.id != me.id);
                                if theirs {
                                    if mine.take().is_some() {
                                        warn!("lost the duties lease: another replica wrote its entry");
                                        lost(&tx);
                                    }
                                    tx.send_modify(|s| s.holder = other);
                                }
                            }
                            Operation::Delete | Operation::Purge => {
                                if mine.take().is_some() {
                                    warn!("lost the duties lease: its entry was deleted");
                                    lost(&tx);
                                }
                                tx.send_modify(|s| s.holder = None);
                                // Free now: try at once.
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "watching the duties lease; polling instead");
                        watching = false;
                    }
                    None => watching = false,
                }
            }
        }
        if !watching {
            if let Ok(w) = store.watch(&key).await {
                watcher = w;
                watching = true;
            }
        }
    }
}

fn lost(tx: &watch::Sender<LeaseStatus>) {
    tx.send_modify(|s| {
        s.held = false;
        s.since = None;
        s.revision = None;
        s.held_until = None;
    });
}

/// The holder the bucket names now, if any.
pub async fn current(store: &kv::Store, key: &str) -> anyhow::Result<Option<Holder>> {
    Ok(match store.entry(key).await? {
        Some(e) if e.operation == Operation::Put => serde_json::from_slice(&e.value).ok(),
        _ => None,
    })
}
