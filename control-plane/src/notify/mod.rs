//! Notifications that are never lost: channels (webhook, email, the bus),
//! routing, quiet hours and grouping, and delivery through a JetStream
//! stream with retries.
//!
//! Owns channels and deliveries; reads the `alert_transitions` outbox that
//! alert evaluation writes (`alerts::transition`), never alerts themselves.
//!
//! The path: alert evaluation appends `alert_transitions` rows →
//! [`dispatch::tick`] (lease holder) publishes one message per (transition,
//! channel) to the stream [`NOTIFY_STREAM`] → [`deliver::run`] (every
//! replica, one durable consumer) groups, holds for quiet hours, records
//! and sends, retrying with backoff.

pub mod channels;
pub mod deliver;
pub mod deliveries;
pub mod dispatch;
pub mod model;
pub mod route;
pub mod seal;
pub mod send;
pub mod views;

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};

// The names are bus-schema's (`subjects`): the stream notifications wait
// in (`DROVER_NOTIFY`: `drover.notify.<channel id>`, file storage,
// work-queue retention — a message leaves once acked — at most 7 days,
// 1 GiB, then publishes are refused rather than old messages dropped: the
// outbox keeps them; duplicate window 10 minutes), the deliverers' shared
// durable consumer, and the stream bus channels publish into
// (`DROVER_ALERTS`: `drover.alert.<channel id>`, 7 days, 256 MiB, oldest
// dropped first).
pub use bus_schema::subjects::{ALERTS_STREAM, NOTIFY_CONSUMER, NOTIFY_STREAM};

/// Declares both streams (`replicas` copies each:
/// [`crate::config::Config::stream_replicas`]) and the deliverer's consumer
/// (idempotent; every start, every replica).
pub async fn ensure_stream(
    js: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    js.create_or_update_stream(jetstream::stream::Config {
        name: NOTIFY_STREAM.into(),
        description: Some("alert notifications waiting for delivery, one per channel".into()),
        subjects: vec![bus_schema::subjects::notify_subject(">")],
        retention: RetentionPolicy::WorkQueue,
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: 1 << 30,
        discard: DiscardPolicy::New,
        duplicate_window: Duration::from_secs(600),
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("declaring stream {NOTIFY_STREAM}"))?;
    js.create_or_update_stream(jetstream::stream::Config {
        name: ALERTS_STREAM.into(),
        description: Some("alert notifications of bus channels, for automation".into()),
        subjects: vec![bus_schema::subjects::alert_notification(">")],
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: 256 << 20,
        duplicate_window: Duration::from_secs(600),
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("declaring stream {ALERTS_STREAM}"))?;
    js.get_stream(NOTIFY_STREAM)
        .await?
        .get_or_create_consumer(
            NOTIFY_CONSUMER,
            pull::Config {
                durable_name: Some(NOTIFY_CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                // Longer than one send may take; retries are explicit
                // delayed naks (see `deliver`), this only covers a crash.
                ack_wait: Duration::from_secs(90),
                max_deliver: 100_000,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .context("declaring the notification consumer")
}
