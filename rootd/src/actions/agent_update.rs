//! `agent.update` and `agent.selftest` on rootd: installing a signed agent
//! release beside the current one, switching to it, and rolling back unless
//! the new agent proves itself. [`SelfUpdate`] is rootd's one instance of
//! it; `server` hands it verified commands (signature, addressee, expiry,
//! replay already checked, as for every action).
//!
//! `agent.update`: the release manifest is verified again with rootd's own
//! pinned `release_key` and its platform checked; the binary is read from
//! `<agent_staging_dir>/<sha256>` (a name derived from the signed manifest,
//! never a path from the params), copied into a root-owned directory while
//! hashing, and its size and SHA-256 checked; a version lower than the
//! highest ever installed needs `allow_downgrade`. It is installed as
//! `<agent_releases_dir>/<version>/drover-agent` + `release.json`; the
//! pending [`UpdateRecord`] is written (fsync) before `current` switches;
//! the agent is answered, then restarted. A watcher rolls back (switch
//! back, record `rolled_back`, restart) when the deadline passes without a
//! self-test or the new agent exits [`EXITS_MEAN_BROKEN`] times.
//! `agent.selftest {version}` marks a pending update to `version` healthy.
//!
//! Owns these decisions; the state file and the directory layout are
//! `update_state`, the agent process `supervise`. rootd never updates
//! itself.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus_schema::catalogue::agent::{SelftestParams, UpdateOutcome, UpdateParams, UpdateReport};
use bus_schema::rootd_proto::{UpdateRecord, UpdateState};
use bus_schema::signing::release::{compare_versions, InstalledRelease, ReleaseManifest};
use bus_schema::{now_ms, Command, CommandStatus, Outcome};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::config::RootdConfig;
use crate::supervise::Supervisor;
use crate::update_state::{self as us, Stored, UpdateBook, AGENT_BIN};
use bus_schema::signing::host_keys::HostKeys;

/// Exits of a new agent since the switch that roll it back.
pub const EXITS_MEAN_BROKEN: u32 = 3;
/// How often the watcher looks at a pending update.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// rootd's self-update: the release directory, its book and the agent's
/// restarter.
pub struct SelfUpdate {
    dir: PathBuf,
    staging: Option<PathBuf>,
    state_dir: PathBuf,
    health: Duration,
    book: Mutex<UpdateBook>,
    sup: Arc<Supervisor>,
}

/// Whether `agent.update` can run here, and if not, why.
pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    if cfg.agent_releases_dir.is_none() {
        return Err("self-update is off: set agent_releases_dir in rootd.toml".into());
    }
    if cfg.release_key.is_none() {
        return Err("no release key is pinned: set release_key in rootd.toml (the public half of `drover releases keygen`)".into());
    }
    if cfg.agent_staging_dir.is_none() {
        return Err("set agent_staging_dir in rootd.toml (the agent's <state_dir>/updates)".into());
    }
    Ok(())
}

fn report(
    outcome: UpdateOutcome,
    from: &str,
    to: &str,
    running: &str,
    reason: &str,
) -> serde_json::Value {
    serde_json::to_value(UpdateReport {
        outcome,
        from_version: from.into(),
        to_version: to.into(),
        running_version: running.into(),
        reason: reason.into(),
    })
    .expect("a report serialises")
}

/// A refusal before anything was installed: rejected, with the report.
fn refused(from: &str, to: &str, reason: String) -> Outcome {
    let mut o = Outcome::rejected(reason.clone());
    o.data = report(UpdateOutcome::Failed, from, to, from, &reason);
    o
}

