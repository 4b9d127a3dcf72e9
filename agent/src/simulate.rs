//! `drover-agent simulate --count N`: N light virtual agents in one process,
//! for load tests. Each has its own identity (nkey), enrols through the real
//! enrolment path, keeps its own NATS connection with its own credentials,
//! pulls from its own durable consumer, verifies every command's signature,
//! answers `sys.ping` and `sys.info` with signed results, and sends
//! heartbeats. What it skips: rootd and real metrics (`--metrics-file`
//! overrides the fake ones, so a test can change a host's disk use).
//!
//! With `--state-dir`, each virtual agent keeps its identity, credentials
//! and journal on disk (`<dir>/<i>/`) like a real agent, so the process can
//! be killed and restarted without re-enrolling, and never runs a command
//! twice; each execution appends the command id to `<dir>/<i>/executions`,
//! the effect the chaos test counts.
//!
//! `agent.update` is answered by faking the install (`update.rs` beside
//! this file): no binary is fetched or run; the virtual agent heartbeats
//! the new version from then on and reports the `UpdateReport`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use bus_schema::enroll::{sign_result, EnrollClaim, EnrollStatus};
use bus_schema::{
    codec, now_ms, subjects, CommandResult, CommandStatus, Heartbeat, Metrics, SignedCommand,
    VerifyingKey,
};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tracing::{info, warn};

#[path = "simulate_update.rs"]
mod update;

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// How many virtual agents.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PEM file of the CA the broker's certificate is checked against; TLS
    /// is required when given (or when the URL is `tls://`).
    #[arg(long)]
    pub nats_ca: Option<PathBuf>,
    /// A registration token with at least `count` uses (auto-approve).
    #[arg(long, env = "DROVER_SIM_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The enrolment-only credentials file (`enroll.creds`).
    #[arg(long)]
    pub enroll_creds: PathBuf,
    /// Seconds between heartbeats of each virtual agent.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u32,
    /// Hostname prefix; agent i is `<prefix>-<i>`.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
    /// Write the enrolled agent ids here, one a line, when all are up.
    #[arg(long)]
    pub ids_file: Option<PathBuf>,
    /// Keep identities, credentials and journals here (reused on restart).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The version the virtual agents report until an `agent.update`
    /// changes it (kept in `<state-dir>/<i>/version` when given).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub agent_version: String,
    /// Fake a failed install of this version: the update is reported
    /// `rolled_back` and the old version keeps running. Repeatable.
    #[arg(long, value_name = "VERSION")]
    pub fail_update: Vec<String>,
    /// After a fake install, wait this long for `agent.selftest` before
    /// reporting healthy; no self-test in time reports `rolled_back`, as
    /// rootd does. 0 reports healthy at once, without waiting for a
    /// self-test (for a control plane that does not send them).
    #[arg(long, default_value_t = 0)]
    pub selftest_wait_secs: u64,
    /// A JSON object of metric overrides (`{"disk_used_bytes": ...,
    /// "disk_total_bytes": ...}`, the heartbeat's `metrics` field names),
    /// read before every heartbeat of every virtual agent while it exists:
    /// rewrite it to change what the fleet reports. Unreadable or invalid
    /// content leaves the simulated defaults.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

pub(crate) struct Virtual {
    id: String,
    hostname: String,
    key: nkeys::KeyPair,
    cp_key: VerifyingKey,
    client: async_nats::Client,
    js: jetstream::Context,
    /// Per-agent journal and effect file, when `--state-dir` is given.
    journal: Option<tokio::sync::Mutex<crate::journal::Journal>>,
    dir: Option<PathBuf>,
    /// The fake install's state: version reported, self-tests seen.
    update: update::Updates,
}

/// Loads a virtual agent's saved identity, or enrols it and saves it.
async fn identity(
    args: &SimulateArgs,
    enroll: &async_nats::Client,
    i: usize,
) -> anyhow::Result<(nkeys::KeyPair, String, VerifyingKey)> {
    let Some(root) = &args.state_dir else {
        return enrol(args, enroll, i).await;
    };
    let dir = root.join(i.to_string());
    if let (Ok(seed), Ok(jwt), Ok(key)) = (
        std::fs::read_to_string(dir.join("agent.seed")),
        std::fs::read_to_string(dir.join("agent.jwt")),
        std::fs::read_to_string(dir.join("control-plane.key")),
    ) {
        return Ok((
            nkeys::KeyPair::from_seed(seed.trim())?,
            jwt,
            VerifyingKey::parse(&key)?,
        ));
    }
    let (key, jwt, cp) = enrol(args, enroll, i).await?;
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("agent.jwt"), &jwt)?;
    std::fs::write(dir.join("control-plane.key"), cp.to_base64())?;
    // Last: its presence means the others are complete.
    bus_schema::signing::write_secret_file(&dir.join("agent.seed"), key.seed()?.as_bytes())?;
    Ok((key, jwt, cp))
}

