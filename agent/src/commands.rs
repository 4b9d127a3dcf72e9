//! The command loop: fetch from this agent's durable consumer, verify, record
//! in the journal, wait for a free slot (keeping the delivery alive), run
//! (here or in rootd), publish the result, and ack only after the broker
//! confirmed the result. A redelivery of a command the journal knows is
//! answered from the journal, never run again and never called a replay.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bus_schema::catalogue::{self, RunsIn};
use bus_schema::{
    codec, now_ms, subjects, ActiveOperation, Command, CommandStatus, OutputLine, Refusal,
    SignedCommand,
};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::journal::Claim;
use crate::redelivery::{seen_again, take_in_hand, InHand};
use crate::report::{finish, publish_state, refuse_for_skew, report_refusal, result_of};
use crate::result_fit;
use crate::rootd_client;
use crate::state::Agent;
use crate::sys;
use crate::update;
use bus_schema::Outcome;

/// How often a waiting or running command tells the broker it is still being
/// worked on, at most; a third of the consumer's ack wait when that is
/// shorter.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// The least interval between progress acks.
const PROGRESS_AT_LEAST: Duration = Duration::from_millis(200);
/// How long a running command may go without an `accepted` report: an
/// action that ends within it reports only its final state (one publish
/// fewer on the broker); one still running after it, or one that waits for
/// a slot, reports `accepted` first (issue 18). The ledger moves a queued
/// command straight to a final state, so nothing depends on `accepted`.
const ACCEPTED_GRACE: Duration = Duration::from_secs(1);
/// Output lines published but not yet confirmed by the broker, at most.
const OUTPUT_ACKS_IN_FLIGHT: usize = 256;
/// How long a finished action's result waits for its output to be stored.
const OUTPUT_FLUSH_WITHIN: Duration = Duration::from_secs(10);

