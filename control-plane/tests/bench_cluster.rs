//! `just bench`: the command path on a three-node JetStream cluster (issue
//! 18, deliverable 2), to decide the per-agent consumers' layout with
//! numbers. Ignored by `just test`; run with
//! `cargo test --release -p control-plane --test bench_cluster -- --ignored --nocapture`
//! after `ulimit -n "$(ulimit -Hn)"` (as `just bench` does: each virtual
//! agent is a connection).
//! `DROVER_BENCH_CLUSTER_SIZES` picks the fleet sizes (default
//! 1000,10000,20000), `DROVER_BENCH_CLUSTER_LAYOUTS` the agent consumers'
//! replicas (default 1,3), `DROVER_BENCH_RUNS` the fan-out repetitions
//! (default 3). Layouts above R1 are skipped (and the table says so) for
//! fleets larger than `DROVER_BENCH_CLUSTER_R3_MAX` (default 2,000): R3 is
//! for fleets up to about 2,000 agents (`docs/cluster.md`), and at 10,000
//! its fleet did not come up within 9.5 minutes.
//!
//! For each layout and size: three nats-server nodes from `drover
//! broker-config`, one `drover serve` with every stateful stream R3 and
//! `agent_consumer_replicas` set to the layout, N virtual agents given all
//! three URLs (`drover-agent simulate`, one process per 10,000 agents or
//! fewer: a process may hold only so many open files), then:
//! - bring-up: simulator start to every agent online;
//! - fan-out: a `sys.ping` job to every agent, submit to all results
//!   stored (median and worst of the runs);
//! - broker CPU per command: the three nats-server processes' CPU time
//!   during a run, summed, over N (median of the runs);
//! - RSS of each node and of the control plane after the runs.
//!
//! The verdicts compare with the single-node targets of `bench.rs` (1,000
//! agents under 0.2 s, 10,000 under 2 s): the cluster has no target of its
//! own; the numbers and the decision are in `docs/cluster.md`. Owns the
//! cluster's measurement only; the single node is `bench.rs`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    bin, cpu_secs, open_files_limit, percentile, repo_manifests, rss_kib, wait_for, Cluster,
    ClusterReplica, Proc, OPEN_FILES_MARGIN,
};
use serde_json::json;

