//! Two `drover serve` replicas on one PostgreSQL database and one
//! nats-server (issue 18, control-plane replicas): shared consumers store
//! each result once, the periodic duties run on the lease holder only, the
//! lease moves when its holder is killed (`kill -9`) and the survivor goes
//! on with the duties, `?wait=` and the live event stream work on the
//! replica that did not take the request, and `/readyz` names a stopped
//! broker. Real processes throughout (simulated agents:
//! `drover-agent simulate`). Does not cover a broker cluster (the chaos
//! test on the cluster does).

mod common;

use std::time::{Duration, Instant};

use common::{readyz, wait_for, Nats, Replica, Stack};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use control_plane::db::entities::command;

/// Simulated agents that run the jobs (and go silent after the failover).
const FLEET: usize = 100;
/// Simulated agents that go silent while both replicas run.
const QUIET: usize = 5;

fn held(v: &Value) -> bool {
    v["duties_lease"]["held"] == true
}

/// Agents whose hostname starts with `prefix`, as (id, status).
fn agents_with(v: &Value, prefix: &str) -> Vec<(String, String)> {
    v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["hostname"].as_str().unwrap_or("").starts_with(prefix))
                .map(|x| {
                    (
                        x["id"].as_str().unwrap_or("").to_string(),
                        x["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_consumers_and_one_runs_the_duties() {
    let mut stack = Stack::start_postgres().await;
    let mut b = Replica::start(&stack, "cp-b").await;
    let http = reqwest::Client::new();

    // (e) Both ready; exactly one holds the duties lease.
    let (ra, rb) = wait_for(
        "exactly one lease holder",
        Duration::from_secs(60),
        || async {
            let (ca, a) = readyz(&http, &stack.base).await;
            let (cb, bb) = readyz(&http, &b.base).await;
            (ca == 200 && cb == 200 && held(&a) != held(&bb)).then_some((a, bb))
        },
    )
    .await;
    assert_eq!(ra["checks"]["database"]["ok"], true, "{ra}");
    assert_eq!(rb["checks"]["consumers"]["ok"], true, "{rb}");
    let a_holds = held(&ra);

    // The fleet: heartbeats every second, so silence shows in seconds.
    let token = stack.token((FLEET + QUIET) as i32 + 10, "2h", true).await;
    let prefix = |p: &str| [std::ffi::OsString::from("--prefix"), p.into()];
    let fleet_args = prefix("fleet");
    let quiet_args = prefix("quiet");
    let fa: Vec<&std::ffi::OsStr> = fleet_args.iter().map(|s| s.as_os_str()).collect();
    let qa: Vec<&std::ffi::OsStr> = quiet_args.iter().map(|s| s.as_os_str()).collect();
    let mut fleet = stack.spawn_simulate(FLEET, &token, 1, &fa, "fleet.log");
    let mut quiet = stack.spawn_simulate(QUIET, &token, 1, &qa, "quiet.log");
    wait_for(
        "every simulated agent online",
        Duration::from_secs(120),
        || async { (stack.online_count().await >= FLEET + QUIET).then_some(()) },
    )
    .await;

    // (a) Two jobs, one submitted on each replica, each waited for on the
    // other: every command ends once, the job rows are not doubled.
    let db = stack.db().await;
    for (n, on_a) in [(0, true), (1, false)] {
        let body = json!({"selector": {"all": true}, "action": "sys.ping",
                          "idempotency_key": format!("replicas-{n}")});
        let (code, job) = if on_a {
            stack.post("/jobs", &body).await
        } else {
            b.post("/jobs", &body).await
        };
        assert_eq!(code, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        let done = wait_for(
            &format!("job {id} done"),
            Duration::from_secs(120),
            || async {
                let (_, v) = if on_a {
                    b.get(&format!("/jobs/{id}?wait=10")).await
                } else {
                    stack.get(&format!("/jobs/{id}?wait=10")).await
                };
                (v["done"] == true).then_some(v)
            },
        )
        .await;
        let rows = command::Entity::find()
            .filter(command::Column::JobId.eq(&id))
            .count(&db)
            .await
            .unwrap() as usize;
        assert_eq!(rows, FLEET + QUIET, "one command per host: {done}");
        assert_eq!(
            done["counts"]["succeeded"].as_u64().unwrap_or(0) as usize,
            FLEET + QUIET,
            "every command succeeded once: {done}"
        );
    }

    // (d) A command made on A, long-polled and streamed on B.
    let (_, list) = stack.get("/agents").await;
    let target = agents_with(&list, "fleet")[0].0.clone();
    let mut sse = http
        .get(format!("{}/api/v1/events", b.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let (code, c) = stack
        .post(
            &format!("/agents/{target}/commands"),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let (code, fin) = b.get(&format!("/commands/{cid}?wait=30")).await;
    assert_eq!(code, 200, "{fin}");
    assert_eq!(
        fin["status"], "succeeded",
        "B long poll sees A's command end: {fin}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    for _ in 0..100_000 {
        if seen.contains(&cid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's event stream never named {cid}"
        );
        match tokio::time::timeout(Duration::from_secs(5), sse.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                // Keep the tail only: the id may straddle two chunks.
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.len() > 8192 {
                    let mut cut = seen.len() - 4096;
                    while !seen.is_char_boundary(cut) {
                        cut += 1;
                    }
                    seen = seen[cut..].to_string();
                }
            }
            Ok(_) => panic!("B's event stream ended"),
            Err(_) => {}
        }
    }
    drop(sse);

    // (b) The quiet agents go silent: marked offline, by the holder only.
    quiet.kill9();
    wait_for(
        "the quiet agents offline",
        Duration::from_secs(60),
        || async {
            let (_, v) = b.get("/agents").await;
            let q = agents_with(&v, "quiet");
            (q.len() == QUIET && q.iter().all(|(_, s)| s == "offline")).then_some(())
        },
    )
    .await;
    let (_, da) = stack.get("/duties").await;
    let (_, dbv) = b.get("/duties").await;
    let (runs_a, runs_b) = (
        common::duty_runs(&da, "offline_sweep"),
        common::duty_runs(&dbv, "offline_sweep"),
    );
    eprintln!("offline_sweep runs: A {runs_a}, B {runs_b} (A holds: {a_holds})");
    if a_holds {
        assert!(runs_a > 0 && runs_b == 0, "A {da} B {dbv}");
    } else {
        assert!(runs_b > 0 && runs_a == 0, "A {da} B {dbv}");
    }

    // (c) kill -9 the holder: the survivor takes the lease and sweeps.
    let t0 = Instant::now();
    let survivor_base = if a_holds {
        stack.cp.kill9();
        b.base.clone()
    } else {
        b.cp.kill9();
        stack.base.clone()
    };
    wait_for(
        "the survivor takes the lease",
        Duration::from_secs(60),
        || async { held(&readyz(&http, &survivor_base).await.1).then_some(()) },
    )
    .await;
    eprintln!(
        "lease moved to the survivor {:.1}s after kill -9 of the holder",
        t0.elapsed().as_secs_f64()
    );
    let on_survivor = |path: String| {
        let (http, base, token) = (http.clone(), survivor_base.clone(), stack.token.clone());
        async move { common::api_request(&http, &base, &token, reqwest::Method::GET, &path, None).await }
    };
    fleet.kill9();
    wait_for(
        "the fleet offline, by the survivor",
        Duration::from_secs(60),
        || async {
            let (_, v) = on_survivor("/agents".into()).await;
            let f = agents_with(&v, "fleet");
            (f.len() == FLEET && f.iter().all(|(_, s)| s == "offline")).then_some(())
        },
    )
    .await;

    // (e) The broker stops: the survivor is not ready and says why; it
    // is ready again once the broker is back.
    let (dir, conf, port) = stack.stop_nats();
    let down = wait_for(
        "readyz 503 without the broker",
        Duration::from_secs(30),
        || async {
            let (code, v) = readyz(&http, &survivor_base).await;
            (code == 503).then_some(v)
        },
    )
    .await;
    let failing: Vec<&str> = down["failing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(failing.contains(&"broker"), "{down}");
    assert_eq!(down["checks"]["database"]["ok"], true, "{down}");
    stack.nats = Nats::start_on(&dir, &conf, port).await;
    wait_for(
        "readyz 200 with the broker back",
        Duration::from_secs(60),
        || async { (readyz(&http, &survivor_base).await.0 == 200).then_some(()) },
    )
    .await;
}
