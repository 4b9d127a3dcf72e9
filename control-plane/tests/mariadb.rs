//! The `mariadb` module end to end: API → signed command → agent → rootd →
//! a real, private MariaDB server started by the test (mariadb-install-db +
//! mariadbd on a Unix socket in a temporary directory, no networking). The
//! results are checked with the real `mariadb` client, logging in as the
//! users the module created.

mod common;

use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use common::{ask_rootd, ask_rootd_all, files_under, signed_command, Host, MariaDb, Stack};
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
    // The password sealed to rootd's box key, as the control plane sends it.
    let box_key = common::rootd_box_key(&host.socket).await;
    let frames = ask_rootd_all(
        &host.socket,
        &common::sealed_command(
            &stack,
            &host.id,
            "mariadb.user_create",
            json!({"user": "direct_user", "password": direct_pw, "database": "shop", "template": "readonly"}),
            &box_key,
            &["password"],
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
