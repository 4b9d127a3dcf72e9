//! What the backup tests need besides the stack: reading a real
//! `drover backup` archive into its entries, writing entries back
//! (including ones the tar crate's safe setters refuse: `..`, absolute
//! paths, symlinks), a snapshot of a directory tree to prove a refused
//! restore changed nothing, `drover` run against a bare data directory
//! (no stack), and a real PostgreSQL server in a temporary
//! directory ([`Postgres`]). It does not run `drover`; the tests do.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

/// One tar entry as written: raw name bytes, type, link target, mode, data.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub link: Option<Vec<u8>>,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl RawEntry {
    pub fn file(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            link: None,
            mode: 0o600,
            data: data.to_vec(),
        }
    }

    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Every entry of a gzip-compressed tar archive, in order.
pub fn read_archive(path: &Path) -> Vec<RawEntry> {
    let f = std::fs::File::open(path).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(RawEntry {
            name: e.path_bytes().into_owned(),
            kind: e.header().entry_type(),
            link: e.link_name_bytes().map(|l| l.into_owned()),
            mode: e.header().mode().unwrap(),
            data,
        });
    }
    out
}

/// Writes entries as a gzip-compressed tar, names taken byte for byte.
pub fn write_archive(path: &Path, entries: &[RawEntry]) {
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::default(),
    ));
    for e in entries {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(&e.name);
            if let Some(l) = &e.link {
                old.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// The manifest (first entry) as JSON.
pub fn manifest_of(entries: &[RawEntry]) -> serde_json::Value {
    serde_json::from_slice(&entries[0].data).unwrap()
}

/// Replaces the manifest entry with `m`.
pub fn set_manifest(entries: &mut [RawEntry], m: &serde_json::Value) {
    entries[0].data = serde_json::to_vec_pretty(m).unwrap();
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Every path under `dir` (relative) with its kind, mode and content hash;
/// an absent directory is an empty map.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if dir.symlink_metadata().is_err() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut steps = 0;
    while let Some(d) = stack.pop() {
        steps += 1;
        assert!(steps < 10_000, "{} is too deep to snapshot", dir.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let md = p.symlink_metadata().unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let what = if md.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!("file {mode:o} {}", sha256_hex(&std::fs::read(&p).unwrap()))
            };
            out.insert(rel, what);
        }
    }
    out
}

// ------------------------------------------------ drover on a data directory

/// A process's stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A successful `drover ... --json`'s stdout.
pub fn json_out(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "drover failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// `drover <args>` with `data_dir` as its data directory and nothing else
/// of the caller's environment that could change it.
pub fn drover_in(data_dir: &Path, args: &[&str]) -> std::process::Output {
    drover_env(data_dir, &[], args)
}

/// Like [`drover_in`], with extra `DROVER_*` settings.
pub fn drover_env(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(bin("drover"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DROVER_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env("DROVER_DATA_DIR", data_dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// The audit verdict line of `drover audit verify` (entries and head hash).
pub fn audit_verify(data_dir: &Path) -> String {
    let o = drover_in(data_dir, &["audit", "verify"]);
    assert!(
        o.status.success(),
        "audit verify failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(s.starts_with("audit trail intact"), "{s}");
    s
}

/// The entry count of an audit verdict line.
pub fn audit_rows(verdict: &str) -> u64 {
    verdict
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in {verdict:?}"))
}

/// The migrations applied to a SQLite file, read-only.
pub async fn migrations_applied(db_file: &Path) -> Vec<String> {
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", db_file.display()))
        .await
        .unwrap();
    let v = control_plane::backup::applied_migrations(&db)
        .await
        .unwrap();
    db.close().await.unwrap();
    v
}

// ------------------------------------------------------------- PostgreSQL

/// A PostgreSQL server of Debian's packages (`scripts/test-deps/postgresql.sh`)
/// on a free loopback port, in its own temporary directory, run as the
/// `postgres` user (it refuses root), trust authentication on loopback.
/// Killed, and its directory removed, on drop.
pub struct Postgres {
    pub proc: Proc,
    pub port: u16,
    pub bin: std::path::PathBuf,
    /// Last: removed after the server is killed.
    pub tmp: tempfile::TempDir,
}

impl Postgres {
    /// The newest installed server's `bin/` directory.
    pub fn bin_dir() -> std::path::PathBuf {
        let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: run scripts/test-deps/postgresql.sh (`just test` does)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("postgres").is_file())
            .collect();
        versions.sort();
        versions
            .pop()
            .expect("no PostgreSQL server under /usr/lib/postgresql")
    }

    pub async fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let bin = Self::bin_dir();
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("the postgres user (Debian's postgresql package makes it)");
        let tmp = tempfile::Builder::new()
            .prefix("drover-pg-")
            .tempdir()
            .unwrap();
        // The server runs as postgres: it must reach and own its directory.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        nix::unistd::chown(&data, Some(user.uid), Some(user.gid)).unwrap();
        let init = std::process::Command::new(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let mut cmd = std::process::Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.display()))
            .args(["-c", "fsync=off"])
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .current_dir(tmp.path());
        let proc = Proc::spawn("postgres", cmd, tmp.path().join("postgres.log"));
        let pg = Self {
            proc,
            port,
            bin,
            tmp,
        };
        let url = pg.url("postgres", "postgres", None);
        wait_for(
            "PostgreSQL to accept connections",
            std::time::Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let db = sea_orm::Database::connect(url.as_str()).await.ok()?;
                    db.close().await.ok()
                }
            },
        )
        .await;
        pg
    }

    /// `postgres://user[:password]@127.0.0.1:<port>/db`.
    pub fn url(&self, user: &str, db: &str, password: Option<&str>) -> String {
        let pw = password.map(|p| format!(":{p}")).unwrap_or_default();
        format!("postgres://{user}{pw}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL statements as the superuser.
    pub async fn exec(&self, sql: &[&str]) {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(self.url("postgres", "postgres", None).as_str())
            .await
            .unwrap();
        for s in sql {
            db.execute_unprepared(s).await.unwrap();
        }
        db.close().await.unwrap();
    }
}
