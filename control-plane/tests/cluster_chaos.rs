//! Chaos on a three-node JetStream cluster (issue 18, deliverable 4), real
//! processes on loopback: three nats-server nodes routed together (configs
//! from `drover broker-config`), two `drover serve` replicas on one
//! PostgreSQL database with every stateful stream R3, and 1,000 virtual
//! agents with on-disk identities and journals that know all three broker
//! URLs, each with its command consumer R3 in memory (the default layout
//! on a cluster, `docs/cluster.md`). The fleet is held (SIGSTOP) while a 1,000-command
//! `sys.ping` job is submitted, then: `kill -9` one broker node with the
//! whole job in flight, `kill -9` the replica that holds the duties lease,
//! release the fleet, `kill -9` the agents once the first commands have run;
//! when the lease has moved, the node and the agents (same identities)
//! come back. Every command must end in exactly one final
//! state, none lost, none run twice (counted effects, as `chaos.rs`), and
//! the lease must move to the surviving replica; the test prints how long
//! that took.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    bin, free_port, nats_server_bin, repo_manifests, set_test_database_url, sh, wait_for, Cluster,
    ClusterReplica, Postgres, Proc,
};
use serde_json::json;

const AGENTS: usize = 1000;
/// The duties lease's TTL in this test: the bound on its failover.
const LEASE_TTL_SECS: u64 = 5;

fn simulate(data_dir: &Path, urls: &str, token: &str, state: &Path, log: &Path) -> Proc {
    let mut cmd = Command::new(bin("drover-agent"));
    cmd.args([
        "simulate",
        "--count",
        &AGENTS.to_string(),
        "--nats-url",
        urls,
    ])
    .args(["--heartbeat-secs", "2"])
    .arg("--enroll-creds")
    .arg(data_dir.join("enroll.creds"))
    .arg("--state-dir")
    .arg(state)
    .env("DROVER_SIM_TOKEN", token);
    Proc::spawn("drover-agent simulate", cmd, log.to_path_buf())
}

/// Every virtual agent's executions (the effect the simulator records, one
/// line per run): command id → runs.
fn executions(state: &Path) -> HashMap<String, usize> {
    let mut runs: HashMap<String, usize> = HashMap::new();
    let Ok(dir) = std::fs::read_dir(state) else {
        return runs;
    };
    for entry in dir.flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("executions")) {
            for line in text.lines().filter(|l| !l.is_empty()) {
                *runs.entry(line.to_string()).or_default() += 1;
            }
        }
    }
    runs
}

/// Sends `SIG<sig>` to `p` (STOP and CONT hold and release the fleet).
fn signal(p: &Proc, sig: &str) {
    let out = sh(&["kill", &format!("-{sig}"), &p.pid().to_string()]);
    assert!(out.status.success(), "kill -{sig}: {out:?}");
}

