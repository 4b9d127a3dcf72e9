//! `drover restore`: puts a backup archive back into a data directory.
//!
//! Owns the order that makes a restore all-or-nothing: read and check the
//! whole archive into a private staging directory first (manifest, allowed
//! names, entry types, sizes, every sha256, the gzip trailer), take the data
//! directory's lock exclusively (refused while `drover serve` holds it),
//! move the files it would replace aside (only with `--force`), then rename
//! the staged files into place. Any refusal before that last step leaves
//! the data directory as it was.
//!
//! Does not own the archive format or the allowed names (`backup.rs`), nor
//! the database's schema: an older schema is migrated by the next
//! `drover serve`; a newer one is refused here.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    allowed, known_migrations, lock_exclusive, sqlite_path, DatabaseKind, Error, HashingReader,
    Manifest, DATABASE_ENTRY, FORMAT, MANIFEST_NAME, MAX_MANIFEST_BYTES,
};
use crate::config::Config;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace existing files: they are moved to
    /// `<data_dir>/pre-restore-<time>/`, never deleted.
    pub force: bool,
}

/// What `drover restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub data_dir: PathBuf,
    /// Relative paths written (the database as `drover.db`).
    pub restored: Vec<String>,
    /// Where replaced files were moved, if any were.
    pub moved_aside: Option<PathBuf>,
    pub database: DatabaseKind,
    /// Applied migrations in the backup, and how many this `drover` has:
    /// the difference runs at the next `drover serve`.
    pub schema_level: usize,
    pub schema_known: usize,
    /// When and by which version the backup was made.
    pub created_at: String,
    pub version: String,
    /// Things the operator should do next.
    pub notes: Vec<String>,
}

/// Restores `archive` into `cfg.data_dir` (and the SQLite file
/// `cfg.database_url()` names). See the module doc for the order of checks.
pub fn restore(
    cfg: &Config,
    archive: &Path,
    opts: &RestoreOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RestoreSummary, Error> {
    let data_dir = std::path::absolute(&cfg.data_dir)
        .map_err(Error::io(format!("resolving {}", cfg.data_dir.display())))?;
    let db_target = sqlite_path(&cfg.database_url()).map(|p| {
        if p.is_absolute() {
            p
        } else {
            std::path::absolute(&p).unwrap_or(p)
        }
    });
    let src = File::open(archive).map_err(Error::io(format!("opening {}", archive.display())))?;
    // An existing data directory is locked before anything is read into it;
    // a new one is made (and removed again if the restore fails).
    let existed = data_dir.exists();
    if !existed {
        std::fs::create_dir_all(&data_dir)
            .map_err(Error::io(format!("creating {}", data_dir.display())))?;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o750))
            .map_err(Error::io(format!("creating {}", data_dir.display())))?;
    }
    let _lock = lock_exclusive(&data_dir)?;
    let staging = match tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(&data_dir)
    {
        Ok(s) => s,
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&data_dir);
            }
            return Err(Error::io(format!("staging in {}", data_dir.display()))(e));
        }
    };
    // Refused before the archive's files are read when they would replace
    // existing ones and --force was not given.
    let precheck = |m: &Manifest| -> Result<(), Error> {
        let in_way = files_in_way(&data_dir, db_target.as_deref(), m);
        match opts.force || in_way.is_empty() {
            true => Ok(()),
            false => Err(refuse_overwrite(&data_dir, db_target.as_deref(), &in_way)),
        }
    };
    let sqlite = db_target.is_some();
    let outcome =
        stage(archive, src, staging.path(), sqlite, &precheck, progress).and_then(|manifest| {
            progress(&format!(
                "{} files checked against the manifest (sha256)",
                manifest.files.len()
            ));
            commit(
                &data_dir,
                db_target.as_deref(),
                staging.path(),
                &manifest,
                opts,
            )
            .map(|aside| (manifest, aside))
        });
    drop(staging);
    let (manifest, moved_aside) = match outcome {
        Ok(v) => v,
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&data_dir);
            }
            return Err(e);
        }
    };
    if let Some(dir) = &moved_aside {
        progress(&format!("replaced files moved to {}", dir.display()));
    }
    let known = known_migrations();
    let mut notes = Vec::new();
    if manifest.schema.len() < known.len() {
        notes.push(format!(
            "the database is at migration {} of {}: `drover serve` applies the rest when it starts",
            manifest.schema.len(),
            known.len()
        ));
    }
    if manifest.database == DatabaseKind::Postgres {
        notes.push(
            "the archive holds no database: restore PostgreSQL from its pg_dump file with `pg_restore --clean --if-exists --dbname=<database> <file>`".into(),
        );
    }
    if Path::new(&manifest.data_dir) != data_dir
        && manifest
            .files
            .iter()
            .any(|f| f.path.starts_with("nats-config/"))
    {
        notes.push(format!(
            "the broker configuration names the old data directory {}; run `drover init` (it keeps every key and rewrites nats-config/ for {})",
            manifest.data_dir,
            data_dir.display()
        ));
    }
    Ok(RestoreSummary {
        data_dir,
        restored: manifest.files.iter().map(|f| f.path.clone()).collect(),
        moved_aside,
        database: manifest.database,
        schema_level: manifest.schema.len(),
        schema_known: known.len(),
        created_at: manifest.created_at,
        version: manifest.version,
        notes,
    })
}