impl SelfUpdate {
    /// Sets self-update up when `agent_releases_dir` is configured: adopts
    /// the packaged agent as the first release when there is no `current`,
    /// rolls back an update a crashed rootd left pending (nobody can vouch
    /// for it any more), starts the agent's restarter and the watcher.
    pub async fn init(cfg: &RootdConfig) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(dir) = cfg.agent_releases_dir.clone() else {
            return Ok(None);
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (mut book, aside) = UpdateBook::load_or_quarantine(&cfg.state_dir, &dir)?;
        if let Some(aside) = aside {
            error!(
                file = %aside.display(),
                "the update record file did not parse; it was set aside and rootd starts with an empty record (downgrade floor: the running release)"
            );
        }
        if us::current(&dir).is_none() {
            adopt(&cfg.agent_program, &dir, &mut book)?;
            book.save(&cfg.state_dir)?;
        }
        let mut rolled_back = false;
        if let Some(p) = book.pending().cloned() {
            let reason = format!(
                "rootd restarted while the update to {} waited for its self-test and cannot vouch for it; the previous release {} runs again",
                p.record.to_version, p.previous
            );
            warn!(command = %p.record.command_id, %reason, "rolling back");
            us::switch_current(&dir, &p.previous)
                .with_context(|| format!("switching {} back to {}", dir.display(), p.previous))?;
            mark(
                &mut book,
                &p.record.command_id,
                UpdateState::RolledBack,
                &reason,
            );
            book.save(&cfg.state_dir)?;
            discard(&dir, &p.record.to_version, &p.previous);
            rolled_back = true;
        }
        let sup = Supervisor::start(cfg, &dir);
        if rolled_back && cfg.agent_restart == crate::config::AgentRestart::Systemd {
            if let Err(e) = sup.restart().await {
                warn!(error = %e, "could not restart the agent after the rollback");
            }
        }
        info!(
            releases = %dir.display(),
            current = us::current(&dir).unwrap_or_default(),
            release_key = cfg.release_key().ok().flatten().map(|k| k.fingerprint()).unwrap_or_else(|| "none".into()),
            "agent self-update ready"
        );
        let me = Arc::new(Self {
            dir,
            staging: cfg.agent_staging_dir.clone(),
            state_dir: cfg.state_dir.clone(),
            health: Duration::from_secs(cfg.update_health_secs.max(1)),
            book: Mutex::new(book),
            sup,
        });
        tokio::spawn(me.clone().watch());
        Ok(Some(me))
    }

    /// The update records, newest first.
    pub async fn status(&self) -> Vec<UpdateRecord> {
        self.book.lock().await.records()
    }

    /// Restarts the agent after a switch (called once the agent has its
    /// answer).
    pub async fn restart_agent(&self) {
        if let Err(e) = self.sup.restart().await {
            warn!(error = %e, "could not restart the agent");
        }
    }

