//! The socket: who may connect, what a request must prove, and how the answer
//! streams back. Every refusal is logged with its reason and answered with a
//! `Refused` frame.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus_schema::catalogue::{self, RunsIn};
use bus_schema::result_budget;
use bus_schema::rootd_proto::{self, RootFrame, RootRequest};
use bus_schema::signing::host_keys::{HostKeys, Rotated};
use bus_schema::{now_ms, Command, Refusal};
use futures::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Mutex};
use tokio_util::codec::Framed;
use tracing::{info, warn};

use crate::actions;
use crate::actions::agent_update::SelfUpdate;
use crate::config::RootdConfig;
use crate::replay::ReplayMemory;
use crate::toolkit::{Ctx, Limits};

struct Shared {
    cfg: RootdConfig,
    /// The command-signing and release keys this rootd accepts (pinned in
    /// rootd.toml, moved on by verified rotations, saved in its state dir).
    keys: HostKeys,
    replay: Mutex<ReplayMemory>,
    /// Agent self-update, when `agent_releases_dir` is set.
    self_update: Option<Arc<SelfUpdate>>,
    /// What secrets for this host are sealed to (`box_key`).
    box_key: bus_schema::sealed::BoxSecretKey,
}

pub async fn run(cfg: RootdConfig) -> anyhow::Result<()> {
    let keys = HostKeys::load(&cfg.state_dir, &cfg.key()?, cfg.release_key()?.as_ref())
        .with_context(|| format!("loading the key rings in {}", cfg.state_dir.display()))?;
    let box_key = crate::box_key::load_or_create(&cfg.state_dir)
        .context("loading rootd's box key (what secrets are sealed to)")?;
    let replay = ReplayMemory::open(&cfg.state_dir, now_ms())
        .with_context(|| format!("opening replay memory in {}", cfg.state_dir.display()))?;
    let listener = bind(&cfg)?;
    // After the socket is bound: a supervised agent finds rootd answering.
    let self_update = SelfUpdate::init(&cfg)
        .await
        .context("setting up agent self-update (agent_releases_dir)")?;
    info!(
        socket = %cfg.socket.display(),
        agent_uid = cfg.agent_uid,
        control_plane_key = %keys.command_fingerprint(),
        key_generation = keys.command_ring().generation,
        box_key = %box_key.public_key().to_base64(),
        "rootd listening"
    );
    // Start-up's code leaves the resident set once rootd is serving.
    bus_schema::resident::settle_after_start();
    let shared = Arc::new(Shared {
        cfg,
        keys,
        replay: Mutex::new(replay),
        self_update,
        box_key,
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => { warn!(error = %e, "accept failed"); continue; }
                };
                let shared = shared.clone();
                tokio::spawn(async move { handle(shared, stream).await });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    let _ = std::fs::remove_file(&shared.cfg.socket);
    info!("rootd stopped");
    Ok(())
}

fn bind(cfg: &RootdConfig) -> anyhow::Result<UnixListener> {
    if let Some(dir) = cfg.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by a crash would make bind fail.
    if cfg.socket.exists() {
        std::fs::remove_file(&cfg.socket)
            .with_context(|| format!("removing stale socket {}", cfg.socket.display()))?;
    }
    let listener = UnixListener::bind(&cfg.socket)
        .with_context(|| format!("binding {}", cfg.socket.display()))?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o660))?;
    if let Some(group) = &cfg.socket_group {
        let g = nix::unistd::Group::from_name(group)?
            .with_context(|| format!("socket_group {group} does not exist"))?;
        nix::unistd::chown(
            &cfg.socket,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(g.gid),
        )
        .with_context(|| format!("chown root:{group} {}", cfg.socket.display()))?;
    }
    Ok(listener)
}

