//! The host's identity: an Ed25519 key pair (a NATS user nkey) made at first
//! start. The seed stays in a 0600 file; the public key is the agent id.

use std::path::Path;

use anyhow::Context;
use nkeys::KeyPair;

pub struct Identity {
    key: KeyPair,
}

impl Identity {
    pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Self> {
        let seed_path = state_dir.join("agent.seed");
        let key = match std::fs::read_to_string(&seed_path) {
            Ok(seed) => KeyPair::from_seed(seed.trim())
                .with_context(|| format!("{} is not a valid nkey seed", seed_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::new_user();
                let seed = key.seed().context("new key has a seed")?;
                bus_schema::signing::write_secret_file(&seed_path, seed.as_bytes())
                    .with_context(|| format!("writing {}", seed_path.display()))?;
                tracing::info!(agent_id = %key.public_key(), "created a new agent identity");
                key
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", seed_path.display())),
        };
        // The public id, for rootd and for people; not a secret.
        let id_path = state_dir.join("agent.id");
        let id = key.public_key();
        if std::fs::read_to_string(&id_path)
            .map(|s| s.trim() != id)
            .unwrap_or(true)
        {
            std::fs::write(&id_path, format!("{id}\n"))
                .with_context(|| format!("writing {}", id_path.display()))?;
        }
        Ok(Self { key })
    }

    pub fn agent_id(&self) -> String {
        self.key.public_key()
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }
}
