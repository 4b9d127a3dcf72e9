//! Backups of the control plane's own state: `drover backup` and
//! `drover restore`.
//!
//! Owns the archive format (a tar stream, gzip-compressed, whose first entry
//! is a JSON [`Manifest`] with every file's size, mode and sha256), the list
//! of data-directory files a backup may hold ([`allowed`]), the consistent
//! copy of a SQLite database (`VACUUM INTO`, safe while `drover serve`
//! runs), and the data-directory lock `drover serve` holds so that a restore
//! never writes under a running control plane ([`hold_data_dir`]).
//! Writing an archive lives in `backup/create.rs`, restoring in
//! `backup/restore.rs`.
//!
//! Does not own: the PostgreSQL database (the operator runs `pg_dump`; we
//! print the command), the broker's JetStream store (streams and consumers
//! are the broker's; the control plane re-declares consumers at start), the
//! agents' state, or the migrations themselves (`db::migration`; a restored
//! older database is migrated by the next `drover serve`).

mod create;
mod restore;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use create::create;
pub use restore::{restore, RestoreOptions, RestoreSummary};

/// The `format` every manifest carries; a reader refuses any other.
pub const FORMAT: &str = "drover-backup/1";
/// The name of the manifest entry: always the archive's first entry.
pub const MANIFEST_NAME: &str = "drover-backup.json";
/// The SQLite database's name inside an archive (restored to the configured
/// SQLite path, `<data_dir>/drover.db` by default).
pub const DATABASE_ENTRY: &str = "drover.db";
/// Largest manifest a reader accepts, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// What went wrong; every variant's text is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{path} is not a usable Drover backup: {reason}")]
    BadArchive { path: PathBuf, reason: String },
    #[error(
        "a control plane is running on {0} (it holds the data directory): stop it first, e.g. `systemctl stop drover`"
    )]
    InUse(PathBuf),
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Which database an archive's installation used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// The archive holds the database as [`DATABASE_ENTRY`].
    Sqlite,
    /// The archive holds keys only; the database is backed up with `pg_dump`.
    Postgres,
}

/// The archive's table of contents (entry [`MANIFEST_NAME`], JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The `drover` version that wrote it.
    pub version: String,
    /// When, in milliseconds since the Unix epoch (control-plane clock).
    pub created_at_ms: i64,
    /// The same instant as RFC 3339 UTC, for people.
    pub created_at: String,
    pub database: DatabaseKind,
    /// Names of the applied migrations, in order (the schema level).
    pub schema: Vec<String>,
    /// The data directory it was taken from (absolute).
    pub data_dir: String,
    /// Every other entry of the archive, in archive order.
    pub files: Vec<FileEntry>,
}

/// One file of the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the data directory, `/`-separated; see [`allowed`].
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// Permission bits (at most 0o777) the file is restored with.
    pub mode: u32,
}

/// What `drover backup` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// The archive (mode 0600).
    pub archive: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    pub database: DatabaseKind,
    /// Number of applied migrations, and the last one's name.
    pub schema_level: usize,
    pub schema_last: Option<String>,
    pub files: Vec<FileEntry>,
    /// With PostgreSQL: the `pg_dump` command that backs up the database
    /// (no password: libpq reads it from `~/.pgpass` or `PGPASSWORD`).
    pub pg_dump: Option<String>,
}

/// Whether `path` (relative, `/`-separated) is a file a backup may hold:
/// `drover.db`, `signing.key`, `admin.token`, `notify.key` (what opens
/// notification channels' sealed secrets), `<name>.creds`,
/// `nats-auth/<name>.nk`, `nats-config/<name>.conf`, `tls/<name>.pem|.key`.
/// Every component is `[A-Za-z0-9._-]+` and starts with no dot, so no
/// absolute path, `..` or hidden file ever matches.
pub fn allowed(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    };
    if !parts.iter().all(|p| plain(p)) {
        return false;
    }
    match parts.as_slice() {
        [name] => {
            matches!(
                *name,
                DATABASE_ENTRY | "signing.key" | "admin.token" | "notify.key"
            ) || name.ends_with(".creds")
        }
        ["nats-auth", name] => name.ends_with(".nk"),
        ["nats-config", name] => name.ends_with(".conf"),
        ["tls", name] => name.ends_with(".pem") || name.ends_with(".key"),
        _ => false,
    }
}

