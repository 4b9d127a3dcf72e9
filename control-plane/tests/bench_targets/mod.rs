//! Issue 18's targets for the fleet bench (`bench.rs`): the numbers one
//! fleet size produced ([`Row`]), the verdicts it prints as "met" / "NOT
//! met", and how CPU-bound the fan-out is: what every process of the bench
//! spends per command, the wall time that much CPU needs on this machine's
//! CPUs, and the share of it that signing and verifying commands and
//! results costs (timed here with the product's own code).
//! Owns the targets and their arithmetic; not the measuring (`bench.rs`)
//! nor reading `/proc` (`common::measure`).

use std::time::Instant;

use serde_json::json;

use crate::common::percentile as pct;

/// What one fleet size measured: fan-out seconds, single-command
/// milliseconds, heartbeats per second, RSS in KiB, CPU per command in ms.
pub struct Row {
    pub n: usize,
    pub fanout_median: f64,
    pub fanout_worst: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ingest_per_s: f64,
    pub rss_nats: u64,
    pub rss_cp: u64,
    pub rss_agent: u64,
    pub rss_rootd: u64,
    /// Seconds from starting the simulator to every virtual agent online
    /// (enrolled, queue created, first heartbeat stored).
    pub bringup_s: f64,
    /// CPU milliseconds per command by process (broker, control plane,
    /// simulated agents), each the median over the fan-out runs; what they
    /// measure includes the fleet's heartbeats meanwhile and the processes'
    /// own contention (thread switches), not only the commands' work.
    pub cpu_ms_per_cmd_split: [f64; 3],
}

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    pct(&v, 0.5)
}

/// CPU milliseconds the trust model costs one command on its way, timed
/// here on one thread with the product's own code: the control plane signs
/// the command, the agent verifies it, the agent signs its result and the
/// control plane verifies that (`bus_schema::signing`, with the encoding and
/// decoding those functions do). Part of the control plane's and the
/// agents' CPU per command above, whatever the rest of the path costs.
pub fn signatures_ms_per_command() -> f64 {
    let signer = bus_schema::signing::CommandSigner::generate();
    let cp_key = signer.public();
    let agent = nkeys::KeyPair::new_user();
    let agent_id = agent.public_key();
    let now = bus_schema::now_ms();
    let cmd = bus_schema::Command {
        id: "0190a1b2c3d4e5f60718293a4b5c6d7e".into(),
        agent_id: agent_id.clone(),
        action: "sys.ping".into(),
        params: json!({}),
        issued_at: now,
        expires_at: now + 3_600_000,
        timeout_secs: 60,
        requested_by: "bench".into(),
        source: bus_schema::Source::User,
        job_id: Some("0190a1b2c3d4e5f60718293a4b5c6d7f".into()),
        clock_skew_ms: Some(0),
    };
    let result = bus_schema::CommandResult {
        command_id: cmd.id.clone(),
        agent_id: agent_id.clone(),
        status: bus_schema::CommandStatus::Succeeded,
        exit_code: Some(0),
        summary: "pong".into(),
        data: json!({"pong": true}),
        attempt: 1,
        at: now,
    };
    let rounds = 2_000;
    let start = Instant::now();
    for _ in 0..rounds {
        let signed = signer.sign(&cmd);
        cp_key.verify_for(&signed, &agent_id, now).unwrap();
        let signed = bus_schema::enroll::sign_result(&agent, &result);
        let _: bus_schema::CommandResult =
            bus_schema::enroll::agent_open(&agent_id, &signed).unwrap();
    }
    start.elapsed().as_secs_f64() * 1000.0 / rounds as f64
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// Issue 18's targets for one fleet size (single node, release build):
/// fan-out median, single-command p99, heartbeat ingest, fleet bring-up, and
/// the broker + control-plane memory budget; broker CPU per command is
/// printed for comparison (0.35 ms before issue 18).
pub fn issue18_targets(r: &Row, signatures_ms: f64) {
    let n = r.n;
    let fanout = match n {
        1000 => Some(0.2),
        10_000 => Some(2.0),
        _ => None,
    };
    if let Some(t) = fanout {
        println!(
            "issue 18: fan-out {n} agents: median {:.3}s vs < {t}s: {}",
            r.fanout_median,
            verdict(r.fanout_median < t)
        );
    }
    println!(
        "issue 18: single command p99 at {n} agents {:.1} ms vs < 10 ms: {}",
        r.p99_ms,
        verdict(r.p99_ms < 10.0)
    );
    if n >= 10_000 {
        println!(
            "issue 18: heartbeat ingest at {n} agents {:.0}/s vs >= 30000/s: {}",
            r.ingest_per_s,
            verdict(r.ingest_per_s >= 30_000.0)
        );
    }
    let bringup = match n {
        1000 => Some(5.0),
        10_000 => Some(30.0),
        _ => None,
    };
    if let Some(t) = bringup {
        println!(
            "issue 18: fleet bring-up {n} agents {:.1}s vs < {t}s: {}",
            r.bringup_s,
            verdict(r.bringup_s < t)
        );
    }
    println!(
        "issue 18: broker CPU per command at {n} agents: {:.3} ms (before issue 18: ~0.35 ms)",
        r.cpu_ms_per_cmd_split[0]
    );
    // How CPU-bound the fan-out is: every process of the bench shares this
    // machine's CPUs, so at this CPU per command N commands need at least
    // N × (CPU per command) / CPUs of wall time, however well they overlap.
    // (Measured during the fan-out, so it includes heartbeats and
    // contention: it says what the fan-out cost here, not what it must.)
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let [broker, cp, sim] = r.cpu_ms_per_cmd_split;
    let total = broker + cp + sim;
    let secs = |ms: f64| ms * (n + 1) as f64 / 1000.0 / cpus as f64;
    println!(
        "issue 18: CPU per command at {n} agents: broker {broker:.3} + control plane {cp:.3} + \
         simulated agents {sim:.3} = {total:.3} ms (medians of the runs); at that, a fan-out to \
         {} hosts needs at least {:.3}s on {cpus} CPUs",
        n + 1,
        secs(total)
    );
    println!(
        "issue 18: of that, broker {broker:.3} + signing and verifying {signatures_ms:.3} ms (the \
         control plane signs, the agent verifies, signs its result, the control plane verifies) \
         alone need {:.3}s on {cpus} CPUs",
        secs(broker + signatures_ms)
    );
    let mem_mib = (r.rss_nats + r.rss_cp) as f64 / 1024.0;
    println!(
        "issue 18: memory per agent at {n}: broker {:.1} KiB + control plane {:.1} KiB",
        r.rss_nats as f64 / n as f64,
        r.rss_cp as f64 / n as f64
    );
    if n >= 10_000 {
        println!(
            "issue 18: broker + control plane at {n} agents {mem_mib:.0} MiB vs < 1 GB: {}",
            verdict(mem_mib * 1024.0 * 1024.0 < 1e9)
        );
    }
}
