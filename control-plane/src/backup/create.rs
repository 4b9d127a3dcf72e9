//! `drover backup`: the archive of a control plane's database and keys.
//!
//! Owns writing one: the consistent SQLite copy (`VACUUM INTO`, read-only,
//! no migration run), which data-directory files go in, their hashes, the
//! manifest, and the 0600 archive linked into place without clobbering.
//! Does not own the format's rules or the allowed names (`backup.rs`), nor
//! reading an archive back (`restore.rs`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, Database, Statement};
use sha2::{Digest, Sha256};

use super::{
    allowed, applied_migrations, pg_dump_command, sqlite_path, BackupSummary, DatabaseKind, Error,
    FileEntry, HashingReader, Manifest, DATABASE_ENTRY, FORMAT, MANIFEST_NAME,
};
use crate::config::Config;

/// `drover backup`: writes the archive to `out` (which must not exist) with
/// mode 0600. With SQLite the database is copied by `VACUUM INTO` (a
/// consistent snapshot, safe while `drover serve` writes); with PostgreSQL
/// the archive holds the keys only and the summary carries the `pg_dump`
/// command. `progress` receives one line per step.
pub async fn create(
    cfg: &Config,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BackupSummary, Error> {
    let data_dir = std::path::absolute(&cfg.data_dir)
        .map_err(Error::io(format!("resolving {}", cfg.data_dir.display())))?;
    if !data_dir.join("signing.key").is_file() {
        return Err(Error::Refused(format!(
            "{} holds no signing.key: not an initialised data directory (check --config / DROVER_DATA_DIR)",
            data_dir.display()
        )));
    }
    if out.exists() {
        return Err(Error::Refused(format!(
            "{} exists already; choose another --out",
            out.display()
        )));
    }
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Everything is written in a private directory next to the archive and
    // renamed into place at the end: a failed backup leaves nothing behind.
    let scratch = tempfile::Builder::new()
        .prefix(".drover-backup-")
        .tempdir_in(&out_dir)
        .map_err(Error::io(format!(
            "creating a scratch directory in {}",
            out_dir.display()
        )))?;
    let url = cfg.database_url();
    let (kind, schema, db_copy) = match sqlite_path(&url) {
        Some(db_file) => {
            let copy = scratch.path().join(DATABASE_ENTRY);
            let schema = snapshot_sqlite(&db_file, &copy).await?;
            progress(&format!(
                "database {} copied with VACUUM INTO ({} migrations applied)",
                db_file.display(),
                schema.len()
            ));
            (DatabaseKind::Sqlite, schema, Some(copy))
        }
        None => {
            let db = Database::connect(url.as_str()).await?;
            let schema = applied_migrations(&db).await?;
            db.close().await.ok();
            progress(
                "PostgreSQL: the archive holds the keys only; back the database up with pg_dump",
            );
            (DatabaseKind::Postgres, schema, None)
        }
    };

    let mut files: Vec<(FileEntry, PathBuf)> = Vec::new();
    if let Some(copy) = &db_copy {
        files.push((describe(copy, DATABASE_ENTRY, 0o600)?, copy.clone()));
    }
    for rel in key_files(&data_dir)? {
        let path = data_dir.join(&rel);
        let mode =
            std::fs::metadata(&path).map_err(Error::io(format!("reading {}", path.display())))?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777;
        files.push((describe(&path, &rel, mode)?, path));
    }
    progress(&format!("{} files hashed (sha256)", files.len()));

    let now = chrono::Utc::now();
    let manifest = Manifest {
        format: FORMAT.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms: now.timestamp_millis(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        database: kind,
        schema: schema.clone(),
        data_dir: data_dir.display().to_string(),
        files: files.iter().map(|(e, _)| e.clone()).collect(),
    };
    let partial = scratch.path().join("archive.tar.gz");
    write_archive(&partial, &manifest, &files)?;
    // No clobbering: a file that appeared at `out` meanwhile is kept.
    std::fs::hard_link(&partial, out).map_err(Error::io(format!("writing {}", out.display())))?;
    let bytes = std::fs::metadata(out)
        .map_err(Error::io(format!("reading {}", out.display())))?
        .len();
    progress(&format!("wrote {} ({bytes} bytes)", out.display()));
    let pg_dump = match kind {
        DatabaseKind::Postgres => pg_dump_command(
            &url,
            &format!("drover-{}.pgdump", now.format("%Y%m%dT%H%M%SZ")),
        ),
        DatabaseKind::Sqlite => None,
    };
    Ok(BackupSummary {
        archive: std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf()),
        bytes,
        database: kind,
        schema_level: schema.len(),
        schema_last: schema.last().cloned(),
        files: manifest.files,
        pg_dump,
    })
}

/// A consistent copy of the SQLite database at `db_file` into `copy` (which
/// must not exist), read-only: no migration runs, nothing is written to the
/// source. Returns the applied migrations.
async fn snapshot_sqlite(db_file: &Path, copy: &Path) -> Result<Vec<String>, Error> {
    if !db_file.is_file() {
        return Err(Error::Refused(format!(
            "no database at {}: not an initialised control plane",
            db_file.display()
        )));
    }
    let opts = sea_orm::sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_file)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let pool = sea_orm::sqlx::SqlitePool::connect_with(opts)
        .await
        .map_err(|e| {
            Error::Db(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
                e.to_string(),
            )))
        })?;
    let db = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    let schema = applied_migrations(&db).await?;
    let target = copy
        .to_str()
        .ok_or_else(|| Error::Refused(format!("{} is not UTF-8", copy.display())))?;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "VACUUM INTO ?",
        [target.into()],
    ))
    .await?;
    db.close().await.ok();
    Ok(schema)
}