async fn handle(shared: Arc<Shared>, stream: UnixStream) {
    // Who is on the other end, as the kernel says.
    let peer_uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(e) => {
            warn!(error = %e, "refused: could not read peer credentials");
            return;
        }
    };
    let mut framed = Framed::new(stream, rootd_proto::codec());
    if peer_uid != shared.cfg.agent_uid {
        warn!(
            peer_uid,
            expected = shared.cfg.agent_uid,
            "refused: peer is not the agent's user"
        );
        refuse(
            &mut framed,
            "peer_uid",
            format!("uid {peer_uid} may not use rootd"),
        )
        .await;
        return;
    }
    let frame = match tokio::time::timeout(Duration::from_secs(10), framed.next()).await {
        Ok(Some(Ok(f))) => f,
        Ok(Some(Err(e))) => {
            warn!(error = %e, "refused: unreadable request frame");
            refuse(&mut framed, "malformed", format!("unreadable frame: {e}")).await;
            return;
        }
        Ok(None) => return,
        Err(_) => {
            warn!("refused: no request within 10s");
            return;
        }
    };
    if frame.len() > shared.cfg.max_request_bytes {
        warn!(
            size = frame.len(),
            limit = shared.cfg.max_request_bytes,
            "refused: request too large"
        );
        refuse(
            &mut framed,
            "too_large",
            format!(
                "request of {} bytes exceeds {}",
                frame.len(),
                shared.cfg.max_request_bytes
            ),
        )
        .await;
        return;
    }
    let request: RootRequest = match rmp_decode(&frame) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "refused: malformed request");
            refuse(&mut framed, "malformed", e).await;
            return;
        }
    };
    let command = match request {
        RootRequest::Run { command } => command,
        RootRequest::Capabilities => {
            let (modules, missing) = actions::capabilities(&shared.cfg);
            let box_key = Some(shared.box_key.public_key().to_base64());
            let _ = framed
                .send(encode_frame(&RootFrame::Capabilities {
                    modules,
                    missing,
                    box_key,
                }))
                .await;
            return;
        }
        RootRequest::ServiceStates { units } => {
            match actions::service_states::read(&shared.cfg, &units).await {
                Ok(states) => {
                    let _ = framed
                        .send(encode_frame(&RootFrame::ServiceStates { states }))
                        .await;
                }
                Err(e) => refuse(&mut framed, e.label(), e.to_string()).await,
            }
            return;
        }
        RootRequest::UpdateStatus => {
            let updates = match &shared.self_update {
                Some(su) => su.status().await,
                None => vec![],
            };
            let _ = framed
                .send(encode_frame(&RootFrame::UpdateStatus { updates }))
                .await;
            return;
        }
    };
    let cmd = match admit(&shared, &command).await {
        Ok(c) => c,
        Err(r) => {
            warn!(reason = r.label(), detail = %r, "refused command");
            refuse(&mut framed, r.label(), r.to_string()).await;
            return;
        }
    };
    info!(command = %cmd.id, action = %cmd.action, requested_by = %cmd.requested_by, "running");
    if framed
        .send(encode_frame(&RootFrame::Started {
            command_id: cmd.id.clone(),
        }))
        .await
        .is_err()
    {
        return;
    }
    if cmd.action == "agent.rotate_key" {
        let o = rotate_key(&shared, &cmd);
        info!(command = %cmd.id, status = o.status.as_str(), summary = %o.summary, "finished");
        send_done(&mut framed, o).await;
        return;
    }
    if cmd.action == "agent.update" || cmd.action == "agent.selftest" {
        self_update(&shared, &cmd, &mut framed).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel(256);
    let limits = Limits {
        timeout: Duration::from_secs(cmd.timeout_secs.max(1) as u64),
        grace: Duration::from_secs(shared.cfg.kill_grace_secs),
        cancel: tokio_util::sync::CancellationToken::new(),
    };
    // The agent hanging up means "stop": it cancelled the command, or it died
    // and will never report this run (its journal will not run it again).
    let (mut sink, mut from_agent) = framed.split();
    let ctx = Ctx {
        cfg: &shared.cfg,
        limits: &limits,
        sink: &tx,
    };
    let run = actions::run(&cmd, &ctx);
    tokio::pin!(run);
    let mut hung_up = false;
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some((stream, line)) = rx.recv() => {
                let _ = sink.send(encode_frame(&RootFrame::Output { stream, line })).await;
            }
            next = from_agent.next(), if !hung_up => {
                if next.is_none() || matches!(next, Some(Err(_))) {
                    hung_up = true;
                    warn!(command = %cmd.id, "the agent hung up; stopping the action");
                    limits.cancel.cancel();
                }
            }
        }
    };
    while let Ok((stream, line)) = rx.try_recv() {
        let _ = sink
            .send(encode_frame(&RootFrame::Output { stream, line }))
            .await;
    }
    info!(command = %cmd.id, status = outcome.status.as_str(), summary = %outcome.summary, "finished");
    // The final frame stays within the result budget, far under the frame
    // limit: a larger result goes out as output lines first, and the final
    // frame carries the marker saying so.
    let fitted = result_budget::fit(outcome.data);
    if !fitted.chunks.is_empty() {
        info!(command = %cmd.id, chunks = fitted.chunks.len(), "result over its budget; moved to the output");
    }
    for line in fitted.chunks {
        let stream = bus_schema::OutputStream::Stdout;
        if sink
            .send(encode_frame(&RootFrame::Output { stream, line }))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = sink
        .send(encode_frame(&RootFrame::Done {
            status: outcome.status,
            exit_code: outcome.exit_code,
            summary: result_budget::cut_summary(outcome.summary),
            data: fitted.data,
        }))
        .await;
}

