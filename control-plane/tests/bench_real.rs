//! `just bench`, real hosts: N real `drover-agent` + `drover-rootd` process
//! pairs (default 100; `DROVER_BENCH_REAL_HOSTS`), each with its own
//! directory, rootd socket and state, against one nats-server and one
//! `drover serve` (SQLite). Ignored by `just test`; run with
//! `cargo test --release -p control-plane --test bench_real -- --ignored --nocapture`.
//!
//! Prints, each with its target and "met"/"NOT met":
//! - enrolment: from starting the N pairs to all N online (no target);
//! - `sys.ping` fan-out to 10, 50 and N hosts, median and worst of
//!   `DROVER_BENCH_RUNS` (default 5) runs, submit → every result stored
//!   (one `?wait=` long poll); targets at 50 < 35 ms and at 100 < 60 ms;
//! - idle CPU of the whole fleet (agents + rootds, utime + stime from
//!   `/proc/<pid>/stat`) over `DROVER_BENCH_REAL_IDLE_SECS` (default 30) with
//!   the default 30 s heartbeat, as a percentage of two cores, once every
//!   daemon has logged "start-up pages released"; target < 0.5 %;
//! - RSS and PSS per process (`/proc/<pid>/smaps_rollup`), median and max
//!   over the fleet; targets agent RSS < 8 MB, rootd RSS < 4 MB.
//!
//! rootd runs as the test's user, with `agent_uid` set to it (the tests run
//! as root in CI), exactly as `common/host.rs` starts one host. It does not
//! own the single-node simulator bench (`bench.rs`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, cpu_secs, wait_for, wait_id_file, HostSpec, Proc, Stack};
use serde_json::json;

/// (RSS, PSS) of a process in KiB, from `/proc/<pid>/smaps_rollup`.
fn rss_pss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

fn median_max(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    (v[v.len() / 2], *v.last().unwrap())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One host's processes, started without waiting (the fleet starts at once).
struct Pair {
    agent: Proc,
    rootd: Proc,
    id_file: std::path::PathBuf,
}

fn start_pair(stack: &Stack, i: usize, token: &str) -> Pair {
    let spec = HostSpec::new(
        stack.tmp.path().join(format!("h{i:03}")),
        stack.nats.url(),
        stack.control_plane_key(),
        token,
        stack.data_dir.join("enroll.creds"),
    );
    let dir = spec.dir.clone();
    let (rootd_toml, agent_toml) = spec.write_files();
    // The harness's 1 s heartbeat is for tests; the fleet runs the default.
    let text = std::fs::read_to_string(&agent_toml).unwrap();
    std::fs::write(&agent_toml, text.replace("heartbeat_secs = 1\n", "")).unwrap();
    let mut rc = Command::new(bin("drover-rootd"));
    rc.arg("--config").arg(&rootd_toml);
    let rootd = Proc::spawn("drover-rootd", rc, dir.join("rootd.log"));
    let mut ac = Command::new(bin("drover-agent"));
    ac.arg("--config").arg(&agent_toml).arg("run");
    let agent = Proc::spawn("drover-agent", ac, dir.join("agent.log"));
    Pair {
        agent,
        rootd,
        id_file: dir.join("agent").join("agent.id"),
    }
}

/// Submits a `sys.ping` job to `ids` and returns seconds until every result
/// is stored, or panics when not all succeeded.
async fn fan_out(stack: &Stack, ids: &[String], tag: &str) -> f64 {
    let start = Instant::now();
    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"agents": ids}, "action": "sys.ping", "idempotency_key": tag}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let (_, done) = stack.get(&format!("/jobs/{id}?wait=120")).await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(done["done"], true, "job {id} not done after 120 s: {done}");
    assert_eq!(
        done["counts"]["succeeded"].as_u64(),
        Some(ids.len() as u64),
        "{done}"
    );
    secs
}

