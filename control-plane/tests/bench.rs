//! `just bench`: fleet-scale numbers with real processes. Ignored by `just
//! test` (it takes minutes); run with
//! `cargo test --release -p control-plane --test bench -- --ignored --nocapture`.
//! `DROVER_BENCH_SIZES=100,1000` picks the fleet sizes (default
//! 100,1000,10000), `DROVER_BENCH_RUNS` the fan-out repetitions (default 3).
//!
//! For each size N it starts a fresh stack (nats-server in operator mode,
//! `drover serve`, one real agent + rootd) and N virtual agents
//! (`drover-agent simulate`), then measures:
//! - fan-out: time from submitting a `sys.ping` job to every result stored
//!   (median and worst of the runs);
//! - single-command latency to the real agent, p50/p99 (create → result
//!   stored, through the API's `?wait`);
//! - heartbeat ingest: heartbeats/s from publish to committed in SQLite;
//! - RSS of nats-server, the control plane, the real agent and rootd.
//!
//! `rollout_benchmark` (also run by `just bench`) rolls one release out to
//! `DROVER_BENCH_ROLLOUT_AGENTS` (default 1000) simulated agents that fake
//! the install (canary 10, waves 25%,100%, no pause) and prints the time
//! from start to done and the broker's load meanwhile: messages and bytes
//! in and out from the server's `VARZ` (asked over `$SYS` with the system
//! account's credentials), before and after, and each process's CPU.

mod bench_targets;
mod common;

use std::time::{Duration, Instant};

use bench_targets::{issue18_targets, median, signatures_ms_per_command, Row};
use common::{
    cpu_secs, open_files_limit, percentile as pct, rss_kib, wait_for, Stack, OPEN_FILES_MARGIN,
};
use serde_json::json;

/// How many agents the API counts online (`total` of a one-row page).
async fn online_total(stack: &Stack) -> usize {
    let (_, v) = stack.get("/agents?status=online&per_page=1").await;
    v["total"].as_u64().unwrap_or(0) as usize
}

