//! The control plane's configuration: `drover.toml` (or `--config`) plus
//! `DROVER_*` environment variables, which win.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Signing key, admin token, SQLite file, dev-stack state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Address of the API and web UI.
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_nats")]
    pub nats_url: String,
    /// `sqlite://...` (default: `<data_dir>/drover.db`) or `postgres://...`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// An agent is offline after this many missed heartbeats.
    #[serde(default = "default_missed")]
    pub offline_after_missed: u32,
    /// Lifetime of a command that names no expiry.
    #[serde(default = "default_ttl")]
    pub command_ttl_secs: u64,
    /// Commands waiting for one agent before new ones are refused.
    #[serde(default = "default_pending")]
    pub max_pending_per_agent: i64,
    /// Largest number of agents (durable consumers) on the command stream.
    #[serde(default = "default_max_agents")]
    pub max_agents: i32,
    /// The app manifests (`<dir>/<id>/manifest.yml`): the catalogue the
    /// API and UI show, and what `app.install` params are checked against.
    #[serde(default = "default_manifests")]
    pub manifests_dir: PathBuf,
    /// Seconds after a taken command's expiry plus timeout before, with no
    /// result, it is inferred `failed` (its host's report still replaces it).
    #[serde(default = "default_silent_grace")]
    pub silent_grace_secs: u64,
    /// The command consumers' ack wait, seconds: a fetched command not
    /// acked (or kept alive by progress acks) within it is redelivered.
    /// Redelivery backs off from it (1, 2, 4, 10 times).
    #[serde(default = "default_ack_wait")]
    pub command_ack_wait_secs: u64,
    /// PEM file of the CA the broker's certificate is checked against. When
    /// set (or when `nats_url` is `tls://...`) every broker connection must
    /// be TLS. Unset: `<data_dir>/tls/ca.pem` if `drover init` made it.
    #[serde(default)]
    pub nats_ca: Option<PathBuf>,
    /// PEM certificate (chain) of the API and web UI; with
    /// [`Config::http_tls_key`] they listen with HTTPS only. Unset (both):
    /// `<data_dir>/tls/http.pem` and `http.key` if `drover init` made them.
    #[serde(default)]
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of [`Config::http_tls_cert`].
    #[serde(default)]
    pub http_tls_key: Option<PathBuf>,
    /// DNS names and IP addresses the certificates `drover init` makes are
    /// valid for, beyond `localhost`, `127.0.0.1`, `::1` and the machine's
    /// host name, which are always in (`--tls-name` adds more).
    /// `DROVER_TLS_NAMES` is comma-separated.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// Set by `drover dev` (never read from a file): plaintext on every hop,
    /// whatever `<data_dir>/tls/` holds.
    #[serde(skip)]
    pub no_tls: bool,
    /// The base URL hosts reach the API at (`https://cp.example:8443`), baked
    /// into `install.sh` and the install lines; default derived from
    /// `listen` ([`Config::public_url`]).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The broker URL(s) written into hosts' `agent.toml` by `install.sh`,
    /// comma-separated; default `nats_url` ([`Config::agent_nats_url`]).
    #[serde(default)]
    pub agent_nats_url: Option<String>,
    /// Packages `drover serve` publishes at start to the release bucket
    /// (those not there yet with the same name and sha256).
    #[serde(default = "default_releases_dir")]
    pub releases_dir: PathBuf,
    /// Where the broker `drover init` configures listens for clients
    /// (`host:port`; hosts connect here). `drover dev` and the tests pass
    /// their own address on nats-server's command line.
    #[serde(default = "default_broker_listen")]
    pub broker_listen: String,
    /// Seconds the duties lease lives without renewal (`crate::lease`): a
    /// replica that dies is replaced by another within about this long.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    /// The fleet's release key, public half: base64 of the 32 raw bytes, or
    /// the path of a file holding it (`drover releases keygen` writes
    /// `<name>.pub`). Agent releases must be signed by it; install.sh pins
    /// it on each host. `None`: agent releases cannot be published.
    #[serde(default)]
    pub release_key: Option<String>,
    /// The oldest agent version this control plane works with; an older
    /// agent is shown as outdated and gets no command but `agent.update`
    /// and `agent.selftest`. `None`: the built-in minimum.
    #[serde(default)]
    pub min_agent_version: Option<String>,
    /// Notifications: the file holding the key that seals channel secrets
    /// (32 bytes, made 0600 at first use). `None`: `<data_dir>/notify.key`.
    /// Every replica must read the same key.
    #[serde(default)]
    pub notify_key_file: Option<PathBuf>,
    /// Notifications: the first retry's delay in ms; later retries wait 6×,
    /// 24× and then 120× it (default 5 s, 30 s, 2 min, 10 min, capped).
    #[serde(default = "default_notify_retry_base_ms")]
    pub notify_retry_base_ms: u64,
    /// Notifications: attempts before a delivery is `failed` (at the
    /// 10-minute cap, 100 attempts is about 16 hours).
    #[serde(default = "default_notify_max_attempts")]
    pub notify_max_attempts: i32,
    /// Notifications: seconds one webhook, email or bus send may take.
    #[serde(default = "default_notify_send_timeout")]
    pub notify_send_timeout_secs: u64,
    /// Retention (part of alerting, the `retention` module): raw metric samples
    /// are kept this many seconds (default 48 h) and rolled up into
    /// five-minute rows before they go.
    #[serde(default = "default_retention_samples")]
    pub retention_samples_secs: u64,
    /// Five-minute rollups kept this many seconds (default 30 days).
    #[serde(default = "default_retention_rollup_5m")]
    pub retention_rollup_5m_secs: u64,
    /// Hourly rollups kept this many seconds (default 365 days).
    #[serde(default = "default_retention_rollup_1h")]
    pub retention_rollup_1h_secs: u64,
    /// Final commands (and their results) kept this many seconds after
    /// their last change (default 90 days). Open commands are never pruned.
    #[serde(default = "default_retention_90d")]
    pub retention_commands_secs: u64,
    /// Jobs kept this many seconds after creation (default 90 days), and
    /// only once none of their commands is left.
    #[serde(default = "default_retention_90d")]
    pub retention_jobs_secs: u64,
    /// Refusals and dropped-input counts kept this many seconds (default
    /// 30 days; counts by their last drop).
    #[serde(default = "default_retention_30d")]
    pub retention_refusals_secs: u64,
    /// Rows one pruning statement deletes at most (default 5,000); the
    /// database writer is taken per batch, so ingest never waits long.
    #[serde(default = "default_retention_batch")]
    pub retention_batch_rows: u64,
    /// Seconds between two retention rounds (default 300). 0 turns rollups
    /// and pruning off.
    #[serde(default = "default_retention_every")]
    pub retention_every_secs: u64,
    /// `GET /metrics` also exports per-host gauges
    /// (`drover_host_cpu_percent{agent,host}`, ...) for federation. Off by
    /// default: host names stay out of the scrape.
    #[serde(default)]
    pub metrics_per_host: bool,
    /// Web surface: requests per second one API token may make (a token
    /// bucket holding [`Config::http_rate_burst`]; default 50). Beyond it
    /// the API answers 429 with `Retry-After`. 0 turns the limit off.
    #[serde(default = "default_http_rate_per_token")]
    pub http_rate_per_token: u32,
    /// Web surface: requests per second one client address may make, with
    /// or without a token (default 100; 0 turns it off). `/healthz` and the
    /// UI's static files are not counted; the event stream counts once per
    /// connection.
    #[serde(default = "default_http_rate_per_address")]
    pub http_rate_per_address: u32,
    /// Web surface: how many requests a token or an address may send at
    /// once before the per-second rates apply (the bucket size, default 200).
    #[serde(default = "default_http_rate_burst")]
    pub http_rate_burst: u32,
    /// Web surface: admins must have two-factor authentication (TOTP). An
    /// admin without it is sent to the account page after logging in and
    /// gets 403 on every admin-only route until TOTP is confirmed. API
    /// tokens are not accounts and are not affected. Default false.
    #[serde(default)]
    pub auth_require_2fa_admins: bool,
    /// Credentials: life of an agent's NATS user JWT, in seconds (default
    /// 30 days). Agents renew at about two thirds of it with a request
    /// signed by their key; one offline past it re-authenticates through
    /// the enrolment user. 0: JWTs do not expire (the behaviour before
    /// issue 16). `DROVER_AGENT_JWT_TTL_SECS`.
    #[serde(default = "default_agent_jwt_ttl")]
    pub agent_jwt_ttl_secs: u64,

    // ---- Database pool (issue 18: PostgreSQL as a first-class backend) ----
    /// Database: most connections the pool opens (default: 1 on SQLite, 8
    /// on PostgreSQL; [`default_db_max_connections`]).
    /// `DROVER_DB_MAX_CONNECTIONS`.
    #[serde(default)]
    pub db_max_connections: Option<u32>,
    /// Database: connections the pool keeps open when idle (default 1).
    /// `DROVER_DB_MIN_CONNECTIONS`.
    #[serde(default = "default_db_min_connections")]
    pub db_min_connections: u32,
    /// Database: how long a query waits for a free pooled connection, in
    /// seconds, before it fails (default 10). `DROVER_DB_ACQUIRE_TIMEOUT_SECS`.
    #[serde(default = "default_db_acquire_timeout")]
    pub db_acquire_timeout_secs: u64,
    /// Database: longest a single statement may run, in milliseconds
    /// (default 30,000; 0: no limit). `DROVER_DB_STATEMENT_TIMEOUT_MS`.
    /// PostgreSQL only (`statement_timeout` on every pooled connection);
    /// SQLite has no statement timeout and ignores it (its busy timeout,
    /// 10 s, bounds a writer's wait for the lock).
    #[serde(default = "default_db_statement_timeout")]
    pub db_statement_timeout_ms: u64,

    // ---- Broker cluster (issue 18: a three-node JetStream cluster) ----
    /// Broker: replicas of every stream and KV bucket that holds state
    /// (default 1: a single nats-server; 3 on a three-node cluster).
    /// `DROVER_STREAM_REPLICAS`.
    #[serde(default = "default_stream_replicas")]
    pub stream_replicas: usize,
    /// Broker: replicas of the command shard streams and so of each
    /// agent's command consumer on them (state in memory): nats-server
    /// requires a work-queue stream's consumers to have the stream's
    /// replicas (error 10134), so the two go together. 0 (default) means
    /// [`Config::stream_replicas`]: R3 on a cluster, commands and queues
    /// survive a node's loss. 1 spreads the shards unreplicated over the
    /// nodes: cheaper per agent, but a node's loss stops its shards' agents
    /// until it is back and a lost disk loses their queued commands
    /// (`docs/cluster.md` has the numbers). `DROVER_AGENT_CONSUMER_REPLICAS`.
    #[serde(default)]
    pub agent_consumer_replicas: usize,
}