    /// `agent.update`. Returns the outcome and whether the agent must be
    /// restarted once it has it (installed and switched).
    /// The manifest is checked with `keys`' release ring (the pinned key,
    /// or the keys a verified rotation moved it to).
    pub async fn update(&self, cmd: &Command, keys: &HostKeys) -> (Outcome, bool) {
        let running = us::current(&self.dir).unwrap_or_default();
        let p: UpdateParams = match serde_json::from_value(cmd.params.clone()) {
            Ok(p) => p,
            Err(e) => return (refused(&running, "", format!("invalid params: {e}")), false),
        };
        let Some(opened) = keys.open_release(&p.manifest, &p.signature, bus_schema::now_ms())
        else {
            return (refused(&running, &p.version, "rootd has no release key pinned: set release_key in rootd.toml to the public half of `drover releases keygen`".into()), false);
        };
        let m = match opened {
            Ok(m) => m,
            Err(e) => {
                return (
                    refused(
                        &running,
                        &p.version,
                        format!("rootd refused the release: {e}"),
                    ),
                    false,
                )
            }
        };
        if m.version != p.version {
            return (
                refused(
                    &running,
                    &p.version,
                    format!(
                        "version {} does not match the signed manifest's {}",
                        p.version, m.version
                    ),
                ),
                false,
            );
        }
        if let Err(e) = m.check_platform() {
            return (refused(&running, &m.version, e.to_string()), false);
        }
        let mut book = self.book.lock().await;
        if let Some(busy) = book.pending() {
            return (refused(&running, &m.version, format!(
                "an update to {} (command {}) is still waiting for its self-test; try again when it ended",
                busy.record.to_version, busy.record.command_id
            )), false);
        }
        if running == m.version {
            let why = format!(
                "{} is already the running release; nothing to do",
                m.version
            );
            return (
                Outcome::succeeded(
                    why,
                    report(UpdateOutcome::Healthy, &running, &m.version, &running, ""),
                ),
                false,
            );
        }
        if compare_versions(&m.version, &book.highest).is_lt() && !p.allow_downgrade {
            return (refused(&running, &m.version, format!(
                "{} is older than {}, the highest release installed on this host: a downgrade needs allow_downgrade",
                m.version, book.highest
            )), false);
        }
        if let Err(e) = self.install(cmd, &m, &p) {
            return (
                refused(
                    &running,
                    &m.version,
                    format!("rootd did not install {}: {e}", m.version),
                ),
                false,
            );
        }
        let now = now_ms();
        book.push(Stored {
            record: UpdateRecord {
                command_id: cmd.id.clone(),
                from_version: running.clone(),
                to_version: m.version.clone(),
                state: UpdateState::Pending,
                reason: String::new(),
                started_at: now,
                deadline_at: now + self.health.as_millis() as i64,
            },
            previous: running.clone(),
        });
        // The rollback floor (`highest`) rises only once the new agent
        // proved itself (see `selftest`): a release that rolled back does
        // not lock the host out of the versions below it.
        // Crashes of the agent before this update are not the new one's.
        self.sup.reset_exits();
        // The record is durable before the switch: a crash after it rolls
        // back on the next start.
        if let Err(e) = book.save(&self.state_dir) {
            book.updates.remove(0);
            return (
                refused(
                    &running,
                    &m.version,
                    format!("rootd could not record the update: {e}"),
                ),
                false,
            );
        }
        if let Err(e) = us::switch_current(&self.dir, &m.version) {
            let reason = format!("switching to {} failed: {e}", m.version);
            mark(&mut book, &cmd.id, UpdateState::RolledBack, &reason);
            let _ = book.save(&self.state_dir);
            let mut o = Outcome::failed(reason.clone());
            o.data = report(
                UpdateOutcome::Failed,
                &running,
                &m.version,
                &running,
                &reason,
            );
            return (o, false);
        }
        info!(command = %cmd.id, from = %running, to = %m.version, deadline_secs = self.health.as_secs(), "installed and switched; restarting the agent");
        let o = Outcome {
            status: CommandStatus::Running,
            exit_code: None,
            summary: format!("installed {}; restarting the agent to run it", m.version),
            data: serde_json::json!({"restarting": true, "from_version": running, "to_version": m.version}),
        };
        (o, true)
    }