/// The pid the lease bucket names as the duties holder, if any.
async fn lease_holder_pid(js: &async_nats::jetstream::Context) -> Option<u32> {
    let store = js.get_key_value(control_plane::lease::BUCKET).await.ok()?;
    control_plane::lease::current(&store, control_plane::lease::DUTIES_KEY)
        .await
        .ok()?
        .map(|h| h.pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_survive_a_broker_node_the_lease_holder_and_the_agents() {
    let tmp = tempfile::Builder::new()
        .prefix("drover-cluster-")
        .disable_cleanup(std::env::var_os("DROVER_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let data1 = tmp.path().join("cp1");
    let pg = Postgres::start().await;
    set_test_database_url(&data1, &pg.url);
    let init = Command::new(bin("drover"))
        .args(["init", "--no-tls"])
        .env("DROVER_DATA_DIR", &data1)
        .env("DROVER_DATABASE_URL", &pg.url)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "drover init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::os::unix::fs::symlink(repo_manifests(), data1.join("manifests")).unwrap();
    let mut cluster = Cluster::start(&data1, &tmp.path().join("nats")).await;
    let urls = cluster.urls();
    // The second replica: a copy of the data directory (keys, credentials),
    // the same database.
    let data2 = tmp.path().join("cp2");
    let cp = sh(&["cp", "-a", data1.to_str().unwrap(), data2.to_str().unwrap()]);
    assert!(cp.status.success(), "{cp:?}");
    let ttl = LEASE_TTL_SECS.to_string();
    let env = [("DROVER_LEASE_TTL_SECS", ttl.as_str())];
    // One replica, then the other once it is ready (a rolling start; two
    // replicas creating the same streams at the same moment on a fresh
    // cluster wait for nats-server's timeouts, see `docs/cluster.md`).
    let started = Instant::now();
    let first = ClusterReplica::spawn(&data1, &urls, &env);
    first.wait_ready().await;
    let second = ClusterReplica::spawn(&data2, &urls, &env);
    second.wait_ready().await;
    eprintln!(
        "both replicas ready {:.1} s after the first started",
        started.elapsed().as_secs_f64()
    );
    let mut replicas = vec![first, second];
    let token = std::fs::read_to_string(data1.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();

    // Every stateful stream is replicated on three nodes.
    let nc = async_nats::ConnectOptions::with_credentials_file(data1.join("control-plane.creds"))
        .await
        .unwrap()
        .connect(urls.split(',').collect::<Vec<_>>())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nc);
    for name in [
        bus_schema::subjects::RES_STREAM,
        bus_schema::subjects::HB_STREAM,
        bus_schema::subjects::JOBS_STREAM,
    ] {
        let info = js
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.config.num_replicas, 3, "{name}");
    }

    let (code, reg) = replicas[0]
        .post(
            &token,
            "/tokens",
            &json!({"uses": AGENTS, "expires": "1h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201, "{reg}");
    let reg = reg["token"].as_str().unwrap().to_string();
    let state = tmp.path().join("fleet");
    let mut fleet = simulate(
        &data1,
        &urls,
        &reg,
        &state,
        &tmp.path().join("simulate-1.log"),
    );
    wait_for("the virtual fleet", Duration::from_secs(600), || async {
        fleet.log_text().contains("ready ").then_some(())
    })
    .await;
    wait_for(
        "every virtual agent online",
        Duration::from_secs(180),
        || async {
            let (_, v) = replicas[0].get(&token, "/agents").await;
            let n = v["agents"]
                .as_array()
                .map(|a| a.iter().filter(|x| x["status"] == "online").count())
                .unwrap_or(0);
            (n == AGENTS).then_some(())
        },
    )
    .await;

    // Hold the fleet (SIGSTOP) while the job is submitted, so that every
    // command is still in flight when the first node dies.
    signal(&fleet, "STOP");
    let (code, job) = replicas[0]
        .post(&token, "/jobs", &json!({"selector": {"all": true}, "action": "sys.ping", "ttl_secs": 1800, "idempotency_key": "cluster-chaos"}))
        .await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["target_count"], AGENTS);
    let id = job["id"].as_str().unwrap().to_string();
    let finished = |v: &serde_json::Value| v["counts"]["finished"].as_u64().unwrap_or(0);

    // Which replica holds the duties lease (asked while the cluster is whole).
    let holder = wait_for("a lease holder", Duration::from_secs(60), || async {
        lease_holder_pid(&js).await
    })
    .await;
    let (dead, alive) = if replicas[0].proc.pid() == holder {
        (0, 1)
    } else {
        assert_eq!(replicas[1].proc.pid(), holder, "the holder is one of ours");
        (1, 0)
    };
    let survivor_pid = replicas[alive].proc.pid();
    // 1. kill -9 a broker node with the whole job queued.
    let (_, before) = replicas[0].get(&token, &format!("/jobs/{id}")).await;
    cluster.kill9(0);
    eprintln!(
        "killed broker node 0 at {} of {AGENTS} finished",
        finished(&before)
    );

    // 2. kill -9 the replica that holds the duties lease, then release the
    // fleet.
    replicas[dead].proc.kill9();
    let killed_at = Instant::now();
    eprintln!(
        "killed the lease holder (replica {}) at {} of {AGENTS} run",
        dead + 1,
        executions(&state).len()
    );
    signal(&fleet, "CONT");

    // 3. kill -9 the agents as soon as the first commands have run (their
    // effect files say so), with the rest running or queued.
    wait_for("the first executions", Duration::from_secs(120), || async {
        (!executions(&state).is_empty()).then_some(())
    })
    .await;
    fleet.kill9();
    eprintln!(
        "killed the agents at {} of {AGENTS} run",
        executions(&state).len()
    );
    wait_for(
        "the lease to move to the surviving replica",
        Duration::from_secs(LEASE_TTL_SECS * 6),
        || async { (lease_holder_pid(&js).await == Some(survivor_pid)).then_some(()) },
    )
    .await;
    let moved = killed_at.elapsed();
    eprintln!(
        "lease moved in {:.1} s (ttl {LEASE_TTL_SECS} s)",
        moved.as_secs_f64()
    );
    let live = &replicas[alive];
    // The node comes back and rejoins its streams' and consumers' groups.
    cluster.start_node(0);
    cluster.wait_formed(&[0, 1, 2]).await;
    eprintln!("broker node 0 back");
    fleet = simulate(
        &data1,
        &urls,
        &reg,
        &state,
        &tmp.path().join("simulate-2.log"),
    );
    let done = wait_for("the job to finish", Duration::from_secs(600), || async {
        let (_, v) = live.get(&token, &format!("/jobs/{id}?wait=5")).await;
        v["done"].as_bool().unwrap_or(false).then_some(v)
    })
    .await;
    drop(fleet);

    // Exactly one final state each, none lost.
    let (_, hosts) = live.get(&token, &format!("/jobs/{id}/hosts")).await;
    let hosts = hosts["hosts"].as_array().unwrap().clone();
    assert_eq!(hosts.len(), AGENTS, "one command per target");
    assert_eq!(done["counts"]["finished"], AGENTS, "{done}");
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for h in &hosts {
        *by_status
            .entry(h["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!("final states: {by_status:?}");
    for h in &hosts {
        let s = h["status"].as_str().unwrap();
        let ok = s == "succeeded"
            || (s == "failed" && h["summary"].as_str().unwrap().contains("interrupted"));
        assert!(ok, "only success or an honest 'interrupted': {h}");
    }
    // None ran twice: count the effect.
    let runs = executions(&state);
    for h in &hosts {
        let cmd = h["command_id"].as_str().unwrap();
        let n = runs.get(cmd).copied().unwrap_or(0);
        assert!(n <= 1, "command {cmd} ran {n} times");
        if h["status"] == "succeeded" {
            assert_eq!(n, 1, "a success is one run: {h}");
        }
    }
    drop(replicas);
    drop(cluster);
    drop(pg);
}

/// `drover broker-config` on a data directory `drover init` never made
/// refuses, names `drover init`, and makes no keys.
#[test]
fn broker_config_refuses_an_uninitialised_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("empty");
    let out = Command::new(bin("drover"))
        .args([
            "broker-config",
            "--name",
            "drover-1",
            "--route",
            "127.0.0.1:6222",
        ])
        .env("DROVER_DATA_DIR", &data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    assert!(err.contains("drover init"), "names drover init: {err}");
    assert!(
        !data.join("nats-auth").join("operator.nk").exists(),
        "no operator key was made"
    );
}

/// Cluster routes authenticate: the configurations `drover broker-config`
/// writes are owner-only and require the installation's route password, and
/// a nats-server that can reach a node's cluster port without it is refused
/// (the three nodes that have it formed the cluster: `Cluster::start`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_the_password_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let init = Command::new(bin("drover"))
        .args(["init", "--no-tls"])
        .env("DROVER_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let cluster = Cluster::start(&data, &tmp.path().join("nodes")).await;
    let conf = std::fs::read_to_string(&cluster.nodes[0].conf).unwrap();
    let mode = std::fs::metadata(&cluster.nodes[0].conf)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the node's config holds a secret");
    assert!(conf.contains("authorization {"), "{conf}");
    let route = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"nats-route://drover-route:"))
        .and_then(|rest| rest.split_once('@'))
        .map(|(_, hostport)| hostport.trim_end_matches('"').to_string())
        .expect("route URLs carry the route user and password");

    // A stranger's node pointing its route at node 0, without credentials.
    let rogue_dir = tmp.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    let rogue_conf = rogue_dir.join("rogue.conf");
    std::fs::write(
        &rogue_conf,
        format!(
            "server_name: rogue\nlisten: \"127.0.0.1:{}\"\n\
             cluster {{\n  name: drover\n  listen: \"127.0.0.1:{}\"\n  routes: [\"nats-route://{route}\"]\n}}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let log = rogue_dir.join("rogue.log");
    let mut rogue = Command::new(nats_server_bin())
        .arg("-c")
        .arg(&rogue_conf)
        .arg("-l")
        .arg(&log)
        .spawn()
        .unwrap();
    let said = wait_for(
        "the rogue route to be refused",
        Duration::from_secs(30),
        || async {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            (t.contains("Authorization Violation") || t.contains("Authentication")).then_some(t)
        },
    )
    .await;
    eprintln!(
        "rogue: {}",
        said.lines()
            .filter(|l| l.contains("uthori") || l.contains("uthenti"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let _ = rogue.kill();
    let _ = rogue.wait();
    // Node 0 still routes to its two peers only.
    let names = cluster.routed_to(0).await;
    assert!(!names.iter().any(|n| n == "rogue"), "{names:?}\n{said}");
}