async fn one_size(n: usize, runs: usize) -> Row {
    let stack = Stack::start().await;
    let host = stack.start_host("real").await;

    // The virtual fleet.
    let token = stack.token(n as i32 + 10, "2h", true).await;
    let ids_file = stack.tmp.path().join("sim-ids");
    let extra = [std::ffi::OsStr::new("--ids-file"), ids_file.as_os_str()];
    let sim = stack.spawn_simulate(n, &token, 30, &extra, "simulate.log");
    let t0 = Instant::now();
    let budget = Duration::from_secs(120 + n as u64 / 20);
    wait_for("the virtual fleet to be ready", budget, || async {
        sim.log_text().contains("ready ").then_some(())
    })
    .await;
    let enrolled_s = t0.elapsed().as_secs_f64();
    // Counted by the API (one COUNT), not by listing every agent: at 10,000
    // a full listing every 50 ms was a load of its own on the control plane.
    wait_for("every virtual agent online", budget, || async {
        (online_total(&stack).await > n).then_some(())
    })
    .await;
    let bringup_s = t0.elapsed().as_secs_f64();
    eprintln!("[{n}] fleet up in {bringup_s:.1}s (enrolled and connected at {enrolled_s:.1}s)");

    // Fan-out.
    let mut times = Vec::new();
    let mut split_ms: [Vec<f64>; 3] = Default::default();
    for r in 0..runs {
        let procs = [
            ("nats-server", stack.nats.proc.pid()),
            ("control plane", stack.cp.pid()),
            ("simulated agents", sim.pid()),
        ];
        let cpu_before: Vec<f64> = procs.iter().map(|(_, p)| cpu_secs(*p)).collect();
        let start = Instant::now();
        let (code, job) = stack
            .post("/jobs", &json!({"selector": {"all": true}, "action": "sys.ping", "idempotency_key": format!("bench-{n}-{r}")}))
            .await;
        assert_eq!(code, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        // One long poll: the observer costs the control plane nothing while
        // the fan-out runs (polling the job view would).
        let (_, done) = stack.get(&format!("/jobs/{id}?wait=300")).await;
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(done["done"], true, "job {id} not done after 300 s: {done}");
        let ok = done["counts"]["succeeded"].as_u64().unwrap() as usize;
        eprintln!(
            "[{n}] fan-out run {r}: {secs:.3}s, {ok}/{} succeeded",
            n + 1
        );
        // Where the time went: CPU seconds per process during the run.
        let cpu: Vec<String> = procs
            .iter()
            .zip(&cpu_before)
            .map(|((name, pid), before)| format!("{name} {:.2}s", cpu_secs(*pid) - before))
            .collect();
        eprintln!("[{n}] fan-out run {r}: CPU {}", cpu.join(", "));
        let per_cmd: Vec<f64> = procs
            .iter()
            .zip(&cpu_before)
            .map(|((_, pid), before)| (cpu_secs(*pid) - before) * 1000.0 / (n + 1) as f64)
            .collect();
        eprintln!(
            "[{n}] fan-out run {r}: broker CPU {:.3} ms per command, all three {:.3} ms",
            per_cmd[0],
            per_cmd.iter().sum::<f64>()
        );
        for (all, one) in split_ms.iter_mut().zip(&per_cmd) {
            all.push(*one);
        }
        if ok != n + 1 {
            // Say why, then go on measuring: a benchmark reports, it does not hide.
            let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
            let mut why: std::collections::BTreeMap<String, usize> = Default::default();
            for h in hosts["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["status"] != "succeeded")
            {
                *why.entry(format!("{}: {}", h["status"], h["summary"]))
                    .or_default() += 1;
            }
            eprintln!("[{n}] fan-out run {r}: not succeeded: {why:#?}");
        }
        times.push(secs);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Single-command latency to the real agent.
    let mut lat = Vec::new();
    let mut failed_singles = 0usize;
    for _ in 0..200 {
        let start = Instant::now();
        let (code, c) = stack
            .post(
                &format!("/agents/{}/commands?wait=5", host.id),
                &json!({"action": "sys.ping"}),
            )
            .await;
        if code == 201 && c["status"] == "succeeded" {
            lat.push(start.elapsed().as_secs_f64() * 1000.0);
        } else {
            // Reported, not hidden: a saturated broker refuses or times out.
            failed_singles += 1;
            eprintln!("[{n}] single command failed: HTTP {code} {c}");
        }
    }
    if failed_singles > 0 {
        eprintln!("[{n}] {failed_singles} of 200 single commands failed");
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Heartbeat ingest: a burst on the virtual agents' subjects, timed until
    // the control plane's consumer has committed and acked all of it.
    let ids: Vec<String> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let nc = stack.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let hb_consumer = js
        .get_stream(bus_schema::subjects::HB_STREAM)
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
            bus_schema::subjects::CP_HB_CONSUMER,
        )
        .await
        .unwrap();
    let burst = 50_000usize;
    // Where the ingest's time goes: CPU seconds per process (the publisher
    // is this test process).
    let ingest_procs = [
        ("nats-server", stack.nats.proc.pid()),
        ("control plane", stack.cp.pid()),
        ("publisher", std::process::id()),
    ];
    let ingest_cpu0: Vec<f64> = ingest_procs.iter().map(|(_, p)| cpu_secs(*p)).collect();
    let start = Instant::now();
    let mut acks = Vec::with_capacity(1000);
    for i in 0..burst {
        let id = &ids[i % ids.len()];
        let hb = bus_schema::Heartbeat {
            agent_id: id.clone(),
            hostname: format!("sim-burst-{}", i % ids.len()),
            seq: 1_000 + i as u64,
            sent_at: bus_schema::now_ms(),
            interval_secs: 30,
            agent_version: "bench".into(),
            agent_channel: String::new(),
            os: "simulated".into(),
            kernel: "sim".into(),
            metrics: Default::default(),
            modules: vec!["sys".into()],
            operations: vec![],
            rootd_error: None,
            instance_id: String::new(),
            machine_id: String::new(),
            boot_id: String::new(),
            protocol_version: bus_schema::signing::PROTOCOL_VERSION,
            watch_revision: String::new(),
            services: vec![],
            services_full: false,
            key_fingerprints: None,
            rootd_box_key: None,
        };
        acks.push(
            js.publish(
                bus_schema::subjects::heartbeat(id),
                bus_schema::encode(&hb).into(),
            )
            .await
            .unwrap(),
        );
        if acks.len() == 1000 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    wait_for("heartbeats ingested", Duration::from_secs(300), || {
        let mut c = hb_consumer.clone();
        async move {
            let info = c.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        }
    })
    .await;
    let ingest = burst as f64 / start.elapsed().as_secs_f64();
    let ingest_cpu: Vec<String> = ingest_procs
        .iter()
        .zip(&ingest_cpu0)
        .map(|((name, pid), before)| format!("{name} {:.2}s", cpu_secs(*pid) - before))
        .collect();
    eprintln!(
        "[{n}] heartbeat ingest of {burst}: {:.2}s, CPU {}",
        start.elapsed().as_secs_f64(),
        ingest_cpu.join(", ")
    );

    // Let the agent settle, then memory.
    let row = Row {
        n,
        fanout_median: pct(&times, 0.5),
        fanout_worst: *times.last().unwrap(),
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        ingest_per_s: ingest,
        rss_nats: rss_kib(stack.nats.proc.pid()),
        rss_cp: rss_kib(stack.cp.pid()),
        rss_agent: {
            // Where the agent's memory is: its own (anon) or mapped binary (file).
            let status = std::fs::read_to_string(format!("/proc/{}/status", host.agent.pid()))
                .unwrap_or_default();
            let pick = |k: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(k))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
                    .unwrap_or_default()
            };
            eprintln!(
                "[{n}] agent RSS: anon {} KiB, file {} KiB, threads {}",
                pick("RssAnon:"),
                pick("RssFile:"),
                pick("Threads:")
            );
            rss_kib(host.agent.pid())
        },
        rss_rootd: rss_kib(host.rootd.pid()),
        bringup_s,
        cpu_ms_per_cmd_split: split_ms.map(median),
    };
    drop(sim);
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with `just bench`"]
async fn fleet_benchmark() {
    let sizes: Vec<usize> = std::env::var("DROVER_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("DROVER_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rows = Vec::new();
    let limit = open_files_limit();
    let signatures_ms = signatures_ms_per_command();
    for n in sizes {
        // The simulator holds a socket per virtual agent and inherits this
        // process's limit; nats-server (which raises its own soft limit to
        // the hard one) holds as many. A fleet past it fails half-way in.
        if let Some(limit) = limit.filter(|l| (n as u64) + OPEN_FILES_MARGIN > *l) {
            println!(
                "{n} agents: skipped, the simulator and nats-server would each need more than \
                 the {limit} open files this process may hand its children (`ulimit -n`, at \
                 most `ulimit -Hn`); bench_cluster spreads larger fleets over three brokers"
            );
            continue;
        }
        rows.push(one_size(n, runs).await);
    }
    println!();
    println!("| agents | fan-out median | fan-out worst | single p50 | single p99 | heartbeats/s | RSS nats-server | RSS control plane | RSS agent | RSS rootd |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.3} s | {:.3} s | {:.1} ms | {:.1} ms | {:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            r.n,
            r.fanout_median,
            r.fanout_worst,
            r.p50_ms,
            r.p99_ms,
            r.ingest_per_s,
            r.rss_nats as f64 / 1024.0,
            r.rss_cp as f64 / 1024.0,
            r.rss_agent as f64 / 1024.0,
            r.rss_rootd as f64 / 1024.0
        );
    }
    println!();
    for r in &rows {
        issue18_targets(r, signatures_ms);
    }
    println!();
    for r in &rows {
        let target = match r.n {
            n if n <= 1000 => Some(1.0),
            n if n <= 10_000 => Some(5.0),
            _ => None,
        };
        if let Some(t) = target {
            println!(
                "fan-out {} agents: worst {:.3}s vs target {t}s: {}",
                r.n,
                r.fanout_worst,
                if r.fanout_worst < t { "met" } else { "MISSED" }
            );
        }
        println!(
            "single command p99 {:.1} ms vs 25 ms: {}",
            r.p99_ms,
            if r.p99_ms < 25.0 { "met" } else { "MISSED" }
        );
        println!(
            "heartbeat ingest {:.0}/s vs 10000/s: {}",
            r.ingest_per_s,
            if r.ingest_per_s >= 10_000.0 {
                "met"
            } else {
                "MISSED"
            }
        );
        println!(
            "agent RSS {:.1} MiB vs 10 MiB: {}",
            r.rss_agent as f64 / 1024.0,
            if r.rss_agent <= 10 * 1024 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

/// The broker's message and byte counters (`$SYS.REQ.SERVER.PING.VARZ`).
async fn varz(stack: &Stack) -> serde_json::Value {
    let opts = async_nats::ConnectOptions::with_credentials_file(stack.data_dir.join("sys.creds"))
        .await
        .unwrap();
    let c = opts.connect(stack.nats.url()).await.unwrap();
    let m = c
        .request("$SYS.REQ.SERVER.PING.VARZ", "{}".into())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with `just bench`"]
async fn rollout_benchmark() {
    let n: usize = std::env::var("DROVER_BENCH_ROLLOUT_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut stack = Stack::start().await;
    common::pin_test_release_key(&mut stack).await;
    let token = stack.token(n as i32 + 10, "2h", true).await;
    // The simulated install waits for the control plane's self-test, as a
    // real one does: the bench includes the update_proofs duty's work.
    let extra = [
        std::ffi::OsStr::new("--agent-version"),
        std::ffi::OsStr::new(common::SIM_FROM_VERSION),
        std::ffi::OsStr::new("--selftest-wait-secs"),
        std::ffi::OsStr::new("120"),
    ];
    let sim = stack.spawn_simulate(n, &token, 30, &extra, "simulate.log");
    let budget = Duration::from_secs(120 + n as u64 / 20);
    wait_for("the virtual fleet to be ready", budget, || async {
        sim.log_text().contains("ready ").then_some(())
    })
    .await;
    wait_for("every virtual agent online", budget, || async {
        (stack.online_count().await >= n).then_some(())
    })
    .await;
    common::insert_release(&stack, "2.0.0").await;
    let procs = [
        ("nats-server", stack.nats.proc.pid()),
        ("control plane", stack.cp.pid()),
        ("simulated agents", sim.pid()),
    ];
    let cpu_before: Vec<f64> = procs.iter().map(|(_, p)| cpu_secs(*p)).collect();
    let before = varz(&stack).await;
    let start = Instant::now();
    let (code, r) = stack
        .post(
            "/rollouts",
            &json!({"version": "2.0.0", "selector": "all", "canary": "10",
                    "waves": "25%,100%", "pause": "0", "max_failures": "1%"}),
        )
        .await;
    assert_eq!(code, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let canary_at = std::cell::Cell::new(None);
    let wave1_at = std::cell::Cell::new(None);
    let done = wait_for("the rollout to end", Duration::from_secs(1800), || async {
        let (_, v) = stack.get("/rollouts").await;
        let r = v["rollouts"]
            .as_array()?
            .iter()
            .find(|r| r["id"] == id)?
            .clone();
        let w = r["current_wave"].as_i64().unwrap_or(0);
        if w >= 1 && canary_at.get().is_none() {
            canary_at.set(Some(start.elapsed().as_secs_f64()));
        }
        if w >= 2 && wave1_at.get().is_none() {
            wave1_at.set(Some(start.elapsed().as_secs_f64()));
        }
        ["done", "halted", "aborted"]
            .contains(&r["state"].as_str()?)
            .then_some(r)
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    let after = varz(&stack).await;
    let cpu: Vec<String> = procs
        .iter()
        .zip(&cpu_before)
        .map(|((name, pid), b)| format!("{name} {:.1}s", cpu_secs(*pid) - b))
        .collect();
    let d = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    println!();
    println!(
        "rollout to {n} simulated agents: {} in {secs:.1} s (canary through at {:.1} s, wave 1 at {:.1} s); hosts {}",
        done["state"],
        canary_at.get().unwrap_or(f64::NAN),
        wave1_at.get().unwrap_or(f64::NAN),
        done["counts"]
    );
    println!(
        "broker while it ran: {} msgs in ({:.0}/s), {} msgs out ({:.0}/s), {:.1} MiB in, {:.1} MiB out",
        d("in_msgs"),
        d("in_msgs") as f64 / secs,
        d("out_msgs"),
        d("out_msgs") as f64 / secs,
        d("in_bytes") as f64 / 1048576.0,
        d("out_bytes") as f64 / 1048576.0,
    );
    println!("CPU while it ran: {}", cpu.join(", "));
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["healthy"].as_u64(), Some(n as u64), "{done}");
    drop(sim);
}
