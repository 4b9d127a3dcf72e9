//! Start-up: loads the identity, enrols, connects, builds the shared
//! [`Agent`] state, reports what an earlier run left unfinished, then starts
//! the heartbeat and command loops and waits for a stop. Owns only the
//! starting and stopping; the state's shape lives in `state`, the loops in
//! their own files.

use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;
use bus_schema::subjects;
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::identity::Identity;
use crate::journal::Journal;
use crate::state::Agent;

pub async fn run(cfg: AgentConfig) -> anyhow::Result<()> {
    let identity = Identity::load_or_create(&cfg.state_dir)?;
    let id = identity.agent_id();
    let enrolment = crate::enroll::ensure(&cfg, &identity).await?;
    // Offline past the JWT's expiry: re-authenticate with the key first.
    let mut user_jwt = enrolment.user_jwt;
    if crate::credentials::expired_within(&user_jwt, std::time::Duration::from_secs(2)) {
        info!("the stored JWT has expired; re-authenticating with the agent's key");
        match crate::credentials::reauth_until_answered(&cfg, &identity).await {
            Ok(jwt) => {
                if let Err(e) = crate::credentials::store(&cfg.state_dir, &jwt) {
                    warn!(error = %e, "the fresh JWT was not saved");
                }
                user_jwt = jwt;
            }
            Err(why) => crate::credentials::refused_exit(&why),
        }
    }
    let creds = crate::credentials::Creds::new(user_jwt);
    let pinned_release = cfg.release_key()?;
    let keys = bus_schema::signing::host_keys::HostKeys::load(
        &cfg.state_dir,
        &enrolment.control_plane_key,
        pinned_release.as_ref(),
    )
    .with_context(|| format!("loading the key rings in {}", cfg.state_dir.display()))?;
    let instance = crate::instance::Instance::detect(&cfg);
    let journal = Journal::open(&cfg.state_dir, bus_schema::now_ms())
        .with_context(|| format!("opening the journal in {}", cfg.state_dir.display()))?;
    info!(agent_id = %id, control_plane_key = %keys.command_fingerprint(), key_generation = keys.command_ring().generation, nats = %cfg.nats_url, "agent starting");

    // The broker refusing our credentials (revoked, or never valid) ends the
    // agent: retrying forever would only fill the logs.
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::channel::<String>(1);
    let signer = std::sync::Arc::new(nkeys::KeyPair::from_seed(&identity.key().seed()?)?);
    // The JWT is read at every (re)connect: a renewal replaces it.
    let auth_creds = creds.clone();
    let opts = async_nats::ConnectOptions::with_auth_callback(move |nonce| {
        let signer = signer.clone();
        let jwt = auth_creds.current();
        async move {
            let mut auth = async_nats::Auth::new();
            auth.jwt = Some(jwt);
            auth.signature = Some(signer.sign(&nonce).map_err(async_nats::AuthError::new)?);
            Ok(auth)
        }
    });
    let client = cfg
        .tls(opts)
        .name(format!("drover-agent {id}"))
        .custom_inbox_prefix(subjects::inbox_prefix(&id))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let refused_tx = refused_tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => info!("connected to NATS"),
                    async_nats::Event::Disconnected => {
                        warn!("disconnected from NATS; reconnecting")
                    }
                    async_nats::Event::ServerError(
                        async_nats::ServerError::AuthorizationViolation,
                    ) => {
                        let _ = refused_tx.try_send("authorization violation".to_string());
                    }
                    async_nats::Event::ServerError(async_nats::ServerError::Other(e))
                        if e.to_ascii_lowercase().contains("revoked") =>
                    {
                        let _ = refused_tx.try_send(e);
                    }
                    other => info!(event = %other, "NATS event"),
                }
            }
        })
        .connect(crate::config::server_addrs(&cfg.nats_url))
        .await
        .with_context(|| format!("connecting to NATS at {}", cfg.nats_url))?;
    let js = jetstream::new(client.clone());

    let watch = std::sync::Mutex::new(crate::watch::load(&cfg.state_dir));
    let agent = Arc::new(Agent {
        id,
        identity,
        cfg,
        keys,
        client,
        js,
        journal: Mutex::new(journal),
        ops: Mutex::new(Vec::new()),
        ops_changed: Notify::new(),
        running: Default::default(),
        instance,
        held: Default::default(),
        watch,
    });

    // Commands that were running when the agent stopped: reported now, from
    // the journal, not left for a sweep to guess at.
    // An update rootd switched to before this process started: its result
    // is this process's to publish (now, or after the self-test).
    crate::update::resume(&agent).await;
    let interrupted = crate::redelivery::report_interrupted(&agent).await;
    if interrupted > 0 {
        info!(
            count = interrupted,
            "reported commands interrupted by the agent's stop"
        );
    }
    // Results from before a crash that the broker never confirmed.
    let pending = agent.journal.lock().await.unconfirmed();
    if !pending.is_empty() {
        info!(
            count = pending.len(),
            "re-sending unconfirmed results from the journal"
        );
        for (_, r) in pending {
            crate::report::publish_confirmed(&agent, &r).await;
        }
    }

    let renewal = tokio::spawn(crate::credentials::renew_loop(
        agent.cfg.clone(),
        Arc::new(Identity::load_or_create(&agent.cfg.state_dir)?),
        creds.clone(),
        agent.client.clone(),
    ));
    let hb = tokio::spawn(crate::heartbeat::run_loop(agent.clone()));
    let cmds = tokio::spawn(crate::commands::run_loop(agent.clone()));
    // Start-up's code leaves the resident set once the loops run.
    bus_schema::resident::settle_after_start();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut refused = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            why = refused_rx.recv() => {
                // An expired JWT is refused too: that is the renewal loop's
                // to mend (re-authentication), not a reason to stop.
                if why.is_some() && creds.expired_within(std::time::Duration::from_secs(2)) {
                    warn!("the broker refused the expired JWT; re-authenticating");
                    creds.wake.notify_one();
                    continue;
                }
                refused = why;
            }
        }
        break;
    }
    renewal.abort();
    if let Some(why) = refused {
        cmds.abort();
        hb.abort();
        tracing::error!(
            reason = %why,
            "the broker refused this agent's credentials (the agent was probably revoked); stopping without retrying. \
             To bring the host back, remove the state directory and enrol it again with a new registration token."
        );
        std::process::exit(78);
    }
    info!("agent stopping");
    cmds.abort();
    hb.abort();
    // Flush what is buffered (heartbeats, output) before leaving.
    let _ = agent.client.flush().await;
    Ok(())
}
