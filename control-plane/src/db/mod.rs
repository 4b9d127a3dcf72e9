//! Storage: sea-orm entities and migrations, and opening the pool
//! ([`connect_with`], sized and timed by [`DbOptions`]), and SQLite's
//! background checkpoint ([`checkpoint_loop`]). SQLite (WAL) by default,
//! PostgreSQL by URL; the code path is the same. It does not own the
//! SQL of any feature (each module writes its own queries) nor the
//! configuration file (`config.rs` holds the `db_*` fields).

pub mod bulk;
pub mod entities;
pub mod m0001_initial;
pub mod m0005_input_drops;
pub mod m0009_outcome_source;
pub mod m0010_clock_skew;
pub mod m0011_identity_conflicts;
pub mod m0012_display_name;
pub mod m0013_patch;
pub mod m0014_schedules;
pub mod m0016_patch_runs;
pub mod m0017_schedule_params;
pub mod m0018_self_update;
pub mod m0019_agent_channel;
pub mod m0020_observe;
pub mod m0021_watch;
pub mod m0022_alerts;
pub mod m0023_notify;
pub mod m0024_retention;
pub mod m0025_audit_archive_chain;
pub mod m0026_sealed;
pub mod m0027_credentials;
pub mod m0028_keys;
pub mod m0029_web_surface;
pub mod m0030_inventory;
pub mod migration;

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

/// How the pool is sized and timed; built from the `db_*` fields of
/// [`crate::config::Config`] ([`DbOptions::from_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbOptions {
    /// Most connections the pool opens (at least 1).
    pub max_connections: u32,
    /// Connections kept open when idle (capped at `max_connections`).
    pub min_connections: u32,
    /// How long a query waits for a free connection before it fails.
    pub acquire_timeout: Duration,
    /// Longest a single statement may run on PostgreSQL (`statement_timeout`
    /// on every pooled connection); `None`: no limit. SQLite has no statement
    /// timeout: it is ignored there (its busy timeout, how long a writer
    /// waits for the write lock, is fixed at 10 s).
    pub statement_timeout: Option<Duration>,
}

impl DbOptions {
    /// The configuration's defaults for the database at `url` (the
    /// `default_db_*` functions of `config.rs`: 1 connection on SQLite and
    /// 8 on PostgreSQL, 1 kept idle, 10 s acquire, 30 s statement).
    pub fn defaults_for(url: &str) -> Self {
        use crate::config as c;
        DbOptions::from_fields(
            c::default_db_max_connections(url),
            c::default_db_min_connections(),
            c::default_db_acquire_timeout(),
            c::default_db_statement_timeout(),
        )
    }

    /// The configured pool (`DROVER_DB_MAX_CONNECTIONS`, ...; an unset
    /// maximum is the backend's default).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self::from_fields(
            cfg.db_max_connections
                .unwrap_or_else(|| crate::config::default_db_max_connections(&cfg.database_url())),
            cfg.db_min_connections,
            cfg.db_acquire_timeout_secs,
            cfg.db_statement_timeout_ms,
        )
    }

    /// From the configuration's units: seconds to acquire, milliseconds per
    /// statement (0: no limit).
    fn from_fields(max: u32, min: u32, acquire_secs: u64, statement_ms: u64) -> Self {
        DbOptions {
            max_connections: max,
            min_connections: min,
            acquire_timeout: Duration::from_secs(acquire_secs),
            statement_timeout: (statement_ms > 0).then(|| Duration::from_millis(statement_ms)),
        }
    }

    /// One line for the startup log: the backend, the URL without its
    /// password, and the pool's sizes and timeouts.
    pub fn describe(&self, url: &str) -> String {
        let backend = if url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        };
        let stmt = match (backend, self.statement_timeout) {
            ("sqlite", _) => "n/a on sqlite".to_string(),
            (_, Some(t)) => format!("{} ms", t.as_millis()),
            (_, None) => "none".to_string(),
        };
        format!(
            "database {backend} {} pool max={} min={} acquire_timeout={}s statement_timeout={stmt}",
            redact(url),
            self.max_connections,
            self.min_connections,
            self.acquire_timeout.as_secs_f64(),
        )
    }
}

