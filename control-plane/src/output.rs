//! Output lines of commands, read back from the broker's `DROVER_OUT`
//! stream (kept three days). They are not copied into the database: the
//! stream already stores them, in order, per command subject.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use bus_schema::{subjects, OutputLine};
use futures::StreamExt;

/// At most this many lines are returned per call; follow with `after`.
const MAX_LINES: usize = 5_000;

/// The lines of one command with `seq > after`, in order.
pub async fn read(
    js: &jetstream::Context,
    agent_id: &str,
    command_id: &str,
    after: u64,
) -> anyhow::Result<Vec<OutputLine>> {
    let stream = js
        .get_stream(subjects::OUT_STREAM)
        .await
        .context("the output stream is not available")?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            filter_subject: subjects::output(agent_id, command_id),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            // Removed by the broker if we vanish before deleting it.
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .context("reading output")?;
    let name = consumer.cached_info().name.clone();
    let mut pending = consumer.cached_info().num_pending as usize;
    let mut lines = Vec::new();
    // Bounded by what was there when we looked, and by the page size.
    while pending > 0 && lines.len() < MAX_LINES {
        let want = pending.min(500);
        let mut batch = consumer
            .fetch()
            .max_messages(want)
            .messages()
            .await
            .context("reading output")?;
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| anyhow::anyhow!("reading output: {e}"))?;
            got += 1;
            if let Ok(l) = bus_schema::decode::<OutputLine>(&m.payload, None) {
                if l.seq > after {
                    lines.push(l);
                }
            }
        }
        if got == 0 {
            break;
        }
        pending = pending.saturating_sub(got);
    }
    let _ = stream.delete_consumer(&name).await;
    lines.sort_by_key(|l| l.seq);
    lines.truncate(MAX_LINES);
    Ok(lines)
}
