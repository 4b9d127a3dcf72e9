//! `mariadb`: databases and users on the local MariaDB server.
//!
//! rootd talks to the server with `mysql_async` over the Unix socket
//! `mariadb_socket`, as MariaDB's `root` with no password: the server's
//! `unix_socket` authentication accepts the connection because rootd's
//! process runs as the system's root (the Debian default since 10.4). No
//! program is started and no SQL passes through a shell or an argv.
//!
//! Names were checked by the catalogue (`^[A-Za-z0-9_]{1,64}$`, no system
//! database or account) and are still quoted with backticks. The password
//! reaches the server only as a bound parameter, in a session with the
//! general query log (and, when it is on, the binary log) turned off; the
//! server builds `CREATE USER ... IDENTIFIED BY '<password>'` from it, so its
//! own password policy judges the password and its refusal (ERROR 1819) is
//! passed on. The password is never logged, put in an output line, summary
//! or result data, and every server error text is scrubbed of it (and of any
//! password hash) before it is reported.
//!
//! `user_create` never touches an existing user: it fails with "user exists;
//! drop it first", so a mistyped name cannot reset a live password.

use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use bus_schema::catalogue::mariadb::{
    DbParams, Template, UserCreateParams, UserParams, SYSTEM_DATABASES, SYSTEM_USERS,
};
use bus_schema::catalogue::{NoParams, MASK};
use bus_schema::{Command, CommandStatus, OutputStream};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use regex::Regex;
use serde_json::{json, Value};

use crate::config::RootdConfig;
use crate::toolkit::{params, Ctx, Outcome};

const CHARSET: &str = "utf8mb4";
const COLLATION: &str = "utf8mb4_unicode_ci";
/// Users are created here only.
const HOST: &str = "localhost";

pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    match std::fs::metadata(&cfg.mariadb_socket) {
        Ok(m) if m.file_type().is_socket() => Ok(()),
        _ => Err(format!(
            "no MariaDB server socket at {}; install mariadb-server or set mariadb_socket",
            cfg.mariadb_socket.display()
        )),
    }
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let action = cmd.action.strip_prefix("mariadb.").unwrap_or_default();
    // The server's id of this command's connection, to stop it on timeout or
    // cancel (0: not connected yet).
    let conn_id = AtomicU32::new(0);
    let work = async {
        match action {
            "db_create" => {
                let p = params::<DbParams>(cmd)?;
                let mut c = connect(ctx, &conn_id).await?;
                let r = db_create(&mut c, ctx, &p.name).await;
                finish(c, r).await
            }
            "db_drop" => {
                let p = params::<DbParams>(cmd)?;
                let mut c = connect(ctx, &conn_id).await?;
                let r = db_drop(&mut c, ctx, &p.name).await;
                finish(c, r).await
            }
            "user_create" => {
                let p = params::<UserCreateParams>(cmd)?;
                let mut c = connect(ctx, &conn_id).await?;
                let r = user_create(&mut c, ctx, &p).await;
                finish(c, r).await
            }
            "user_drop" => {
                let p = params::<UserParams>(cmd)?;
                let mut c = connect(ctx, &conn_id).await?;
                let r = user_drop(&mut c, ctx, &p.user).await;
                finish(c, r).await
            }
            "list" => {
                params::<NoParams>(cmd)?;
                let mut c = connect(ctx, &conn_id).await?;
                let r = list(&mut c).await;
                finish(c, r).await
            }
            _ => Err(Outcome::failed(format!(
                "rootd has no implementation of {}",
                cmd.action
            ))),
        }
    };
    let stopped = tokio::select! {
        r = work => return r.unwrap_or_else(|o| o),
        _ = tokio::time::sleep(ctx.limits.timeout) => Outcome::failed(format!(
            "MariaDB did not finish within {:?}", ctx.limits.timeout
        )),
        _ = ctx.limits.cancel.cancelled() => Outcome {
            status: CommandStatus::Cancelled,
            exit_code: None,
            summary: "cancelled".into(),
            data: Value::Null,
        },
    };
    // The work (and its connection) is dropped, but a statement the server
    // already has would still run to its end (say, once a lock it waits for
    // is released): kill that connection from a new one.
    let mut out = stopped;
    let id = conn_id.load(Ordering::SeqCst);
    if id != 0 {
        let killed = tokio::time::timeout(Duration::from_secs(10), kill(ctx, id)).await;
        match killed {
            Ok(Ok(())) => out
                .summary
                .push_str("; the MariaDB connection and its statement were killed"),
            Ok(Err(e)) => out.summary.push_str(&format!(
                "; killing the MariaDB connection failed, its statement may still complete: {e}"
            )),
            Err(_) => out.summary.push_str(
                "; killing the MariaDB connection timed out, its statement may still complete",
            ),
        }
    }
    out
}