/// The pool's size when `db_max_connections` is not set, for the database
/// at `url`. SQLite: one connection. SQLite writes one transaction at a
/// time anyway, and every commit through one pooled connection empties the
/// page caches of the others, so with a pool of 8 the writer re-read its
/// pages after every read elsewhere and each statement went to whichever
/// of up to 8 worker threads was free. At 10,000 agents one connection
/// brought the fleet up in 22–24 s instead of 36–40 s, halved the single
/// command's median and the control plane's memory (docs/performance.md,
/// "One SQLite connection"). PostgreSQL: 8, for concurrent queries.
pub fn default_db_max_connections(url: &str) -> u32 {
    if url.starts_with("sqlite:") {
        1
    } else {
        8
    }
}
pub(crate) fn default_db_min_connections() -> u32 {
    1
}
pub(crate) fn default_db_acquire_timeout() -> u64 {
    10
}
pub(crate) fn default_db_statement_timeout() -> u64 {
    30_000
}
fn default_stream_replicas() -> usize {
    1
}

fn default_http_rate_per_token() -> u32 {
    50
}
fn default_http_rate_per_address() -> u32 {
    100
}
fn default_http_rate_burst() -> u32 {
    200
}
fn default_agent_jwt_ttl() -> u64 {
    30 * 86_400
}

