//! Shared checks for Drover's fuzz targets (`fuzz_targets/`): decode through
//! the same entry points the binaries use (`bus_schema::codec` and the
//! signing helpers), then re-encode and decode again and require the very
//! same bytes. A round trip that drifts means a decoder reads something the
//! encoder did not write.
//!
//! Owns the fixed test keys the targets sign fuzzed bodies with (so the
//! decoders *behind* a signature check are reached too) and the round-trip
//! helpers. It owns no limits (those are `bus_schema::codec`'s) and no
//! target (each lives in its own file under `fuzz_targets/`).

use bus_schema::codec;
use serde::{de::DeserializeOwned, Serialize};

/// Decodes `data` as MessagePack within the message limits; when it
/// decodes, checks that encoding it and decoding that again gives the same
/// bytes. `None` when the input is refused (which must be a typed error,
/// never a panic).
pub fn msgpack<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let v: T = codec::decode(data, None).ok()?;
    let once = codec::encode(&v);
    // Our encoding may be larger than the input (field names, a struct sent
    // as an array), so the size limit is lifted; depth and length stay.
    let back: T = codec::decode_limited(&once, None, usize::MAX)
        .unwrap_or_else(|e| panic!("a decoded value, encoded again, does not decode: {e}"));
    assert_eq!(codec::encode(&back), once, "MessagePack re-encoding drifts");
    Some(v)
}

/// As [`msgpack`], for JSON (`Content-Type: application/json`).
pub fn json<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let v: T = codec::decode(data, Some(codec::CONTENT_TYPE_JSON)).ok()?;
    let once = serde_json::to_vec(&v).expect("a decoded value encodes as JSON");
    let back: T = codec::decode_limited(&once, Some(codec::CONTENT_TYPE_JSON), usize::MAX)
        .unwrap_or_else(|e| panic!("a decoded value, encoded again, does not decode: {e}"));
    assert_eq!(
        serde_json::to_vec(&back).expect("encodes"),
        once,
        "JSON re-encoding drifts"
    );
    Some(v)
}

/// The fixed command-signing key the targets sign fuzzed bodies with, and
/// its public half as agents pin it.
pub fn command_key() -> (ed25519_dalek::SigningKey, bus_schema::VerifyingKey) {
    use base64::Engine;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    let verifying = bus_schema::VerifyingKey::parse(&public).expect("a valid key");
    (key, verifying)
}

/// A fixed automation (job-signing) key and its public half in base64.
pub fn automation_key() -> (ed25519_dalek::SigningKey, String) {
    use base64::Engine;
    let key = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    (key, public)
}

/// A fixed agent nkey (`U...`).
pub fn agent_key() -> nkeys::KeyPair {
    nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [9; 32]).expect("a user key")
}

/// A fixed enrolment reply key (`X...`).
pub fn reply_key() -> nkeys::XKey {
    nkeys::XKey::new_from_raw([3; 32])
}

/// Splits the first byte off as a selector (which type, which format) and
/// returns it with the rest.
pub fn split(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(b, rest)| (*b, rest))
}

/// The wire format a target feeds its bytes through.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    MessagePack,
    Json,
}

fn decode_as<T: Serialize + DeserializeOwned>(data: &[u8], format: Format) -> Option<T> {
    match format {
        Format::MessagePack => msgpack(data),
        Format::Json => json(data),
    }
}

/// How many types [`envelope`] chooses from.
pub const ENVELOPES: u8 = 19;

/// Decodes `data` as the envelope type number `which` (mod [`ENVELOPES`])
/// in `format`, round-trips it, and runs the type's own `validate` where it
/// has one (which must not panic either).
pub fn envelope(which: u8, data: &[u8], format: Format) {
    use bus_schema::{enroll, jobs, rootd_proto, signing};
    match which % ENVELOPES {
        0 => {
            decode_as::<bus_schema::Command>(data, format);
        }
        1 => {
            if let Some(h) = decode_as::<bus_schema::Heartbeat>(data, format) {
                let _ = h.validate(&h.agent_id);
                let _ = h.validate("UA");
            }
        }
        2 => {
            if let Some(r) = decode_as::<bus_schema::CommandResult>(data, format) {
                let _ = r.validate(&r.agent_id, &r.command_id);
            }
        }
        3 => {
            decode_as::<bus_schema::SignedCommand>(data, format);
        }
        4 => {
            decode_as::<bus_schema::OutputLine>(data, format);
        }
        5 => {
            decode_as::<bus_schema::Event>(data, format);
        }
        6 => {
            if let Some(s) = decode_as::<bus_schema::ServiceState>(data, format) {
                let _ = s.validate();
            }
        }
        7 => {
            decode_as::<signing::agent::AgentSigned>(data, format);
        }
        8 => {
            decode_as::<enroll::RefusalReport>(data, format);
        }
        9 => {
            decode_as::<enroll::EnrollClaim>(data, format);
        }
        10 => {
            decode_as::<enroll::EnrollReply>(data, format);
        }
        11 => {
            decode_as::<enroll::EnrollAnswer>(data, format);
        }
        12 => {
            decode_as::<signing::automation::SignedJob>(data, format);
        }
        13 => {
            decode_as::<jobs::JobSubmission>(data, format);
        }
        14 => {
            decode_as::<rootd_proto::RootRequest>(data, format);
        }
        15 => {
            decode_as::<rootd_proto::RootFrame>(data, format);
        }
        16 => {
            decode_as::<rootd_proto::UpdateRecord>(data, format);
        }
        17 => {
            decode_as::<serde_json::Value>(data, format);
        }
        _ => {
            // `drover decode`: any message shown as JSON, without the size
            // limit (an operator's own file).
            let ct = match format {
                Format::MessagePack => None,
                Format::Json => Some(codec::CONTENT_TYPE_JSON),
            };
            let _ = codec::to_json(data, ct);
        }
    }
}

/// The base64 release signature of `text` by the release key with `seed`
/// (over [`bus_schema::signing::release::SIGNED_PREFIX`] + text, as
/// `ReleaseSigner::sign` makes it), for texts that are not manifests.
pub fn sign_release_text(seed: &[u8; 32], text: &str) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let mut bytes = bus_schema::signing::release::SIGNED_PREFIX.to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let sig = ed25519_dalek::SigningKey::from_bytes(seed).sign(&bytes);
    base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
}