/// `KILL CONNECTION` of a connection rootd opened, from a new one.
async fn kill(ctx: &Ctx<'_>, id: u32) -> Result<(), String> {
    let mut c = connect(ctx, &AtomicU32::new(0))
        .await
        .map_err(|o| o.summary)?;
    let r = c.query_drop(format!("KILL CONNECTION {id}")).await;
    let _ = c.disconnect().await;
    match r {
        Ok(()) => Ok(()),
        // Unknown thread id: it had ended already.
        Err(mysql_async::Error::Server(e)) if e.code == 1094 => Ok(()),
        Err(e) => Err(scrub(&e.to_string(), &[])),
    }
}

type Step<T> = Result<T, Outcome>;

/// Closes the connection politely (a failure to do so changes nothing).
async fn finish(c: Conn, r: Step<Outcome>) -> Step<Outcome> {
    let _ = c.disconnect().await;
    r
}

async fn connect(ctx: &Ctx<'_>, id: &AtomicU32) -> Step<Conn> {
    let socket = ctx.cfg.mariadb_socket.to_string_lossy().into_owned();
    let opts = OptsBuilder::default()
        .socket(Some(socket.clone()))
        .prefer_socket(false)
        .user(Some("root"));
    let mut conn = Conn::new(opts).await.map_err(|e| {
        let hint = match &e {
            mysql_async::Error::Server(s) if s.code == 1698 || s.code == 1045 => {
                " (MariaDB's root must accept unix_socket authentication, and rootd must run as the system's root)"
            }
            _ => "",
        };
        Outcome::failed(scrub(
            &format!("cannot connect to MariaDB at {socket} as root over its socket: {e}{hint}"),
            &[],
        ))
    })?;
    id.store(conn.id(), Ordering::SeqCst);
    // Keep this session's statements (the bound password included) out of
    // the general query log.
    conn.query_drop("SET SESSION sql_log_off = 1")
        .await
        .map_err(|e| {
            sql_failed(
                "cannot turn off the general query log for this session",
                e,
                &[],
            )
        })?;
    Ok(conn)
}

async fn say(ctx: &Ctx<'_>, line: String) {
    let _ = ctx.sink.send((OutputStream::Stdout, line)).await;
}

/// A backtick-quoted identifier.
fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote(user), quote(host))
}

static PASSWORD_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(password\s*(\(\s*)?|identified\s+by\s+|using\s+)'(?:[^'\\]|\\.|'')*'")
        .expect("valid regex")
});
static HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\*[0-9A-Fa-f]{40}").expect("valid regex"));

/// Server texts with every given secret, every quoted password or
/// authentication string and every native password hash replaced by the mask.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, MASK);
    }
    let out = PASSWORD_TEXT.replace_all(&out, |c: &regex::Captures| format!("{}'{MASK}'", &c[1]));
    HASH.replace_all(&out, MASK).into_owned()
}

fn sql_failed(what: &str, e: mysql_async::Error, secrets: &[&str]) -> Outcome {
    Outcome::failed(scrub(&format!("{what}: {e}"), secrets))
}

async fn db_exists(c: &mut Conn, name: &str) -> Step<bool> {
    let found: Option<String> = c
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .map_err(|e| sql_failed("cannot look up the database", e, &[]))?;
    Ok(found.is_some())
}

