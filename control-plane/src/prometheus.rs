//! `GET /metrics`: the control plane's own health in the Prometheus /
//! OpenMetrics text format, for a Prometheus server to scrape. Owns the
//! metric names and how each is measured; not the things measured.
//!
//! Access: like every read route, a bearer token of any role (`viewer` is
//! enough: `drover api-tokens create --role viewer`); Prometheus sends it
//! with `authorization: {credentials_file: ...}`. By default nothing names
//! a host; `metrics_per_host = true` adds per-host gauges for federation.
//!
//! What is measured how:
//! - counters kept by this process since it started: heartbeats and
//!   results ingested, retention rows pruned and rounds;
//! - gauges read from the database, at most every [`CACHE`] (commands by
//!   status, open jobs, the oldest open command's age as the result lag,
//!   agents by status, alerts by state and severity when the `alerts`
//!   table exists);
//! - gauges read from JetStream at each scrape: messages in the control
//!   plane's streams, and pending / unacknowledged counts of its durable
//!   consumers (heartbeats, results, jobs);
//! - the duties this replica ran (from `duties::Board`).

use std::sync::atomic::Ordering;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use bus_schema::{subjects, CommandStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sea_orm::{ConnectionTrait, Statement};

use crate::state::AppState;

/// Database gauges are re-read at most this often.
pub const CACHE: Duration = Duration::from_secs(5);

/// Heartbeats stored (after screening), counted by ingest.
pub static HEARTBEATS: LazyLock<Counter> = LazyLock::new(Counter::default);
/// Command results stored, counted by ingest.
pub static RESULTS: LazyLock<Counter> = LazyLock::new(Counter::default);

type Labels = Vec<(String, String)>;

/// What the database said, and when.
#[derive(Clone, Default)]
struct DbSnapshot {
    commands: Vec<(String, i64)>,
    jobs_open: i64,
    result_lag_secs: f64,
    agents: Vec<(String, i64)>,
    alerts: Vec<(String, String, i64)>,
    hosts: Vec<Host>,
}

#[derive(Clone)]
struct Host {
    agent: String,
    host: String,
    cpu: f64,
    mem_used: f64,
    mem_total: f64,
    load1: f64,
    last_seen: i64,
}

static SNAPSHOT: LazyLock<Mutex<Option<(Instant, DbSnapshot)>>> =
    LazyLock::new(|| Mutex::new(None));

fn open_statuses() -> String {
    CommandStatus::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

async fn rows(state: &AppState, sql: &str) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
    let backend = state.db.get_database_backend();
    state
        .db
        .query_all_raw(Statement::from_string(backend, sql.to_string()))
        .await
}

async fn read_db(state: &AppState, now_ms: i64) -> Result<DbSnapshot, sea_orm::DbErr> {
    let mut s = DbSnapshot::default();
    for r in rows(
        state,
        "SELECT status, COUNT(*) FROM commands GROUP BY status",
    )
    .await?
    {
        s.commands
            .push((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
    }
    let open = open_statuses();
    let r = rows(
        state,
        &format!(
            "SELECT COUNT(DISTINCT job_id), MIN(created_at) FROM commands \
             WHERE job_id IS NOT NULL AND status IN ({open})"
        ),
    )
    .await?;
    if let Some(r) = r.first() {
        s.jobs_open = r.try_get_by_index(0)?;
    }
    let r = rows(
        state,
        &format!("SELECT MIN(created_at) FROM commands WHERE status IN ({open})"),
    )
    .await?;
    if let Some(Some(oldest)) = r
        .first()
        .map(|r| r.try_get_by_index::<Option<i64>>(0))
        .transpose()?
    {
        s.result_lag_secs = ((now_ms - oldest).max(0) as f64) / 1000.0;
    }
    for r in rows(state, "SELECT status, COUNT(*) FROM agents GROUP BY status").await? {
        s.agents
            .push((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
    }
    // Part of the alerting work adds `alerts`; before it, there is none.
    if let Ok(list) = rows(
        state,
        "SELECT state, severity, COUNT(*) FROM alerts GROUP BY state, severity",
    )
    .await
    {
        for r in list {
            if let (Ok(a), Ok(b), Ok(n)) = (
                r.try_get_by_index::<String>(0),
                r.try_get_by_index::<String>(1),
                r.try_get_by_index::<i64>(2),
            ) {
                s.alerts.push((a, b, n));
            }
        }
    }
    if state.cfg.metrics_per_host {
        use crate::db::entities::agent;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        for a in agent::Entity::find()
            .filter(agent::Column::Status.is_in(["online", "offline"]))
            .all(&state.db)
            .await?
        {
            let m: serde_json::Value = serde_json::from_str(&a.metrics).unwrap_or_default();
            let f = |k: &str| m.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            s.hosts.push(Host {
                host: a.display_name.clone().unwrap_or(a.hostname.clone()),
                agent: a.id,
                cpu: f("cpu_percent"),
                mem_used: f("mem_used_bytes"),
                mem_total: f("mem_total_bytes"),
                load1: f("load1"),
                last_seen: a.last_seen,
            });
        }
    }
    Ok(s)
}

async fn snapshot(state: &AppState) -> Result<DbSnapshot, sea_orm::DbErr> {
    if let Some((at, s)) = SNAPSHOT.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if at.elapsed() < CACHE {
            return Ok(s.clone());
        }
    }
    let s = read_db(state, bus_schema::now_ms()).await?;
    *SNAPSHOT.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), s.clone()));
    Ok(s)
}

fn gauge_family(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

fn float_family(
    reg: &mut Registry,
    name: &str,
    help: &str,
) -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    let f = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(name, help, f.clone());
    f
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The whole exposition, as text.
pub async fn render(state: &AppState) -> anyhow::Result<String> {
    let snap = snapshot(state).await?;
    let mut reg = Registry::with_prefix("drover");

    reg.register(
        "heartbeats_ingested",
        "Heartbeats stored by this process since it started",
        HEARTBEATS.clone(),
    );
    reg.register(
        "results_ingested",
        "Command results stored by this process since it started",
        RESULTS.clone(),
    );
    let pruned = Counter::<u64>::default();
    pruned.inc_by(crate::retention::PRUNED_TOTAL.load(Ordering::Relaxed));
    reg.register(
        "retention_pruned_rows",
        "Rows deleted by retention rounds this process ran",
        pruned,
    );
    let rounds = Counter::<u64>::default();
    rounds.inc_by(crate::retention::ROUNDS_TOTAL.load(Ordering::Relaxed));
    reg.register(
        "retention_rounds",
        "Retention rounds this process completed",
        rounds,
    );

    let commands = gauge_family(&mut reg, "commands", "Commands in the database by status");
    for s in CommandStatus::ALL {
        commands.get_or_create(&l(&[("status", s.as_str())])).set(0);
    }
    for (st, n) in &snap.commands {
        commands.get_or_create(&l(&[("status", st)])).set(*n);
    }
    let jobs = Gauge::<i64>::default();
    jobs.set(snap.jobs_open);
    reg.register("jobs_open", "Jobs with at least one open command", jobs);
    let lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    lag.set(snap.result_lag_secs);
    reg.register(
        "result_lag_seconds",
        "Age of the oldest command still waiting for its final result (0: none open)",
        lag,
    );
    let agents = gauge_family(&mut reg, "agents", "Agents by status");
    for (st, n) in &snap.agents {
        agents.get_or_create(&l(&[("status", st)])).set(*n);
    }
    let alerts = gauge_family(
        &mut reg,
        "alerts",
        "Alerts by state and severity (firing, pending, resolved)",
    );
    // Zero, not absent, when nothing fires (and before the table exists).
    for st in ["pending", "firing"] {
        for sev in ["info", "warning", "critical"] {
            alerts
                .get_or_create(&l(&[("state", st), ("severity", sev)]))
                .set(0);
        }
    }
    for (st, sev, n) in &snap.alerts {
        alerts
            .get_or_create(&l(&[("state", st), ("severity", sev)]))
            .set(*n);
    }

    broker(state, &mut reg).await;

    let runs = Family::<Labels, Counter>::default();
    reg.register(
        "duty_runs",
        "Ticks of each periodic duty run by this replica",
        runs.clone(),
    );
    let errors = Family::<Labels, Counter>::default();
    reg.register(
        "duty_errors",
        "Failed ticks of each periodic duty on this replica",
        errors.clone(),
    );
    let took = float_family(
        &mut reg,
        "duty_last_duration_seconds",
        "How long each duty's last tick took",
    );
    for (name, r) in state.duties.runs() {
        let k = l(&[("duty", name)]);
        runs.get_or_create(&k).inc_by(r.runs);
        errors.get_or_create(&k).inc_by(r.errors);
        took.get_or_create(&k)
            .set(r.last_duration_ms.unwrap_or(0) as f64 / 1000.0);
    }
    let held = Gauge::<i64>::default();
    held.set(state.duties.lease().borrow().is_held() as i64);
    reg.register(
        "duties_lease_held",
        "1 when this replica holds the duties lease",
        held,
    );

    if state.cfg.metrics_per_host {
        let cpu = float_family(&mut reg, "host_cpu_percent", "A host's CPU use, percent");
        let mu = float_family(&mut reg, "host_mem_used_bytes", "A host's memory in use");
        let mt = float_family(&mut reg, "host_mem_total_bytes", "A host's memory");
        let ld = float_family(&mut reg, "host_load1", "A host's 1-minute load average");
        let seen = gauge_family(
            &mut reg,
            "host_last_seen_ms",
            "A host's last heartbeat, ms since the epoch",
        );
        for h in &snap.hosts {
            let k = l(&[("agent", &h.agent), ("host", &h.host)]);
            cpu.get_or_create(&k).set(h.cpu);
            mu.get_or_create(&k).set(h.mem_used);
            mt.get_or_create(&k).set(h.mem_total);
            ld.get_or_create(&k).set(h.load1);
            seen.get_or_create(&k).set(h.last_seen);
        }
    }

    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

/// Stream sizes and consumer backlogs; a broker that does not answer
/// leaves them out (and `drover_broker_up` 0).
async fn broker(state: &AppState, reg: &mut Registry) {
    let msgs = gauge_family(
        reg,
        "stream_messages",
        "Messages held by a control-plane stream",
    );
    let pending = gauge_family(
        reg,
        "consumer_pending",
        "Messages a control-plane durable consumer has not been delivered yet",
    );
    let unacked = gauge_family(
        reg,
        "consumer_ack_pending",
        "Messages a control-plane durable consumer was delivered but has not acknowledged",
    );
    let mut up = 1;
    for stream in [
        subjects::HB_STREAM,
        subjects::RES_STREAM,
        subjects::OUT_STREAM,
        subjects::JOBS_STREAM,
    ] {
        match state.js.get_stream(stream).await {
            Ok(mut s) => match s.info().await {
                Ok(i) => {
                    msgs.get_or_create(&l(&[("stream", stream)]))
                        .set(i.state.messages as i64);
                }
                Err(_) => up = 0,
            },
            Err(_) => up = 0,
        }
    }
    for (stream, consumer, queue) in [
        (subjects::HB_STREAM, subjects::CP_HB_CONSUMER, "heartbeats"),
        (subjects::RES_STREAM, subjects::CP_RES_CONSUMER, "results"),
        (subjects::JOBS_STREAM, subjects::CP_JOBS_CONSUMER, "jobs"),
    ] {
        let Ok(s) = state.js.get_stream_no_info(stream).await else {
            up = 0;
            continue;
        };
        match s.consumer_info(consumer).await {
            Ok(i) => {
                let k = l(&[("queue", queue)]);
                pending.get_or_create(&k).set(i.num_pending as i64);
                unacked.get_or_create(&k).set(i.num_ack_pending as i64);
            }
            Err(_) => up = 0,
        }
    }
    let g = Gauge::<i64>::default();
    g.set(up);
    reg.register(
        "broker_up",
        "1 when every stream and consumer answered this scrape",
        g,
    );
}

/// `GET /metrics`: `text/plain; version=0.0.4`-compatible OpenMetrics
/// text; 503 with a line of text when the database does not answer.
pub async fn handler(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics unavailable: {e:#}; see the control plane's log\n"),
        )
            .into_response(),
    }
}