/// How much of a SQLite database file is read through a memory mapping
/// (`PRAGMA mmap_size`), in bytes: 1 GiB of address space per connection.
/// Past it, pages are read with read() as before.
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// How many pages the write-ahead log grows to before a commit copies them
/// into the database file (`PRAGMA wal_autocheckpoint`; SQLite's default is
/// 1,000). A heartbeat group of 500 agents dirties a page or more per agent
/// spread over the whole agents table, so at the default every second commit
/// paid for a checkpoint that copied pages the next commits wrote again;
/// 16,000 pages (64 MiB at 4 KiB pages) lets one checkpoint copy each page
/// once for many commits. [`checkpoint_loop`] copies in the background long
/// before that, so a commit copies only when the loop falls behind.
const SQLITE_CHECKPOINT_PAGES: u32 = 16_000;

/// The size (bytes) the write-ahead log file is cut back to after a
/// checkpoint reset it (`PRAGMA journal_size_limit`): without it the file
/// keeps the largest size it ever reached.
const SQLITE_WAL_FILE_LIMIT: u64 = 64 << 20;

/// How often [`checkpoint_loop`] copies the log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// On SQLite, copies the write-ahead log into the database file every
/// [`CHECKPOINT_EVERY`] (`PRAGMA wal_checkpoint(PASSIVE)`), on a connection
/// of its own opened to `url`, not one of the pool's: the server's pool is
/// one connection on SQLite (`config::default_db_max_connections`), and a
/// checkpoint there would hold every query back while it copies. PASSIVE
/// waits for no reader or writer and copies what no reader still needs.
/// Without it the commit that crosses [`SQLITE_CHECKPOINT_PAGES`] copies up
/// to 64 MiB before it returns (one run at 10,000 agents showed a 41 ms
/// single-command p99 then; runs vary that much too). Nothing on
/// PostgreSQL. Runs until the process ends. A checkpoint that a reader
/// holds back simply copies less (the log grows while a reader keeps an old
/// snapshot, as it always did); an error (the connection, I/O) is logged at
/// debug and the next tick tries again.
pub async fn checkpoint_loop(url: String) {
    use sea_orm::ConnectionTrait;
    if !url.starts_with("sqlite:") {
        return;
    }
    let mut opt = ConnectOptions::new(url.clone());
    opt.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    opt.map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_secs(10)));
    let db = loop {
        match Database::connect(opt.clone()).await {
            Ok(db) => break db,
            Err(e) => {
                tracing::debug!(error = %e, url = %redact(&url), "no connection for background checkpoints yet; retrying");
                tokio::time::sleep(CHECKPOINT_EVERY).await;
            }
        }
    };
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Err(e) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(error = %e, "background checkpoint failed; the next tick tries again");
        }
    }
}

/// Opens the configured database (`cfg.database_url()`) with the configured
/// pool and runs the migrations: what the server and the CLI use.
pub async fn open(cfg: &crate::config::Config) -> anyhow::Result<DatabaseConnection> {
    connect_with(&cfg.database_url(), &DbOptions::from_config(cfg)).await
}

/// Opens the database at `url` with the default pool
/// ([`DbOptions::defaults_for`]) and runs the migrations. For tests and
/// tools; the server passes the configured pool to [`connect_with`].
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    connect_with(url, &DbOptions::defaults_for(url)).await
}

