//! The result budget on the agent's side: every final result leaves within
//! [`bus_schema::result_budget::MAX_RESULT_DATA_BYTES`]; a larger one's data
//! goes to the command's output stream first, as chunk lines, and the result
//! carries the marker. Owns only that step; publishing results stays in `report`, the
//! ordinary output lines in `commands`.

use std::time::Duration;

use bus_schema::result_budget;
use bus_schema::{now_ms, subjects, OutputLine, OutputStream};
use tracing::{info, warn};

use crate::state::Agent;
use bus_schema::Outcome;

/// How long the chunks of an agent action's result wait for the broker.
const CHUNKS_STORED_WITHIN: Duration = Duration::from_secs(10);

/// Fits `o`'s data to the budget; the chunk lines (if any) go to `emit`, in
/// order, before the caller sends the result.
pub fn fit(mut o: Outcome, mut emit: impl FnMut(OutputStream, String)) -> Outcome {
    let fitted = result_budget::fit(std::mem::take(&mut o.data));
    for line in fitted.chunks {
        emit(OutputStream::Stdout, line);
    }
    o.data = fitted.data;
    o
}

/// The same for an action that printed nothing (the agent's own ones): the
/// chunks are published as the command's output lines 1..=K and awaited
/// (bounded) before the outcome is returned.
pub async fn fit_and_publish(agent: &Agent, command_id: &str, o: Outcome) -> Outcome {
    let mut lines = Vec::new();
    let o = fit(o, |stream, line| lines.push((stream, line)));
    if lines.is_empty() {
        return o;
    }
    info!(command = %command_id, chunks = lines.len(), "result over its budget; moved to the output");
    let subject = subjects::output(&agent.id, command_id);
    let mut acks = Vec::with_capacity(lines.len());
    for (i, (stream, line)) in lines.into_iter().enumerate() {
        let out = OutputLine {
            command_id: command_id.to_string(),
            seq: i as u64 + 1,
            stream,
            line,
            at: now_ms(),
        };
        match agent
            .js
            .publish(subject.clone(), bus_schema::encode(&out).into())
            .await
        {
            Ok(ack) => acks.push(ack),
            Err(e) => warn!(command = %command_id, error = %e, "result chunk not published"),
        }
    }
    let all = async {
        for a in acks {
            let _ = a.await;
        }
    };
    if tokio::time::timeout(CHUNKS_STORED_WITHIN, all)
        .await
        .is_err()
    {
        warn!(command = %command_id, "result chunks not all confirmed in time");
    }
    o
}

/// The last guard before a result is signed: data still over the budget
/// (no path above let it through) is replaced by a marker without output.
pub fn guard(data: serde_json::Value) -> serde_json::Value {
    if result_budget::is_cut(&data) || result_budget::fits(&data) {
        return data;
    }
    warn!("result data over its budget reached the publisher; replaced by a marker");
    serde_json::json!({
        "truncated": true,
        "bytes": result_budget::measure(&data),
        "in_output": false,
    })
}