/// The data directory's key and configuration files a backup holds
/// (regular files matching [`allowed`], not the database), sorted.
fn key_files(data_dir: &Path) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for sub in ["", "nats-auth", "nats-config", "tls"] {
        let dir = data_dir.join(sub);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !sub.is_empty() => continue,
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()))(e)),
        };
        for entry in rd {
            let entry = entry.map_err(Error::io(format!("listing {}", dir.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let rel = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            // symlink_metadata: a link is never followed out of the directory.
            let is_file = entry
                .path()
                .symlink_metadata()
                .map(|m| m.file_type().is_file())
                .unwrap_or(false);
            if is_file && rel != DATABASE_ENTRY && allowed(&rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Size and sha256 of one file.
fn describe(path: &Path, rel: &str, mode: u32) -> Result<FileEntry, Error> {
    let mut f = File::open(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let mut h = Sha256::new();
    let size =
        io::copy(&mut f, &mut h).map_err(Error::io(format!("reading {}", path.display())))?;
    Ok(FileEntry {
        path: rel.into(),
        size,
        sha256: hex::encode(h.finalize()),
        mode,
    })
}

/// Writes manifest then files as a gzip-compressed tar, 0600, fsynced. Each
/// file is re-hashed as it is written; one that changed since it was
/// described fails the backup.
fn write_archive(
    path: &Path,
    manifest: &Manifest,
    files: &[(FileEntry, PathBuf)],
) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("writing {}", path.display());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(what()))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    append(
        &mut tar,
        MANIFEST_NAME,
        0o600,
        json.len() as u64,
        &json[..],
        manifest.created_at_ms,
    )
    .map_err(Error::io(what()))?;
    for (entry, src) in files {
        let f = File::open(src).map_err(Error::io(format!("reading {}", src.display())))?;
        let mut hashing = HashingReader {
            inner: f.take(entry.size),
            hash: Sha256::new(),
        };
        append(
            &mut tar,
            &entry.path,
            entry.mode,
            entry.size,
            &mut hashing,
            manifest.created_at_ms,
        )
        .map_err(Error::io(what()))?;
        if hex::encode(hashing.hash.finalize()) != entry.sha256 {
            return Err(Error::Refused(format!(
                "{} changed while the backup was being written; run it again",
                src.display()
            )));
        }
    }
    let gz = tar.into_inner().map_err(Error::io(what()))?;
    let f = gz.finish().map_err(Error::io(what()))?;
    f.sync_all().map_err(Error::io(what()))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    size: u64,
    data: impl Read,
    mtime_ms: i64,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime((mtime_ms / 1000).max(0) as u64);
    tar.append_data(&mut h, path, data)
}