/// `agent.update` / `agent.selftest`: answered by [`SelfUpdate`]; after an
/// install the agent gets its answer first, then is restarted.
async fn self_update(
    shared: &Shared,
    cmd: &Command,
    framed: &mut Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>,
) {
    let Some(su) = shared.self_update.clone() else {
        let why = actions::agent_update::available(&shared.cfg)
            .err()
            .unwrap_or_default();
        let o = bus_schema::Outcome::rejected(format!(
            "agent self-update is not set up on this host: {why}"
        ));
        send_done(framed, o).await;
        return;
    };
    let (outcome, restart) = if cmd.action == "agent.update" {
        su.update(cmd, &shared.keys).await
    } else {
        (su.selftest(cmd).await, false)
    };
    info!(command = %cmd.id, status = outcome.status.as_str(), summary = %outcome.summary, "finished");
    send_done(framed, outcome).await;
    if restart {
        // Not tied to this connection: the agent it serves is the one
        // being replaced.
        tokio::spawn(async move { su.restart_agent().await });
    }
}

/// `agent.rotate_key`: rootd checks the rotation against its own ring
/// (signed by the key it trusts now, a higher generation) and saves it in
/// its state dir. A forged or played-back rotation is refused.
fn rotate_key(shared: &Shared, cmd: &Command) -> bus_schema::Outcome {
    let p: bus_schema::catalogue::agent::RotateKeyParams =
        match serde_json::from_value(cmd.params.clone()) {
            Ok(p) => p,
            Err(e) => return bus_schema::Outcome::rejected(format!("invalid params: {e}")),
        };
    match shared.keys.rotate(&p.rotation, &p.signature) {
        Ok(Rotated::Applied(r)) | Ok(Rotated::AlreadyHeld(r)) => {
            info!(
                command = %cmd.id,
                which = r.which.as_str(),
                generation = r.generation,
                new_key = %bus_schema::signing::rotation::key_fingerprint(&r.new_key),
                "adopted a new signing key; the old one is accepted until the overlap ends"
            );
            bus_schema::Outcome::succeeded(
                format!(
                    "{} key generation {} adopted by agent and rootd",
                    r.which.as_str(),
                    r.generation
                ),
                serde_json::json!({
                    "which": r.which.as_str(),
                    "generation": r.generation,
                    "fingerprint": bus_schema::signing::rotation::key_fingerprint(&r.new_key),
                    "overlap_end_ms": r.overlap_end_ms,
                }),
            )
        }
        Err(e) => {
            warn!(command = %cmd.id, error = %e, "refused key rotation");
            bus_schema::Outcome::rejected(format!("rootd refused the key rotation: {e}"))
        }
    }
}

async fn send_done(
    framed: &mut Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>,
    o: bus_schema::Outcome,
) {
    let _ = framed
        .send(encode_frame(&RootFrame::Done {
            status: o.status,
            exit_code: o.exit_code,
            summary: result_budget::cut_summary(o.summary),
            data: o.data,
        }))
        .await;
}

/// The second, independent check: signature, addressee, expiry, replay, and
/// that the action belongs to rootd with valid params.
async fn admit(shared: &Shared, signed: &bus_schema::SignedCommand) -> Result<Command, Refusal> {
    let me = std::fs::read_to_string(&shared.cfg.agent_id_file)
        .map(|s| s.trim().to_string())
        .map_err(|e| Refusal::Malformed(format!("agent id file unreadable: {e}")))?;
    let mut cmd = shared.keys.verify_command_for(signed, &me, now_ms())?;
    let spec = catalogue::lookup(&cmd.action)
        .filter(|s| s.runs_in == RunsIn::Rootd)
        .ok_or_else(|| Refusal::UnknownAction(cmd.action.clone()))?;
    // Signature first, then the sealed secrets, then the same validation
    // the control plane ran on the clear values.
    cmd.params = crate::sealing::open(&shared.cfg, &shared.box_key, spec, &cmd)
        .map_err(Refusal::InvalidParams)?;
    spec.validate(&cmd.params).map_err(Refusal::InvalidParams)?;
    let fresh = shared
        .replay
        .lock()
        .await
        .first_sight(&cmd.id, cmd.expires_at)
        .map_err(|e| Refusal::Malformed(format!("replay memory: {e}")))?;
    if !fresh {
        return Err(Refusal::Replayed(cmd.id));
    }
    Ok(cmd)
}

fn rmp_decode(frame: &[u8]) -> Result<RootRequest, String> {
    bus_schema::codec::decode_limited(frame, None, bus_schema::rootd_proto::MAX_FRAME_BYTES)
        .map_err(|e| e.to_string())
}

fn encode_frame(f: &RootFrame) -> bytes::Bytes {
    bytes::Bytes::from(bus_schema::encode(f))
}

async fn refuse(
    framed: &mut Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>,
    label: &str,
    reason: String,
) {
    let _ = framed
        .send(encode_frame(&RootFrame::Refused {
            reason,
            label: label.to_string(),
        }))
        .await;
}