struct Row {
    replicas: usize,
    n: usize,
    bringup_s: f64,
    median_s: f64,
    worst_s: f64,
    broker_cpu_ms_per_cmd: f64,
    rss_nodes_kib: Vec<u64>,
    rss_cp_kib: u64,
    all_succeeded: bool,
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The first number of `name`'s list, or `default`.
fn env_one(name: &str, default: usize) -> usize {
    env_list(name, &default.to_string())
        .first()
        .copied()
        .unwrap_or(default)
}

/// Most virtual agents one simulator process runs: each is a connection,
/// and one process may hold at most `ulimit -n` open files (20,000 at most
/// on this machine), so larger fleets are split over several processes,
/// each with its own host-name prefix. Fewer when this process's limit is
/// lower (a simulator inherits it), leaving [`OPEN_FILES_MARGIN`] for the rest.
fn agents_per_simulator() -> usize {
    let by_limit =
        open_files_limit().map_or(usize::MAX, |l| l.saturating_sub(OPEN_FILES_MARGIN) as usize);
    by_limit.clamp(100, 10_000)
}

fn simulate(data_dir: &Path, urls: &str, token: &str, n: usize, prefix: &str, log: &Path) -> Proc {
    let mut cmd = Command::new(bin("drover-agent"));
    cmd.args(["simulate", "--count", &n.to_string(), "--nats-url", urls])
        .args(["--prefix", prefix])
        .args(["--heartbeat-secs", "30"])
        .arg("--enroll-creds")
        .arg(data_dir.join("enroll.creds"))
        .env("DROVER_SIM_TOKEN", token);
    Proc::spawn("drover-agent simulate", cmd, log.to_path_buf())
}

async fn one(replicas: usize, n: usize, runs: usize) -> Row {
    let tmp = tempfile::Builder::new()
        .prefix("drover-bench-cluster-")
        .disable_cleanup(std::env::var_os("DROVER_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let data = tmp.path().join("cp");
    let init = Command::new(bin("drover"))
        .args(["init", "--no-tls"])
        .env("DROVER_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "drover init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::os::unix::fs::symlink(repo_manifests(), data.join("manifests")).unwrap();
    let cluster = Cluster::start(&data, &tmp.path().join("nats")).await;
    let urls = cluster.urls();
    let r = replicas.to_string();
    let cp = ClusterReplica::spawn(
        &data,
        &urls,
        &[("DROVER_AGENT_CONSUMER_REPLICAS", r.as_str())],
    );
    cp.wait_ready().await;
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let (code, reg) = cp
        .post(
            &token,
            "/tokens",
            &json!({"uses": n, "expires": "2h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201, "{reg}");
    let reg = reg["token"].as_str().unwrap().to_string();

    let t0 = Instant::now();
    let parts = n.div_ceil(agents_per_simulator());
    let sims: Vec<Proc> = (0..parts)
        .map(|j| {
            let count = n / parts + usize::from(j < n % parts);
            let log = tmp.path().join(format!("simulate-{j}.log"));
            simulate(&data, &urls, &reg, count, &format!("sim{j}"), &log)
        })
        .collect();
    let budget = Duration::from_secs(180 + n as u64 / 10);
    wait_for("the virtual fleet to be ready", budget, || async {
        sims.iter()
            .all(|s| s.log_text().contains("ready "))
            .then_some(())
    })
    .await;
    // Counted by the API (one COUNT), not by listing every agent.
    wait_for("every virtual agent online", budget, || async {
        let (_, v) = cp.get(&token, "/agents?status=online&per_page=1").await;
        (v["total"].as_u64() == Some(n as u64)).then_some(())
    })
    .await;
    let bringup_s = t0.elapsed().as_secs_f64();
    eprintln!("[R{replicas} {n}] fleet up in {bringup_s:.1} s");

    let nodes: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|x| x.proc.as_ref().unwrap().pid())
        .collect();
    let mut times = Vec::new();
    let mut cpu_ms = Vec::new();
    let mut all_succeeded = true;
    for run in 0..runs {
        let before: f64 = nodes.iter().map(|p| cpu_secs(*p)).sum();
        let start = Instant::now();
        let (code, job) = cp
            .post(
                &token,
                "/jobs",
                &json!({"selector": {"all": true}, "action": "sys.ping", "idempotency_key": format!("bench-cluster-{replicas}-{n}-{run}")}),
            )
            .await;
        assert_eq!(code, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        // One long poll: the observer costs nothing while the job runs.
        let (_, done) = cp.get(&token, &format!("/jobs/{id}?wait=300")).await;
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(done["done"], true, "job {id} not done after 300 s: {done}");
        let per_cmd =
            (nodes.iter().map(|p| cpu_secs(*p)).sum::<f64>() - before) * 1000.0 / n as f64;
        let ok = done["counts"]["succeeded"].as_u64().unwrap_or(0) as usize;
        all_succeeded &= ok == n;
        eprintln!(
            "[R{replicas} {n}] fan-out run {run}: {secs:.3} s, {ok}/{n} succeeded, broker CPU {per_cmd:.3} ms per command"
        );
        times.push(secs);
        cpu_ms.push(per_cmd);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let row = Row {
        replicas,
        n,
        bringup_s,
        median_s: percentile(&times, 0.5),
        worst_s: *times.last().unwrap(),
        broker_cpu_ms_per_cmd: percentile(&cpu_ms, 0.5),
        rss_nodes_kib: nodes.iter().map(|p| rss_kib(*p)).collect(),
        rss_cp_kib: rss_kib(cp.proc.pid()),
        all_succeeded,
    };
    drop(sims);
    drop(cp);
    drop(cluster);
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with `just bench`"]
async fn cluster_benchmark() {
    let sizes = env_list("DROVER_BENCH_CLUSTER_SIZES", "1000,10000,20000");
    let layouts = env_list("DROVER_BENCH_CLUSTER_LAYOUTS", "1,3");
    let r3_max = env_one("DROVER_BENCH_CLUSTER_R3_MAX", 2000);
    let runs = env_one("DROVER_BENCH_RUNS", 3).max(1);
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &n in &sizes {
        for &r in &layouts {
            if r > 1 && n > r3_max {
                skipped.push(format!("R{r} {n}"));
                continue;
            }
            rows.push(one(r, n, runs).await);
        }
    }
    println!();
    println!("Three-node cluster, streams R3 (sum of the three nats-server processes):");
    println!("| agent consumers | agents | bring-up | fan-out median | fan-out worst | broker CPU per command | RSS per node | RSS control plane | all succeeded |");
    println!("|---|---:|---:|---:|---:|---:|---|---:|---|");
    for r in &rows {
        let nodes: Vec<String> = r
            .rss_nodes_kib
            .iter()
            .map(|k| format!("{:.0}", *k as f64 / 1024.0))
            .collect();
        println!(
            "| R{} memory | {} | {:.1} s | {:.3} s | {:.3} s | {:.3} ms | {} MiB | {:.0} MiB | {} |",
            r.replicas,
            r.n,
            r.bringup_s,
            r.median_s,
            r.worst_s,
            r.broker_cpu_ms_per_cmd,
            nodes.join(" / "),
            r.rss_cp_kib as f64 / 1024.0,
            r.all_succeeded
        );
    }
    for what in &skipped {
        println!(
            "{what} agents: skipped, past the ~2,000 replicated assets per server the R3 \
             layout is for (docs/cluster.md); raise DROVER_BENCH_CLUSTER_R3_MAX \
             (now {r3_max}) to run it"
        );
    }
    println!();
    for r in &rows {
        let target = match r.n {
            1000 => Some(0.2),
            10_000 => Some(2.0),
            _ => None,
        };
        if let Some(t) = target {
            println!(
                "cluster R{} {} agents: fan-out median {:.3} s against the single node's target {t} s: {}",
                r.replicas,
                r.n,
                r.median_s,
                if r.median_s < t { "met" } else { "NOT met" }
            );
        }
    }
}