async fn user_exists(c: &mut Conn, user: &str) -> Step<bool> {
    let found: Option<String> = c
        .exec_first(
            "SELECT User FROM mysql.user WHERE User = ? AND Host = ?",
            (user, HOST),
        )
        .await
        .map_err(|e| sql_failed("cannot look up the user", e, &[]))?;
    Ok(found.is_some())
}

async fn table_exists(c: &mut Conn, db: &str, table: &str) -> Step<bool> {
    let found: Option<String> = c
        .exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(|e| sql_failed("cannot look up the table", e, &[]))?;
    Ok(found.is_some())
}

async fn db_create(c: &mut Conn, ctx: &Ctx<'_>, name: &str) -> Step<Outcome> {
    if db_exists(c, name).await? {
        return Ok(Outcome::succeeded(
            format!("database {name} already existed; left as it is"),
            json!({"database": name, "created": false, "existed": true}),
        ));
    }
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {CHARSET} COLLATE {COLLATION}",
        quote(name)
    );
    say(ctx, sql.clone()).await;
    c.query_drop(&sql)
        .await
        .map_err(|e| sql_failed(&format!("cannot create database {name}"), e, &[]))?;
    // Someone else may have created it between the look-up and here.
    let created = c.affected_rows() > 0;
    Ok(Outcome::succeeded(
        if created {
            format!("created database {name} ({CHARSET}, {COLLATION})")
        } else {
            format!("database {name} already existed; left as it is")
        },
        json!({
            "database": name,
            "created": created,
            "existed": !created,
            "charset": CHARSET,
            "collation": COLLATION,
        }),
    ))
}

async fn db_drop(c: &mut Conn, ctx: &Ctx<'_>, name: &str) -> Step<Outcome> {
    if !db_exists(c, name).await? {
        return Ok(Outcome::succeeded(
            format!("database {name} did not exist"),
            json!({"database": name, "dropped": false, "existed": false}),
        ));
    }
    let sql = format!("DROP DATABASE IF EXISTS {}", quote(name));
    say(ctx, sql.clone()).await;
    c.query_drop(&sql)
        .await
        .map_err(|e| sql_failed(&format!("cannot drop database {name}"), e, &[]))?;
    Ok(Outcome::succeeded(
        format!("dropped database {name}"),
        json!({"database": name, "dropped": true, "existed": true}),
    ))
}

/// The GRANT statements of a template, on `db`.* or on each table.
fn grants(p: &UserCreateParams) -> Vec<String> {
    let to = account(&p.user, HOST);
    let privs = p.template.privileges();
    match p.template {
        Template::App | Template::Readonly => {
            vec![format!("GRANT {privs} ON {}.* TO {to}", quote(&p.database))]
        }
        Template::Reporting => p
            .tables
            .iter()
            .map(|t| {
                format!(
                    "GRANT {privs} ON {}.{} TO {to}",
                    quote(&p.database),
                    quote(t)
                )
            })
            .collect(),
    }
}

async fn user_create(c: &mut Conn, ctx: &Ctx<'_>, p: &UserCreateParams) -> Step<Outcome> {
    let secrets = [p.password.as_str()];
    let who = format!("{}@{HOST}", p.user);
    // Every check first, so a refusal changes nothing.
    if user_exists(c, &p.user).await? {
        return Err(Outcome::failed(format!("user {who} exists; drop it first")));
    }
    if !db_exists(c, &p.database).await? {
        return Err(Outcome::failed(format!(
            "database {} does not exist; create it first",
            p.database
        )));
    }
    for t in &p.tables {
        if !table_exists(c, &p.database, t).await? {
            return Err(Outcome::failed(format!(
                "table {}.{t} does not exist",
                p.database
            )));
        }
    }
    let to = account(&p.user, HOST);
    unlogged_in_binlog(c, ctx).await?;
    say(ctx, format!("CREATE USER {to} IDENTIFIED BY '{MASK}'")).await;
    create_account(c, &to, &p.password)
        .await
        .map_err(|e| match &e {
            mysql_async::Error::Server(s) if s.code == 1819 => Outcome::failed(scrub(
                &format!(
                    "MariaDB's password policy refused the password for {who}: {}; \
                     choose one the policy accepts (see the server's password validation settings)",
                    s.message
                ),
                &secrets,
            )),
            _ => sql_failed(&format!("cannot create user {who}"), e, &secrets),
        })?;
    for g in grants(p) {
        say(ctx, g.clone()).await;
        if let Err(e) = c.query_drop(&g).await {
            // Leave nothing half made.
            let undo = c.query_drop(format!("DROP USER {to}")).await;
            let mut why = scrub(&format!("cannot grant to {who}: {e}"), &secrets);
            if let Err(u) = undo {
                why.push_str(&scrub(
                    &format!("; and dropping the user again failed: {u}"),
                    &secrets,
                ));
            } else {
                why.push_str("; the user was dropped again");
            }
            return Err(Outcome::failed(why));
        }
    }
    let shown = show_grants(c, &p.user, HOST).await?;
    Ok(Outcome::succeeded(
        format!(
            "created user {who} with template {} on {}",
            template_name(p.template),
            p.database
        ),
        json!({
            "user": p.user,
            "host": HOST,
            "database": p.database,
            "template": p.template,
            "tables": p.tables,
            "grants": shown,
        }),
    ))
}

