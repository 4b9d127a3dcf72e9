//! `drover`: the control plane and the operator's CLI — a thin binary over
//! the `control_plane` library.
//!
//! This file owns the clap arguments (global flags and the subcommands) and
//! the dispatch: each subcommand family runs in its own file (`agents`,
//! `jobs`, `ops`, `schedules`, `apps`, `trust`, `accounts`, …); printing is
//! `print`'s, exit codes `exit`'s, examples and completions `help`'s.
//! Nothing here talks to the broker or the database itself.

mod accounts;
mod agents;
mod agents_edit;
mod alerts;
mod apps;
mod audit;
mod automation;
mod backup;
mod box_key;
mod exit;
mod follow;
mod help;
mod history;
mod jobs;
mod keys;
mod notify;
mod ops;
mod print;
mod releases;
mod rollout;
mod schedules;
mod server;
mod services;
mod trust;
mod updates;
mod windows;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use control_plane::{client, config::Config, serve};

use accounts::UsersCmd;
use agents::AgentsCmd;
use alerts::{AlertsCmd, SilencesCmd};
use apps::AppsCmd;
use audit::AuditCmd;
use automation::{ApiTokensCmd, AutomationCmd};
use notify::NotifyCmd;
use releases::ReleasesCmd;
use rollout::RolloutCmd;
use schedules::SchedulesCmd;
use services::{ServicesArgs, ServicesCmd};
use trust::TokensCmd;
use updates::UpdatesCmd;
use windows::WindowsCmd;

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
    /// Control-plane URL for the client commands (default: this machine's
    /// control plane as configured: `listen`, https when it serves HTTPS).
    #[arg(long, global = true, env = "DROVER_API")]
    api: Option<String>,
    /// CA (PEM) an https:// control plane's certificate is checked against
    /// (default: <data_dir>/tls/ca.pem when present and --api is https).
    #[arg(long, global = true, env = "DROVER_CA")]
    ca: Option<PathBuf>,
    /// API token for the client commands (default: <data_dir>/admin.token).
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print one JSON document on stdout instead of text (NDJSON for
    /// `run --stream` and `logs`); errors become `{"error": "...", "code": N}`
    /// on stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the command-signing key, the bootstrap admin API token and the
    /// first web UI admin `admin` (once). The admin's password is generated
    /// and printed once, unless given with --admin-password-file.
    ///
    /// Unless --no-tls, it also makes a CA and certificates for the broker
    /// and the API in <data_dir>/tls/ (files already there are kept, so your
    /// own can be put there first) and writes the broker's tls {} block.
    Init {
        /// A file holding the first admin's password (12+ characters).
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// Plaintext broker and HTTP (behind a TLS proxy, or for tests).
        #[arg(long)]
        no_tls: bool,
        /// A DNS name or IP address the certificates are valid for, beyond
        /// `tls_names` and localhost, 127.0.0.1, ::1 and the host name
        /// (repeatable).
        #[arg(long = "tls-name", value_name = "NAME")]
        tls_names: Vec<String>,
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
    /// Write one archive (tar.gz, 0600) of the SQLite database (a
    /// consistent copy, safe while `drover serve` runs) and the data
    /// directory's keys, credentials and broker configuration. With
    /// PostgreSQL the archive holds the keys and the `pg_dump` command is
    /// printed.
    Backup {
        /// The archive to write (must not exist).
        /// Default: ./drover-backup-<UTC time>.tar.gz.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a `drover backup` archive back: every file is checked against
    /// the manifest first; refused while a control plane runs on the data
    /// directory. Migrations of an older backup run at the next start.
    Restore {
        /// The archive `drover backup` wrote.
        file: PathBuf,
        /// Restore into this data directory instead of the configured one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Replace an existing database and keys; they are moved to
        /// <data_dir>/pre-restore-<time>/, not deleted.
        #[arg(long)]
        force: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the whole stack on this machine: nats-server, control plane, one
    /// rootd and one agent. Ctrl-C stops everything.
    Dev(server::Dev),
    /// Print one broker cluster node's nats-server configuration.
    BrokerConfig(server::BrokerConfig),
    /// Read one message body on stdin and print it as JSON
    /// (for `nats sub --translate 'drover decode'`).
    Decode,
    /// List agents (status, last seen, metrics), or approve, reject, revoke one,
    /// or show / accept the rootd box key its secrets are sealed to; edit the
    /// inventory (show, rename, label, notes, remove).
    #[command(
        after_help = "Examples:\n  drover agents\n  drover agents label UABC... env=prod\n  drover agents --json show UABC..."
    )]
    Agents {
        /// Print the raw JSON (one document).
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: Option<AgentsCmd>,
    },
    /// Agent releases for self-update (keygen, publish --version, show,
    /// yank) and the signed agent packages install.sh fetches (publish on
    /// the control-plane host); list shows both.
    Releases {
        #[command(subcommand)]
        action: ReleasesCmd,
    },
    /// Registration tokens for enrolling hosts.
    Tokens {
        #[command(subcommand)]
        action: TokensCmd,
    },
    /// Signing key, broker trust, agents older than the minimum agent
    /// version or of another wire protocol (they get no command but
    /// agent.update), refused commands, binding conflicts, revoked and
    /// pending agents.
    #[command(after_help = help::SECURITY)]
    Security {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Signing keys: generations, overlap end, which hosts hold the current
    /// key; `drover keys rotate` rotates one, e.g.
    /// `drover keys rotate --which command --overlap 24h`.
    #[command(after_help = help::KEYS)]
    Keys {
        #[command(subcommand)]
        action: Option<keys::KeysCmd>,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one command to one agent, e.g. `drover send <agent> sys.ping`.
    #[command(after_help = help::SEND)]
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
    #[command(after_help = help::RUN)]
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
        /// Print each host's result as it arrives, then a summary (with
        /// --json: one JSON object per line, `"type": "host"` then
        /// `"type": "summary"`).
        #[arg(long)]
        stream: bool,
    },
    /// List recent jobs, or show one with per-host results.
    #[command(after_help = help::JOBS)]
    Jobs { id: Option<String> },
    /// Scheduled jobs (for now `pkg.scan`): list, add, remove, enable,
    /// disable, e.g. `drover schedules add nightly-scan all "0 3 * * *" --timezone Europe/Berlin`.
    #[command(after_help = help::SCHEDULES)]
    Schedules {
        #[command(subcommand)]
        action: SchedulesCmd,
    },
    /// Show one command and its result.
    #[command(after_help = help::COMMAND)]
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
    #[command(after_help = help::CANCEL)]
    Cancel { id: String },
    /// List the actions agents can run, or show one with its params schema.
    #[command(after_help = help::ACTIONS)]
    Actions { name: Option<String> },
    /// The output of a command (live from the broker); `--follow` keeps
    /// printing until the command ends.
    #[command(after_help = help::LOGS)]
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
    /// Staged rollouts of an agent release: canary, waves, pause, halt.
    #[command(
        after_help = "Examples:\n  drover rollout start 1.4.0 --selector all --canary 1 \
        --waves 25%,100% --pause 10m --max-failures 2%\n  \
        drover rollout status <id> --follow   (exit 0 done, 2 halted, 3 aborted)"
    )]
    Rollout {
        #[command(subcommand)]
        action: RolloutCmd,
    },
    /// Watched services: the fleet view of watched systemd units, and the
    /// lists of units to watch per selector.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  drover services --unit php-fpm --state down\n  \
        drover services watch add --name web --selector label:role=web nginx php-fpm\n  \
        drover services watch list\n  drover services watch remove web"
    )]
    Services {
        #[command(flatten)]
        args: ServicesArgs,
        #[command(subcommand)]
        action: Option<ServicesCmd>,
    },
    /// Live operations: what the fleet runs now (commands not finished
    /// yet), counted by action, source and status, newest listed.
    #[command(
        after_help = "Examples:\n  drover ops\n  drover ops --source system --action pkg.scan\n  \
        drover ops --host 'web-*' --status running --json | jq '.counts.total'\n  \
        drover ops --watch --every 5"
    )]
    Ops {
        #[command(flatten)]
        args: ops::OpsArgs,
    },
    /// Notification channels (webhook, email, bus) and their deliveries.
    #[command(
        after_help = "Examples:\n  drover notify channels add ops-hook --kind webhook \
        --url https://hooks.example/drover --secret-file hook.key\n  \
        drover notify channels test ops-hook\n  drover notify deliveries ops-hook --json"
    )]
    Notify {
        #[command(subcommand)]
        action: NotifyCmd,
    },
    /// Alerts: open (or --state firing|pending|resolved|all) alerts,
    /// acknowledging them, and the rules that raise them.
    #[command(after_help = "Examples:\n  drover alerts --state firing\n  \
        drover alerts ack <id>\n  \
        drover alerts rules add disk-full --kind metric --param metric=disk_used_percent \
        --param 'op=>' --param threshold=90 --for 5m --severity critical\n  \
        drover alerts rules list")]
    Alerts {
        #[command(subcommand)]
        action: Option<AlertsCmd>,
        /// open (the default: pending and firing), pending, firing, resolved or all.
        #[arg(long, default_value = "open")]
        state: String,
        #[arg(long)]
        json: bool,
    },
    /// Silences: alerts whose transitions are recorded but not notified,
    /// for a time.
    ///
    /// Example: drover silences add --rule disk-full --for 2h --comment "resizing"
    Silences {
        #[command(subcommand)]
        action: SilencesCmd,
    },
    /// Maintenance windows: when and how approved updates are installed.
    ///
    /// Example: drover windows list
    Windows {
        #[command(subcommand)]
        action: WindowsCmd,
    },
    /// Pending updates, approvals and declines, auto-approval rules.
    #[command(after_help = "Examples:\n  drover updates list --security\n  \
        drover updates approve --security --selector label:env=staging --expires 7d")]
    Updates {
        #[command(subcommand)]
        action: UpdatesCmd,
    },
    /// Print a shell completion script for bash, zsh or fish.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell: bash, zsh or fish.
        shell: help::Shell,
    },
}