fn default_retention_samples() -> u64 {
    48 * 3600
}
fn default_retention_rollup_5m() -> u64 {
    30 * 86_400
}
fn default_retention_rollup_1h() -> u64 {
    365 * 86_400
}
fn default_retention_90d() -> u64 {
    90 * 86_400
}
fn default_retention_30d() -> u64 {
    30 * 86_400
}
fn default_retention_batch() -> u64 {
    5_000
}
fn default_retention_every() -> u64 {
    300
}

fn default_notify_retry_base_ms() -> u64 {
    5_000
}
fn default_notify_max_attempts() -> i32 {
    100
}
fn default_notify_send_timeout() -> u64 {
    10
}

fn default_lease_ttl() -> u64 {
    15
}

fn default_broker_listen() -> String {
    "0.0.0.0:4222".into()
}

fn default_releases_dir() -> PathBuf {
    PathBuf::from("/usr/share/drover/releases")
}

/// The configuration names one of `http_tls_cert` / `http_tls_key` only.
#[derive(Debug, thiserror::Error)]
#[error("http_tls_cert and http_tls_key go together: set both (HTTPS) or neither")]
pub struct HalfHttpTls;

fn default_silent_grace() -> u64 {
    60
}
fn default_ack_wait() -> u64 {
    30
}

