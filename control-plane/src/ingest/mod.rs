//! Consuming what agents send: the plumbing the heartbeat and result loops
//! share (taking a batch from a pull consumer, reading a message's content
//! type) and the entry points `drover serve` spawns. Each loop takes what
//! the broker has ready (up to a batch), validates every message, applies
//! the good ones in one transaction, and acks only after the commit. A bad
//! message is logged with its reason, terminated (never redelivered) and
//! counted (see the poison module); the next one is processed as usual.
//! Owns no rule about command states: those are the ledger's.

mod agent_rows;
mod heartbeats;
mod results;
mod sweep;

use std::time::Duration;

use async_nats::jetstream;
use bus_schema::codec;
use futures::{FutureExt, StreamExt};
use tracing::warn;

pub use heartbeats::{heartbeat_loop, parse_heartbeat};
pub use results::{apply_results, parse_report, record_refusal, result_loop, Rejection, Report};
pub use sweep::{max_deliveries_loop, sweep_once};

/// Most messages taken from the broker in one batch.
pub(super) const BATCH: usize = 1000;

/// The consumer's message stream, pulled `BATCH` at a time; while the
/// broker cannot serve it, retries every second (logging `what`).
pub(super) async fn pull(
    consumer: &jetstream::consumer::PullConsumer,
    what: &str,
) -> jetstream::consumer::pull::Stream {
    loop {
        match consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
        {
            Ok(s) => return s,
            Err(e) => {
                warn!(error = %e, "cannot pull {what}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Waits for one message, then takes whatever else is already there.
pub(super) async fn next_batch(
    stream: &mut jetstream::consumer::pull::Stream,
    max: usize,
) -> Option<Vec<jetstream::Message>> {
    let first = loop {
        match stream.next().await? {
            Ok(m) => break m,
            Err(e) => {
                warn!(error = %e, "pull interrupted; continuing");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let mut out = vec![first];
    while out.len() < max {
        match stream.next().now_or_never() {
            Some(Some(Ok(m))) => out.push(m),
            _ => break,
        }
    }
    Some(out)
}

pub(super) fn content_type(m: &jetstream::Message) -> Option<String> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(codec::CONTENT_TYPE_HEADER))
        .map(|v| v.as_str().to_string())
}