/// Opens the database at `url` (`sqlite://path?mode=rwc` or
/// `postgres://user:pass@host:port/db`) with the pool `opts` and runs the
/// migrations up to the latest. Errors: the database cannot be reached
/// (message carries the URL without its password) or a migration fails.
pub async fn connect_with(url: &str, opts: &DbOptions) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(file).parent() {
            std::fs::create_dir_all(dir).ok();
        }
    }
    let max = opts.max_connections.max(1);
    let mut opt = ConnectOptions::new(url.to_string());
    opt.max_connections(max)
        .min_connections(opts.min_connections.min(max))
        .acquire_timeout(opts.acquire_timeout)
        .sqlx_logging(false);
    // sqlx does not turn WAL on by itself; readers in other processes
    // (`drover` CLI commands, backups) must not block the writer.
    opt.map_sqlx_sqlite_opts(|o| {
        o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Pages read through a shared mapping of the file, not copied
            // into each connection's cache with read(): every commit by one
            // pooled connection empties the others' caches, and re-reading
            // through read() and malloc was most of the database's CPU in
            // heartbeat ingest and fan-out (profiled at 10,000 agents).
            // Address space only; the pages are the kernel's page cache.
            .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            .pragma("wal_autocheckpoint", SQLITE_CHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", SQLITE_WAL_FILE_LIMIT.to_string())
    });
    // A startup parameter: every connection the pool opens carries it.
    if let Some(t) = opts.statement_timeout {
        let ms = t.as_millis().max(1);
        opt.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms)]));
    }
    let db = Database::connect(opt)
        .await
        .with_context(|| format!("opening database {}", redact(url)))?;
    // Replicas starting together on one PostgreSQL database take turns:
    // sea-orm's migrator checks what is applied, then applies the rest,
    // and two at once both apply the first missing migration.
    let turn = if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        Some(MigrationTurn::take(url).await?)
    } else {
        None
    };
    let migrated = migration::Migrator::up(&db, None)
        .await
        .context("running database migrations");
    if let Some(turn) = turn {
        turn.release().await;
    }
    migrated?;
    Ok(db)
}

/// The PostgreSQL advisory lock that serialises migrations between
/// processes (`pg_advisory_lock`, session-level, on a connection of its
/// own: if the process dies, the server ends the session and the lock with
/// it). The key is Drover's own constant; nothing else takes it.
struct MigrationTurn(DatabaseConnection);

/// The advisory lock key migrations take on PostgreSQL: "DROVER" and 1 as
/// a 64-bit integer. Public for the test that holds it.
pub const MIGRATION_LOCK_KEY: i64 = 0x4452_4f56_4552_0001;

impl MigrationTurn {
    /// Waits (without a timeout: another replica is migrating) for the
    /// turn. Errors: the server cannot be reached.
    async fn take(url: &str) -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;
        let mut opt = ConnectOptions::new(url.to_string());
        // The lock lives in the session: the pool must never close or
        // replace its one connection (sqlx's defaults would after 10 min
        // idle or 30 min in all).
        opt.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .sqlx_logging(false);
        let conn = Database::connect(opt)
            .await
            .with_context(|| format!("opening database {} for the migration lock", redact(url)))?;
        // Waiting is expected (another replica migrating): no timeout set on
        // the role, the database or the URL may end it.
        conn.execute_unprepared(&format!(
            "SET statement_timeout = 0; SET lock_timeout = 0; SELECT pg_advisory_lock({})",
            MIGRATION_LOCK_KEY
        ))
        .await
        .context("waiting for the migration lock (another replica migrating)")?;
        Ok(Self(conn))
    }

    /// Gives the turn back; closing the session would too. A lock found
    /// not held (the session was lost meanwhile) is logged: another
    /// process may have migrated beside this one.
    async fn release(self) {
        use sea_orm::{ConnectionTrait, Statement};
        let sql = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY}) AS released");
        let released = self
            .0
            .query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get::<bool>("", "released").ok());
        if released != Some(true) {
            tracing::warn!("the migration lock was not held when released; another replica may have migrated at the same time (check its log)");
        }
        let _ = self.0.close().await;
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// at BEGIN (IMMEDIATE), waiting up to the busy timeout: a deferred
/// transaction that reads first fails outright with SQLITE_BUSY_SNAPSHOT
/// ("database is locked", code 517) when another connection commits between
/// its read and its first write, and no busy timeout helps then. PostgreSQL
/// ignores the mode.
pub async fn begin_write(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