    /// Copies the staged binary into `<dir>/<version>` (via a temporary
    /// directory renamed into place), checking size and SHA-256 on the way.
    fn install(&self, cmd: &Command, m: &ReleaseManifest, p: &UpdateParams) -> anyhow::Result<()> {
        let staging = self
            .staging
            .as_ref()
            .context("agent_staging_dir is not set in rootd.toml")?;
        // The directory is the agent's: a symlink there could point rootd at
        // any file, so it must be a real directory, and the file is opened
        // without following links. Nothing about a file that does not match
        // (its size or digest) is told back.
        let dir_meta = std::fs::symlink_metadata(staging).with_context(|| {
            format!(
                "the staging directory {} is missing (the agent stages the release before asking)",
                staging.display()
            )
        })?;
        anyhow::ensure!(
            dir_meta.is_dir(),
            "the staging directory {} is not a directory (a symlink?); refusing to read through it",
            staging.display()
        );
        // m.sha256 is 64 hex digits (checked with the signature).
        let staged = staging.join(&m.sha256);
        let mut src = std::fs::OpenOptions::new()
            .read(true)
            // O_NONBLOCK: opening a FIFO the agent put there returns at
            // once (and is refused below) instead of waiting for a writer.
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
            .open(&staged)
            .with_context(|| {
                format!(
                    "the staged release {} cannot be opened (the agent stages it before asking)",
                    staged.display()
                )
            })?;
        let meta = src.metadata()?;
        anyhow::ensure!(meta.is_file(), "{} is not a regular file", staged.display());
        anyhow::ensure!(
            meta.len() == m.size,
            "the staged binary's size is not the signed {} bytes: it was altered or truncated",
            m.size
        );
        let safe_id: String = cmd
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(64)
            .collect();
        let tmp = self.dir.join(format!(".incoming-{safe_id}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp)?;
        let result = (|| -> anyhow::Result<()> {
            let bin = tmp.join(AGENT_BIN);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&bin)?;
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                anyhow::ensure!(
                    total <= m.size,
                    "the staged binary grew past the signed size {}",
                    m.size
                );
                hash.update(&buf[..n]);
                out.write_all(&buf[..n])?;
            }
            out.sync_all()?;
            let got = hex::encode(hash.finalize());
            anyhow::ensure!(
                total == m.size,
                "the staged binary's size is not the signed {} bytes: it was altered or truncated",
                m.size
            );
            anyhow::ensure!(
                got == m.sha256,
                "the staged binary's SHA-256 is not the signed {}: it was altered",
                m.sha256
            );
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
            let installed = InstalledRelease {
                manifest: p.manifest.clone(),
                signature: p.signature.clone(),
            };
            us::write_synced(
                &tmp.join(bus_schema::signing::release::INSTALLED_RELEASE_FILE),
                &serde_json::to_vec_pretty(&installed)?,
            )?;
            us::sync_dir(&tmp)?;
            let dest = self.dir.join(&m.version);
            if dest.exists() {
                std::fs::remove_dir_all(&dest)?;
            }
            std::fs::rename(&tmp, &dest)?;
            us::sync_dir(&self.dir)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// `agent.selftest`: confirms a pending update to `params.version` when
    /// the control plane sent it for that update
    /// ([`proof_requester`]).
    pub async fn selftest(&self, cmd: &Command) -> Outcome {
        let p: SelftestParams = match serde_json::from_value(cmd.params.clone()) {
            Ok(p) => p,
            Err(e) => return Outcome::rejected(format!("invalid params: {e}")),
        };
        let running = us::current(&self.dir).unwrap_or_default();
        let mut book = self.book.lock().await;
        let confirmed = match book.pending().cloned() {
            // Only the control plane's own self-test for this very update
            // (it sends one once the new version heartbeats; users cannot
            // submit agent.selftest), so a self-test the old agent relays
            // during the switch never confirms a release that never ran.
            Some(s)
                if s.record.to_version == p.version
                    && running == p.version
                    && cmd.source == bus_schema::Source::System
                    && cmd.requested_by == proof_requester(&s.record.command_id) =>
            {
                mark(&mut book, &s.record.command_id, UpdateState::Healthy, "");
                book.note_installed(&s.record.to_version);
                let keep = [s.record.to_version.as_str(), s.previous.as_str()];
                us::prune(&self.dir, &mut book, &keep);
                if let Err(e) = book.save(&self.state_dir) {
                    warn!(error = %e, "could not record the healthy update");
                    return Outcome::failed(format!("rootd could not record the self-test: {e}"));
                }
                info!(command = %s.record.command_id, version = %p.version, "the new agent passed its self-test");
                Some(s.record.command_id)
            }
            _ => None,
        };
        let summary = match &confirmed {
            Some(id) => format!("self-test passed; update {id} to {} confirmed", p.version),
            None => format!("self-test passed; no update to {} was waiting", p.version),
        };
        Outcome::succeeded(
            summary,
            serde_json::json!({"confirmed_command_id": confirmed, "version": p.version}),
        )
    }

    /// Rolls back a pending update whose deadline passed or whose agent
    /// keeps exiting.
    async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let mut book = self.book.lock().await;
            let Some(p) = book.pending().cloned() else {
                continue;
            };
            let (exits, last) = self.sup.exits_since_restart();
            let reason = if now_ms() > p.record.deadline_at {
                format!(
                    "the new agent {} did not pass its self-test within {} s",
                    p.record.to_version,
                    self.health.as_secs()
                )
            } else if exits >= EXITS_MEAN_BROKEN {
                format!(
                    "the new agent {} exited {exits} times since the switch (last: {last})",
                    p.record.to_version
                )
            } else {
                continue;
            };
            warn!(command = %p.record.command_id, %reason, previous = %p.previous, "rolling back");
            // Switch first: a crash before the record is saved leaves it
            // pending, and the next start rolls back again (harmlessly).
            if let Err(e) = us::switch_current(&self.dir, &p.previous) {
                warn!(error = %e, "could not switch back; trying again");
                continue;
            }
            mark(
                &mut book,
                &p.record.command_id,
                UpdateState::RolledBack,
                &reason,
            );
            if let Err(e) = book.save(&self.state_dir) {
                warn!(error = %e, "could not record the rollback");
            }
            discard(&self.dir, &p.record.to_version, &p.previous);
            drop(book);
            self.restart_agent().await;
        }
    }
}

/// Removes the directory of a release that rolled back (never the one it
/// rolled back to): it never proved itself, and keeping it would only take
/// the place of a good one.
fn discard(dir: &Path, rolled_back: &str, previous: &str) {
    if rolled_back == previous || rolled_back.is_empty() {
        return;
    }
    match std::fs::remove_dir_all(dir.join(rolled_back)) {
        Ok(()) => info!(version = %rolled_back, "removed the release that rolled back"),
        Err(e) => {
            warn!(version = %rolled_back, error = %e, "could not remove the release that rolled back")
        }
    }
}

fn mark(book: &mut UpdateBook, command_id: &str, state: UpdateState, reason: &str) {
    if let Some(s) = book
        .updates
        .iter_mut()
        .find(|s| s.record.command_id == command_id)
    {
        s.record.state = state;
        s.record.reason = reason.to_string();
    }
}

/// Adopts the packaged agent binary as the first release: its version is
/// what `<program> --version` prints (`drover-agent 1.2.3`), the binary is
/// copied to `<dir>/<version>/drover-agent` (no `release.json`: it was not
/// installed from a signed release) and `current` points to it.
fn adopt(program: &Path, dir: &Path, book: &mut UpdateBook) -> anyhow::Result<()> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "running {} --version (agent_program, adopted as the first release)",
                program.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .last()
        .filter(|v| semver::Version::parse(v).is_ok())
        .with_context(|| {
            format!(
                "{} --version printed {:?}, not `drover-agent <version>`",
                program.display(),
                text.trim()
            )
        })?
        .to_string();
    let tmp = dir.join(".adopting");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp)?;
    std::fs::copy(program, tmp.join(AGENT_BIN))
        .with_context(|| format!("copying {}", program.display()))?;
    std::fs::set_permissions(tmp.join(AGENT_BIN), std::fs::Permissions::from_mode(0o755))?;
    std::fs::File::open(tmp.join(AGENT_BIN))?.sync_all()?;
    let dest = dir.join(&version);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&tmp, &dest)?;
    us::switch_current(dir, &version)?;
    book.note_installed(&version);
    info!(%version, program = %program.display(), "adopted the packaged agent as the first release");
    Ok(())
}

/// Who a self-test that confirms update `command_id` is requested by: the
/// control plane's `update_proofs` duty sends it as `update:<command id>`
/// (`bus_schema::catalogue::agent::proof_requester`).
fn proof_requester(command_id: &str) -> String {
    bus_schema::catalogue::agent::proof_requester(command_id)
}
