//! The database layer on both backends: the same assertions against a real
//! SQLite file and a real private PostgreSQL server (Debian's binaries, a
//! free loopback port, a temporary directory): migrations from empty to
//! latest and again (idempotent), three processes' worth of pools migrating
//! one new PostgreSQL database at once, `db::bulk::update_by_key` across batches
//! with quotes and unicode, the audit chain (append, verify, tamper), the
//! job view's counts per status, and the configured pool (size, statement
//! timeout on PostgreSQL). It does not start a broker, agents or the HTTP
//! API: those are the other test binaries' subjects.

mod common;

use std::time::Duration;

use common::Postgres;
use control_plane::db::entities::command;
use control_plane::db::{self, DbOptions};
use sea_orm::sea_query::Value;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Statement,
};

/// A SQLite file in a temporary directory (kept alive with the URL).
fn sqlite_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (dir, url)
}

fn row(id: &str, job: Option<&str>, status: &str) -> command::Model {
    command::Model {
        id: id.into(),
        agent_id: "A".into(),
        job_id: job.map(str::to_string),
        action: "sys.ping".into(),
        params: "{}".into(),
        status: status.into(),
        requested_by: "t".into(),
        source: "user".into(),
        created_at: 1,
        updated_at: 1,
        expires_at: 2,
        timeout_secs: 30,
        exit_code: None,
        summary: String::new(),
        result: None,
        attempts: 0,
        finished_at: None,
        stream_seq: None,
        outcome_source: None,
        inferred_status: None,
        inferred_summary: None,
        inferred_at: None,
    }
}

/// Every assertion of this file, on one backend.
async fn same_behaviour(url: &str) {
    // Migrations: empty to latest, then again on the same database.
    let db = db::connect(url).await.expect("migrate from empty");
    let again = db::connect(url).await.expect("migrations are idempotent");
    drop(again);

    bulk_update(&db).await;
    audit_chain(&db).await;
    job_counts(&db).await;
}

async fn bulk_update(db: &DatabaseConnection) {
    let n = 1_207usize; // three statements of at most 500 rows
    for i in 0..=n {
        row(&format!("b{i}"), None, "queued")
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
    }
    let rows: Vec<Vec<Value>> = (0..n)
        .map(|i| {
            vec![
                format!("b{i}").into(),
                (i as i64 * 10).into(),
                format!("it's «{i}» — ☃ \"q\"").into(),
                Value::Int(None),
            ]
        })
        .collect();
    let changed = db::bulk::update_by_key::<command::Entity, _>(
        db,
        command::Column::Id,
        &[
            command::Column::StreamSeq,
            command::Column::Summary,
            command::Column::ExitCode,
        ],
        rows,
    )
    .await
    .expect("bulk update");
    assert_eq!(changed, n as u64);
    let c = command::Entity::find_by_id("b1013")
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.stream_seq, Some(10130));
    assert_eq!(c.summary, "it's «1013» — ☃ \"q\"");
    assert_eq!(c.exit_code, None);
    let last = command::Entity::find_by_id(format!("b{n}"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.stream_seq, None, "a row not named is untouched");
    assert_eq!(last.summary, "");
}

async fn audit_chain(db: &DatabaseConnection) {
    use control_plane::audit::{self, Entry, Verdict};
    for i in 0..20 {
        audit::record(
            db,
            Entry::new(
                "alice",
                "test.append",
                &format!("t{i}"),
                "127.0.0.1",
                serde_json::json!({ "i": i, "s": "ünï'code" }),
            ),
        )
        .await
        .expect("append");
    }
    match audit::verify(db).await.unwrap() {
        Verdict::Intact { rows, .. } => assert_eq!(rows, 20),
        v => panic!("fresh chain must verify: {v:?}"),
    }
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE audit_log SET target = 'forged' WHERE id = 7",
    ))
    .await
    .unwrap();
    match audit::verify(db).await.unwrap() {
        Verdict::Broken { id, .. } => assert_eq!(id, 7, "the edited row is named"),
        v => panic!("a tampered chain must not verify: {v:?}"),
    }
}

/// The job view's counts per status (`jobs::counts_by_status`).
async fn job_counts(db: &DatabaseConnection) {
    let plan = [
        ("queued", 3),
        ("running", 2),
        ("succeeded", 5),
        ("failed", 1),
    ];
    for (status, k) in plan {
        for i in 0..k {
            row(&format!("j-{status}-{i}"), Some("J1"), status)
                .into_active_model()
                .insert(db)
                .await
                .unwrap();
        }
    }
    row("other", Some("J2"), "queued")
        .into_active_model()
        .insert(db)
        .await
        .unwrap();
    let mut by_status = control_plane::jobs::counts_by_status(db, "J1")
        .await
        .unwrap();
    by_status.sort();
    let mut want: Vec<(String, i64)> = plan.iter().map(|(s, k)| (s.to_string(), *k)).collect();
    want.sort();
    assert_eq!(by_status, want);
}

#[tokio::test]
async fn sqlite_behaves() {
    let (_dir, url) = sqlite_url();
    same_behaviour(&url).await;
}

#[tokio::test]
async fn postgres_behaves() {
    let pg = Postgres::start().await;
    same_behaviour(&pg.url).await;
}