fn bad(archive: &Path, reason: impl Into<String>) -> Error {
    Error::BadArchive {
        path: archive.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the whole archive into `staging` (files by their relative path,
/// mode 0600 until committed), checking everything; returns the manifest.
fn stage(
    archive: &Path,
    src: File,
    staging: &Path,
    sqlite: bool,
    precheck: &dyn Fn(&Manifest) -> Result<(), Error>,
    progress: &mut dyn FnMut(&str),
) -> Result<Manifest, Error> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(src)));
    let mut entries = tar
        .entries()
        .map_err(|e| bad(archive, format!("not a gzip-compressed tar archive ({e})")))?;
    let first = entries
        .next()
        .ok_or_else(|| bad(archive, "empty archive"))?
        .map_err(|e| bad(archive, format!("not a gzip-compressed tar archive ({e})")))?;
    if first.path_bytes().as_ref() != MANIFEST_NAME.as_bytes()
        || first.header().entry_type() != tar::EntryType::Regular
    {
        return Err(bad(
            archive,
            format!("its first entry is not {MANIFEST_NAME}"),
        ));
    }
    let mut json = Vec::new();
    first
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| bad(archive, format!("reading the manifest: {e}")))?;
    if json.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(bad(archive, "the manifest is too large"));
    }
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| bad(archive, format!("the manifest is not valid: {e}")))?;
    check_manifest(archive, &manifest, sqlite)?;
    precheck(&manifest)?;
    progress(&format!(
        "manifest: {} from drover {}, {} files, {} migrations",
        manifest.created_at,
        manifest.version,
        manifest.files.len(),
        manifest.schema.len()
    ));

    let mut expected: HashMap<&str, &super::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for entry in entries {
        let entry = entry.map_err(|e| bad(archive, format!("the archive is damaged ({e})")))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let escapes = Path::new(&name).is_absolute()
            || Path::new(&name)
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::RootDir));
        if escapes {
            return Err(bad(
                archive,
                format!("entry {name:?} would escape the data directory"),
            ));
        }
        let ty = entry.header().entry_type();
        if ty != tar::EntryType::Regular {
            return Err(bad(
                archive,
                format!("entry {name:?} is not a regular file ({ty:?}): links, devices and directories are refused"),
            ));
        }
        let Some(want) = expected.remove(name.as_str()) else {
            return Err(bad(
                archive,
                format!("entry {name:?} is not listed in the manifest (or appears twice)"),
            ));
        };
        let size = entry
            .header()
            .size()
            .map_err(|e| bad(archive, format!("entry {name:?}: {e}")))?;
        if size != want.size {
            return Err(bad(
                archive,
                format!(
                    "entry {name:?} has {size} bytes, the manifest says {}",
                    want.size
                ),
            ));
        }
        let dest = staging.join(&want.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("staging {}", parent.display())))?;
        }
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(Error::io(format!("staging {}", dest.display())))?
        };
        let mut reader = HashingReader {
            inner: entry.take(size),
            hash: Sha256::new(),
        };
        let copied = io::copy(&mut reader, &mut out)
            .map_err(|e| bad(archive, format!("entry {name:?} is damaged ({e})")))?;
        if copied != size {
            return Err(bad(archive, format!("entry {name:?} is truncated")));
        }
        if hex::encode(reader.hash.finalize()) != want.sha256 {
            return Err(bad(
                archive,
                format!("entry {name:?} does not match its sha256 in the manifest"),
            ));
        }
        out.sync_all()
            .map_err(Error::io(format!("staging {}", dest.display())))?;
    }
    if let Some(missing) = expected.keys().next() {
        return Err(bad(
            archive,
            format!("entry {missing:?} listed in the manifest is missing"),
        ));
    }
    // The tar reader stops at the end-of-archive marker; the rest of the
    // gzip stream (its CRC and length) must still be read and checked.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| bad(archive, format!("the compressed stream is damaged ({e})")))?;
    Ok(manifest)
}

