//! A real, private PostgreSQL server for running the control plane on
//! PostgreSQL: Debian's `initdb` + `postgres` (from
//! `/usr/lib/postgresql/<ver>/bin`) in a temporary directory, listening on a
//! free loopback port, with a `drover` role that logs in with a password
//! (scram) and owns a `drover` database — the shape the production compose
//! gives the control plane. Stopped and removed when dropped.
//!
//! It knows nothing of the control plane; [`Stack`] decides when to use it
//! (`Stack::start_postgres`, or any `Stack::start` when the environment says
//! `DROVER_TEST_DATABASE=postgres`) and reads the URL it left in the data
//! directory ([`test_database_url`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::*;

/// The file in a control-plane data directory that names the test's
/// PostgreSQL database (a test convention, not something `drover` reads).
const URL_FILE: &str = "test-database-url";

/// A private PostgreSQL server; stopped (and its directory removed) when
/// dropped.
pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    /// `postgres://drover:<password>@127.0.0.1:<port>/drover`.
    pub url: String,
    /// Last: removed after the server was killed.
    pub dir: TempDir,
}

/// A PostgreSQL program (`initdb`, `postgres`, `psql`...) from Debian's
/// versioned directory; fails the test with how to install it when missing.
pub fn pg_program(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/test-deps/postgres.sh (`just test` does)")
        })
}

/// Whether the environment asks every [`Stack`] of this run to use
/// PostgreSQL instead of SQLite (`DROVER_TEST_DATABASE=postgres`).
pub fn postgres_requested() -> bool {
    std::env::var("DROVER_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// The database URL a stack's data directory was set up with, if it runs on
/// PostgreSQL; `None` for SQLite.
pub fn test_database_url(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(URL_FILE))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Records `url` as the database of the stack whose data directory is
/// `data_dir` (see [`test_database_url`]).
pub fn set_test_database_url(data_dir: &Path, url: &str) {
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(data_dir.join(URL_FILE), url).unwrap();
}

/// Runs as the `postgres` user when the tests run as root (PostgreSQL
/// refuses to run as root); as the current user otherwise.
fn as_server_user(cmd: &mut Command) -> Option<(u32, u32)> {
    if !nix::unistd::getuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("no `postgres` user: run scripts/test-deps/postgres.sh");
    let (uid, gid) = (u.uid.as_raw(), u.gid.as_raw());
    cmd.uid(uid).gid(gid);
    Some((uid, gid))
}

impl Postgres {
    /// Initialises a cluster in a new temporary directory and starts it on a
    /// free loopback port; waits (up to 60 s) until `drover` can log in.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-pg-")
            .tempdir()
            .unwrap();
        let password = uuid::Uuid::new_v4().simple().to_string();
        let pwfile = dir.path().join("superuser.pw");
        std::fs::write(&pwfile, &password).unwrap();
        let mut probe = Command::new("true");
        if let Some((uid, gid)) = as_server_user(&mut probe) {
            let chown = |p: &Path| {
                nix::unistd::chown(
                    p,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )
                .unwrap()
            };
            chown(dir.path());
            chown(&pwfile);
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(pg_program("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdin(Stdio::null())
            .current_dir(dir.path());
        as_server_user(&mut initdb);
        let out = initdb.output().unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let mut server = Command::new(pg_program("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .current_dir(dir.path());
        as_server_user(&mut server);
        let child = server.spawn().unwrap();
        let mut pg = Self {
            child: Some(child),
            port,
            url: String::new(),
            dir,
        };
        let superuser = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        let admin = loop {
            if let Ok(c) = sea_orm::Database::connect(superuser.as_str()).await {
                break c;
            }
            let exited = pg.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "postgres did not come up (exit {exited:?}); its log:\n{}",
                std::fs::read_to_string(pg.dir.path().join("postgres.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        use sea_orm::ConnectionTrait;
        let drover_pw = uuid::Uuid::new_v4().simple().to_string();
        admin
            .execute_unprepared(&format!("CREATE ROLE drover LOGIN PASSWORD '{drover_pw}'"))
            .await
            .unwrap();
        admin
            .execute_unprepared("CREATE DATABASE drover OWNER drover")
            .await
            .unwrap();
        admin.close().await.unwrap();
        pg.url = format!("postgres://drover:{drover_pw}@127.0.0.1:{port}/drover");
        pg
    }

    /// The server's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGQUIT: immediate shutdown, the postmaster takes its backends
            // with it (a SIGKILL would leave them running for a moment).
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGQUIT,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
