//! The command-signing keys the control plane holds in memory
//! ([`KeyState`]): the current generation's signer, the one it replaced
//! with the end of its overlap, and which key fingerprints each host last
//! reported. What decides which key signs a command, loading generations
//! from the database and rotating stay in the parent module (`keys`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bus_schema::{CommandSigner, VerifyingKey};

/// The command-signing keys in use and what hosts reported holding.
pub struct KeyState {
    pub(super) active: RwLock<Active>,
    /// Fingerprints each host last reported accepting (heartbeats).
    pub(super) reported: Mutex<HashMap<String, Vec<String>>>,
}

pub(super) struct Active {
    pub(super) generation: u32,
    pub(super) current: Arc<CommandSigner>,
    /// The key `current` replaced and until when (ms) hosts accept it.
    pub(super) previous: Option<(Arc<CommandSigner>, i64)>,
}

impl KeyState {
    /// Generation 0 only: the key `drover init` made.
    pub fn new(initial: CommandSigner) -> Self {
        Self {
            active: RwLock::new(Active {
                generation: 0,
                current: Arc::new(initial),
                previous: None,
            }),
            reported: Mutex::new(HashMap::new()),
        }
    }

    /// The current command-signing key's generation and public half.
    pub fn current(&self) -> (u32, VerifyingKey) {
        let a = self.active.read().expect("key state lock");
        (a.generation, a.current.public())
    }

    /// The signer of the current generation.
    pub fn current_signer(&self) -> Arc<CommandSigner> {
        self.active.read().expect("key state lock").current.clone()
    }

    pub(super) fn install(&self, generation: u32, new: CommandSigner, overlap_end: i64) {
        let mut a = self.active.write().expect("key state lock");
        let old = a.current.clone();
        a.current = Arc::new(new);
        a.previous = Some((old, overlap_end));
        a.generation = generation;
    }

    /// Whether `agent_id` reported accepting the key `fingerprint`.
    pub fn holds(&self, agent_id: &str, fingerprint: &str) -> bool {
        self.reported
            .lock()
            .expect("reported lock")
            .get(agent_id)
            .is_some_and(|f| f.iter().any(|x| x == fingerprint))
    }
}