/// Replicas that start together on a new PostgreSQL database both run the
/// migrations: they take turns (an advisory lock), so both start and the
/// schema is there once.
#[tokio::test]
async fn postgres_replicas_migrating_at_once_both_start() {
    let pg = Postgres::start().await;
    let (a, b, c) = tokio::join!(
        db::connect(&pg.url),
        db::connect(&pg.url),
        db::connect(&pg.url)
    );
    let a = a.expect("first replica");
    b.expect("second replica");
    c.expect("third replica");
    let applied = a
        .query_one_raw(Statement::from_string(
            a.get_database_backend(),
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = applied.try_get("", "n").unwrap();
    use sea_orm_migration::MigratorTrait;
    let all = control_plane::db::migration::Migrator::migrations().len();
    assert_eq!(n as usize, all, "each migration recorded once");
}

/// While another process holds the migration turn, `connect` waits and
/// creates nothing; once it is given back, `connect` migrates.
#[tokio::test]
async fn postgres_migrations_wait_for_the_turn() {
    use sea_orm::ConnectOptions;
    let pg = Postgres::start().await;
    let mut opt = ConnectOptions::new(pg.url.clone());
    opt.max_connections(1).min_connections(1);
    let holder = sea_orm::Database::connect(opt).await.unwrap();
    let key = db::MIGRATION_LOCK_KEY;
    holder
        .execute_unprepared(&format!("SELECT pg_advisory_lock({key})"))
        .await
        .unwrap();
    let url = pg.url.clone();
    let mut migrating = tokio::spawn(async move { db::connect(&url).await.map(|_| ()) });
    // A negative check, bounded: not finished, and not even started (the
    // migrator's bookkeeping table is the first thing it creates).
    let early = tokio::time::timeout(Duration::from_millis(700), &mut migrating).await;
    assert!(
        early.is_err(),
        "connect finished while the turn was held elsewhere"
    );
    let tables = holder
        .query_one_raw(Statement::from_string(
            holder.get_database_backend(),
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_name = 'seaql_migrations'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tables.try_get::<i64>("", "n").unwrap(),
        0,
        "migrated without the turn"
    );
    holder
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({key})"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), migrating)
        .await
        .expect("connect did not finish within 60 s of the turn given back")
        .unwrap()
        .expect("migrated once the turn was free");
}

#[tokio::test]
async fn postgres_pool_and_statement_timeout_are_applied() {
    let pg = Postgres::start().await;
    let opts = DbOptions {
        max_connections: 3,
        min_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Some(Duration::from_millis(300)),
    };
    let db = db::connect_with(&pg.url, &opts).await.unwrap();
    let b = db.get_database_backend();
    // Every pooled connection carries the timeout.
    let shown = db
        .query_one_raw(Statement::from_string(b, "SHOW statement_timeout"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown.try_get_by_index::<String>(0).unwrap(), "300ms");
    let err = db
        .execute_raw(Statement::from_string(b, "SELECT pg_sleep(5)"))
        .await
        .expect_err("a statement past the timeout fails");
    assert!(
        err.to_string().contains("statement timeout"),
        "clear error: {err}"
    );
    // The pool never holds more than max_connections to the server.
    let mut work = Vec::new();
    for _ in 0..10 {
        let db = db.clone();
        work.push(tokio::spawn(async move {
            db.execute_raw(Statement::from_string(b, "SELECT pg_sleep(0.1)"))
                .await
                .unwrap();
        }));
    }
    let mut most = 0i64;
    while !work.iter().all(|w| w.is_finished()) {
        let n = db
            .query_one_raw(Statement::from_string(
                b,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap();
        most = most.max(n);
        tokio::task::yield_now().await;
    }
    for w in work {
        w.await.unwrap();
    }
    assert!(
        (1..=3).contains(&most),
        "pool of 3 opened {most} connections"
    );
}

#[test]
fn options_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drover.toml");
    std::fs::write(&file, "").unwrap();
    let mut cfg = control_plane::config::Config::load(Some(&file)).unwrap();
    // Unset: the backend's default, one connection on SQLite (the default
    // database), eight on PostgreSQL.
    let sqlite = cfg.database_url().starts_with("sqlite:");
    assert_eq!(
        DbOptions::from_config(&cfg).max_connections,
        if sqlite { 1 } else { 8 }
    );
    assert_eq!(
        DbOptions::defaults_for("postgres://drover@127.0.0.1:5432/drover").max_connections,
        8
    );
    cfg.db_max_connections = Some(20);
    cfg.db_min_connections = 2;
    cfg.db_acquire_timeout_secs = 5;
    cfg.db_statement_timeout_ms = 0;
    let o = DbOptions::from_config(&cfg);
    assert_eq!(o.max_connections, 20);
    assert_eq!(o.min_connections, 2);
    assert_eq!(o.acquire_timeout, Duration::from_secs(5));
    assert_eq!(o.statement_timeout, None, "0 means no limit");
    let line = o.describe("postgres://drover:secret@127.0.0.1:5432/drover");
    assert!(!line.contains("secret"), "{line}");
    assert!(line.contains("max=20"), "{line}");
}