/// `CREATE USER <to> IDENTIFIED BY '<password>'`, so the server's own
/// password policy (`simple_password_check`, `cracklib_password_check`,
/// `strict_password_validation`) judges the password. The password travels
/// only as a bound parameter; the server quotes it and builds the statement
/// itself (in a session whose general and slow logs are off), so it is
/// never in an SQL text rootd sends, logs or reports. The user variables are cleared after.
async fn create_account(c: &mut Conn, to: &str, password: &str) -> Result<(), mysql_async::Error> {
    // QUOTE() escapes with backslashes: they must mean escapes here.
    c.query_drop("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        .await?;
    // The slow log (long_query_time = 0 logs everything) would keep the
    // executed statement; this session stays out of it.
    c.query_drop("SET SESSION slow_query_log = 0").await?;
    c.exec_drop(
        "SET @drover_create_user = CONCAT('CREATE USER ', ?, ' IDENTIFIED BY ', QUOTE(?))",
        (to, password),
    )
    .await?;
    let r = async {
        c.query_drop("PREPARE drover_create_user FROM @drover_create_user")
            .await?;
        let r = c.query_drop("EXECUTE drover_create_user").await;
        let _ = c.query_drop("DEALLOCATE PREPARE drover_create_user").await;
        r
    }
    .await;
    let _ = c.query_drop("SET @drover_create_user = NULL").await;
    r
}

/// With binary logging on, the server would write the CREATE USER statement
/// to the binary log with the password in clear: this session's changes
/// stay out of it (and so out of replicas, which get the account from their
/// own `user_create`). Says so in the output.
async fn unlogged_in_binlog(c: &mut Conn, ctx: &Ctx<'_>) -> Step<()> {
    let on: Option<i64> = c
        .query_first("SELECT @@log_bin")
        .await
        .map_err(|e| sql_failed("cannot read whether binary logging is on", e, &[]))?;
    if on.unwrap_or(0) == 0 {
        return Ok(());
    }
    c.query_drop("SET SESSION sql_log_bin = 0")
        .await
        .map_err(|e| sql_failed("cannot keep the password out of the binary log", e, &[]))?;
    say(
        ctx,
        "binary logging is on: this account is created with sql_log_bin = 0, so the password \
         never reaches the binary log; run user_create on each replica as well"
            .into(),
    )
    .await;
    Ok(())
}

fn template_name(t: Template) -> &'static str {
    match t {
        Template::App => "app",
        Template::Readonly => "readonly",
        Template::Reporting => "reporting",
    }
}