/// Counters printed every few seconds.
#[derive(Default)]
struct Stats {
    commands: AtomicU64,
    heartbeats: AtomicU64,
    refused: AtomicU64,
}

async fn enrol(
    args: &SimulateArgs,
    enroll: &async_nats::Client,
    i: usize,
) -> anyhow::Result<(nkeys::KeyPair, String, VerifyingKey)> {
    let key = nkeys::KeyPair::new_user();
    let hostname = format!("{}-{i}", args.prefix);
    let claim = EnrollClaim {
        token: args.token.clone(),
        public_key: key.public_key(),
        machine_id: uuid::Uuid::new_v4().simple().to_string(),
        hostname: hostname.clone(),
        facts: serde_json::json!({"os": "simulated", "kernel": "sim", "arch": "x86_64", "agent_version": env!("CARGO_PKG_VERSION")}),
        at: now_ms(),
        reply_key: String::new(),
        display_name: None,
        labels: Default::default(),
        protocol_version: bus_schema::signing::PROTOCOL_VERSION,
        rootd_box_key: None,
    };
    let reply_key = bus_schema::enroll::new_reply_key();
    let inbox = enroll.new_inbox();
    let mut sub = enroll
        .subscribe(inbox.clone())
        .await
        .context("subscribing to the enrolment inbox")?;
    for attempt in 0..20u32 {
        let claim = EnrollClaim {
            at: now_ms(),
            reply_key: reply_key.public_key(),
            ..claim.clone()
        };
        match crate::enroll::ask(
            enroll,
            &inbox,
            &mut sub,
            &claim,
            &key,
            &reply_key,
            Duration::from_secs(30),
        )
        .await
        {
            Ok(r) => {
                let cp_key = VerifyingKey::parse(&r.control_plane_key)?;
                return match (r.status, r.user_jwt) {
                    (EnrollStatus::Approved, Some(jwt)) => Ok((key, jwt, cp_key)),
                    (s, _) => {
                        anyhow::bail!("virtual agent {hostname}: enrolment {s:?}: {}", r.message)
                    }
                };
            }
            Err(e) => {
                warn!(error = %e, "virtual agent {hostname}: enrolment attempt failed");
                tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1))).await
            }
        }
    }
    anyhow::bail!("virtual agent {hostname}: no answer to enrolment")
}