#[tokio::test]
#[ignore = "benchmark: run by `just bench`"]
async fn real_hosts_benchmark() {
    let n = env_num("DROVER_BENCH_REAL_HOSTS", 100) as usize;
    let runs = env_num("DROVER_BENCH_RUNS", 5) as usize;
    let idle_secs = env_num("DROVER_BENCH_REAL_IDLE_SECS", 30);
    let stack = Stack::start().await;
    let token = stack.token(n as i32 + 10, "2h", true).await;

    // Enrolment: all pairs started at once, timed until all are online.
    let t0 = Instant::now();
    let pairs: Vec<Pair> = (0..n).map(|i| start_pair(&stack, i, &token)).collect();
    let mut ids = Vec::with_capacity(n);
    for p in &pairs {
        ids.push(wait_id_file("an agent's id", &p.id_file).await);
    }
    stack
        .wait_online_count("every real agent online", n, Duration::from_secs(300))
        .await;
    let enrol = t0.elapsed().as_secs_f64();
    println!("[real {n}] enrolment of {n} agent + rootd pairs: {enrol:.2}s (no target)");

    // Fan-out at 10, 50 and n hosts; one warm-up run to all first (the
    // first command to a fresh agent creates its consumer state).
    fan_out(&stack, &ids, "warm-up").await;
    let mut sizes: Vec<usize> = [10, 50, n].into_iter().filter(|&k| k <= n).collect();
    sizes.dedup();
    for k in sizes {
        let mut t: Vec<f64> = Vec::with_capacity(runs);
        for r in 0..runs {
            t.push(fan_out(&stack, &ids[..k], &format!("real-{k}-{r}")).await * 1000.0);
        }
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (median, worst) = (t[t.len() / 2], t[t.len() - 1]);
        let target = match k {
            50 => Some(35.0),
            100 => Some(60.0),
            _ => None,
        };
        let judged = target
            .map(|ms| format!("target < {ms} ms: {}", verdict(median < ms)))
            .unwrap_or_else(|| "no target".into());
        println!(
            "[real {n}] sys.ping fan-out to {k}: median {median:.1} ms, worst {worst:.1} ms over {runs} runs ({judged})"
        );
    }

    // Idle: let the fan-outs' effects settle (every command final, shown as
    // such), then measure a window of the default heartbeat.
    wait_for(
        "no command left running",
        Duration::from_secs(60),
        || async {
            let (code, v) = stack.get("/operations").await;
            (code == 200 && v["operations"].as_array().is_some_and(|a| a.is_empty())).then_some(())
        },
    )
    .await;
    // Idle means after start-up: each daemon lets go of its start-up pages
    // 10 s after starting (`bus_schema::resident`), and says so.
    wait_for(
        "every agent and rootd past start-up (\"start-up pages released\")",
        Duration::from_secs(60),
        || async {
            pairs
                .iter()
                .all(|p| {
                    [&p.agent, &p.rootd]
                        .iter()
                        .all(|d| d.log_text().contains("start-up pages released"))
                })
                .then_some(())
        },
    )
    .await;
    let pids: Vec<u32> = pairs
        .iter()
        .flat_map(|p| [p.agent.pid(), p.rootd.pid()])
        .collect();
    let before: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    let window = Instant::now();
    // A measurement window, not a synchronisation: nothing waits on it.
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let spent: f64 = pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - before;
    let pct = spent / (window.elapsed().as_secs_f64() * 2.0) * 100.0;
    println!(
        "[real {n}] idle fleet CPU over {idle_secs}s: {spent:.2} CPU-s, {pct:.3} % of two cores (target < 0.5 % at 100: {})",
        verdict(pct < 0.5)
    );

    // Memory, per process, after enrolment and a few commands.
    let agents: Vec<(u64, u64)> = pairs.iter().map(|p| rss_pss_kib(p.agent.pid())).collect();
    let rootds: Vec<(u64, u64)> = pairs.iter().map(|p| rss_pss_kib(p.rootd.pid())).collect();
    for (name, v, target_kib) in [("agent", agents, 8 * 1024), ("rootd", rootds, 4 * 1024)] {
        let (rss_med, rss_max) = median_max(v.iter().map(|x| x.0).collect());
        let (pss_med, pss_max) = median_max(v.iter().map(|x| x.1).collect());
        println!(
            "[real {n}] {name} RSS median {:.2} MiB, max {:.2} MiB; PSS median {:.2} MiB, max {:.2} MiB (target RSS < {} MB: {})",
            rss_med as f64 / 1024.0,
            rss_max as f64 / 1024.0,
            pss_med as f64 / 1024.0,
            pss_max as f64 / 1024.0,
            target_kib / 1024,
            verdict(rss_med < target_kib)
        );
    }
}
