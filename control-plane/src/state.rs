//! What every handler and loop shares.

use std::collections::HashSet;
use std::sync::Arc;

use async_nats::jetstream;
use bus_schema::CommandSigner;
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

use crate::config::Config;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub cfg: Config,
    pub db: DatabaseConnection,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub signer: CommandSigner,
    /// The command-signing key generations in use and which keys hosts
    /// reported (`keys`): commands are signed through it, not `signer`.
    pub keys: crate::keys::active::KeyState,
    /// Keys and JWTs of the broker's trust chain.
    pub auth: crate::nats_auth::NatsAuth,
    /// A system-account connection, for account updates.
    pub sys: async_nats::Client,
    /// Agents whose command consumer is known to exist (saves a broker round
    /// trip per command).
    pub consumers: Mutex<HashSet<String>>,
    /// Held around multi-statement write transactions. SQLite has one writer,
    /// and a deferred transaction that reads before it writes fails with
    /// "database is locked" instead of waiting; taking turns here avoids it.
    pub writer: Mutex<()>,
    /// Bumped after each batch of results is stored, so waiters (a job's
    /// `?wait=`) re-check then instead of polling the database.
    pub results_stored: tokio::sync::watch::Sender<u64>,
    /// The duties lease as this replica sees it and each duty's last run.
    pub duties: crate::duties::board::Board,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
