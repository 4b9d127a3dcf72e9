//! Publishing state changes on core NATS (`drover.evt.>`), where every
//! replica's UI streams and automation can listen.

use bus_schema::{subjects, Event};

use crate::db::entities::{agent, command};
use crate::state::AppState;

pub async fn publish(state: &AppState, ev: &Event) {
    let subject = match ev {
        Event::Agent { agent_id, .. } => subjects::agent_event(agent_id),
        Event::Command { command_id, .. } => subjects::command_event(command_id),
        Event::Rollout { rollout_id, .. } => subjects::rollout_event(rollout_id),
        Event::Release { .. } => subjects::release_event(),
        Event::Alert { rule_id, .. } => subjects::alert_event(rule_id),
        Event::Service { agent_id, .. } => subjects::service_event(agent_id),
    };
    // Live events reach browsers through the broker: while it is gone they
    // reach nobody, and a publish would wait for the client's buffer.
    if state.nats.connection_state() != async_nats::connection::State::Connected {
        tracing::debug!("event not published: the broker is not connected");
        return;
    }
    if let Err(e) = state
        .nats
        .publish(subject, bus_schema::encode(ev).into())
        .await
    {
        tracing::debug!(error = %e, "event not published");
    }
}

pub fn of_agent(a: &agent::Model) -> Event {
    Event::Agent {
        agent_id: a.id.clone(),
        hostname: a.hostname.clone(),
        status: a.status.clone(),
        last_seen: a.last_seen,
        metrics: serde_json::from_str(&a.metrics).ok(),
        operations: serde_json::from_str(&a.operations).unwrap_or_default(),
    }
}

pub fn of_command(c: &command::Model) -> Event {
    Event::Command {
        command_id: c.id.clone(),
        agent_id: c.agent_id.clone(),
        action: c.action.clone(),
        status: bus_schema::CommandStatus::parse(&c.status)
            .unwrap_or(bus_schema::CommandStatus::Queued),
        exit_code: c.exit_code,
        summary: c.summary.clone(),
    }
}