fn default_manifests() -> PathBuf {
    PathBuf::from("./manifests")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./drover-data")
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_nats() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_missed() -> u32 {
    3
}
fn default_ttl() -> u64 {
    3600
}
fn default_pending() -> i64 {
    100
}
fn default_max_agents() -> i32 {
    20_000
}

impl Config {
    /// File first (if given, or `./drover.toml` if present), then `DROVER_*`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        match path {
            Some(p) => b = b.add_source(config::File::from(p)),
            None => b = b.add_source(config::File::with_name("drover").required(false)),
        }
        b = b.add_source(
            config::Environment::with_prefix("DROVER")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("tls_names")
                // Variables of the CLI and of the other binaries are not ours.
                .ignore_empty(true),
        );
        b.build()?
            .try_deserialize()
            .context("invalid control-plane configuration")
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("drover.db").display()
            )
        })
    }

    /// The command shard streams' replicas:
    /// [`Config::agent_consumer_replicas`], or [`Config::stream_replicas`]
    /// when that is 0.
    pub fn command_replicas(&self) -> usize {
        match self.agent_consumer_replicas {
            0 => self.stream_replicas,
            n => n,
        }
    }

    /// [`Config::command_ack_wait_secs`], at least 1 s.
    pub fn command_ack_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.command_ack_wait_secs.max(1))
    }

    /// [`Config::public_url`] without a trailing slash, or
    /// `https://<listen>` when the API listens with HTTPS
    /// ([`Config::http_tls_files`]), else `http://<listen>` (an unspecified
    /// address replaced by this machine's host name).
    pub fn public_url(&self) -> String {
        if let Some(u) = self.public_url.as_deref().filter(|u| !u.trim().is_empty()) {
            return u.trim().trim_end_matches('/').to_string();
        }
        let listen = self.listen.trim();
        let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "80"));
        let host = match host {
            "0.0.0.0" | "[::]" | "" => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            h => h.to_string(),
        };
        let scheme = match self.http_tls_files() {
            Ok(Some(_)) => "https",
            _ => "http",
        };
        format!("{scheme}://{host}:{port}")
    }

    /// The API as a CLI on this machine reaches it: `listen` with an
    /// unspecified address replaced by loopback, `https` when the API
    /// serves HTTPS ([`Config::http_tls_files`]).
    pub fn local_api_url(&self) -> String {
        let listen = self.listen.trim();
        let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8080"));
        let host = match host {
            "0.0.0.0" | "" => "127.0.0.1",
            "[::]" => "[::1]",
            h => h,
        };
        let scheme = match self.http_tls_files() {
            Ok(Some(_)) => "https",
            _ => "http",
        };
        format!("{scheme}://{host}:{port}")
    }

    /// [`Config::agent_nats_url`], or `nats_url`.
    pub fn agent_nats_url(&self) -> String {
        self.agent_nats_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(&self.nats_url)
            .trim()
            .to_string()
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("signing.key")
    }

    /// The control plane's NATS credentials (written by `drover init`).
    pub fn nats_creds_path(&self) -> PathBuf {
        self.data_dir.join("control-plane.creds")
    }

    /// A system-account user, for pushing account updates (revocations).
    pub fn sys_creds_path(&self) -> PathBuf {
        self.data_dir.join("sys.creds")
    }

    /// The enrolment-only user's credentials, handed to new agents.
    pub fn enroll_creds_path(&self) -> PathBuf {
        self.data_dir.join("enroll.creds")
    }

    /// The enrolment responder's credentials: it may publish only on
    /// enrolment inboxes (written by `drover init`, or by `drover serve` when
    /// missing).
    pub fn enroll_responder_creds_path(&self) -> PathBuf {
        self.data_dir.join("enroll-responder.creds")
    }

    /// The nats-server configuration `drover init` writes (operator mode).
    pub fn nats_conf_path(&self) -> PathBuf {
        self.data_dir.join("nats-config").join("nats.conf")
    }

    /// Where `drover init` keeps the CA and certificates it makes.
    pub fn tls_files(&self) -> crate::tls::TlsFiles {
        crate::tls::TlsFiles::new(&self.data_dir)
    }

    /// The CA broker connections check the server against: `nats_ca`, else
    /// `<data_dir>/tls/ca.pem` when `drover init` made it; `None` (and
    /// plaintext, unless the URL says `tls://`) otherwise.
    pub fn nats_ca_file(&self) -> Option<PathBuf> {
        if self.no_tls {
            return None;
        }
        self.nats_ca.clone().or_else(|| {
            let ca = self.tls_files().ca_pem();
            ca.is_file().then_some(ca)
        })
    }

    /// TLS options for a broker connection: the CA added and TLS required
    /// when [`Config::nats_ca_file`] names one or a URL is `tls://`.
    pub fn nats_tls(&self, opts: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        let tls_url = self
            .nats_url
            .split(',')
            .any(|u| u.trim().to_ascii_lowercase().starts_with("tls://"));
        match self.nats_ca_file() {
            Some(ca) => opts.add_root_certificates(ca).require_tls(true),
            None if tls_url => opts.require_tls(true),
            None => opts,
        }
    }

    /// The API's certificate and key, when it listens with HTTPS: both
    /// `http_tls_*` keys, else the files `drover init` made; `None` for
    /// plaintext HTTP. One key without the other is [`HalfHttpTls`].
    pub fn http_tls_files(&self) -> Result<Option<(PathBuf, PathBuf)>, HalfHttpTls> {
        match (&self.http_tls_cert, &self.http_tls_key) {
            (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
            (Some(_), None) | (None, Some(_)) => Err(HalfHttpTls),
            (None, None) if self.no_tls => Ok(None),
            (None, None) => {
                let f = self.tls_files();
                let (c, k) = (f.http_pem(), f.http_key());
                Ok((c.is_file() && k.is_file()).then_some((c, k)))
            }
        }
    }

    /// The names `drover init` makes certificates for: the local ones
    /// ([`crate::tls::default_names`]: what a control plane on the broker's
    /// own machine connects to), then `tls_names`, then `extra` (from
    /// `--tls-name`), each once.
    pub fn cert_names(&self, extra: &[String]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for n in crate::tls::default_names()
            .iter()
            .chain(&self.tls_names)
            .chain(extra)
        {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// The admin token in clear, for the local CLI only (0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}