/// Whether the manifest itself can be trusted to drive a restore here.
fn check_manifest(archive: &Path, m: &Manifest, sqlite: bool) -> Result<(), Error> {
    if m.format != FORMAT {
        return Err(bad(
            archive,
            format!("unknown format {:?} (this drover reads {FORMAT})", m.format),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &m.files {
        if !allowed(&f.path) {
            return Err(bad(
                archive,
                format!(
                    "the manifest lists {:?}, which is not a file a backup may hold",
                    f.path
                ),
            ));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(bad(
                archive,
                format!("the manifest lists {:?} twice", f.path),
            ));
        }
        if f.mode > 0o777 || f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
            return Err(bad(
                archive,
                format!("the manifest's entry for {:?} is malformed", f.path),
            ));
        }
    }
    let has_db = seen.contains(DATABASE_ENTRY);
    if has_db != (m.database == DatabaseKind::Sqlite) {
        return Err(bad(
            archive,
            "the manifest's database kind and its files disagree",
        ));
    }
    if has_db && !sqlite {
        return Err(Error::Refused(
            "the backup holds a SQLite database but this configuration's database_url is not SQLite".into(),
        ));
    }
    if !seen.contains("signing.key") {
        return Err(bad(archive, "it holds no signing.key"));
    }
    let known = known_migrations();
    if let Some(unknown) = m.schema.iter().find(|s| !known.contains(s)) {
        return Err(Error::Refused(format!(
            "the backup's database has migration {unknown}, which this drover ({}) does not know: it was made by a newer version; install that version (or newer) first",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(())
}

/// Moves replaced files aside (with `force`) and the staged ones into place;
/// undoes what it did if a step fails. Returns the aside directory.
fn commit(
    data_dir: &Path,
    db_target: Option<&Path>,
    staging: &Path,
    m: &Manifest,
    opts: &RestoreOptions,
) -> Result<Option<PathBuf>, Error> {
    let target = |rel: &str| target_of(data_dir, db_target, rel);
    let in_way = files_in_way(data_dir, db_target, m);
    if !in_way.is_empty() && !opts.force {
        return Err(refuse_overwrite(data_dir, db_target, &in_way));
    }
    let owner = owner_for(data_dir);
    let mut undo: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut aside_dir = None;
    let result = (|| -> Result<(), Error> {
        if !in_way.is_empty() {
            let dir = data_dir.join(format!(
                "pre-restore-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ));
            std::fs::create_dir(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(Error::io(format!("creating {}", dir.display())))?;
            aside_dir = Some(dir.clone());
            for (path, rel) in &in_way {
                let to = dir.join(rel);
                if let Some(p) = to.parent() {
                    std::fs::create_dir_all(p)
                        .map_err(Error::io(format!("creating {}", p.display())))?;
                }
                std::fs::rename(path, &to)
                    .map_err(Error::io(format!("moving {} aside", path.display())))?;
                undo.push((to, path.clone()));
            }
        }
        for f in &m.files {
            let from = staging.join(&f.path);
            let to = target(&f.path);
            if let Some(p) = to.parent() {
                if !p.exists() {
                    std::fs::create_dir_all(p)
                        .map_err(Error::io(format!("creating {}", p.display())))?;
                    chown(p, owner)?;
                }
            }
            std::fs::set_permissions(
                &from,
                std::fs::Permissions::from_mode(restored_mode(&f.path, f.mode)),
            )
            .map_err(Error::io(format!("setting the mode of {}", from.display())))?;
            chown(&from, owner)?;
            std::fs::rename(&from, &to).map_err(Error::io(format!("writing {}", to.display())))?;
            undo.push((to, from));
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (now, was) in undo.iter().rev() {
            let _ = std::fs::rename(now, was);
        }
        if let Some(dir) = &aside_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(e);
    }
    Ok(aside_dir)
}

/// Where an archive's file goes: the database to the configured SQLite
/// path, everything else under the data directory.
fn target_of(data_dir: &Path, db_target: Option<&Path>, rel: &str) -> PathBuf {
    match (rel, db_target) {
        (DATABASE_ENTRY, Some(db)) => db.to_path_buf(),
        _ => data_dir.join(rel),
    }
}

/// Existing files a restore of `m` would replace (absolute path, name
/// relative to the data directory): every target, plus the database's WAL
/// and shared memory (a stale WAL next to a restored database would be
/// replayed into it).
fn files_in_way(data_dir: &Path, db_target: Option<&Path>, m: &Manifest) -> Vec<(PathBuf, String)> {
    let mut in_way = Vec::new();
    for f in &m.files {
        let t = target_of(data_dir, db_target, &f.path);
        if f.path == DATABASE_ENTRY {
            for suffix in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{suffix}", t.display()));
                if side.symlink_metadata().is_ok() {
                    in_way.push((side, format!("{DATABASE_ENTRY}{suffix}")));
                }
            }
        }
        if t.symlink_metadata().is_ok() {
            in_way.push((t, f.path.clone()));
        }
    }
    in_way
}

/// The refusal to replace existing files without `--force`.
fn refuse_overwrite(
    data_dir: &Path,
    db_target: Option<&Path>,
    in_way: &[(PathBuf, String)],
) -> Error {
    let what = if db_target.is_some_and(|db| db.symlink_metadata().is_ok()) {
        "holds a database already"
    } else {
        "holds files the backup would replace"
    };
    let mut names: Vec<&str> = in_way.iter().map(|(_, r)| r.as_str()).take(6).collect();
    if in_way.len() > names.len() {
        names.push("...");
    }
    Error::Refused(format!(
        "{} {what} ({}: {} files); pass --force to move them aside into {}/pre-restore-<time>/ and restore",
        data_dir.display(),
        names.join(", "),
        in_way.len(),
        data_dir.display()
    ))
}

/// When run as root, restored files belong to the data directory's owner
/// (the `drover` user of a package install), not to root.
fn owner_for(data_dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let md = std::fs::metadata(data_dir).ok()?;
    (md.uid() != 0).then_some((md.uid(), md.gid()))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), Error> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(Error::io(format!(
            "changing the owner of {}",
            path.display()
        )))?;
    }
    Ok(())
}

/// The mode a restored file gets: the archive's, but never looser than
/// what the file is (a manifest is not trusted to loosen a secret):
/// certificates and the broker's configuration at most 0644, everything
/// else — keys, credentials, tokens, the database — at most 0600.
fn restored_mode(path: &str, recorded: u32) -> u32 {
    let public = (path.ends_with(".pem") && !path.ends_with("key.pem")) || path.ends_with(".conf");
    recorded & if public { 0o644 } else { 0o600 }
}

#[cfg(test)]
mod mode_tests {
    use super::restored_mode;

    #[test]
    fn secrets_never_come_back_looser_than_0600() {
        assert_eq!(restored_mode("signing.key", 0o666), 0o600);
        assert_eq!(restored_mode("tls/ca.key", 0o777), 0o600);
        assert_eq!(restored_mode("admin.token", 0o644), 0o600);
        assert_eq!(restored_mode("drover.db", 0o666), 0o600);
        assert_eq!(restored_mode("tls/ca.pem", 0o666), 0o644);
        assert_eq!(restored_mode("nats-config/nats.conf", 0o640), 0o640);
        assert_eq!(restored_mode("signing.key", 0o400), 0o400);
    }
}