async fn user_drop(c: &mut Conn, ctx: &Ctx<'_>, user: &str) -> Step<Outcome> {
    let who = format!("{user}@{HOST}");
    if !user_exists(c, user).await? {
        return Ok(Outcome::succeeded(
            format!("user {who} did not exist"),
            json!({"user": user, "host": HOST, "dropped": false, "existed": false}),
        ));
    }
    let sql = format!("DROP USER IF EXISTS {}", account(user, HOST));
    say(ctx, sql.clone()).await;
    c.query_drop(&sql)
        .await
        .map_err(|e| sql_failed(&format!("cannot drop user {who}"), e, &[]))?;
    Ok(Outcome::succeeded(
        format!("dropped user {who}"),
        json!({"user": user, "host": HOST, "dropped": true, "existed": true}),
    ))
}

/// `SHOW GRANTS` of an account, with password hashes masked.
async fn show_grants(c: &mut Conn, user: &str, host: &str) -> Step<Vec<String>> {
    let rows: Vec<String> = c
        .query(format!("SHOW GRANTS FOR {}", account(user, host)))
        .await
        .map_err(|e| sql_failed(&format!("cannot read the grants of {user}@{host}"), e, &[]))?;
    Ok(rows.iter().map(|g| scrub(g, &[])).collect())
}

async fn list(c: &mut Conn) -> Step<Outcome> {
    let dbs: Vec<(String, String, String)> = c
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
        )
        .await
        .map_err(|e| sql_failed("cannot list databases", e, &[]))?;
    let databases: Vec<Value> = dbs
        .into_iter()
        .filter(|(n, _, _)| !SYSTEM_DATABASES.iter().any(|s| s.eq_ignore_ascii_case(n)))
        .map(|(name, charset, collation)| {
            json!({"name": name, "charset": charset, "collation": collation})
        })
        .collect();
    let accounts: Vec<(String, String)> = c
        .query("SELECT User, Host FROM mysql.user WHERE is_role = 'N' ORDER BY User, Host")
        .await
        .map_err(|e| sql_failed("cannot list users", e, &[]))?;
    let mut users = Vec::new();
    for (user, host) in accounts {
        if user.is_empty() || SYSTEM_USERS.iter().any(|s| s.eq_ignore_ascii_case(&user)) {
            continue;
        }
        let grants = show_grants(c, &user, &host).await?;
        users.push(json!({"user": user, "host": host, "grants": grants}));
    }
    Ok(Outcome::succeeded(
        format!("{} databases, {} users", databases.len(), users.len()),
        json!({"databases": databases, "users": users}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_secrets_quoted_passwords_and_hashes() {
        let pw = "s3cret'pass\\word";
        let t = scrub(
            &format!("near 'IDENTIFIED BY '{pw}'' at line 1; also {pw}"),
            &[pw],
        );
        assert!(!t.contains("s3cret"), "{t}");
        let g = "GRANT USAGE ON *.* TO `a`@`localhost` IDENTIFIED BY PASSWORD '*0123456789ABCDEF0123456789ABCDEF01234567'";
        let s = scrub(g, &[]);
        assert!(!s.contains("0123456789ABCDEF"), "{s}");
        assert!(s.contains(MASK));
        let s = scrub("SELECT PASSWORD('hunter2hunter2')", &[]);
        assert!(!s.contains("hunter2"), "{s}");
        let s = scrub("IDENTIFIED VIA ed25519 USING 'abcdef'", &[]);
        assert!(!s.contains("abcdef"), "{s}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("shop"), "`shop`");
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(account("u", "localhost"), "`u`@`localhost`");
    }

    #[test]
    fn templates_grant_what_they_say() {
        let mut p = UserCreateParams {
            user: "u".into(),
            password: "x".repeat(12),
            database: "shop".into(),
            template: Template::App,
            tables: vec![],
        };
        assert_eq!(
            grants(&p),
            vec!["GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON `shop`.* TO `u`@`localhost`"]
        );
        p.template = Template::Readonly;
        assert_eq!(
            grants(&p),
            vec!["GRANT SELECT ON `shop`.* TO `u`@`localhost`"]
        );
        p.template = Template::Reporting;
        p.tables = vec!["orders".into(), "items".into()];
        assert_eq!(
            grants(&p),
            vec![
                "GRANT SELECT ON `shop`.`orders` TO `u`@`localhost`",
                "GRANT SELECT ON `shop`.`items` TO `u`@`localhost`"
            ]
        );
    }
}
