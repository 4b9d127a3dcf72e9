//! `mariadb.user_create` against a real, private MariaDB server that
//! enforces a password policy (`simple_password_check`,
//! `strict_password_validation=ON`) and keeps a general query log, a slow
//! log of every statement and a binary log: a strong password is accepted and works, a weak one is
//! refused with the policy's own message and creates nothing, and neither
//! password appears in any log, output, result or file of the stack.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, Stack};
use serde_json::{json, Value};

fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/test-deps/mariadb.sh (`just test` does)")
        })
}

/// A private MariaDB server with a password policy; stopped when dropped.
struct PolicyDb {
    child: Option<Child>,
    socket: PathBuf,
}

impl PolicyDb {
    async fn start(dir: &Path) -> Self {
        let data = dir.join("data");
        let tmpdir = dir.join("tmp");
        std::fs::create_dir_all(&tmpdir).unwrap();
        let install = Proc::new(program("mariadb-install-db"))
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
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let socket = dir.join("mysqld.sock");
        let log = std::fs::File::create(dir.join("mariadbd.out")).unwrap();
        let child = Proc::new(program("mariadbd"))
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
            .arg(format!("--log-bin={}", dir.join("binlog").display()))
            // A slow log that takes every statement, administrative ones too.
            .arg(format!(
                "--slow-query-log-file={}",
                dir.join("slow.log").display()
            ))
            .args([
                "--slow-query-log=ON",
                "--long-query-time=0",
                "--log-slow-admin-statements=ON",
            ])
            .args([
                "--plugin-load-add=simple_password_check",
                "--strict-password-validation=ON",
                "--skip-networking",
                "--user=root",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut db = Self {
            child: Some(child),
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
                "mariadbd did not come up (exit {exited:?}): {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        db
    }

    fn root(&self, sql: &str) -> Result<String, String> {
        self.client(&["--user=root"], sql)
    }

    fn client(&self, args: &[&str], sql: &str) -> Result<String, String> {
        let out = Proc::new(program("mariadb"))
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
}

impl Drop for PolicyDb {
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

/// Every file under `dir`, as bytes, with its path.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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

async fn run(stack: &Stack, agent: &str, action: &str, params: Value) -> Value {
    let (code, c) = stack
        .command(agent, &json!({"action": action, "params": params}))
        .await;
    assert_eq!(code, 201, "{action} {c}");
    stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_honours_the_servers_password_policy_without_leaking_passwords() {
    let stack = Stack::start().await;
    let db = PolicyDb::start(&stack.tmp.path().join("mariadb")).await;
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {:?}", db.socket))
        .await;
    wait_for(
        "the heartbeat to list mariadb",
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{}", host.id)).await;
            a["modules"]
                .as_array()
                .is_some_and(|m| m.contains(&json!("mariadb")))
                .then_some(())
        },
    )
    .await;
    let c = run(
        &stack,
        &host.id,
        "mariadb.db_create",
        json!({"name": "shop"}),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");

    // Unique parts, so any copy of a password is found wherever it lands.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let letters: String = tag
        .chars()
        .map(|c| (b'g' + (c as u8 % 16)) as char)
        .collect();
    let strong_part = format!("Zq{}", &letters[..10]);
    let strong = format!("{strong_part}-9'\\x");
    let weak = format!("weakpass{}", &letters[10..22]);

    // Strong: the policy accepts it and the account works with it.
    let c = run(
        &stack,
        &host.id,
        "mariadb.user_create",
        json!({"user": "shop_app", "password": strong, "database": "shop", "template": "app"}),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(
        db.client(
            &["--user=shop_app", &format!("--password={strong}")],
            "SELECT CURRENT_USER()"
        )
        .unwrap(),
        "shop_app@localhost"
    );

    // Weak: refused with the policy's own words, and nothing was created.
    let c = run(
        &stack,
        &host.id,
        "mariadb.user_create",
        json!({"user": "shop_weak", "password": weak, "database": "shop", "template": "readonly"}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("does not satisfy the current policy requirements")
            && summary.contains("password policy"),
        "{summary}"
    );
    assert_eq!(
        db.root("SELECT COUNT(*) FROM mysql.user WHERE User = 'shop_weak'")
            .unwrap(),
        "0"
    );

    // Neither password anywhere: logs of every process, the server's general
    // and binary logs, the database, the broker's storage, command output.
    let mut outputs = String::new();
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    for cmd in cmds["commands"].as_array().cloned().unwrap_or_default() {
        let id = cmd["id"].as_str().unwrap();
        let (_, out) = stack.get(&format!("/commands/{id}/output")).await;
        let (_, full) = stack.get(&format!("/commands/{id}")).await;
        outputs.push_str(&out.to_string());
        outputs.push_str(&full.to_string());
    }
    let masked = format!("IDENTIFIED BY '{}'", bus_schema::catalogue::MASK);
    assert!(outputs.contains(&masked), "{outputs}");
    for needle in [&strong_part, &weak] {
        assert!(!outputs.contains(needle.as_str()), "{outputs}");
        for (path, bytes) in files_under(stack.tmp.path()) {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "a password is in {}", path.display());
        }
    }
}