fn main() -> std::process::ExitCode {
    let (json, cli) = match help::parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    print::set_json(json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit::report(&e.into(), json).code().into(),
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => exit::report(&e, json).code().into(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Decode => return server::decode(),
        Cmd::Completions { shell } => return help::completions(shell),
        Cmd::Init { .. } | Cmd::Serve | Cmd::Dev(_) => server::init_tracing(),
        // What `--tls` could not check is a warning on stderr.
        Cmd::BrokerConfig(_) => server::init_warnings(),
        _ => {}
    }
    let cfg = Config::load(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Init {
            admin_password_file,
            no_tls,
            tls_names,
        } => {
            let tls = serve::InitTls {
                enabled: !no_tls,
                extra_names: tls_names,
            };
            server::init(&cfg, admin_password_file, &tls).await
        }
        Cmd::Users { action } => accounts::users(&cfg, action).await,
        Cmd::Audit { action } => audit::run(&cfg, action).await,
        Cmd::Serve => serve::serve(cfg, serve::signal()).await,
        Cmd::Backup { out, json } => backup::backup(&cfg, out, json || print::json_mode()).await,
        Cmd::Restore {
            file,
            data_dir,
            force,
            json,
        } => backup::restore(cfg, &file, data_dir, force, json || print::json_mode()),
        Cmd::Dev(opts) => server::run_dev(cfg, opts).await,
        Cmd::BrokerConfig(opts) => server::broker_config(&cfg, opts),
        Cmd::Decode | Cmd::Completions { .. } => unreachable!(),
        Cmd::Automation {
            action: AutomationCmd::Keygen,
        } => automation::keygen(),
        Cmd::Releases {
            action:
                ReleasesCmd::Publish {
                    files,
                    version: None,
                    ..
                },
        } => releases::publish(&cfg, &files).await,
        Cmd::Releases {
            action: ReleasesCmd::Keygen { out, json },
        } => releases::keygen(&out, json),
        other => {
            // Piped into `head` or `less` that quit early, a listing ends
            // quietly like other Unix tools instead of panicking on EPIPE.
            // SAFETY: resetting one signal's disposition to the default,
            // before any other thread writes to stdout.
            unsafe {
                let _ = nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGPIPE,
                    nix::sys::signal::SigHandler::SigDfl,
                );
            }
            let url = cli.api.clone().unwrap_or_else(|| cfg.local_api_url());
            let api = help::api_client(&url, cli.token, cli.ca, &cfg)?;
            client_command(&api, other, print::json_mode()).await
        }
    }
}