/// The data directory's lock: `drover serve` holds it shared for its
/// lifetime (several replicas may share a directory), `drover restore`
/// exclusively while it writes. An flock on the directory itself, so no
/// file is added and a crashed holder releases it with its process.
#[derive(Debug)]
pub struct DataDirLock {
    _dir: File,
}

/// Takes the data directory's lock for `drover serve` (shared). Fails when
/// a restore is writing into it.
pub fn hold_data_dir(dir: &Path) -> Result<DataDirLock, Error> {
    let f = File::open(dir).map_err(Error::io(format!("opening {}", dir.display())))?;
    match f.try_lock_shared() {
        Ok(()) => Ok(DataDirLock { _dir: f }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Refused(format!(
            "{} is being restored (`drover restore` holds it); start the control plane when it is done",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", dir.display()))(e))
        }
    }
}

/// Takes the lock exclusively (restore); [`Error::InUse`] when a control
/// plane holds it.
pub(crate) fn lock_exclusive(dir: &Path) -> Result<DataDirLock, Error> {
    let f = File::open(dir).map_err(Error::io(format!("opening {}", dir.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(DataDirLock { _dir: f }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", dir.display()))(e))
        }
    }
}

/// The SQLite file a `sqlite:` URL names (query string dropped), or `None`
/// for any other database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(file))
}

/// The `pg_dump` command for a `postgres://` URL: host, port, user and
/// database name, never the password. Arguments are single-quoted for a
/// POSIX shell. `None` when the URL is not PostgreSQL or cannot be parsed.
pub fn pg_dump_command(url: &str, out: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return None;
    }
    let db = u.path().trim_start_matches('/');
    let db = if db.is_empty() { u.username() } else { db };
    let mut cmd = vec!["pg_dump".to_string(), "--format=custom".into()];
    if let Some(h) = u.host_str() {
        cmd.push(format!("--host={h}"));
    }
    if let Some(p) = u.port() {
        cmd.push(format!("--port={p}"));
    }
    if !u.username().is_empty() {
        cmd.push(format!("--username={}", u.username()));
    }
    cmd.push(format!("--file={out}"));
    cmd.push(db.to_string());
    Some(
        cmd.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `s` as one POSIX shell word (quoted only when it needs to be).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:@,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The applied migrations' names, in order, read without changing anything
/// (an absent migration table means none).
pub async fn applied_migrations(db: &DatabaseConnection) -> Result<Vec<String>, Error> {
    use sea_orm_migration::MigratorTrait;
    let all = crate::db::migration::Migrator::get_migration_with_status_read_only(db).await?;
    Ok(all
        .into_iter()
        .filter(|m| m.status() == sea_orm_migration::MigrationStatus::Applied)
        .map(|m| m.name().to_string())
        .collect())
}

/// The names of the migrations this `drover` knows, in order.
pub fn known_migrations() -> Vec<String> {
    use sea_orm_migration::MigratorTrait;
    crate::db::migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect()
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_names() {
        for ok in [
            "drover.db",
            "signing.key",
            "admin.token",
            "notify.key",
            "enroll.creds",
            "nats-auth/operator.nk",
            "nats-config/nats.conf",
            "tls/ca.pem",
            "tls/ca.key",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../signing.key",
            "nats-auth/../signing.key",
            "./signing.key",
            ".creds",
            "nats-auth/x.key",
            "tls/sub/ca.pem",
            "drover.db-wal",
            "evil.sh",
            "nats-resolver/x.jwt",
            "a\\b.creds",
            "nats-auth//operator.nk",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }

    #[test]
    fn pg_dump_has_no_password() {
        let c =
            pg_dump_command("postgres://drover:s3cret@db.example:5433/fleet", "x.pgdump").unwrap();
        assert_eq!(
            c,
            "pg_dump --format=custom --host=db.example --port=5433 --username=drover --file=x.pgdump fleet"
        );
        assert!(!c.contains("s3cret"));
        let odd = pg_dump_command("postgres://u@h/we'ird", "x").unwrap();
        assert!(
            odd.ends_with("'we%27ird'") || odd.ends_with("'we'\\''ird'"),
            "{odd}"
        );
        assert!(pg_dump_command("sqlite://x.db", "x").is_none());
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///a/b.db?mode=rwc"),
            Some(PathBuf::from("/a/b.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://rel.db"),
            Some(PathBuf::from("rel.db"))
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
