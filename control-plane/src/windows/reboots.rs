//! Reboots inside a window: asking a host for `sys.reboot` and verifying
//! its return. A host has come back when its heartbeat carries another boot
//! id than the one recorded when the reboot was asked for (or a boot time
//! after it); no return within the window's `reboot_deadline_minutes` is
//! `reboot_failed`, logged as a warning and announced on the event stream.
//! Owns only these two steps of a run host; not when a reboot is wanted
//! (`runner`).

use bus_schema::{CommandStatus, Source};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;

use crate::commands::{self, NewCommand};
use crate::db::entities::{agent, command};
use crate::state::AppState;
use crate::updates::entities::{run, run_host, window};

/// The message `sys.reboot` shows on the host.
pub fn message(w: &window::Model) -> String {
    let m = format!("Drover: reboot for updates (window {})", w.name);
    m.chars().take(200).collect()
}

/// Asks the host to reboot now; the row becomes `rebooting` (or
/// `reboot_failed` when the command cannot be issued).
pub async fn start(
    state: &AppState,
    w: &window::Model,
    h: run_host::Model,
    a: &agent::Model,
    now: i64,
) -> anyhow::Result<()> {
    let created = commands::create(
        state,
        NewCommand {
            agent_id: a.id.clone(),
            action: "sys.reboot".into(),
            params: json!({ "delay_minutes": 0, "message": message(w) }),
            timeout_secs: None,
            ttl_secs: Some(w.reboot_deadline_minutes.max(1) as u64 * 60),
            requested_by: super::runner::requester(w),
            source: Source::System,
            job_id: None,
        },
    )
    .await;
    let mut m: run_host::ActiveModel = h.into();
    m.updated_at = Set(now);
    match created {
        Ok(c) => {
            m.status = Set("rebooting".into());
            m.reboot_command_id = Set(Some(c.id));
            m.boot_id_before = Set(a.boot_id.clone());
            m.reboot_started_at = Set(Some(now));
            m.message = Set("reboot asked for; waiting for the host's return".into());
        }
        Err(e) => {
            m.status = Set("reboot_failed".into());
            m.message = Set(format!("reboot not issued: {e}"));
        }
    }
    m.update(&state.db).await?;
    Ok(())
}

/// Whether the host's latest heartbeat shows a boot after the reboot was
/// asked for.
pub fn returned(h: &run_host::Model, a: &agent::Model) -> bool {
    let new_id = match (&h.boot_id_before, &a.boot_id) {
        (Some(before), Some(now)) => !now.is_empty() && now != before,
        _ => false,
    };
    let booted_after = matches!((a.booted_at, h.reboot_started_at), (Some(b), Some(s)) if b > s);
    new_id || booted_after
}

/// A rebooting host: `rebooted` when it is back, `reboot_failed` when the
/// reboot command failed or the deadline passed.
pub async fn check(state: &AppState, h: &run_host::Model, now: i64) -> anyhow::Result<()> {
    let db = &state.db;
    let a = agent::Entity::find_by_id(h.agent_id.clone())
        .one(db)
        .await?;
    let deadline_min = match run::Entity::find_by_id(h.run_id.clone()).one(db).await? {
        Some(r) => window::Entity::find_by_id(r.window_id)
            .one(db)
            .await?
            .map(|w| w.reboot_deadline_minutes),
        None => None,
    }
    .unwrap_or(super::DEFAULT_REBOOT_DEADLINE_MINUTES);
    let started = h.reboot_started_at.unwrap_or(h.updated_at);
    let mut m: run_host::ActiveModel = h.clone().into();
    m.updated_at = Set(now);
    if let Some(a) = a.as_ref().filter(|a| returned(h, a)) {
        m.status = Set("rebooted".into());
        m.returned_at = Set(Some(a.last_seen));
        m.message = Set(format!(
            "back after {} s with boot id {}",
            (a.last_seen - started).max(0) / 1000,
            a.boot_id.as_deref().unwrap_or("?")
        ));
        m.update(db).await?;
        tracing::info!(agent_id = %h.agent_id, run = %h.run_id, "host returned from its reboot");
    } else {
        let failed_cmd = match &h.reboot_command_id {
            Some(id) => command::Entity::find_by_id(id.clone())
                .one(db)
                .await?
                // Only the host's own report: a reboot may well cut the
                // agent off before it reports, and an inferred failure
                // says nothing about the host.
                .filter(|c| {
                    c.outcome_source.as_deref() != Some("inferred")
                        && CommandStatus::parse(&c.status)
                            .is_some_and(|s| s.is_final() && s != CommandStatus::Succeeded)
                }),
            None => None,
        };
        let why = if let Some(c) = failed_cmd {
            format!("sys.reboot {}: {}", c.status, c.summary)
        } else if now > started + deadline_min as i64 * 60_000 {
            format!("did not come back within {deadline_min} minute(s) of the reboot")
        } else {
            return Ok(());
        };
        tracing::warn!(agent_id = %h.agent_id, run = %h.run_id, "reboot failed: {why}");
        m.status = Set("reboot_failed".into());
        m.message = Set(why);
        m.update(db).await?;
        if let Some(a) = &a {
            crate::events::publish(state, &crate::events::of_agent(a)).await;
        }
    }
    super::runs::recount(db, &h.run_id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(before: Option<&str>, started: i64) -> run_host::Model {
        run_host::Model {
            run_id: "r".into(),
            agent_id: "A".into(),
            batch: 0,
            status: "rebooting".into(),
            install_command_id: None,
            scan_command_id: None,
            reboot_command_id: Some("c".into()),
            boot_id_before: before.map(str::to_string),
            reboot_started_at: Some(started),
            returned_at: None,
            message: String::new(),
            updated_at: started,
        }
    }

    fn host(boot_id: Option<&str>, booted_at: Option<i64>) -> agent::Model {
        agent::Model {
            boot_id: boot_id.map(str::to_string),
            booted_at,
            ..crate::selector::tests::agent("A", "web-1", "{}", "{}")
        }
    }

    #[test]
    fn a_new_boot_id_or_a_later_boot_is_a_return() {
        let h = row(Some("b1"), 1_000);
        assert!(!returned(&h, &host(Some("b1"), Some(10))), "same boot");
        assert!(returned(&h, &host(Some("b2"), Some(10))), "new boot id");
        assert!(
            !returned(&h, &host(Some(""), Some(10))),
            "no boot id reported"
        );
        assert!(
            returned(&h, &host(None, Some(2_000))),
            "booted after the ask"
        );
        let unknown = row(None, 1_000);
        assert!(
            !returned(&unknown, &host(Some("b2"), Some(10))),
            "nothing to compare"
        );
    }
}