async fn connect(
    args: &SimulateArgs,
    key: &nkeys::KeyPair,
    jwt: String,
) -> anyhow::Result<async_nats::Client> {
    let signer = Arc::new(nkeys::KeyPair::from_seed(&key.seed()?)?);
    let id = key.public_key();
    let opts = async_nats::ConnectOptions::with_jwt(jwt, move |nonce| {
        let signer = signer.clone();
        async move { signer.sign(&nonce).map_err(async_nats::AuthError::new) }
    });
    crate::config::with_tls(opts, &args.nats_url, args.nats_ca.as_deref())
        .name(format!("drover-agent simulated {id}"))
        .custom_inbox_prefix(subjects::inbox_prefix(&id))
        .retry_on_initial_connect()
        .connect(crate::config::server_addrs(&args.nats_url))
        .await
        .context("connecting a virtual agent")
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let opts = async_nats::ConnectOptions::with_credentials_file(&args.enroll_creds).await?;
    let enroll = crate::config::with_tls(opts, &args.nats_url, args.nats_ca.as_deref())
        .custom_inbox_prefix(subjects::ENROLL_INBOX_PREFIX)
        .connect(crate::config::server_addrs(&args.nats_url))
        .await?;
    let started = std::time::Instant::now();
    let gate = Arc::new(Semaphore::new(args.parallel.max(1)));
    let mut tasks = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let permit = gate.clone().acquire_owned().await?;
        let args = args.clone();
        let enroll = enroll.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let (key, jwt, cp_key) = identity(&args, &enroll, i).await?;
            let client = connect(&args, &key, jwt).await?;
            let js = jetstream::new(client.clone());
            let dir = args.state_dir.as_ref().map(|d| d.join(i.to_string()));
            let journal = match &dir {
                Some(d) => Some(tokio::sync::Mutex::new(crate::journal::Journal::open(
                    d,
                    now_ms(),
                )?)),
                None => None,
            };
            let v = Virtual {
                id: key.public_key(),
                hostname: format!("{}-{i}", args.prefix),
                key,
                cp_key,
                client,
                js,
                update: update::Updates::new(&args, dir.as_deref()),
                journal,
                dir,
            };
            // Results from before a crash that the broker never confirmed.
            if let Some(j) = &v.journal {
                let pending = j.lock().await.unconfirmed();
                for (_, r) in pending {
                    publish_confirmed(&v, &r).await;
                }
            }
            anyhow::Ok(v)
        }));
    }
    let mut agents = Vec::with_capacity(args.count);
    for t in tasks {
        agents.push(Arc::new(t.await??));
    }
    info!(
        count = agents.len(),
        secs = started.elapsed().as_secs_f64(),
        "virtual agents enrolled and connected"
    );
    if let Some(path) = &args.ids_file {
        let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        std::fs::write(path, ids.join("\n") + "\n")?;
    }

    let stats = Arc::new(Stats::default());
    for (n, a) in agents.iter().enumerate() {
        tokio::spawn(heartbeats(
            a.clone(),
            args.heartbeat_secs,
            n,
            stats.clone(),
            args.metrics_file.clone(),
        ));
        tokio::spawn(commands(a.clone(), stats.clone()));
    }
    println!("ready {}", agents.len());
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tick.tick() => info!(
                commands = stats.commands.load(Ordering::Relaxed),
                heartbeats = stats.heartbeats.load(Ordering::Relaxed),
                refused = stats.refused.load(Ordering::Relaxed),
                "virtual fleet"
            ),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    for a in &agents {
        let _ = a.client.flush().await;
    }
    Ok(())
}

/// `base` with the overrides of the `--metrics-file`, when it exists and
/// holds a JSON object of metric fields.
fn with_overrides(base: Metrics, file: Option<&std::path::Path>) -> Metrics {
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return base;
    };
    let Ok(serde_json::Value::Object(over)) = serde_json::from_str(&text) else {
        return base;
    };
    let mut v = serde_json::to_value(&base).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        for (k, x) in over {
            if obj.contains_key(&k) {
                obj.insert(k, x);
            }
        }
    }
    serde_json::from_value(v).unwrap_or(base)
}

async fn heartbeats(
    a: Arc<Virtual>,
    every: u32,
    n: usize,
    stats: Arc<Stats>,
    metrics_file: Option<PathBuf>,
) {
    // The first heartbeat at once, as a real agent sends it when it starts
    // (the host is online as soon as it is up); the next ones spread the
    // fleet's heartbeats over the interval.
    let offset = Duration::from_millis(((n as u64) * 7919) % (every.max(1) as u64 * 1000));
    let mut next_wait = if offset.is_zero() {
        Duration::from_secs(every.max(1) as u64)
    } else {
        offset
    };
    let subject = subjects::heartbeat(&a.id);
    let mut seq = 0u64;
    loop {
        seq += 1;
        let hb = Heartbeat {
            agent_id: a.id.clone(),
            hostname: a.hostname.clone(),
            seq,
            sent_at: now_ms(),
            interval_secs: every.max(1),
            agent_version: a.update.version(),
            agent_channel: String::new(),
            os: "simulated".into(),
            kernel: "sim".into(),
            metrics: with_overrides(
                Metrics {
                    cpu_percent: (seq % 100) as f32,
                    mem_used_bytes: 1 << 30,
                    mem_total_bytes: 4 << 30,
                    disk_used_bytes: 10 << 30,
                    disk_total_bytes: 40 << 30,
                    load1: 0.1,
                    load5: 0.1,
                    load15: 0.1,
                    uptime_secs: seq * every as u64,
                },
                metrics_file.as_deref(),
            ),
            modules: vec!["sys".into(), "agent".into()],
            operations: vec![],
            rootd_error: None,
            instance_id: String::new(),
            machine_id: String::new(),
            boot_id: String::new(),
            protocol_version: bus_schema::signing::PROTOCOL_VERSION,
            watch_revision: String::new(),
            services: vec![],
            services_full: false,
            key_fingerprints: None,
            rootd_box_key: None,
        };
        if a.client
            .publish(subject.clone(), bus_schema::encode(&hb).into())
            .await
            .is_ok()
        {
            stats.heartbeats.fetch_add(1, Ordering::Relaxed);
        }
        // A fake install heartbeats its new version at once.
        tokio::select! {
            _ = tokio::time::sleep(next_wait) => {}
            _ = a.update.changed.notified() => {}
        }
        next_wait = Duration::from_secs(every.max(1) as u64);
    }
}