/// Runs a subcommand that goes through the API.
async fn client_command(api: &client::ApiClient, cmd: Cmd, js: bool) -> anyhow::Result<()> {
    match cmd {
        Cmd::Agents { json, action } => agents::agents(api, json || js, action).await,
        Cmd::Tokens { action } => trust::tokens(api, action).await,
        Cmd::Releases { action } => match action {
            ReleasesCmd::List { json } => releases::list(api, json).await,
            ReleasesCmd::Show { version, json } => releases::show(api, &version, json).await,
            ReleasesCmd::Yank {
                version,
                reason,
                platform,
                json,
            } => releases::yank(api, &version, &reason, platform.as_deref(), json).await,
            ReleasesCmd::Publish {
                mut files,
                version: Some(version),
                channel,
                notes,
                min_control_plane,
                key,
                platform,
                json,
            } => {
                anyhow::ensure!(
                    files.len() == 1,
                    "an agent release is one binary; got {} files",
                    files.len()
                );
                let a = releases::AgentPublish {
                    binary: files.remove(0),
                    version,
                    channel,
                    notes,
                    min_control_plane,
                    key,
                    platform,
                    json,
                };
                releases::publish_agent(api, a).await
            }
            other => unreachable!("{other:?} runs without the API"),
        },
        Cmd::ApiTokens { action } => automation::api_tokens(api, action).await,
        Cmd::Security { json } => trust::security(api, json || js).await,
        Cmd::Keys { action, json } => keys::run(api, action, json || js).await,
        Cmd::Send {
            agent,
            action,
            params,
            wait,
            timeout,
        } => jobs::send(api, &agent, &action, &params, wait, timeout, js).await,
        Cmd::Command { id, wait } => jobs::command(api, &id, wait, js).await,
        Cmd::Run {
            selector,
            action,
            params,
            wait,
            key,
            timeout,
            ttl,
            stream,
        } => {
            let run = jobs::Run {
                selector,
                action,
                params,
                wait,
                key,
                timeout,
                ttl,
                stream,
                json: js,
            };
            jobs::run(api, run).await
        }
        Cmd::Jobs { id } => jobs::jobs(api, id, js).await,
        Cmd::Schedules { action } => schedules::schedules(api, action).await,
        Cmd::Automation { action } => automation::automation(api, action).await,
        Cmd::Cancel { id } => jobs::cancel(api, &id, js).await,
        Cmd::Actions { name } => jobs::actions(api, name, js).await,
        Cmd::Logs {
            command,
            follow,
            max_wait,
        } => jobs::follow_logs(api, &command, follow, max_wait, js).await,
        Cmd::Apps { action } => apps::apps(api, action.unwrap_or(AppsCmd::List)).await,
        Cmd::Windows { action } => windows::windows(api, action).await,
        Cmd::Services { args, action } => services::services(api, args, action).await,
        Cmd::Ops { args } => ops::ops(api, args).await,
        Cmd::Notify { action } => notify::notify(api, action).await,
        Cmd::Alerts {
            action: None,
            state,
            json,
        } => alerts::list(api, &state, json || js).await,
        Cmd::Alerts {
            action: Some(action),
            ..
        } => alerts::alerts(api, action).await,
        Cmd::Silences { action } => alerts::silences(api, action).await,
        Cmd::Rollout { action } => rollout::rollout(api, action).await,
        Cmd::Updates { action } => updates::updates(api, action).await,
        _ => unreachable!("server commands are handled in main"),
    }
}
