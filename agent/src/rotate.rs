//! `agent.rotate_key` on the agent's side: checks the rotation against the
//! agent's own key ring (signed by the key it trusts now, a higher
//! generation), saves it in the state directory, and only then lets the
//! command go on to rootd, which checks and saves it again in its own. A
//! forged or played-back rotation is refused and reported like any other
//! refusal. Does not sign or send anything else (the control plane's
//! `keys`).

use bus_schema::catalogue::agent::RotateKeyParams;
use bus_schema::signing::host_keys::Rotated;
use bus_schema::{Command, Outcome};
use tracing::{info, warn};

use crate::state::Agent;

/// Applies the rotation in `cmd`; `Err` is the command's outcome (the ring
/// did not change).
pub async fn apply(agent: &Agent, cmd: &Command) -> Result<(), Outcome> {
    let p: RotateKeyParams = serde_json::from_value(cmd.params.clone())
        .map_err(|e| Outcome::rejected(format!("invalid params: {e}")))?;
    match agent.keys.rotate(&p.rotation, &p.signature) {
        Ok(Rotated::Applied(r)) => {
            info!(
                command = %cmd.id,
                which = r.which.as_str(),
                generation = r.generation,
                new_key = %bus_schema::signing::rotation::key_fingerprint(&r.new_key),
                overlap_end_ms = r.overlap_end_ms,
                "adopted a new signing key; the old one is accepted until the overlap ends"
            );
            Ok(())
        }
        Ok(Rotated::AlreadyHeld(r)) => {
            info!(command = %cmd.id, which = r.which.as_str(), generation = r.generation, "this key rotation was adopted before");
            Ok(())
        }
        Err(e) => {
            warn!(command = %cmd.id, error = %e, "refused key rotation");
            if let Some(r) = e.refusal() {
                crate::report::report_refusal(agent, &r).await;
            }
            Err(Outcome::rejected(format!(
                "the agent refused the key rotation: {e}"
            )))
        }
    }
}
