//! The `mariadb` module's safety end to end, against a real private
//! MariaDB server (see `mariadb.rs`): the control plane never keeps a
//! password, a statement stuck on a lock is killed at its timeout and on
//! cancel, and a host without a MariaDB socket refuses mariadb commands.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use common::{
    ask_rootd, files_under, mariadb_program, signed_command, wait_for, Host, MariaDb, Stack,
};
use serde_json::{json, Value};

/// Creates a command through the API and waits until it is final.
async fn run(stack: &Stack, host: &Host, action: &str, params: Value) -> Value {
    stack
        .run_final(&host.id, action, params, Duration::from_secs(60))
        .await
}

fn succeeded(v: &Value) {
    assert_eq!(v["status"], "succeeded", "{v}");
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The control plane's side of keeping a password secret: its log, the API's
/// command JSON (params masked) and its SQLite files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_never_keeps_the_password() {
    let stack = Stack::start().await;
    let db = MariaDb::start(&stack.tmp.path().join("mariadb")).await;
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {:?}", db.socket))
        .await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let pw = format!("cp-{tag}-pw");
    succeeded(&run(&stack, &host, "mariadb.db_create", json!({"name": "shop"})).await);
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "app_user", "password": pw, "database": "shop", "template": "app"}),
    )
    .await;
    succeeded(&c);
    assert!(db.as_user("app_user", &pw, "SELECT 1").is_ok());
    let (_, one) = stack
        .get(&format!("/commands/{}", c["id"].as_str().unwrap()))
        .await;
    let (_, all) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    // The params are still there, only masked.
    assert_eq!(one["params"]["user"], "app_user", "{one}");
    assert_eq!(
        one["params"]["password"],
        bus_schema::catalogue::MASK,
        "{one}"
    );
    let cp_log = stack.cp.log_text();
    let cp_files = files_under(&stack.data_dir);
    for s in [pw.as_str(), tag.as_str()] {
        assert!(!cp_log.contains(s), "control-plane log holds the password");
        assert!(
            !one.to_string().contains(s),
            "the API shows the password: {one}"
        );
        assert!(!all.to_string().contains(s), "the API shows the password");
        for (p, bytes) in &cp_files {
            assert!(!contains(bytes, s), "{} holds the password", p.display());
        }
    }
}

