//! Retention under load (ignored by `just test`; it takes minutes): run
//! with `cargo test --release -p control-plane --test bench_retention --
//! --ignored --nocapture`. `DROVER_BENCH_SAMPLES` (default 10,000,000)
//! raw metric samples are bulk-inserted into the stack's SQLite database,
//! all older than the raw window, while `DROVER_BENCH_AGENTS` (default
//! 1,000) virtual agents (`drover-agent simulate`) heartbeat. It prints the
//! heartbeat ingest rate (a 50,000-heartbeat burst, timed until the
//! control plane's consumer has committed and acked all of it) before and
//! during the retention duty's rollup and pruning, and the rows pruned per
//! second (from `drover_retention_pruned_rows_total` on `/metrics`).

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Stack};
use sea_orm::ConnectionTrait;

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Heartbeats per second: `burst` heartbeats published for `ids`, timed
/// until the control plane's durable has none pending or unacked.
async fn ingest_rate(stack: &Stack, ids: &[String], burst: usize) -> f64 {
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
    let start = Instant::now();
    let mut acks = Vec::with_capacity(1000);
    for i in 0..burst {
        let id = &ids[i % ids.len()];
        let hb = bus_schema::Heartbeat {
            agent_id: id.clone(),
            hostname: format!("sim-burst-{}", i % ids.len()),
            seq: 1_000_000 + i as u64,
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
    wait_for("heartbeats ingested", Duration::from_secs(600), || {
        let mut c = hb_consumer.clone();
        async move {
            let info = c.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        }
    })
    .await;
    burst as f64 / start.elapsed().as_secs_f64()
}

async fn pruned_total(stack: &Stack) -> f64 {
    stack
        .scrape()
        .await
        .value(
            "drover_retention_pruned_rows",
            "drover_retention_pruned_rows_total",
            &[],
        )
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn retention_under_heartbeat_load() {
    let rows = env_usize("DROVER_BENCH_SAMPLES", 10_000_000);
    let n = env_usize("DROVER_BENCH_AGENTS", 1_000);
    let burst = env_usize("DROVER_BENCH_BURST", 50_000);
    let mut stack = Stack::start().await;
    // No retention round while the table fills.
    stack
        .restart_cp_with(&[("DROVER_RETENTION_EVERY_SECS", "0")])
        .await;

    let token = stack.token(n as i32 + 10, "2h", true).await;
    let ids_file = stack.tmp.path().join("sim-ids");
    let extra = [std::ffi::OsStr::new("--ids-file"), ids_file.as_os_str()];
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
    let ids: Vec<String> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();

    // The old samples: one a minute per agent, 9 days ago onwards (all
    // past the 48 h raw window), a million rows per statement.
    let db = stack.db().await;
    let t0 = bus_schema::now_ms() - 9 * 86_400_000;
    let fill = Instant::now();
    let step = 1_000_000usize;
    let mut lo = 0usize;
    while lo < rows {
        let hi = (lo + step).min(rows) - 1;
        db.execute_unprepared(&format!(
            "WITH RECURSIVE c(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM c WHERE x < {hi}) \
             INSERT INTO metric_samples (agent_id, at, cpu_percent, mem_used, mem_total, \
             disk_used, disk_total, load1) \
             SELECT 'bench-' || (x % {n}), {t0} + (x / {n}) * 60000, (x % 100) * 1.0, \
             500, 1000, 100, 1000, 0.5 FROM c"
        ))
        .await
        .unwrap();
        lo = hi + 1;
    }
    println!(
        "filled {rows} samples in {:.1}s",
        fill.elapsed().as_secs_f64()
    );

    let before = ingest_rate(&stack, &ids, burst).await;
    println!("heartbeat ingest before pruning: {before:.0}/s");

    // Retention on: rollups first, then pruning in 5,000-row batches.
    stack
        .restart_cp_with(&[("DROVER_RETENTION_EVERY_SECS", "1")])
        .await;
    let started = Instant::now();
    wait_for("pruning to start", Duration::from_secs(900), || async {
        (pruned_total(&stack).await > 0.0).then_some(())
    })
    .await;
    let rollup_secs = started.elapsed().as_secs_f64();
    let p0 = pruned_total(&stack).await;
    let t_p = Instant::now();
    let during = ingest_rate(&stack, &ids, burst).await;
    let p1 = pruned_total(&stack).await;
    println!("rollups before the first prune: {rollup_secs:.1}s");
    println!(
        "heartbeat ingest during pruning: {during:.0}/s ({:.0} rows pruned meanwhile)",
        p1 - p0
    );
    wait_for(
        "every old sample pruned",
        Duration::from_secs(3600),
        || async { (pruned_total(&stack).await >= rows as f64).then_some(()) },
    )
    .await;
    let secs = t_p.elapsed().as_secs_f64();
    let total = pruned_total(&stack).await - p0;
    println!(
        "pruned {:.0} rows in {secs:.1}s: {:.0} rows/s",
        total,
        total / secs
    );
    let left: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(*) FROM metric_samples WHERE at < {}",
                t0 + 7 * 86_400_000
            ),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(left, 0, "old samples left");
    println!(
        "| samples | agents | ingest before | ingest during | rows pruned/s |\n| {rows} | {n} | {before:.0}/s | {during:.0}/s | {:.0} |",
        total / secs
    );
}
