//! Heartbeats: every `heartbeat_secs` when idle, every `busy_heartbeat_secs`
//! while an operation runs, and soon after the running set changes — but
//! only when it still differs from what the last heartbeat said
//! ([`SETTLE`] later), so a command that is over in a moment (`sys.ping`)
//! costs no heartbeat at all. Owns the loop and the report's contents; the
//! samples are `metrics`', the running set is `commands`'.

use std::sync::Arc;
use std::time::Duration;

use bus_schema::catalogue::{self, RunsIn};
use bus_schema::{subjects, Heartbeat};

use crate::metrics::{self, Collector};
use crate::state::Agent;

/// How long rootd may take to say which modules it can run (a few stat
/// calls): a hung rootd must not hold the heartbeat.
const CAPABILITIES_WITHIN: Duration = Duration::from_secs(5);

/// How long after the running set changed the heartbeat loop looks again:
/// a command that started and ended within it never shows (nothing to show
/// in the UI's live operations), one that runs longer shows this late.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Every how many heartbeats rootd is asked again when nothing suggests its
/// answer changed: 5 min at the default 30 s, 10 s at 1 s.
const ASK_ROOTD_EVERY: u32 = 10;

/// The command ids in a running set, for comparing with the last one sent.
fn ids(ops: &[bus_schema::ActiveOperation]) -> Vec<String> {
    let mut v: Vec<String> = ops.iter().map(|o| o.command_id.clone()).collect();
    v.sort();
    v
}

/// Modules this host can run now: the agent's own, plus what rootd says it
/// can run (nothing when rootd does not answer).
pub fn modules(rootd_modules: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in catalogue::all() {
        let m = a.module();
        // `agent` names rootd's update machinery; its one agent-run action
        // (`agent.watch`) needs no module report (the control plane never
        // asks for one for actions the agent runs itself).
        let own = a.runs_in == RunsIn::Agent && m != "agent";
        let available = own || rootd_modules.iter().any(|r| r == m);
        if available && !out.iter().any(|x| x == m) {
            out.push(m.to_string());
        }
    }
    out
}

/// rootd's modules, or why it does not answer (not started yet, or
/// restarting): then it is asked again at the next heartbeat, and the
/// heartbeat says why, so the control plane can tell the operator.
async fn ask_rootd(agent: &Agent) -> Result<crate::rootd_client::RootdCapabilities, String> {
    let asked = tokio::time::timeout(
        CAPABILITIES_WITHIN,
        crate::rootd_client::capabilities(&agent.cfg.rootd_socket),
    )
    .await;
    match asked {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "rootd capabilities unavailable");
            Err(format!("{e:#}"))
        }
        Err(_) => Err(format!(
            "rootd did not answer within {}s",
            CAPABILITIES_WITHIN.as_secs()
        )),
    }
}

pub async fn run_loop(agent: Arc<Agent>) {
    let mut collector = Collector::new();
    let hostname = agent
        .cfg
        .hostname
        .clone()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(metrics::hostname);
    let os = metrics::os();
    let kernel = metrics::kernel();
    let subject = subjects::heartbeat(&agent.id);
    let mut seq = 0u64;
    let mut tracker = crate::watch::Tracker::default();
    // rootd's last answer and how many heartbeats ago it was asked.
    let mut rootd_modules: Result<crate::rootd_client::RootdCapabilities, String> =
        Err("rootd not asked yet".into());
    let mut since_asked = u32::MAX;
    let mut after_change = false;
    loop {
        // Asked when its answer can have changed: while it does not answer
        // (so its return shows at once), after the running set changed (an
        // action may have installed a module), and every ASK_ROOTD_EVERY
        // heartbeats (a rootd that stopped, a module added by hand).
        if rootd_modules.is_err() || after_change || since_asked >= ASK_ROOTD_EVERY {
            rootd_modules = ask_rootd(&agent).await;
            since_asked = 0;
        }
        since_asked = since_asked.saturating_add(1);
        let operations = agent.ops.lock().await.clone();
        let interval = if operations.is_empty() {
            agent.cfg.heartbeat_secs
        } else {
            agent.cfg.busy_heartbeat_secs
        }
        .max(1);
        seq += 1;
        let (watch, force_full) = {
            let mut w = agent.watch.lock().expect("watch list");
            let changed = std::mem::take(&mut w.changed);
            (w.clone(), changed)
        };
        let states = crate::watch::read_states(&agent.cfg.rootd_socket, &watch.units).await;
        let report = tracker.report(&watch, force_full, states);
        let hb = Heartbeat {
            agent_id: agent.id.clone(),
            hostname: hostname.clone(),
            seq,
            sent_at: bus_schema::now_ms(),
            interval_secs: interval,
            agent_version: crate::version::running().version.clone(),
            agent_channel: crate::version::running().channel.clone(),
            os: os.clone(),
            kernel: kernel.clone(),
            metrics: collector.sample(),
            modules: modules(
                rootd_modules
                    .as_ref()
                    .map(|c| c.modules.as_slice())
                    .unwrap_or_default(),
            ),
            operations,
            rootd_error: rootd_modules.as_ref().err().cloned(),
            instance_id: agent.instance.instance_id.clone(),
            machine_id: agent.instance.machine_id.clone(),
            boot_id: agent.instance.boot_id.clone(),
            protocol_version: bus_schema::signing::PROTOCOL_VERSION,
            watch_revision: report.revision,
            services: report.services,
            services_full: report.full,
            key_fingerprints: Some(agent.keys.fingerprints(bus_schema::now_ms())),
            rootd_box_key: rootd_modules.as_ref().ok().and_then(|c| c.box_key.clone()),
        };
        // Core publish: the stream captures it; a lost heartbeat is replaced
        // by the next one, so no ack is awaited.
        if let Err(e) = agent
            .client
            .publish(subject.clone(), bus_schema::encode(&hb).into())
            .await
        {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
        // Until the interval is up, or the running set differs from the
        // one just sent (looked at SETTLE after each change). Bounded: each
        // turn either ends the wait or waits for a change.
        let sent = ids(&hb.operations);
        let next = tokio::time::Instant::now() + Duration::from_secs(interval as u64);
        after_change = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                _ = agent.ops_changed.notified() => {}
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                _ = tokio::time::sleep(SETTLE) => {}
            }
            let watch_changed = agent.watch.lock().expect("watch list").changed;
            if watch_changed || ids(&agent.ops.lock().await) != sent {
                after_change = true;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_stays_the_agents_own_though_its_reboot_actions_run_in_rootd() {
        // Without rootd the agent still answers sys.ping, sys.info, sys.cancel.
        assert_eq!(modules(&[]), ["sys"]);
        assert_eq!(modules(&["pkg".into(), "sys".into()]), ["sys", "pkg"]);
        for a in ["sys.reboot", "sys.reboot_cancel"] {
            assert_eq!(catalogue::lookup(a).unwrap().runs_in, RunsIn::Rootd, "{a}");
        }
    }
}