/// A `mariadb` client session held open, to hold a lock.
struct Session {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    out: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Session {
    fn open(db: &MariaDb) -> Self {
        let mut child = tokio::process::Command::new(mariadb_program("mariadb"))
            .arg("--no-defaults")
            .arg(format!("--socket={}", db.socket.display()))
            .args([
                "--user=root",
                "--batch",
                "--skip-column-names",
                "--unbuffered",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        Self { child, stdin, out }
    }

    /// Runs `sql`, then waits (with a deadline) until the session has done it.
    async fn run(&mut self, sql: &str) {
        use tokio::io::AsyncWriteExt;
        let marker = format!("done-{}", uuid::Uuid::new_v4().simple());
        self.stdin
            .write_all(format!("{sql};\nSELECT '{marker}';\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(l) = self.out.next_line().await.unwrap() {
                if l == marker {
                    return;
                }
            }
            panic!("the mariadb session ended");
        })
        .await
        .unwrap_or_else(|_| panic!("the mariadb session did not run {sql:?}"));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn drops_in_progress(db: &MariaDb) -> String {
    db.root("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'DROP DATABASE%'")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stuck_on_a_lock_is_killed_at_the_timeout_and_on_cancel() {
    let stack = Stack::start().await;
    let db = MariaDb::start(&stack.tmp.path().join("mariadb")).await;
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {:?}", db.socket))
        .await;
    succeeded(&run(&stack, &host, "mariadb.db_create", json!({"name": "shop"})).await);
    db.root("CREATE TABLE shop.orders (id INT); INSERT INTO shop.orders VALUES (1)")
        .unwrap();
    // DROP DATABASE waits for the metadata lock this session holds.
    let mut locker = Session::open(&db);
    locker.run("LOCK TABLES shop.orders WRITE").await;

    // Timeout: the command ends, and the server forgets the DROP.
    let (code, c) = stack
        .command(
            &host.id,
            &json!({"action": "mariadb.db_drop", "params": {"name": "shop"}, "timeout_secs": 2}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let done = stack
        .wait_final(c["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let summary = done["summary"].as_str().unwrap();
    assert!(
        summary.contains("did not finish within") && summary.contains("were killed"),
        "{done}"
    );
    wait_for(
        "the killed DROP to leave the server",
        Duration::from_secs(20),
        || async { (drops_in_progress(&db) == "0").then_some(()) },
    )
    .await;

    // Cancel: once the DROP is waiting on the server.
    let (code, c) = stack
        .command(
            &host.id,
            &json!({"action": "mariadb.db_drop", "params": {"name": "shop"}}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    wait_for(
        "the DROP to wait on the server",
        Duration::from_secs(30),
        || async { (drops_in_progress(&db) == "1").then_some(()) },
    )
    .await;
    // The control plane learns that the command runs from the agent's
    // intermediate report, which can arrive after the DROP reached the
    // server; until then it takes the command for queued and answers the
    // cancel with 200 (deleted from the queue) instead of 202 (sent to the
    // agent). Wait for what the 202 depends on.
    wait_for(
        "the control plane to see the DROP running",
        Duration::from_secs(30),
        || async {
            let (_, v) = stack.get(&format!("/commands/{id}")).await;
            (v["status"] == "running").then_some(())
        },
    )
    .await;
    let (code, v) = stack
        .post(&format!("/commands/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 202, "{v}");
    let done = stack.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    Stack::wait_log(
        &host.rootd,
        "cancelled; the MariaDB connection and its statement were killed",
    )
    .await;
    wait_for(
        "the cancelled DROP to leave the server",
        Duration::from_secs(20),
        || async { (drops_in_progress(&db) == "0").then_some(()) },
    )
    .await;

    // With the lock gone nothing is left to drop the database.
    locker.run("UNLOCK TABLES").await;
    assert!(db.databases().lines().any(|l| l == "shop"));
    assert_eq!(db.root("SELECT COUNT(*) FROM shop.orders").unwrap(), "1");
    // And it can still be dropped normally.
    succeeded(&run(&stack, &host, "mariadb.db_drop", json!({"name": "shop"})).await);
    assert!(!db.databases().lines().any(|l| l == "shop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_a_mariadb_socket_rejects_mariadb_commands() {
    let stack = Stack::start().await;
    let missing = stack.tmp.path().join("no-mariadb").join("mysqld.sock");
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {missing:?}"))
        .await;
    // The heartbeat carries rootd's capabilities: pkg but not mariadb.
    let agent = stack.wait_module_listed(&host.id, "pkg").await;
    assert!(
        !agent["modules"]
            .as_array()
            .unwrap()
            .contains(&json!("mariadb")),
        "{agent}"
    );
    // The control plane refuses at once: the host said it cannot.
    stack
        .assert_refused(
            &host.id,
            &json!({"action": "mariadb.db_create", "params": {"name": "shop"}}),
            &["cannot run mariadb actions"],
        )
        .await;
    // And rootd refuses too, with the reason, when asked directly (as it
    // would be by an agent whose host has not reported its modules yet).
    let signed = signed_command(
        &stack,
        &host.id,
        "mariadb.db_create",
        json!({"name": "shop"}),
    );
    match ask_rootd(&host.socket, &signed).await {
        RootFrame::Done {
            status, summary, ..
        } => {
            assert_eq!(status, bus_schema::CommandStatus::Rejected);
            assert!(
                summary.contains("no MariaDB server socket at")
                    && summary.contains(&missing.display().to_string())
                    && summary.contains("set mariadb_socket"),
                "{summary}"
            );
        }
        other => panic!("{other:?}"),
    }
}
