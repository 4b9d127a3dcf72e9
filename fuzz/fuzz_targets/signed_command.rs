//! Signed commands as agents and rootd open them: the `SignedCommand`
//! envelope checked against a fixed pinned key, and the `Command` behind a
//! valid signature (the fuzzed body is signed, so the decoder after the
//! check is reached), then `verify_for` (addressee, skew, expiry). Replay
//! memory is the agent's and rootd's, not fuzzed here.
#![no_main]

use bus_schema::SignedCommand;
use ed25519_dalek::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = drover_fuzz::split(data) else {
        return;
    };
    let (key, verifying) = drover_fuzz::command_key();
    if which % 2 == 0 {
        if let Some(signed) = drover_fuzz::msgpack::<SignedCommand>(rest) {
            let _ = verifying.open(&signed);
        }
    } else {
        let signed = SignedCommand {
            v: bus_schema::signing::PROTOCOL_VERSION,
            body: rest.to_vec(),
            signature: key.sign(rest).to_bytes().to_vec(),
            key_id: verifying.fingerprint(),
        };
        if let Ok(cmd) = verifying.open(&signed) {
            let again: bus_schema::Command =
                bus_schema::codec::decode_msgpack(&bus_schema::encode(&cmd))
                    .expect("a command re-encoded decodes");
            assert_eq!(bus_schema::encode(&again), bus_schema::encode(&cmd));
            let _ = verifying.verify_for(&signed, &cmd.agent_id, cmd.issued_at);
        }
    }
});
