//! Waiting on a condition with a deadline, never on the clock alone:
//! [`wait_for`] polls any condition; [`wait_consumer_settled`] waits for a
//! JetStream consumer to have nothing outstanding. No assertions on what is
//! waited for live here.

use std::future::Future;
use std::time::{Duration, Instant};

use super::*;

/// Polls `f` until it yields `Some`, failing the test after `max`.
pub async fn wait_for<T, F, Fut>(what: &str, max: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + max;
    let mut polls = 0u32;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        polls += 1;
        assert!(
            Instant::now() < deadline,
            "timed out after {max:?} ({polls} polls) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a durable consumer has nothing pending and nothing awaiting
/// an ack: every message it was given was acked or terminated.
pub async fn wait_consumer_settled(stack: &Stack, stream: &str, consumer: &str) {
    let js = async_nats::jetstream::new(stack.client().await);
    wait_for(
        &format!("consumer {consumer} on {stream} to have nothing pending"),
        Duration::from_secs(60),
        || async {
            let mut c = js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    consumer, stream,
                )
                .await
                .ok()?;
            let info = c.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await
}
