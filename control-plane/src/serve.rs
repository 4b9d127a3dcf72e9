//! `drover serve`: connect, declare, consume, serve HTTP (or HTTPS when
//! the configuration names a certificate, see [`Config::http_tls_files`]).

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;
use bus_schema::CommandSigner;
use tokio::sync::Mutex;
use tracing::info;

use crate::config::Config;
use crate::state::{AppState, Inner};

/// How `drover init` sets up TLS.
#[derive(Debug, Clone, Default)]
pub struct InitTls {
    /// Make the CA and certificates in `<data_dir>/tls/` (existing files are
    /// kept) and write the broker's `tls {}` block; false (`--no-tls`, `drover
    /// dev`, the test harness): a plaintext broker configuration.
    pub enabled: bool,
    /// Names added to `tls_names` (`--tls-name`).
    pub extra_names: Vec<String>,
}

/// [`init_with`] without TLS (what `drover dev` runs).
pub async fn init(cfg: &Config) -> anyhow::Result<Option<String>> {
    init_with(cfg, &InitTls::default()).await
}

/// Creates the signing key and the admin token if they do not exist, the
/// broker's trust chain and configuration, and (with `tls.enabled`) the CA
/// and certificates. Returns the admin token when it was created now (it is
/// shown once). A bad TLS name is an error before anything is written.
pub async fn init_with(cfg: &Config, tls: &InitTls) -> anyhow::Result<Option<String>> {
    let names = cfg.cert_names(&tls.extra_names);
    if tls.enabled {
        for n in &names {
            crate::tls::check_name(n)?;
        }
    }
    let base_conf = crate::nats_auth::installation_base_conf(&cfg.broker_listen)?;
    if !cfg.data_dir.exists() {
        // Keys, tokens and the database live here: no other local user
        // reads it.
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
        std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o750))?;
    }
    let key_path = cfg.signing_key_path();
    if !key_path.exists() {
        let signer = CommandSigner::generate();
        signer.save_new(&key_path)?;
        info!(fingerprint = %signer.public().fingerprint(), "created the command-signing key");
    }
    // The broker's trust chain and the configuration that makes nats-server
    // enforce it.
    let auth = crate::nats_auth::NatsAuth::load_or_init(&cfg.data_dir)?;
    let conf = cfg.nats_conf_path();
    let resolver = auth.resolver_conf(&cfg.data_dir.join("nats-resolver"))?;
    std::fs::create_dir_all(conf.parent().expect("conf has a parent"))?;
    std::fs::write(conf.with_file_name("resolver.conf"), &resolver)?;
    let mut broker = format!(
        "{base_conf}
# Operator mode (drover init):
include \"resolver.conf\"\n"
    );
    if tls.enabled {
        let files = cfg.tls_files();
        let made = crate::tls::ensure_certs(&files, &names)?;
        for f in &made.written {
            info!(file = %f.display(), "wrote");
        }
        std::fs::write(
            conf.with_file_name("tls.conf"),
            crate::tls::broker_tls_block(&files.nats_pem(), &files.nats_key()),
        )?;
        broker.push_str("# TLS for every client (drover init):\ninclude \"tls.conf\"\n");
    }
    std::fs::write(&conf, broker)?;
    auth.control_plane_creds(&cfg.nats_creds_path())?;
    auth.system_creds(&cfg.sys_creds_path())?;
    auth.enroll_creds(&cfg.enroll_creds_path())?;
    auth.enroll_responder_creds(&cfg.enroll_responder_creds_path())?;
    let db = crate::db::open(cfg).await?;
    // SQLite makes its file with the umask's mode; it holds password hashes
    // and TOTP secrets (its -wal and -shm files take the same mode).
    let db_file = cfg.data_dir.join("drover.db");
    if cfg.database_url.is_none() && db_file.exists() {
        std::fs::set_permissions(&db_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let token_path = cfg.admin_token_path();
    if token_path.exists() {
        return Ok(None);
    }
    let token = crate::auth::new_token();
    crate::auth::store_token(&db, "admin", "admin", &token).await?;
    bus_schema::signing::write_secret_file(&token_path, token.as_bytes())
        .with_context(|| format!("writing {}", token_path.display()))?;
    Ok(Some(token))
}

/// Creates the first web UI admin (`admin`) when there are no users yet.
/// The password comes from `password` (e.g. `--admin-password-file`) or is
/// generated; a generated one is returned so it can be shown once.
pub async fn init_admin_user(
    cfg: &Config,
    password: Option<String>,
) -> anyhow::Result<Option<String>> {
    let db = crate::db::open(cfg).await?;
    if !crate::auth::list_users(&db).await?.is_empty() {
        return Ok(None);
    }
    let (pw, generated) = match password {
        Some(p) => (p, false),
        None => (crate::auth::generate_password(), true),
    };
    crate::auth::add_user(&db, "admin", "admin", &pw)
        .await
        .map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))?;
    crate::audit::record(
        &db,
        crate::audit::Entry::new(
            "drover init",
            "user.add",
            "admin",
            "local",
            serde_json::json!({"role": "admin"}),
        ),
    )
    .await?;
    Ok(generated.then_some(pw))
}