/// Waits until the control plane has created this agent's consumer.
async fn wait_for_consumer(agent: &Agent) -> PullConsumer {
    let name = subjects::agent_consumer(&agent.id);
    let mut delay = Duration::from_millis(200);
    let mut told = false;
    loop {
        match agent
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                &name,
                subjects::cmd_stream(&agent.id),
            )
            .await
        {
            Ok(c) => return c,
            Err(e) => {
                if !told {
                    info!(consumer = %name, error = %e, "waiting for the control plane to create this agent's command queue");
                    told = true;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// How often to send progress acks: well inside the consumer's ack wait.
fn progress_interval(ack_wait: Duration) -> Duration {
    (ack_wait / 3).clamp(PROGRESS_AT_LEAST, PROGRESS_EVERY)
}

pub async fn run_loop(agent: Arc<Agent>) {
    let consumer = wait_for_consumer(&agent).await;
    let progress_every = progress_interval(consumer.cached_info().config.ack_wait);
    info!(
        progress_every_ms = progress_every.as_millis() as u64,
        "command queue ready"
    );
    // Slots bound the actions that run through rootd; the agent's own
    // actions (ping, info, cancel) are instant and never wait behind them.
    let slots = Arc::new(Semaphore::new(agent.cfg.max_concurrent.max(1)));
    loop {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(agent.cfg.max_concurrent.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot pull commands; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(next) = messages.next().await {
            match next {
                // Every delivery is taken in hand at once: accepted, then
                // kept alive with progress acks while it waits for a slot.
                // The consumer's max_ack_pending bounds how many are held.
                Ok(msg) => {
                    if let Err(refused) = agent.instance.allowed(msg.headers.as_ref()) {
                        stand_down(&agent, msg, &refused).await;
                        return;
                    }
                    let agent = agent.clone();
                    let slots = slots.clone();
                    tokio::spawn(async move {
                        handle(&agent, msg, &slots, progress_every).await;
                    });
                }
                Err(e) => {
                    warn!(error = %e, "pull interrupted; resuming");
                    break;
                }
            }
        }
    }
}

/// An operator kept another machine (or process) for this agent id: the
/// command goes back to the queue for it, and this process takes no more
/// commands. It keeps running (heartbeats are ignored by the control plane)
/// so the operator can see it and re-enrol this machine.
async fn stand_down(agent: &Agent, msg: jetstream::Message, refused: &str) {
    let _ = msg
        .ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
        .await;
    tracing::error!(
        agent_id = %agent.id,
        refused = %refused,
        "an operator kept another machine for this agent identity and refused this one ({refused}); it takes no more commands. \
         This state directory was copied from another host: stop this agent, remove its state directory \
         and enrol the machine again with a new registration token"
    );
}

async fn handle(
    agent: &Agent,
    msg: jetstream::Message,
    slots: &Arc<Semaphore>,
    progress_every: Duration,
) {
    let (delivered, stream_seq) = match msg.info() {
        Ok(i) => (i.delivered as u32, Some(i.stream_sequence)),
        Err(_) => (1, None),
    };
    let ct = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(codec::CONTENT_TYPE_HEADER))
        .map(|v| v.as_str().to_string());
    let signed: SignedCommand = match codec::decode(&msg.payload, ct.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            warn!(reason = "malformed", error = %e, "refused command");
            report_refusal(agent, &Refusal::Malformed(e.to_string())).await;
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    // Nothing is believed, not even the id, before the signature holds.
    let cmd = match agent.keys.open_command(&signed, now_ms()) {
        Ok(c) => c,
        Err(r) => {
            warn!(reason = r.label(), detail = %r, "refused command");
            report_refusal(agent, &r).await;
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    if cmd.agent_id != agent.id {
        let r = Refusal::WrongAgent {
            addressed: cmd.agent_id.clone(),
            me: agent.id.clone(),
        };
        warn!(command = %cmd.id, reason = r.label(), detail = %r, "refused command");
        report_refusal(agent, &r).await;
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    }

    // Seen before? A redelivery (the ack was lost, the broker restarted, we
    // crashed) is answered from the journal; the command in another message
    // is a replay.
    let now = now_ms();
    let claim =
        agent
            .journal
            .lock()
            .await
            .claim(&cmd.id, cmd.expires_at, now, stream_seq, delivered);
    let stop = match claim {
        Ok(Claim::Fresh) => match take_in_hand(agent, &cmd.id) {
            Some(stop) => {
                // Recorded as seen, so a redelivery gets the same answer.
                if let Err(r) = bus_schema::clock::check_skew(&cmd, now) {
                    let _in_hand = InHand {
                        agent,
                        id: cmd.id.clone(),
                    };
                    refuse_for_skew(agent, &cmd, delivered, &r, &msg).await;
                    return;
                }
                stop
            }
            // A redelivery got here first and took it; it runs it.
            None => return,
        },
        Ok(Claim::Seen(entry)) if entry.precancelled => {
            let mut res = result_of(
                agent,
                &cmd,
                delivered,
                Outcome::rejected("cancelled before it started; not run"),
            );
            res.status = CommandStatus::Cancelled;
            info!(command = %cmd.id, "cancelled before it started");
            finish(agent, &cmd, res, &msg).await;
            return;
        }
        Ok(Claim::Seen(entry)) => {
            match seen_again(agent, &cmd, entry, delivered, stream_seq, &msg).await {
                Some(stop) => stop,
                None => return,
            }
        }
        Ok(Claim::Expired) => {
            // A skewed clock makes a fresh command look expired: say so.
            if let Err(r) = bus_schema::clock::check_skew(&cmd, now) {
                refuse_for_skew(agent, &cmd, delivered, &r, &msg).await;
                return;
            }
            let r = Refusal::Expired {
                expires_at: cmd.expires_at,
                now,
            };
            warn!(command = %cmd.id, reason = r.label(), detail = %r, "refused command");
            report_refusal(agent, &r).await;
            let mut res = result_of(agent, &cmd, delivered, Outcome::rejected(r.to_string()));
            res.status = CommandStatus::Expired;
            finish(agent, &cmd, res, &msg).await;
            return;
        }
        Err(e) => {
            // Without the journal we cannot promise "never twice": do not run.
            warn!(command = %cmd.id, error = %e, "journal write failed; leaving the command for redelivery");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
    };
    // In hand from here on (waiting or running): a cancel stops it, and a
    // redelivery of it is neither run nor reported.
    let _in_hand = InHand {
        agent,
        id: cmd.id.clone(),
    };
    // `accepted` only when the command is still in hand after the grace,
    // or as soon as it has to wait for a slot (see ACCEPTED_GRACE).
    let accept_by = tokio::time::Instant::now() + ACCEPTED_GRACE;
    let mut accepted_sent = false;

    // Wait for a slot, keeping the delivery alive: an accepted command that
    // waits is not a lost one.
    let needs_slot = catalogue::lookup(&cmd.action).is_some_and(|s| s.runs_in == RunsIn::Rootd);
    let mut _permit = None;
    if needs_slot {
        if let Ok(p) = slots.clone().try_acquire_owned() {
            _permit = Some(p);
        } else {
            publish_state(agent, &cmd, delivered, CommandStatus::Accepted).await;
            accepted_sent = true;
        }
    }
    if needs_slot && _permit.is_none() {
        let acquire = slots.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                biased;
                p = &mut acquire => {
                    _permit = Some(p.expect("semaphore open"));
                    break;
                }
                _ = stop.cancelled() => {
                    let mut res = result_of(
                        agent,
                        &cmd,
                        delivered,
                        Outcome::rejected("cancelled before it started; not run"),
                    );
                    res.status = CommandStatus::Cancelled;
                    info!(command = %cmd.id, "cancelled while waiting for a free slot");
                    finish(agent, &cmd, res, &msg).await;
                    return;
                }
                _ = tokio::time::sleep(progress_every) => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                    info!(command = %cmd.id, "waiting for a free slot; delivery kept alive");
                }
            }
        }
    }

    // From here on a stop of the agent leaves it interrupted, never run
    // again; without that mark written, it does not start.
    if let Err(e) = agent.journal.lock().await.mark_started(&cmd.id) {
        warn!(command = %cmd.id, error = %e, "journal write failed; leaving the command for redelivery");
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
            .await;
        return;
    }
    let op = ActiveOperation {
        command_id: cmd.id.clone(),
        action: cmd.action.clone(),
        source: cmd.source,
        started_at: now_ms(),
    };
    agent.ops.lock().await.push(op);
    agent.ops_changed.notify_one();

    let work = execute(agent, &cmd, &signed, delivered);
    tokio::pin!(work);
    let outcome = loop {
        tokio::select! {
            // In this order: an action that finished as the cancel arrived
            // reports what it did, never "cancelled while running".
            biased;
            o = &mut work => break o,
            // Dropping the work closes rootd's socket, which stops the
            // process group there.
            _ = stop.cancelled() => break Outcome {
                status: CommandStatus::Cancelled,
                exit_code: None,
                summary: "cancelled while running".into(),
                data: serde_json::Value::Null,
            },
            _ = tokio::time::sleep_until(accept_by), if !accepted_sent => {
                publish_state(agent, &cmd, delivered, CommandStatus::Accepted).await;
                accepted_sent = true;
            }
            _ = tokio::time::sleep(progress_every) => {
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    };
    agent.ops.lock().await.retain(|o| o.command_id != cmd.id);
    agent.ops_changed.notify_one();
    if update::is_restarting(&outcome) {
        // rootd switched to the new release and restarts this process; the
        // process after it publishes the result (see `update`).
        info!(command = %cmd.id, summary = %outcome.summary, "update installed; rootd restarts the agent");
        return;
    }

    info!(command = %cmd.id, action = %cmd.action, status = outcome.status.as_str(), summary = %outcome.summary, "command finished");
    let result = result_of(agent, &cmd, delivered, outcome);
    finish(agent, &cmd, result, &msg).await;
}

/// Runs the action where the catalogue says it runs.
async fn execute(agent: &Agent, cmd: &Command, signed: &SignedCommand, delivered: u32) -> Outcome {
    let Some(spec) = catalogue::lookup(&cmd.action) else {
        return Outcome::rejected(format!("unknown action {}", cmd.action));
    };
    // Sealed secrets are for rootd: the agent checks the rest and relays
    // them as they came (it cannot open them).
    let sensitive = bus_schema::sealed::sensitive_paths(spec, None);
    let relayed = bus_schema::sealed::stand_in(&cmd.params, |p| sensitive.iter().any(|s| s == p));
    if let Err(e) = spec.validate(&relayed) {
        return Outcome::rejected(format!("invalid params for {}: {e}", cmd.action));
    }
    let timeout = Duration::from_secs(cmd.timeout_secs.max(1) as u64);
    match spec.runs_in {
        RunsIn::Agent => {
            let fut = async {
                match cmd.action.as_str() {
                    "sys.ping" => sys::ping(&agent.id),
                    "sys.info" => sys::info(),
                    "sys.disk" => match catalogue::parse(&cmd.params) {
                        Ok(p) => crate::sys_inspect::disk(&p).await,
                        Err(e) => Outcome::rejected(format!("invalid params: {e}")),
                    },
                    "sys.processes" => match catalogue::parse(&cmd.params) {
                        Ok(p) => crate::sys_inspect::processes(&p).await,
                        Err(e) => Outcome::rejected(format!("invalid params: {e}")),
                    },
                    "agent.watch" => crate::watch::apply(&agent.cfg.state_dir, &agent.watch, cmd),
                    "sys.cancel" => {
                        sys::cancel(agent, cmd.params["command_id"].as_str().unwrap_or_default())
                            .await
                    }
                    other => {
                        Outcome::rejected(format!("the agent has no implementation of {other}"))
                    }
                }
            };
            let outcome = tokio::time::timeout(timeout, fut)
                .await
                .unwrap_or_else(|_| {
                    Outcome::failed(format!("timed out after {}s", cmd.timeout_secs))
                });
            result_fit::fit_and_publish(agent, &cmd.id, outcome).await
        }
        RunsIn::Rootd => {
            // One update at a time on a host: a second one would share the
            // staging directory and switch under the first.
            let _update_turn = if cmd.action == "agent.update" {
                match update::turn() {
                    Some(t) => Some(t),
                    None => {
                        return update::with_report(
                            cmd,
                            Outcome::rejected(
                                "another agent.update is running on this host; send this one \
                                 again when it ended",
                            ),
                        )
                    }
                }
            } else {
                None
            };
            if cmd.action == "agent.rotate_key" {
                // The agent adopts the key first, then rootd: both accept
                // the old key until the overlap ends, so rootd still admits
                // this command.
                if let Err(o) = crate::rotate::apply(agent, cmd).await {
                    return o;
                }
            }
            if cmd.action == "agent.update" {
                // The release is fetched and checked here before rootd
                // checks it again.
                if let Err(o) = update::prepare(agent, cmd).await {
                    return o;
                }
            }
            publish_state(agent, cmd, delivered, CommandStatus::Running).await;
            let subject = subjects::output(&agent.id, &cmd.id);
            let js = agent.js.clone();
            let command_id = cmd.id.clone();
            let mut seq = 0u64;
            // One publisher task keeps the lines in order; output must never
            // slow the action, hence unbounded. The broker's acks are
            // collected, and awaited (bounded) before the result goes out:
            // a command that reads final then has all its lines stored.
            let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<OutputLine>();
            let publisher = tokio::spawn(async move {
                let mut acks = std::collections::VecDeque::new();
                while let Some(out) = lines_rx.recv().await {
                    if let Ok(ack) = js
                        .publish(subject.clone(), bus_schema::encode(&out).into())
                        .await
                    {
                        acks.push_back(ack);
                    }
                    while acks.len() > OUTPUT_ACKS_IN_FLIGHT {
                        if let Some(a) = acks.pop_front() {
                            let _ = a.await;
                        }
                    }
                }
                for a in acks {
                    let _ = a.await;
                }
            });
            let mut on_line = move |stream, line: String| {
                seq += 1;
                let _ = lines_tx.send(OutputLine {
                    command_id: command_id.clone(),
                    seq,
                    stream,
                    line,
                    at: now_ms(),
                });
            };
            // rootd enforces the action's timeout itself; this bound only
            // covers a rootd that stopped answering.
            let guard = timeout + Duration::from_secs(30);
            let outcome = match tokio::time::timeout(
                guard,
                rootd_client::run(&agent.cfg.rootd_socket, signed, &mut on_line),
            )
            .await
            {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => Outcome::failed(format!("{e:#}")),
                Err(_) => Outcome::failed("rootd did not answer in time"),
            };
            // rootd keeps to the budget; an older one may not. Its chunks
            // follow its own lines, so they are the last ones.
            let outcome = result_fit::fit(outcome, &mut on_line);
            drop(on_line);
            // `on_line` (and with it the sender) is gone; the publisher ends
            // once its lines are confirmed. Bounded: a broker outage must not
            // hold the result, which has its own retries.
            let _ = tokio::time::timeout(OUTPUT_FLUSH_WITHIN, publisher).await;
            match cmd.action.as_str() {
                "agent.update" => {
                    if !update::is_restarting(&outcome) {
                        // Nothing was switched to: the staged copy is done.
                        update::clear_staging(agent).await;
                    }
                    update::with_report(cmd, outcome)
                }
                "agent.selftest" => {
                    update::after_selftest(agent, &outcome).await;
                    outcome
                }
                _ => outcome,
            }
        }
    }
}
