//! The sweep: agents that stopped sending heartbeats go offline, and the
//! control plane ends, through the ledger, the commands nobody will report
//! on (never fetched before expiry, silent long past it, or given up on by
//! the broker). Does not read messages from agents.

use bus_schema::{codec, now_ms, CommandStatus};
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
use tracing::{info, warn};

use crate::db::entities::{agent, command};
use crate::events;
use crate::ledger::{self, Ending, Source};
use crate::state::AppState;

/// The broker's word that it gave up redelivering a command: end it
/// `failed`, once. Runs on every replica (a core-NATS advisory reaches
/// only the subscribers of the moment, so a lease-gated listener would
/// miss those sent during a failover); the ending is conditional on the
/// command still being open, so one replica's update wins and the others
/// change nothing.
pub async fn max_deliveries_loop(state: AppState) {
    // Every command shard; the consumer name says which agent.
    let subject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.*".to_string();
    let mut sub = match state.nats.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for max-delivery advisories");
            return;
        }
    };
    while let Some(m) = sub.next().await {
        let v: serde_json::Value = codec::decode_json(&m.payload).unwrap_or_default();
        let (Some(consumer), Some(seq)) = (v["consumer"].as_str(), v["stream_seq"].as_i64()) else {
            continue;
        };
        let Some(agent) = consumer.strip_prefix("agent-") else {
            continue;
        };
        let deliveries = v["deliveries"].as_i64().unwrap_or(0);
        let now = now_ms();
        let summary =
            format!("gave up after {deliveries} deliveries: the agent never reported a result");
        let _turn = state.writer.lock().await;
        let res = ledger::end_unreported(
            &state.db,
            Condition::all()
                .add(command::Column::AgentId.eq(agent))
                .add(command::Column::StreamSeq.eq(seq)),
            &ledger::OPEN,
            &Ending {
                status: CommandStatus::Failed,
                summary: &summary,
                source: Source::Inferred,
                attempts: Some(deliveries),
            },
            now,
        )
        .await;
        drop(_turn);
        if let Ok(r) = res {
            if r > 0 {
                warn!(agent_id = %agent, stream_seq = seq, deliveries, "command failed (inferred): redelivery gave up");
            }
        }
    }
}

/// Grace after expiry before a still-queued command is declared expired, so
/// a command fetched just before expiry can still report.
const EXPIRY_GRACE_MS: i64 = 5_000;

/// The inferred outcomes of the sweep (a host's report replaces them).
const NO_RESULT: &str = "no result: the agent took the command and never reported back";
const NOT_FETCHED: &str =
    "expired: no word from the agent before its expiry (inferred: it may still report)";

/// One round of the offline sweep (the `offline_sweep` duty, run every
/// second on the replica holding the duties lease): agents that stopped
/// sending heartbeats go offline; commands nobody fetched before their
/// expiry end `expired`. Each change is conditional on the row it read,
/// so a round racing another replica's changes nothing twice.
pub async fn sweep_once(state: &AppState) -> anyhow::Result<()> {
    let now = now_ms();
    let missed = std::cmp::max(state.cfg.offline_after_missed, 1) as i64;
    let gone = agent::Entity::find()
        .filter(agent::Column::Status.eq("online"))
        .filter(
            Expr::col(agent::Column::LastSeen)
                .add(Expr::col(agent::Column::HeartbeatSecs).mul(missed * 1000))
                .lt(now),
        )
        .all(&state.db)
        .await?;
    for a in gone {
        let _turn = state.writer.lock().await;
        let res = agent::Entity::update_many()
            .col_expr(agent::Column::Status, Expr::value("offline"))
            .col_expr(agent::Column::Operations, Expr::value("[]"))
            .filter(agent::Column::Id.eq(a.id.clone()))
            .filter(agent::Column::Status.eq("online"))
            .filter(agent::Column::LastSeen.eq(a.last_seen))
            .exec(&state.db)
            .await?;
        // Not held while publishing: with the broker gone (when this sweep
        // runs without the lease) a publish can wait, and the writer's
        // turn must not wait with it.
        drop(_turn);
        if res.rows_affected == 1 {
            info!(agent_id = %a.id, missed, "agent offline: heartbeats missed");
            let mut off = a.clone();
            off.status = "offline".into();
            off.operations = "[]".into();
            events::publish(state, &events::of_agent(&off)).await;
        }
    }
    // Backstop: taken but never finished, long past expiry plus run time
    // (the host died with it). Ends in one final state all the same.
    let silent = command::Entity::find()
        .filter(command::Column::Status.is_in(["accepted", "running"]))
        .filter(
            Expr::col(command::Column::ExpiresAt)
                .add(Expr::col(command::Column::TimeoutSecs).mul(1000))
                .add(state.cfg.silent_grace_secs as i64 * 1000)
                .lt(now),
        )
        .limit(1000)
        .all(&state.db)
        .await?;
    for c in silent {
        let _turn = state.writer.lock().await;
        let ending = Ending {
            status: CommandStatus::Failed,
            summary: NO_RESULT,
            source: Source::Inferred,
            attempts: None,
        };
        let ended =
            ledger::end_one_unreported(&state.db, &c.id, &["accepted", "running"], &ending, now)
                .await?;
        drop(_turn);
        if ended {
            warn!(command = %c.id, agent_id = %c.agent_id, "command failed (inferred): no result after expiry and timeout");
            let mut f = c.clone();
            ending.mark(&mut f, now);
            events::publish(state, &events::of_command(&f)).await;
        }
    }
    let expired = command::Entity::find()
        .filter(command::Column::Status.eq(CommandStatus::Queued.as_str()))
        .filter(command::Column::ExpiresAt.lt(now - EXPIRY_GRACE_MS))
        .limit(1000)
        .all(&state.db)
        .await?;
    for c in expired {
        let _turn = state.writer.lock().await;
        let ending = Ending {
            status: CommandStatus::Expired,
            summary: NOT_FETCHED,
            source: Source::Inferred,
            attempts: None,
        };
        let queued = [CommandStatus::Queued.as_str()];
        let ended = ledger::end_one_unreported(&state.db, &c.id, &queued, &ending, now).await?;
        drop(_turn);
        if ended {
            let mut e = c.clone();
            ending.mark(&mut e, now);
            events::publish(state, &events::of_command(&e)).await;
        }
    }
    Ok(())
}
