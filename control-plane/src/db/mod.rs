//! Storage: sea-orm entities and migrations. SQLite (WAL) by default,
//! PostgreSQL by URL; the code path is the same.

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

pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(file).parent() {
            std::fs::create_dir_all(dir).ok();
        }
    }
    let mut opt = ConnectOptions::new(url.to_string());
    opt.max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    // sqlx does not turn WAL on by itself; readers must not block the writer.
    opt.map_sqlx_sqlite_opts(|o| {
        o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
    });
    let db = Database::connect(opt)
        .await
        .with_context(|| format!("opening database {}", redact(url)))?;
    migration::Migrator::up(&db, None)
        .await
        .context("running database migrations")?;
    Ok(db)
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
