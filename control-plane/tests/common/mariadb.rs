//! A real, private MariaDB server for the `mariadb` module's tests:
//! `mariadb-install-db` + `mariadbd` on a Unix socket in a temporary
//! directory (no networking, its own tmpdir), stopped when dropped, and the
//! real `mariadb` client to check what the module did. It knows nothing of
//! the control plane; the server's options beyond the basics are the
//! test's choice ([`MariaDb::start_with`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private MariaDB server; stopped (and its data removed with the stack's
/// temporary directory) when dropped.
pub struct MariaDb {
    child: Option<Child>,
    /// The server's directory: data, logs (`error.log`, `general.log`, ...).
    pub dir: PathBuf,
    /// The server's Unix socket (root logs in by socket authentication).
    pub socket: PathBuf,
}

/// A MariaDB program from the usual directories; fails the test with how to
/// install it when missing.
pub fn mariadb_program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/test-deps/mariadb.sh (`just test` does)")
        })
}

impl MariaDb {
    /// A server in `dir`; see [`MariaDb::start_with`].
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[]).await
    }

    /// A server in `dir` with the general query log on (`general.log`: it
    /// must not catch a password either) and `extra` options for
    /// `mariadbd`; waits (up to 60 s) until root can run `SELECT 1`,
    /// failing with its error log.
    pub async fn start_with(dir: &Path, extra: &[String]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let data = dir.join("data");
        let socket = dir.join("mysqld.sock");
        // Its own temporary directory: bootstraps that share /tmp at the
        // same time (the tests run in parallel) can fail with "Could not
        // remove temporary table '/tmp/#sql-temptable-...'" and "Unknown
        // table 'mysql.tmp_user_sys'"; with a directory each they do not.
        let tmpdir = dir.join("tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let install = Command::new(mariadb_program("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .args([
                "--auth-root-authentication-method=socket",
                "--user=root",
                "--skip-test-db",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        let log = std::fs::File::create(dir.join("mariadbd.out")).unwrap();
        let child = Command::new(mariadb_program("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg("--general-log")
            .arg(format!(
                "--general-log-file={}",
                dir.join("general.log").display()
            ))
            .args(extra)
            .args(["--skip-networking", "--user=root"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut db = Self {
            child: Some(child),
            dir: dir.to_path_buf(),
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if db.socket.exists() && db.root("SELECT 1").is_ok_and(|o| o == "1") {
                break;
            }
            let exited = db.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "mariadbd did not come up (exit {exited:?}); its log:\n{}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        db
    }

    /// Runs SQL with the real client as `root` (socket authentication);
    /// tab-separated output without headers, or the client's error text.
    pub fn root(&self, sql: &str) -> Result<String, String> {
        self.client(&["--user=root"], sql)
    }

    /// Runs SQL as `user`, logging in with `password`.
    pub fn as_user(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        self.client(
            &[&format!("--user={user}"), &format!("--password={password}")],
            sql,
        )
    }

    /// Runs SQL with the real client and `args` (e.g. `--user=...`): the
    /// output as for [`MariaDb::root`], or the client's error text.
    pub fn client(&self, args: &[&str], sql: &str) -> Result<String, String> {
        let out = Command::new(mariadb_program("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(args)
            .args(["--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `SHOW GRANTS` for `user`@`localhost`.
    pub fn grants(&self, user: &str) -> String {
        self.root(&format!("SHOW GRANTS FOR '{user}'@'localhost'"))
            .unwrap()
    }

    /// `SHOW DATABASES`, one a line.
    pub fn databases(&self) -> String {
        self.root("SHOW DATABASES").unwrap()
    }

    /// Every account as `user@host`, one a line, sorted.
    pub fn users(&self) -> String {
        self.root("SELECT CONCAT(User, '@', Host) FROM mysql.user ORDER BY 1")
            .unwrap()
    }

    /// The general query log so far (empty when it is off).
    pub fn general_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("general.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every file under `dir` (recursively), as bytes, with its path: for
/// checking that a secret is written nowhere.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}