pub fn load_signer(cfg: &Config) -> anyhow::Result<CommandSigner> {
    CommandSigner::load(&cfg.signing_key_path()).with_context(|| {
        "no signing key: run `drover init` first (it creates the key and the admin token)"
            .to_string()
    })
}

pub async fn serve(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let signer = load_signer(&cfg)?;
    // A minimum agent version that is not a version stops here.
    crate::version_policy::Policy::from_config(&cfg)?;
    // A release key that is set but unusable stops the start: every agent
    // update would be refused with it.
    match crate::agent_releases::release_key(&cfg)? {
        Some(k) => info!(fingerprint = %k.fingerprint(), "release key"),
        None => info!("no release key configured: agent releases cannot be published (`drover releases keygen`, then release_key in drover.toml)"),
    }
    crate::tls::install_crypto_provider();
    // HTTPS files are read before anything starts: a bad one stops here.
    let https =
        match cfg.http_tls_files()? {
            Some((cert, key)) => Some(axum_server::tls_rustls::RustlsConfig::from_config(
                std::sync::Arc::new(crate::tls::server_config(&cert, &key).with_context(|| {
                    format!("HTTPS with {} and {}", cert.display(), key.display())
                })?),
            )),
            None => None,
        };
    info!(
        nats_ca = %cfg.nats_ca_file().map(|p| p.display().to_string()).unwrap_or_else(|| "none (plaintext unless tls://)".into()),
        https = https.is_some(),
        "TLS"
    );
    // Held until serve returns: `drover restore` refuses to write under it.
    let _data_dir_lock = crate::backup::hold_data_dir(&cfg.data_dir)?;
    let db_opts = crate::db::DbOptions::from_config(&cfg);
    info!("{}", db_opts.describe(&cfg.database_url()));
    let db = crate::db::connect_with(&cfg.database_url(), &db_opts).await?;
    let auth = crate::nats_auth::NatsAuth::load_or_init(&cfg.data_dir)?;
    let nats = crate::bus::connect(&cfg, "drover control plane", &cfg.nats_creds_path()).await?;
    let sys =
        crate::bus::connect(&cfg, "drover control plane (system)", &cfg.sys_creds_path()).await?;
    // Enrolment requests are answered on a connection of their own, as a
    // user that may publish only on enrolment inboxes (an installation made
    // before that user existed gets its credentials now).
    let responder_creds = cfg.enroll_responder_creds_path();
    if !responder_creds.exists() {
        auth.enroll_responder_creds(&responder_creds)?;
    }
    let responder = crate::bus::connect(
        &cfg,
        "drover control plane (enrolment responder)",
        &responder_creds,
    )
    .await?;
    crate::bus::wait_connected(&nats, std::time::Duration::from_secs(30)).await?;
    crate::bus::wait_connected(&sys, std::time::Duration::from_secs(30)).await?;
    crate::bus::wait_connected(&responder, std::time::Duration::from_secs(30)).await?;
    let js = jetstream::new(nats.clone());
    // Every declaration through `bus::declare`: tried again when a cluster
    // leaves a request unanswered (see there).
    use crate::bus::declare;
    let replicas = cfg.stream_replicas;
    crate::bus::ensure_streams(&js, &cfg).await?;
    let (hb_consumer, res_consumer) = declare("the control plane's consumers", || {
        crate::bus::control_plane_consumers(&js)
    })
    .await?;
    let notify_consumer = declare("the notification streams", || {
        crate::notify::ensure_stream(&js, replicas)
    })
    .await?;
    let jobs_consumer = declare("the job stream", || {
        crate::automation::consumer(&js, replicas)
    })
    .await?;
    info!(fingerprint = %signer.public().fingerprint(), "command-signing key");
    // Packages shipped beside the control plane, signed into the release
    // bucket (those already there with the same sha256 are left alone).
    declare("the release bucket", || async {
        Ok(crate::releases::bucket_replicated(&js, replicas).await?)
    })
    .await?;
    let published = crate::releases::publish_dir(&js, &signer, &cfg.releases_dir).await;
    if published > 0 {
        info!(published, dir = %cfg.releases_dir.display(), "release artifacts published");
    }

    // Known queues, so a fan-out does not ask the broker once per agent.
    let known_queues: HashSet<String> = crate::bus::existing_agent_consumers(&js)
        .await?
        .into_iter()
        .collect();
    // Which replica runs the periodic duties.
    let lease_ttl = std::time::Duration::from_secs(cfg.lease_ttl_secs);
    let lease_store = declare("the lease bucket", || {
        crate::bus::ensure_lease_bucket_replicated(&js, lease_ttl, replicas)
    })
    .await?;
    let lease = crate::lease::Lease::start(lease_store, crate::lease::DUTIES_KEY, lease_ttl)
        .await
        .context("starting the duties lease")?;
    let state = AppState(Arc::new(Inner {
        cfg: cfg.clone(),
        db,
        nats,
        js,
        keys: crate::keys::KeyState::new(
            CommandSigner::load(&cfg.signing_key_path())
                .context("loading the command-signing key")?,
        ),
        signer,
        auth,
        sys,
        consumers: Mutex::new(known_queues),
        writer: Mutex::new(()),
        results_stored: tokio::sync::watch::Sender::new(0),
        duties: crate::duties::Board::new(lease.subscribe(), lease_ttl),
    }));
    // A rotated command-signing key signs from its generation on.
    crate::keys::load(&state)
        .await
        .context("loading the rotated signing keys")?;
    // The broker's revocation list follows the database at every start.
    crate::trust::push_revocations(&state)
        .await
        .context("pushing the account to the broker")?;
    // Every replica: shared durable consumers (the broker hands each
    // message to one of them), the enrolment and credential responders
    // (queue groups), the max-delivery advisories (ended conditionally).
    // Once, on the replica holding the duties lease: `duties::run` (the
    // offline sweep, the queue keeper, schedules, alerts, retention...).
    let tasks = vec![
        tokio::spawn(crate::enroll::serve(state.clone(), responder)),
        tokio::spawn(crate::credentials::serve(state.clone())),
        tokio::spawn(crate::ingest::heartbeat_loop(state.clone(), hb_consumer)),
        tokio::spawn(crate::ingest::result_loop(state.clone(), res_consumer)),
        tokio::spawn(crate::ingest::max_deliveries_loop(state.clone())),
        tokio::spawn(crate::automation::submit_loop(state.clone(), jobs_consumer)),
        tokio::spawn(crate::duties::run(state.clone())),
        tokio::spawn(crate::notify::deliver::run(state.clone(), notify_consumer)),
        tokio::spawn(crate::db::checkpoint_loop(cfg.database_url())),
    ];

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let app = crate::http::router(state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    match https {
        None => {
            info!(url = %format!("http://{}", listener.local_addr()?), "control plane ready");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(tls) => {
            info!(url = %format!("https://{}", listener.local_addr()?), "control plane ready");
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(app)
                .await?;
        }
    }
    for t in tasks {
        t.abort();
    }
    // Another replica takes the duties over at once.
    lease.release().await;
    let _ = state.nats.flush().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
