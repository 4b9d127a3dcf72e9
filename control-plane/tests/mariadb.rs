//! The `mariadb` module end to end: API → signed command → agent → rootd →
//! a real, private MariaDB server started by the test (mariadb-install-db +
//! mariadbd on a Unix socket in a temporary directory, no networking). The
//! results are checked with the real `mariadb` client, logging in as the
//! users the module created.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use common::{
    ask_rootd, ask_rootd_all, files_under, mariadb_program, signed_command, wait_for, Host,
    MariaDb, Stack,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_and_users_on_a_real_mariadb_server() {
    let stack = Stack::start().await;
    let db = MariaDb::start(&stack.tmp.path().join("mariadb")).await;
    let host = stack
        .start_host_configured("h1", &format!("mariadb_socket = {:?}", db.socket))
        .await;
    let agent = stack.wait_module_listed(&host.id, "mariadb").await;
    assert!(agent["modules"]
        .as_array()
        .unwrap()
        .contains(&json!("mariadb")));

    // Passwords with quotes, a backslash and a semicolon: they must survive
    // exactly, and never show up anywhere.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let app_pw = format!("it's a \\ sec;ret {}", &tag[..8]);
    let ro_pw = format!("Ro-{}-pw", &tag[8..16]);
    let rep_pw = format!("Rep\"{}'x", &tag[16..24]);
    let other_pw = format!("never-set-{}", &tag[24..]);
    let passwords = [&app_pw, &ro_pw, &rep_pw, &other_pw];
    // Each password's unique part: found even where the text was escaped
    // (JSON, Debug formatting).
    let fragments = [&tag[..8], &tag[8..16], &tag[16..24], &tag[24..]];

    // db_create: utf8mb4, then the same again is left alone.
    let c = run(&stack, &host, "mariadb.db_create", json!({"name": "shop"})).await;
    succeeded(&c);
    assert_eq!(c["result"]["created"], true, "{c}");
    assert_eq!(
        db.root("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'")
            .unwrap(),
        "utf8mb4\tutf8mb4_unicode_ci"
    );
    db.root("CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); INSERT INTO shop.orders VALUES (1, 42); CREATE TABLE shop.secrets (x INT); INSERT INTO shop.secrets VALUES (7)")
        .unwrap();
    let again = run(&stack, &host, "mariadb.db_create", json!({"name": "shop"})).await;
    succeeded(&again);
    assert!(
        again["summary"]
            .as_str()
            .unwrap()
            .contains("already existed"),
        "{again}"
    );
    assert_eq!(again["result"]["existed"], true);
    assert_eq!(
        db.root("SELECT COUNT(*) FROM shop.orders").unwrap(),
        "1",
        "the existing database was left as it was"
    );

    // app: full DML/DDL on shop.*, and the password really works.
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "app_user", "password": app_pw, "database": "shop", "template": "app"}),
    )
    .await;
    succeeded(&c);
    let app_grant = "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON `shop`.* TO `app_user`@`localhost`";
    assert!(
        db.grants("app_user").contains(app_grant),
        "{}",
        db.grants("app_user")
    );
    assert!(
        c["result"]["grants"]
            .to_string()
            .contains("ON `shop`.* TO `app_user`@`localhost`"),
        "{c}"
    );
    assert_eq!(
        db.as_user(
            "app_user",
            &app_pw,
            "CREATE TABLE shop.made_by_app (id INT); INSERT INTO shop.made_by_app VALUES (1), (2); SELECT COUNT(*) FROM shop.made_by_app"
        )
        .unwrap(),
        "2"
    );
    let wrong = db.as_user("app_user", &other_pw, "SELECT 1").unwrap_err();
    assert!(wrong.contains("Access denied"), "{wrong}");
    let elsewhere = db
        .as_user("app_user", &app_pw, "CREATE DATABASE not_mine")
        .unwrap_err();
    assert!(elsewhere.contains("denied"), "{elsewhere}");

    // readonly: SELECT on shop.*, no INSERT.
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "ro_user", "password": ro_pw, "database": "shop", "template": "readonly"}),
    )
    .await;
    succeeded(&c);
    assert!(
        db.grants("ro_user")
            .contains("GRANT SELECT ON `shop`.* TO `ro_user`@`localhost`"),
        "{}",
        db.grants("ro_user")
    );
    assert_eq!(
        db.as_user(
            "ro_user",
            &ro_pw,
            "SELECT total FROM shop.orders WHERE id = 1"
        )
        .unwrap(),
        "42"
    );
    let denied = db
        .as_user("ro_user", &ro_pw, "INSERT INTO shop.orders VALUES (2, 1)")
        .unwrap_err();
    assert!(denied.contains("denied"), "{denied}");
    assert_eq!(db.root("SELECT COUNT(*) FROM shop.orders").unwrap(), "1");

    // reporting: SELECT on the named table only.
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "rep_user", "password": rep_pw, "database": "shop", "template": "reporting", "tables": ["orders"]}),
    )
    .await;
    succeeded(&c);
    let g = db.grants("rep_user");
    assert!(
        g.contains("GRANT SELECT ON `shop`.`orders` TO `rep_user`@`localhost`"),
        "{g}"
    );
    assert!(!g.contains("`shop`.*"), "{g}");
    assert_eq!(
        db.as_user("rep_user", &rep_pw, "SELECT total FROM shop.orders")
            .unwrap(),
        "42"
    );
    let denied = db
        .as_user("rep_user", &rep_pw, "SELECT x FROM shop.secrets")
        .unwrap_err();
    assert!(denied.contains("denied"), "{denied}");

    // Straight to rootd: what it streams and answers for a user_create holds
    // the statements it ran, with the password nowhere.
    let direct_pw = format!("Direct-{}-pw", &tag[..12]);
    let frames = ask_rootd_all(
        &host.socket,
        &signed_command(
            &stack,
            &host.id,
            "mariadb.user_create",
            json!({"user": "direct_user", "password": direct_pw, "database": "shop", "template": "readonly"}),
        ),
    )
    .await;
    let lines: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            RootFrame::Output { line, .. } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CREATE USER `direct_user`@`localhost`"))
            && lines.contains(&"GRANT SELECT ON `shop`.* TO `direct_user`@`localhost`"),
        "{lines:?}"
    );
    match frames.last().unwrap() {
        RootFrame::Done {
            status,
            summary,
            data,
            ..
        } => {
            assert_eq!(status.as_str(), "succeeded", "{summary}");
            assert!(!summary.contains(&tag[..12]) && !data.to_string().contains(&tag[..12]));
        }
        other => panic!("{other:?}"),
    }
    let direct_hash = db
        .root("SELECT authentication_string FROM mysql.user WHERE User = 'direct_user'")
        .unwrap();
    assert_eq!(direct_hash.len(), 41, "{direct_hash}");
    for f in &frames {
        let f = format!("{f:?}");
        assert!(!f.contains(&tag[..12]) && !f.contains(&direct_hash), "{f}");
    }
    assert_eq!(
        db.as_user(
            "direct_user",
            &direct_pw,
            "SELECT COUNT(*) FROM shop.orders"
        )
        .unwrap(),
        "1"
    );
    succeeded(
        &run(
            &stack,
            &host,
            "mariadb.user_drop",
            json!({"user": "direct_user"}),
        )
        .await,
    );

    // An existing user is refused and left exactly as it was.
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "app_user", "password": other_pw, "database": "shop", "template": "readonly"}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("exists; drop it first"),
        "{c}"
    );
    assert!(db.as_user("app_user", &app_pw, "SELECT 1").is_ok());
    assert!(db.as_user("app_user", &other_pw, "SELECT 1").is_err());
    assert!(db.grants("app_user").contains(app_grant));

    // A missing table or database fails before anything is created.
    let users_before = db.users();
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "rep2", "password": other_pw, "database": "shop", "template": "reporting", "tables": ["orders", "nope"]}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("shop.nope does not exist"),
        "{c}"
    );
    let c = run(
        &stack,
        &host,
        "mariadb.user_create",
        json!({"user": "rep2", "password": other_pw, "database": "nodb", "template": "app"}),
    )
    .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("nodb does not exist"),
        "{c}"
    );
    assert_eq!(db.users(), users_before);

    // list: shop without the system databases, the users with their grants.
    let l = run(&stack, &host, "mariadb.list", json!({})).await;
    succeeded(&l);
    let names: Vec<&str> = l["result"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["shop"], "{l}");
    let users = l["result"]["users"].as_array().unwrap();
    let user = |name: &str| users.iter().find(|u| u["user"] == name).cloned();
    for u in ["app_user", "ro_user", "rep_user"] {
        let u = user(u).unwrap_or_else(|| panic!("{u} listed: {l}"));
        assert_eq!(u["host"], "localhost");
        assert!(!u["grants"].as_array().unwrap().is_empty(), "{u}");
    }
    assert!(
        user("root").is_none(),
        "system accounts are not listed: {l}"
    );
    assert!(user("app_user").unwrap()["grants"]
        .to_string()
        .contains("ON `shop`.* TO `app_user`@`localhost`"));
    assert!(user("rep_user").unwrap()["grants"]
        .to_string()
        .contains("ON `shop`.`orders` TO `rep_user`@`localhost`"));

    // Hostile names: refused by the API before signing, and by rootd itself
    // when a correctly signed command carries them; nothing changes.
    let dbs_before = db.databases();
    let users_before = db.users();
    let long = "a".repeat(65);
    let hostile = [
        "x; DROP DATABASE mysql",
        "a`b",
        "../x",
        long.as_str(),
        "mysql",
    ];
    for bad in hostile {
        for (action, params) in [
            ("mariadb.db_create", json!({"name": bad})),
            ("mariadb.db_drop", json!({"name": bad})),
            (
                "mariadb.user_create",
                json!({"user": bad, "password": other_pw, "database": "shop", "template": "app"}),
            ),
            (
                "mariadb.user_create",
                json!({"user": "okname", "password": other_pw, "database": bad, "template": "app"}),
            ),
            (
                "mariadb.user_create",
                json!({"user": "okname", "password": other_pw, "database": "shop", "template": "reporting", "tables": [bad]}),
            ),
            ("mariadb.user_drop", json!({"user": bad})),
        ] {
            if bad == "mysql" && action == "mariadb.user_create" && params["tables"].is_array() {
                continue; // a table may well be called mysql
            }
            let (code, v) = stack
                .command(&host.id, &json!({"action": action, "params": params}))
                .await;
            assert!((400..500).contains(&code), "{action} {bad:?}: {code} {v}");
            let signed = signed_command(&stack, &host.id, action, params);
            match ask_rootd(&host.socket, &signed).await {
                RootFrame::Refused { label, .. } => {
                    assert_eq!(label, "invalid_params", "{action} {bad:?}")
                }
                other => panic!("rootd ran {action} {bad:?}: {other:?}"),
            }
        }
    }
    for (user, action) in [
        ("root", "mariadb.user_drop"),
        ("mysql", "mariadb.user_drop"),
    ] {
        let (code, v) = stack
            .command(
                &host.id,
                &json!({"action": action, "params": {"user": user}}),
            )
            .await;
        assert!((400..500).contains(&code), "{user}: {code} {v}");
    }
    assert_eq!(db.databases(), dbs_before);
    assert_eq!(db.users(), users_before);
    assert!(db.databases().lines().any(|l| l == "mysql"));

    // user_drop and db_drop, twice each; list follows.
    let c = run(
        &stack,
        &host,
        "mariadb.user_drop",
        json!({"user": "ro_user"}),
    )
    .await;
    succeeded(&c);
    assert_eq!(c["result"]["dropped"], true, "{c}");
    assert!(db.as_user("ro_user", &ro_pw, "SELECT 1").is_err());
    let c = run(
        &stack,
        &host,
        "mariadb.user_drop",
        json!({"user": "ro_user"}),
    )
    .await;
    succeeded(&c);
    assert!(
        c["summary"].as_str().unwrap().contains("did not exist"),
        "{c}"
    );
    let c = run(&stack, &host, "mariadb.db_drop", json!({"name": "shop"})).await;
    succeeded(&c);
    assert_eq!(c["result"]["dropped"], true, "{c}");
    assert!(!db.databases().lines().any(|l| l == "shop"));
    let c = run(&stack, &host, "mariadb.db_drop", json!({"name": "shop"})).await;
    succeeded(&c);
    assert!(
        c["summary"].as_str().unwrap().contains("did not exist"),
        "{c}"
    );
    let l = run(&stack, &host, "mariadb.list", json!({})).await;
    succeeded(&l);
    assert_eq!(l["result"]["databases"], json!([]), "{l}");
    let listed: Vec<&str> = l["result"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&"ro_user"), "{l}");
    assert!(
        listed.contains(&"app_user") && listed.contains(&"rep_user"),
        "{l}"
    );

    // The passwords (and the hashes the server keeps) appear nowhere outside
    // the server's own user table.
    let hashes: Vec<String> = db
        .root("SELECT authentication_string FROM mysql.user WHERE User IN ('app_user', 'rep_user')")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(hashes.len(), 2);
    let mut secrets: Vec<&str> = passwords.iter().map(|p| p.as_str()).collect();
    secrets.extend(fragments);
    secrets.extend(hashes.iter().map(|h| h.as_str()));
    let general = db.general_log();
    assert!(general.contains("SHOW GRANTS FOR"), "the general log is on");
    let rootd_log = host.rootd.log_text();
    let agent_log = host.agent.log_text();
    assert!(rootd_log.contains("mariadb.user_create"));
    let host_files = files_under(&host.dir);
    for s in &secrets {
        assert!(!rootd_log.contains(s), "rootd log holds {s}");
        assert!(!agent_log.contains(s), "agent log holds {s}");
        assert!(!general.contains(s), "MariaDB's general log holds {s}");
        for (p, bytes) in &host_files {
            assert!(!contains(bytes, s), "{} holds {s}", p.display());
        }
    }
    // Results and summaries (from rootd) never carry them.
    let (_, cmds) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    let cmds = cmds["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 15, "only the valid commands were created");
    for c in cmds {
        let shown = format!("{} {}", c["summary"], c["result"]);
        for s in &secrets {
            assert!(!shown.contains(s), "{s} in {c}");
        }
    }
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
