//! `drover`: the control plane and the operator's CLI.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use control_plane::{client, config::Config, dev, serve};
use serde_json::Value;

/// Drover: fleet management over NATS JetStream.
///
/// Start everything on one machine with `drover dev`; in production run
/// `drover init` once, then `drover serve`. The other commands talk to a
/// running control plane through its API.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// Configuration file (TOML). Defaults to ./drover.toml if present;
    /// every key can also be set as DROVER_<KEY> (e.g. DROVER_NATS_URL).
    #[arg(long, short, global = true, env = "DROVER_CONFIG")]
    config: Option<PathBuf>,
    /// Control-plane URL for the client commands.
    #[arg(
        long,
        global = true,
        env = "DROVER_API",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// API token for the client commands (default: <data_dir>/admin.token).
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the command-signing key, the bootstrap admin API token and the
    /// first web UI admin `admin` (once). The admin's password is generated
    /// and printed once, unless given with --admin-password-file.
    Init {
        /// A file holding the first admin's password (12+ characters).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
    },
    /// Web UI accounts (run on the control-plane host; they use its database).
    Users {
        #[command(subcommand)]
        action: UsersCmd,
    },
    /// API tokens for automation, each bound to a role.
    ApiTokens {
        #[command(subcommand)]
        action: ApiTokensCmd,
    },
    /// The hash-chained audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Run the control plane: API, web UI, bus consumers.
    Serve,
    /// Run the whole stack on this machine: nats-server, control plane, one
    /// rootd and one agent. Ctrl-C stops everything.
    Dev {
        /// Port of the dev nats-server.
        #[arg(long, default_value_t = 4222)]
        nats_port: u16,
        /// Address of the API and web UI.
        #[arg(long)]
        listen: Option<String>,
        /// Data directory (database, keys, broker storage).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Heartbeat interval of the local agent.
        #[arg(long, default_value_t = 5)]
        heartbeat_secs: u32,
    },
    /// Read one message body on stdin and print it as JSON
    /// (for `nats sub --translate 'drover decode'`).
    Decode,
    /// List agents (status, last seen, metrics), or approve, reject, revoke one.
    Agents {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<AgentsCmd>,
    },
    /// Registration tokens for enrolling hosts.
    Tokens {
        #[command(subcommand)]
        action: TokensCmd,
    },
    /// Signing key, broker trust, refused commands, binding conflicts,
    /// revoked and pending agents.
    Security {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one command to one agent, e.g. `drover send <agent> sys.ping`.
    Send {
        agent: String,
        /// `module.action`; `drover actions` lists them.
        action: String,
        /// Parameters as key=value.
        params: Vec<String>,
        /// Seconds to wait for the result (0: return at once).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Override the action's default timeout, in seconds.
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// Run an action on every agent a selector matches, with live progress
    /// and a per-host summary, e.g.
    /// `drover run label:env=prod,host:web-* pkg.scan` or `drover run all sys.ping`.
    ///
    /// Selector terms (comma-separated, all must hold; ids are alternatives):
    /// all, id:<agent>, label:<k>=<v>, host:<glob>, os:<name>, fact:<k>=<v>.
    Run {
        selector: String,
        /// `module.action`; `drover actions` lists them.
        action: String,
        /// Parameters as key=value.
        params: Vec<String>,
        /// Seconds to follow the job (0: submit and return).
        #[arg(long, default_value_t = 300)]
        wait: u64,
        /// Submitting again with the same key returns the same job.
        #[arg(long)]
        key: Option<String>,
        /// Override the action's default timeout, in seconds.
        #[arg(long)]
        timeout: Option<u32>,
        /// Seconds a command may wait for an offline host.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// List recent jobs, or show one with per-host results.
    Jobs { id: Option<String> },
    /// Show one command and its result.
    Command {
        id: String,
        /// Seconds to wait for a final state.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Keys automation signs `drover.jobs.submit` messages with, bound to a role.
    Automation {
        #[command(subcommand)]
        action: AutomationCmd,
    },
    /// Cancel a command that still waits in its agent's queue.
    Cancel { id: String },
    /// List the actions agents can run, or show one with its params schema.
    Actions { name: Option<String> },
    /// The output of a command (live from the broker); `--follow` keeps
    /// printing until the command ends.
    Logs {
        command: String,
        /// Keep printing new lines until the command reaches a final state.
        #[arg(long, short)]
        follow: bool,
        /// Give up following after this many seconds.
        #[arg(long, default_value_t = 3600)]
        max_wait: u64,
    },
    /// The app catalogue (from the manifests): list, show a form, install.
    Apps {
        #[command(subcommand)]
        action: Option<AppsCmd>,
    },
}

#[derive(Subcommand, Debug)]
enum AppsCmd {
    /// List the apps.
    List,
    /// Show an app's inputs (its install form).
    Show { id: String },
    /// Install an app on every host a selector matches, e.g.
    /// `drover apps install nginx host:web-* server_name=example.org`.
    /// Inputs are key=value; `key=@/path` reads the value from a file, so a
    /// password never has to be on the command line.
    Install {
        id: String,
        selector: String,
        inputs: Vec<String>,
        /// Seconds to follow the job (0: submit and return).
        #[arg(long, default_value_t = 1800)]
        wait: u64,
        /// Submitting again with the same key returns the same job.
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCmd {
    /// Add a user. The password is asked for on the terminal, or read from
    /// --password-file, or from DROVER_NEW_PASSWORD (for scripts) — never
    /// from the command line.
    Add {
        name: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List,
    /// Change a user's role (their sessions end).
    SetRole { name: String, role: String },
    /// Set a new password (asked for, or --password-file / DROVER_NEW_PASSWORD).
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a user (their sessions end).
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
enum ApiTokensCmd {
    /// Make a token bound to a role (shown once).
    Create {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Walk the chain; report the first edited or deleted entry (exit 1).
    Verify,
}

#[derive(Subcommand, Debug)]
enum AgentsCmd {
    /// Let a pending agent in: it receives its credentials at its next try.
    Approve { id: String },
    /// Refuse a pending agent.
    Reject { id: String },
    /// Cut an agent off: the broker closes its connection at once and refuses
    /// it from now on; its queued commands are cancelled.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum AutomationCmd {
    /// Make a new key pair here and print it (the seed is shown once; keep it
    /// with the automation, give the control plane only the public key).
    Keygen,
    /// Register a public key under a name and a role (operator or admin may submit jobs).
    Add {
        name: String,
        #[arg(long, default_value = "operator")]
        role: String,
        #[arg(long)]
        public_key: String,
    },
    /// List registered keys.
    List,
    /// Revoke a key: its submissions are refused from now on.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum TokensCmd {
    /// Make a token (shown once). Hosts enrol with it until it expires or is used up.
    Create {
        /// How many hosts may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: i32,
        /// Lifetime: 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Labels given to hosts enrolled with it (key=value, repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Approve hosts at once instead of waiting for `drover agents approve`.
        #[arg(long)]
        auto_approve: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token so no more hosts can enrol with it.
    Revoke { id: String },
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,async_nats=warn,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Decode => return decode(),
        Cmd::Init { .. } | Cmd::Serve | Cmd::Dev { .. } => init_tracing(),
        _ => {}
    }
    let mut cfg = Config::load(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Init {
            admin_password_file,
        } => {
            let given = match admin_password_file {
                Some(p) => Some(read_password_file(&p)?),
                None => None,
            };
            match serve::init(&cfg).await? {
                Some(token) => {
                    println!(
                        "Admin API token (shown once; also saved 0600 in {}):",
                        cfg.admin_token_path().display()
                    );
                    println!("{token}");
                }
                None => println!(
                    "Already initialised; the admin token is in {}",
                    cfg.admin_token_path().display()
                ),
            }
            match serve::init_admin_user(&cfg, given).await? {
                Some(pw) => {
                    println!("Web UI user `admin` created; its password (shown once):");
                    println!("{pw}");
                }
                None => println!("Web UI users exist already (`drover users list`)."),
            }
            println!("The admin API token is for set-up; give automation its own token: `drover api-tokens create <name> --role operator`.");
            let signer = serve::load_signer(&cfg)?;
            println!(
                "Command-signing key fingerprint: {}",
                signer.public().fingerprint()
            );
            Ok(())
        }
        Cmd::Users { action } => users_command(&cfg, action).await,
        Cmd::Audit {
            action: AuditCmd::Verify,
        } => {
            let db = control_plane::db::connect(&cfg.database_url()).await?;
            match control_plane::audit::verify(&db).await? {
                control_plane::audit::Verdict::Intact { rows, head } => {
                    println!("audit trail intact: {rows} entries; head hash {head}");
                    Ok(())
                }
                control_plane::audit::Verdict::Broken { id, reason } => {
                    eprintln!("audit trail BROKEN at entry {id}: {reason}");
                    std::process::exit(1);
                }
            }
        }
        Cmd::Serve => serve::serve(cfg, serve::signal()).await,
        Cmd::Dev {
            nats_port,
            listen,
            data_dir,
            heartbeat_secs,
        } => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            dev::run(
                cfg,
                dev::DevOptions {
                    nats_port,
                    agent_heartbeat_secs: heartbeat_secs,
                },
            )
            .await
        }
        Cmd::Decode => unreachable!(),
        Cmd::Automation {
            action: AutomationCmd::Keygen,
        } => {
            let k = bus_schema::jobs::AutomationKey::generate();
            println!("seed (secret, shown once): {}", k.seed_base64());
            println!("public key:                {}", k.public_base64());
            println!(
                "register it: drover automation add <name> --role operator --public-key {}",
                k.public_base64()
            );
            Ok(())
        }
        other => {
            let token = match cli.token {
                Some(t) => t,
                None => std::fs::read_to_string(cfg.admin_token_path())
                    .map(|s| s.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no API token: pass --token, set DROVER_TOKEN, or run where {} exists",
                            cfg.admin_token_path().display()
                        )
                    })?,
            };
            let api = client::ApiClient::new(&cli.api, token);
            client_command(&api, other).await
        }
    }
}

fn read_password_file(p: &std::path::Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// A new password: from a file, DROVER_NEW_PASSWORD, or the terminal
/// (asked twice, not echoed). Never from argv.
fn new_password(file: Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(f) = file {
        return read_password_file(&f);
    }
    if let Ok(p) = std::env::var("DROVER_NEW_PASSWORD") {
        return Ok(p);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no password: use --password-file, DROVER_NEW_PASSWORD, or run on a terminal"
        );
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        // Echo off while typing; stty runs without a shell.
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let mut line = String::new();
        let r = std::io::stdin().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        r?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let a = ask("New password: ")?;
    let b = ask("Again: ")?;
    if a != b {
        anyhow::bail!("the passwords differ");
    }
    Ok(a)
}

fn local_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("cli:{who}")
}

async fn users_command(cfg: &Config, action: UsersCmd) -> anyhow::Result<()> {
    use control_plane::{audit, auth};
    let db = control_plane::db::connect(&cfg.database_url()).await?;
    let record = |action: &'static str, target: String, detail: Value| {
        let db = db.clone();
        async move {
            audit::record(
                &db,
                audit::Entry::new(&local_actor(), action, &target, "local", detail),
            )
            .await
        }
    };
    match action {
        UsersCmd::Add {
            name,
            role,
            password_file,
        } => {
            let pw = new_password(password_file)?;
            auth::add_user(&db, &name, &role, &pw).await?;
            record("user.add", name.clone(), serde_json::json!({"role": role})).await?;
            println!("user {name} added as {role}");
        }
        UsersCmd::List => {
            println!("{:<24} {:<9} 2FA", "NAME", "ROLE");
            for u in auth::list_users(&db).await? {
                println!(
                    "{:<24} {:<9} {}",
                    u.name,
                    u.role,
                    if u.totp_secret.is_some() { "on" } else { "off" }
                );
            }
        }
        UsersCmd::SetRole { name, role } => {
            auth::set_role(&db, &name, &role).await?;
            record("user.role", name.clone(), serde_json::json!({"role": role})).await?;
            println!("user {name} is now {role}");
        }
        UsersCmd::Passwd {
            name,
            password_file,
        } => {
            let u = auth::find_user(&db, &name)
                .await?
                .with_context(|| format!("no user {name:?}"))?;
            let pw = new_password(password_file)?;
            auth::set_password(&db, &u.id, &pw).await?;
            auth::end_sessions_of(&db, &u.id).await?;
            record("user.password", name.clone(), serde_json::json!({})).await?;
            println!("password of {name} changed");
        }
        UsersCmd::Remove { name } => {
            auth::remove_user(&db, &name).await?;
            record("user.remove", name.clone(), serde_json::json!({})).await?;
            println!("user {name} removed");
        }
    }
    Ok(())
}

fn decode() -> anyhow::Result<()> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf)?;
    // nats sub gives no headers to a translator: JSON is recognised by shape
    // (a MessagePack envelope never starts with `{`).
    let trimmed = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &buf[i..])
        .unwrap_or(&buf[..]);
    let ct = trimmed
        .first()
        .filter(|b| **b == b'{')
        .map(|_| bus_schema::CONTENT_TYPE_JSON);
    let v = bus_schema::codec::to_json(&buf, ct)
        .context("stdin is not a Drover message (MessagePack or JSON)")?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn fmt_bytes(b: f64) -> String {
    let gib = b / (1024.0 * 1024.0 * 1024.0);
    format!("{gib:.1}G")
}

async fn client_command(api: &client::ApiClient, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Agents {
            action: Some(action),
            ..
        } => {
            let (verb, id) = match &action {
                AgentsCmd::Approve { id } => ("approve", id),
                AgentsCmd::Reject { id } => ("reject", id),
                AgentsCmd::Revoke { id } => ("revoke", id),
            };
            let v = api
                .post(&format!("/agents/{id}/{verb}"), &serde_json::json!({}))
                .await?;
            println!(
                "agent {} is now {}",
                id,
                v["status"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Cmd::Tokens { action } => tokens_command(api, action).await,
        Cmd::ApiTokens { action } => match action {
            ApiTokensCmd::Create { name, role } => {
                let v = api
                    .post(
                        "/api-tokens",
                        &serde_json::json!({"name": name, "role": role}),
                    )
                    .await?;
                println!("API token {name} ({role}), shown once:");
                println!("{}", v["token"].as_str().unwrap_or(""));
                println!("id {}", v["id"].as_str().unwrap_or(""));
                Ok(())
            }
            ApiTokensCmd::List => {
                let v = api.get("/api-tokens").await?;
                println!("{:<34} {:<24} ROLE", "ID", "NAME");
                for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "{:<34} {:<24} {}",
                        t["id"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or(""),
                        t["role"].as_str().unwrap_or("")
                    );
                }
                Ok(())
            }
            ApiTokensCmd::Revoke { id } => {
                api.delete(&format!("/api-tokens/{id}")).await?;
                println!("API token {id} revoked");
                Ok(())
            }
        },
        Cmd::Security { json } => {
            let v = api.get("/security").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "Command-signing key   {}",
                v["signing_key"]["fingerprint"].as_str().unwrap_or("")
            );
            println!(
                "Broker                {} mode, {} resolver, account {}",
                v["broker"]["mode"].as_str().unwrap_or(""),
                v["broker"]["resolver"].as_str().unwrap_or(""),
                v["broker"]["account"].as_str().unwrap_or("")
            );
            println!(
                "Enrolment requests    {} dropped since start (reply subject not an enrolment inbox)",
                v["enrolment"]["dropped_requests"].as_u64().unwrap_or(0)
            );
            println!("\nRefused commands and results:");
            let refused = v["refused"].as_array().cloned().unwrap_or_default();
            if refused.is_empty() {
                println!("  none");
            }
            for r in refused {
                println!(
                    "  {:<14} {:<16} {}",
                    r["source"].as_str().unwrap_or(""),
                    r["reason"].as_str().unwrap_or(""),
                    r["count"]
                );
            }
            for (title, key) in [
                (
                    "Malformed messages (terminated, never redelivered)",
                    "malformed_messages",
                ),
                ("Refusals dropped over the rate limit", "refusals_dropped"),
            ] {
                let rows = v[key].as_array().cloned().unwrap_or_default();
                println!("\n{title}:");
                if rows.is_empty() {
                    println!("  none");
                }
                for d in rows {
                    println!(
                        "  {:<20} {:<58} {:>8}  {}",
                        d["subject"].as_str().unwrap_or(""),
                        d["agent_id"].as_str().unwrap_or(""),
                        d["count"],
                        d["last_detail"].as_str().unwrap_or("")
                    );
                }
            }
            for (title, key) in [
                ("Machine-binding conflicts", "binding_conflicts"),
                ("Revoked agents", "revoked_agents"),
                (
                    "Pending agents (drover agents approve <id>)",
                    "pending_agents",
                ),
            ] {
                let list = v[key].as_array().cloned().unwrap_or_default();
                println!("\n{title}: {}", list.len());
                for item in list {
                    println!("  {item}");
                }
            }
            Ok(())
        }
        Cmd::Agents { json, action: None } => {
            let v = api.get("/agents").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let agents = v["agents"].as_array().cloned().unwrap_or_default();
            if agents.is_empty() {
                println!("No agents yet. Start one with `drover dev`, or see the README on enrolling a host.");
                return Ok(());
            }
            println!(
                "{:<58} {:<20} {:<8} {:>6} {:>12} {:>12}  LAST SEEN",
                "ID", "HOSTNAME", "STATUS", "CPU%", "MEM", "DISK"
            );
            let now = bus_schema::now_ms();
            for a in agents {
                let m = &a["metrics"];
                let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
                println!(
                    "{:<58} {:<20} {:<8} {:>6.1} {:>12} {:>12}  {}s ago",
                    a["id"].as_str().unwrap_or(""),
                    a["hostname"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    f("cpu_percent"),
                    format!(
                        "{}/{}",
                        fmt_bytes(f("mem_used_bytes")),
                        fmt_bytes(f("mem_total_bytes"))
                    ),
                    format!(
                        "{}/{}",
                        fmt_bytes(f("disk_used_bytes")),
                        fmt_bytes(f("disk_total_bytes"))
                    ),
                    (now - a["last_seen"].as_i64().unwrap_or(now)) / 1000,
                );
            }
            Ok(())
        }
        Cmd::Send {
            agent,
            action,
            params,
            wait,
            timeout,
        } => {
            let mut body =
                serde_json::json!({ "action": action, "params": client::parse_params(&params)? });
            if let Some(t) = timeout {
                body["timeout_secs"] = Value::from(t);
            }
            let v = api
                .post(&format!("/agents/{agent}/commands?wait={wait}"), &body)
                .await?;
            print_command(&v);
            Ok(())
        }
        Cmd::Command { id, wait } => {
            let v = api.get(&format!("/commands/{id}?wait={wait}")).await?;
            print_command(&v);
            Ok(())
        }
        Cmd::Run {
            selector,
            action,
            params,
            wait,
            key,
            timeout,
            ttl,
        } => {
            let sel = control_plane::jobs::Selector::parse(&selector)?;
            let body = serde_json::json!({
                "selector": sel, "action": action, "params": client::parse_params(&params)?,
                "timeout_secs": timeout, "ttl_secs": ttl, "idempotency_key": key,
            });
            let job = api.post("/jobs", &body).await?;
            let id = job["id"].as_str().unwrap_or("").to_string();
            if job["replayed"] == true {
                eprintln!("idempotency key already used for this request: job {id}, made earlier, nothing new was started");
            }
            eprintln!(
                "job {id}: {} on {} hosts",
                job["action"].as_str().unwrap_or(""),
                job["target_count"]
            );
            if wait == 0 {
                println!("{id}");
                return Ok(());
            }
            follow_job(api, &id, std::time::Duration::from_secs(wait)).await
        }
        Cmd::Jobs { id: Some(id) } => {
            let v = api.get(&format!("/jobs/{id}")).await?;
            print_job(api, &v).await
        }
        Cmd::Jobs { id: None } => {
            let v = api.get("/jobs").await?;
            println!(
                "{:<34} {:<14} {:>7} {:>9} {:>7}  DONE",
                "ID", "ACTION", "TARGETS", "SUCCEEDED", "FAILED"
            );
            for j in v["jobs"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<34} {:<14} {:>7} {:>9} {:>7}  {}",
                    j["id"].as_str().unwrap_or(""),
                    j["action"].as_str().unwrap_or(""),
                    j["target_count"],
                    j["counts"]["succeeded"],
                    j["counts"]["failed"],
                    j["done"]
                );
            }
            Ok(())
        }
        Cmd::Automation { action } => {
            match action {
                AutomationCmd::Add {
                    name,
                    role,
                    public_key,
                } => {
                    let v = api
                    .post("/automation-keys", &serde_json::json!({"name": name, "role": role, "public_key": public_key}))
                    .await?;
                    println!(
                        "automation key {} ({}) registered as {}",
                        v["name"].as_str().unwrap_or(""),
                        v["fingerprint"].as_str().unwrap_or(""),
                        v["role"].as_str().unwrap_or("")
                    );
                    Ok(())
                }
                AutomationCmd::List => {
                    let v = api.get("/automation-keys").await?;
                    for k in v["keys"].as_array().cloned().unwrap_or_default() {
                        println!(
                            "{:<14} {:<20} {:<9} {} {}",
                            k["id"].as_str().unwrap_or(""),
                            k["name"].as_str().unwrap_or(""),
                            k["role"].as_str().unwrap_or(""),
                            k["fingerprint"].as_str().unwrap_or(""),
                            if k["revoked"] == true { "revoked" } else { "" }
                        );
                    }
                    Ok(())
                }
                AutomationCmd::Revoke { id } => {
                    api.delete(&format!("/automation-keys/{id}")).await?;
                    println!("automation key {id} revoked");
                    Ok(())
                }
                AutomationCmd::Keygen => unreachable!("handled without the API"),
            }
        }
        Cmd::Cancel { id } => {
            let v = api
                .post(&format!("/commands/{id}/cancel"), &serde_json::json!({}))
                .await?;
            print_command(&v);
            Ok(())
        }
        Cmd::Actions { name: Some(name) } => {
            let v = api.get("/actions").await?;
            let a = v["actions"]
                .as_array()
                .and_then(|all| all.iter().find(|a| a["name"] == name.as_str()).cloned())
                .with_context(|| format!("no action {name}; `drover actions` lists them"))?;
            println!("{}", serde_json::to_string_pretty(&a)?);
            Ok(())
        }
        Cmd::Logs {
            command,
            follow,
            max_wait,
        } => follow_logs(api, &command, follow, max_wait).await,
        Cmd::Apps { action } => apps_command(api, action.unwrap_or(AppsCmd::List)).await,
        Cmd::Actions { name: None } => {
            let v = api.get("/actions").await?;
            for a in v["actions"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<22} {:<6} {:>5}s  {}",
                    a["name"].as_str().unwrap_or(""),
                    a["runs_in"].as_str().unwrap_or(""),
                    a["default_timeout_secs"],
                    a["description"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        _ => unreachable!("server commands are handled in main"),
    }
}

/// Prints a command's output; with `follow`, polls for new lines until the
/// command is final (or `max_wait` passes).
async fn follow_logs(
    api: &client::ApiClient,
    id: &str,
    follow: bool,
    max_wait: u64,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(max_wait);
    let mut after = 0u64;
    loop {
        let v = api
            .get(&format!("/commands/{id}/output?after={after}"))
            .await?;
        for l in v["lines"].as_array().cloned().unwrap_or_default() {
            after = after.max(l["seq"].as_u64().unwrap_or(after));
            let line = l["line"].as_str().unwrap_or("");
            if l["stream"] == "stderr" {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
        let done = v["final"].as_bool().unwrap_or(false);
        if done || !follow {
            if follow {
                let c = api.get(&format!("/commands/{id}")).await?;
                eprintln!(
                    "-- {}: {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["summary"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("command {id} still running after {max_wait}s; run `drover logs {id} --follow` again");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn apps_command(api: &client::ApiClient, action: AppsCmd) -> anyhow::Result<()> {
    match action {
        AppsCmd::List => {
            let v = api.get("/apps").await?;
            for a in v["apps"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<16} {:<8} {:<10} {}",
                    a["id"].as_str().unwrap_or(""),
                    a["version"].as_str().unwrap_or(""),
                    a["category"].as_str().unwrap_or(""),
                    a["description"].as_str().unwrap_or("")
                );
            }
            for e in v["invalid"].as_array().cloned().unwrap_or_default() {
                eprintln!("skipped: {}", e.as_str().unwrap_or(""));
            }
            Ok(())
        }
        AppsCmd::Show { id } => {
            let a = api.get(&format!("/apps/{id}")).await?;
            println!(
                "{} {} — {}",
                a["name"].as_str().unwrap_or(""),
                a["version"].as_str().unwrap_or(""),
                a["description"].as_str().unwrap_or("")
            );
            for i in a["inputs"].as_array().cloned().unwrap_or_default() {
                let mut notes = Vec::new();
                if i["required"] == true {
                    notes.push("required".to_string());
                }
                if !i["default"].is_null() {
                    notes.push(format!("default {}", i["default"]));
                }
                if let Some(vals) = i["allowed_values"].as_array().filter(|v| !v.is_empty()) {
                    let vals: Vec<&str> = vals.iter().filter_map(|v| v.as_str()).collect();
                    notes.push(format!("one of {}", vals.join("|")));
                }
                if !i["visible_if"].as_object().is_none_or(|o| o.is_empty()) {
                    notes.push(format!("only if {}", i["visible_if"]));
                }
                if i["sensitive"] == true {
                    notes.push("secret: pass key=@file".into());
                }
                println!(
                    "  {:<20} {:<9} {}  {}",
                    i["name"].as_str().unwrap_or(""),
                    i["type"].as_str().unwrap_or(""),
                    i["label"].as_str().unwrap_or(""),
                    if notes.is_empty() {
                        String::new()
                    } else {
                        format!("({})", notes.join(", "))
                    }
                );
            }
            Ok(())
        }
        AppsCmd::Install {
            id,
            selector,
            inputs,
            wait,
            key,
        } => {
            let sel = control_plane::jobs::Selector::parse(&selector)?;
            let mut resolved = Vec::with_capacity(inputs.len());
            for kv in inputs {
                match kv.split_once("=@") {
                    Some((k, path)) => {
                        let v = std::fs::read_to_string(path)
                            .with_context(|| format!("reading the value of {k} from {path}"))?;
                        resolved.push(format!("{k}={}", v.trim_end_matches(['\n', '\r'])));
                    }
                    None => resolved.push(kv),
                }
            }
            let mut inputs = client::parse_params(&resolved)?;
            // Inputs are typed by the manifest; send every value as given.
            if let Value::Object(m) = &mut inputs {
                for v in m.values_mut() {
                    if let Value::Number(n) = v {
                        *v = Value::String(n.to_string());
                    }
                }
            }
            let body =
                serde_json::json!({"selector": sel, "inputs": inputs, "idempotency_key": key});
            let job = api.post(&format!("/apps/{id}/install"), &body).await?;
            let jid = job["id"].as_str().unwrap_or("").to_string();
            if job["replayed"] == true {
                eprintln!("idempotency key already used for this request: job {jid}, made earlier, nothing new was started");
            }
            for i in job["ignored_inputs"].as_array().into_iter().flatten() {
                eprintln!(
                    "input {} ignored: {}",
                    i["field"].as_str().unwrap_or("?"),
                    i["reason"].as_str().unwrap_or("")
                );
            }
            eprintln!("job {jid}: install {id} on {} hosts", job["target_count"]);
            if wait == 0 {
                println!("{jid}");
                return Ok(());
            }
            follow_job(api, &jid, std::time::Duration::from_secs(wait)).await
        }
    }
}

async fn tokens_command(api: &client::ApiClient, action: TokensCmd) -> anyhow::Result<()> {
    match action {
        TokensCmd::Create {
            uses,
            expires,
            labels,
            auto_approve,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .with_context(|| format!("label {l:?} is not key=value"))?;
                map.insert(k.into(), Value::String(v.into()));
            }
            let v = api
                .post(
                    "/tokens",
                    &serde_json::json!({"uses": uses, "expires": expires, "labels": map, "auto_approve": auto_approve}),
                )
                .await?;
            println!("Registration token (shown once; put it in the agent's enroll_token):");
            println!("{}", v["token"].as_str().unwrap_or(""));
            println!(
                "id {}  uses {}  expires {}  auto-approve {}",
                v["id"].as_str().unwrap_or(""),
                uses,
                expires,
                auto_approve
            );
            Ok(())
        }
        TokensCmd::List => {
            let v = api.get("/tokens").await?;
            println!(
                "{:<14} {:<9} {:>9}  {:<13} LABELS",
                "ID", "STATE", "USES", "AUTO-APPROVE"
            );
            for t in v["tokens"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<14} {:<9} {:>4}/{:<4}  {:<13} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["state"].as_str().unwrap_or(""),
                    t["uses"],
                    t["uses_allowed"],
                    t["auto_approve"],
                    t["labels"]
                );
            }
            Ok(())
        }
        TokensCmd::Revoke { id } => {
            api.delete(&format!("/tokens/{id}")).await?;
            println!("token {id} revoked");
            Ok(())
        }
    }
}

/// Follows a job with a progress bar until every host answered or `max`.
async fn follow_job(
    api: &client::ApiClient,
    id: &str,
    max: std::time::Duration,
) -> anyhow::Result<()> {
    let first = api.get(&format!("/jobs/{id}")).await?;
    let bar = indicatif::ProgressBar::new(first["target_count"].as_u64().unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let deadline = std::time::Instant::now() + max;
    let last = loop {
        let v = api.get(&format!("/jobs/{id}")).await?;
        let c = &v["counts"];
        bar.set_position(c["finished"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "ok {} failed {} running {} pending {} offline {} expired {}",
            c["succeeded"], c["failed"], c["running"], c["pending"], c["offline"], c["expired"]
        ));
        if v["done"].as_bool().unwrap_or(false) || std::time::Instant::now() >= deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    bar.finish_and_clear();
    print_job(api, &last).await?;
    let c = &last["counts"];
    let bad = c["failed"].as_i64().unwrap_or(0) + c["expired"].as_i64().unwrap_or(0);
    if !last["done"].as_bool().unwrap_or(false) {
        anyhow::bail!("stopped following after {max:?}; `drover jobs {id}` shows it later");
    }
    if bad > 0 {
        anyhow::bail!("{bad} hosts did not succeed");
    }
    Ok(())
}

async fn print_job(api: &client::ApiClient, v: &Value) -> anyhow::Result<()> {
    let id = v["id"].as_str().unwrap_or("");
    let hosts = api.get(&format!("/jobs/{id}/hosts")).await?;
    let list = hosts["hosts"].as_array().cloned().unwrap_or_default();
    println!("{:<24} {:<10} {:>4}  SUMMARY", "HOST", "STATUS", "EXIT");
    for h in list.iter().take(50) {
        println!(
            "{:<24} {:<10} {:>4}  {}",
            h["hostname"].as_str().unwrap_or("?"),
            h["status"].as_str().unwrap_or(""),
            h["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            h["summary"].as_str().unwrap_or("")
        );
    }
    if list.len() > 50 {
        println!(
            "… and {} more (`drover jobs {id}` with --api JSON: GET /api/v1/jobs/{id}/hosts)",
            list.len() - 50
        );
    }
    let c = &v["counts"];
    println!(
        "\njob {id}: {} targets — {} succeeded, {} failed, {} running, {} pending, {} offline, {} expired",
        v["target_count"], c["succeeded"], c["failed"], c["running"], c["pending"], c["offline"], c["expired"]
    );
    let silent = v["not_answered"].as_array().cloned().unwrap_or_default();
    if !silent.is_empty() {
        println!("not answered yet ({}):", silent.len());
        for s in silent.iter().take(20) {
            println!(
                "  {} ({}, {})",
                s["hostname"].as_str().unwrap_or("?"),
                s["agent_id"].as_str().unwrap_or(""),
                s["agent_status"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn print_command(v: &Value) {
    println!("command  {}", v["id"].as_str().unwrap_or(""));
    println!("agent    {}", v["agent_id"].as_str().unwrap_or(""));
    println!("action   {}", v["action"].as_str().unwrap_or(""));
    println!("status   {}", v["status"].as_str().unwrap_or(""));
    if let Some(code) = v["exit_code"].as_i64() {
        println!("exit     {code}");
    }
    if let Some(s) = v["summary"].as_str().filter(|s| !s.is_empty()) {
        println!("summary  {s}");
    }
    match (v["outcome_source"].as_str(), &v["replaced_inferred"]) {
        (Some("inferred"), _) => {
            println!("decided  inferred by the control plane (no report from the host yet)")
        }
        (_, Value::Object(r)) => println!(
            "replaced the host's report replaced the inferred {} ({})",
            r.get("status").and_then(Value::as_str).unwrap_or(""),
            r.get("summary").and_then(Value::as_str).unwrap_or("")
        ),
        _ => {}
    }
    if !v["result"].is_null() {
        println!(
            "result   {}",
            serde_json::to_string_pretty(&v["result"]).unwrap_or_default()
        );
    }
}
