//! Inputs the control plane drops, counted instead of stored: bus messages
//! that cannot be decoded (terminated on the broker so they are never
//! redelivered) and refusal records beyond a sender's rate. Both land in the
//! `input_drops` table, one counter row per kind, subject class and sender,
//! so a flood costs one row, not one row per message; `drover security`
//! shows them.
//!
//! Owns the rate limiter and the counters. It does not decode (that is
//! `bus_schema::codec`, with its limits) and does not ack messages (the
//! consumer loops do, after their own commit).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use async_nats::jetstream::{self, AckKind};
use bus_schema::now_ms;
use bus_schema::signing::bounded_detail;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, EntityTrait};
use tracing::warn;

use crate::db::entities::input_drop;
use crate::state::AppState;

/// Refusal records one sender may add at once (the bucket's size).
pub const REFUSAL_BURST: u32 = 50;
/// Refusal records one sender may add per minute once its burst is spent.
pub const REFUSALS_PER_MINUTE: u32 = 30;
/// Senders tracked by the limiter before idle ones are forgotten.
const MAX_TRACKED_SENDERS: usize = 100_000;

/// `input_drops.kind` of an undecodable bus message.
pub const MALFORMED: &str = "malformed";
/// `input_drops.kind` of a refusal beyond its sender's rate.
pub const REFUSAL_DROPPED: &str = "refusal_dropped";

/// Longest sender name kept (subject tokens and key names are short; this
/// only guards the table against a hostile one).
const MAX_SENDER_CHARS: usize = 128;

struct Bucket {
    tokens: f64,
    at: Instant,
}

static BUCKETS: LazyLock<Mutex<HashMap<String, Bucket>>> = LazyLock::new(Default::default);

/// Takes one refusal token for `sender` (an agent id, a key name); false
/// when its bucket is empty and the refusal should only be counted. Per
/// process: each control-plane replica limits what it stores itself.
pub fn refusal_allowed(sender: &str) -> bool {
    let now = Instant::now();
    let per_sec = f64::from(REFUSALS_PER_MINUTE) / 60.0;
    let burst = f64::from(REFUSAL_BURST);
    let mut buckets = BUCKETS.lock().expect("refusal buckets");
    if buckets.len() >= MAX_TRACKED_SENDERS && !buckets.contains_key(sender) {
        // A full bucket is the same as a forgotten one.
        buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        if buckets.len() >= MAX_TRACKED_SENDERS {
            return false;
        }
    }
    let b = buckets.entry(sender.to_string()).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(burst);
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// Drops seen while handling a batch, written in one go by [`flush`].
#[derive(Default)]
pub struct Drops {
    counts: HashMap<(&'static str, String, String), (i64, String)>,
}

impl Drops {
    /// Counts one dropped input of `kind` on `subject` (a pattern such as
    /// `drover.hb.*`) from `sender`, remembering `detail` as the last reason.
    pub fn add(&mut self, kind: &'static str, subject: &str, sender: &str, detail: &str) {
        let sender: String = match sender {
            "" => "-".into(),
            s => bus_schema::text::storable(s, MAX_SENDER_CHARS),
        };
        let e = self
            .counts
            .entry((kind, subject.to_string(), sender))
            .or_insert((0, String::new()));
        e.0 += 1;
        e.1 = bounded_detail(detail);
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Adds the counts to `input_drops`. A failure is logged, never fatal: the
/// messages themselves are already dealt with.
pub async fn flush(state: &AppState, drops: Drops) {
    if drops.is_empty() {
        return;
    }
    let now = now_ms();
    let _turn = state.writer.lock().await;
    for ((kind, subject, sender), (n, detail)) in drops.counts {
        let row = input_drop::ActiveModel {
            kind: Set(kind.to_string()),
            subject: Set(subject),
            agent_id: Set(sender),
            count: Set(n),
            first_at: Set(now),
            last_at: Set(now),
            last_detail: Set(detail),
        };
        let res = input_drop::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    input_drop::Column::Kind,
                    input_drop::Column::Subject,
                    input_drop::Column::AgentId,
                ])
                .value(
                    input_drop::Column::Count,
                    Expr::col((input_drop::Entity, input_drop::Column::Count)).add(n),
                )
                .update_columns([input_drop::Column::LastAt, input_drop::Column::LastDetail])
                .to_owned(),
            )
            .exec_without_returning(&state.db)
            .await;
        if let Err(e) = res {
            warn!(error = %e, "could not count dropped input");
        }
    }
}

/// Terminates a message that can never be processed, so the broker does not
/// deliver it again (and it cannot stop its consumer or crash-loop us).
pub async fn terminate(m: &jetstream::Message) {
    if let Err(e) = m.ack_with(AckKind::Term).await {
        warn!(subject = %m.subject, error = %e, "could not terminate a malformed message");
    }
}

/// The sender of a subject `drover.<kind>.<sender>[.<more>]`, or `-`.
pub fn sender_of(subject: &str) -> &str {
    subject.split('.').nth(2).unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_nothing_until_refilled() {
        let who = format!("test-{}", uuid::Uuid::new_v4());
        let allowed = (0..REFUSAL_BURST * 3)
            .filter(|_| refusal_allowed(&who))
            .count();
        // The burst, plus at most what refilled while the loop ran.
        assert!(allowed >= REFUSAL_BURST as usize);
        assert!(allowed <= REFUSAL_BURST as usize + 1, "{allowed}");
        // Another sender has its own bucket.
        assert!(refusal_allowed(&format!("{who}-other")));
    }

    #[test]
    fn drops_are_counted_per_sender_with_a_bounded_detail() {
        let mut d = Drops::default();
        d.add(MALFORMED, "drover.hb.*", "A", "x");
        d.add(MALFORMED, "drover.hb.*", "A", &"y".repeat(5000));
        d.add(MALFORMED, "drover.hb.*", "", "z");
        let a = &d.counts[&(MALFORMED, "drover.hb.*".into(), "A".into())];
        assert_eq!(a.0, 2);
        assert_eq!(a.1.len(), 512);
        assert!(d
            .counts
            .contains_key(&(MALFORMED, "drover.hb.*".into(), "-".into())));
        assert_eq!(sender_of("drover.res.AGENT.cmd"), "AGENT");
    }
}