async fn commands(a: Arc<Virtual>, stats: Arc<Stats>) {
    let name = subjects::agent_consumer(&a.id);
    let consumer: PullConsumer = loop {
        match a
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                &name,
                subjects::cmd_stream(&a.id),
            )
            .await
        {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    loop {
        let Ok(mut msgs) = consumer
            .stream()
            .max_messages_per_batch(4)
            .heartbeat(Duration::from_secs(15))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok(msg)) = msgs.next().await {
            let attempt = msg.info().map(|i| i.delivered).unwrap_or(1) as u32;
            let signed: Result<SignedCommand, _> = codec::decode(&msg.payload, None);
            let cmd = match signed
                .ok()
                .and_then(|s| a.cp_key.verify_for(&s, &a.id, now_ms()).ok())
            {
                Some(c) => c,
                None => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = msg.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            // The journal's rule, as in the real agent: a known id is never
            // run again; its stored result (or "interrupted") is re-sent.
            if let Some(j) = &a.journal {
                let seq = msg.info().ok().map(|i| i.stream_sequence);
                let claim = j
                    .lock()
                    .await
                    .claim(&cmd.id, cmd.expires_at, now_ms(), seq, attempt);
                if let Ok(crate::journal::Claim::Seen(entry)) = claim {
                    let result = entry.result.unwrap_or_else(|| CommandResult {
                        command_id: cmd.id.clone(),
                        agent_id: a.id.clone(),
                        status: CommandStatus::Failed,
                        exit_code: None,
                        summary: "interrupted: the agent stopped during the run; not run again so it never runs twice".into(),
                        data: serde_json::Value::Null,
                        attempt,
                        at: now_ms(),
                    });
                    publish_confirmed(&a, &result).await;
                    let _ = msg.double_ack().await;
                    continue;
                }
                if claim.is_err() {
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await;
                    continue;
                }
            }
            if cmd.action == "agent.update" {
                // Runs on (a self-test must get through meanwhile); its
                // result is published when the fake install ends.
                update::start(a.clone(), cmd, attempt);
                let _ = msg.ack().await;
                stats.commands.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let (status, summary, data) = match cmd.action.as_str() {
                "agent.selftest" => a.update.selftest(&cmd.params),
                "sys.ping" => (
                    CommandStatus::Succeeded,
                    "pong".to_string(),
                    serde_json::json!({"agent_id": a.id, "at": now_ms()}),
                ),
                "sys.info" => (
                    CommandStatus::Succeeded,
                    format!("{} — simulated", a.hostname),
                    serde_json::json!({"hostname": a.hostname, "os": "simulated"}),
                ),
                other => (
                    CommandStatus::Rejected,
                    format!("a simulated agent cannot run {other}"),
                    serde_json::Value::Null,
                ),
            };
            // The effect: one line per execution.
            if let Some(d) = &a.dir {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join("executions"))
                {
                    let _ = writeln!(f, "{}", cmd.id);
                }
            }
            let result = CommandResult {
                command_id: cmd.id.clone(),
                agent_id: a.id.clone(),
                status,
                exit_code: Some(0),
                summary,
                data,
                attempt,
                at: now_ms(),
            };
            if let Some(j) = &a.journal {
                let _ = j.lock().await.record_result(cmd.expires_at, &result);
            }
            publish_confirmed(&a, &result).await;
            // A plain ack, as the real agent does (see `report::finish`).
            if msg.ack().await.is_ok() {
                stats.commands.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Publishes a signed result until the broker confirms it, then marks it
/// confirmed in the journal.
pub(crate) async fn publish_confirmed(a: &Virtual, result: &CommandResult) {
    let body = bus_schema::encode(&sign_result(&a.key, result));
    let subject = subjects::result(&a.id, &result.command_id);
    let mut delay = Duration::from_millis(100);
    for _ in 0..1000 {
        if let Ok(ack) = a.js.publish(subject.clone(), body.clone().into()).await {
            if ack.await.is_ok() {
                if let Some(j) = &a.journal {
                    let _ = j.lock().await.confirm(&result.command_id);
                }
                return;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    warn!(command = %result.command_id, "virtual agent gave up publishing a result; it stays in the journal");
}
