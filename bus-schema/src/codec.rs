//! MessagePack on the wire; JSON when the message says
//! `Content-Type: application/json`. Both sizes and shapes are checked here,
//! before any consumer looks at a field.

use serde::{de::DeserializeOwned, Serialize};

/// Header that switches a message to JSON.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Largest heartbeat, result or command body we accept (the broker's own
/// limit is larger; this one is ours, per message).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("message is empty")]
    Empty,
    #[error("not valid MessagePack for this subject: {0}")]
    MessagePack(#[from] rmp_serde::decode::Error),
    #[error("not valid JSON for this subject: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes as MessagePack with field names (maps, not arrays), so the other
/// side can add fields without breaking old readers.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own types into a Vec cannot fail.
    rmp_serde::to_vec_named(value).expect("MessagePack encoding of a Drover envelope")
}

/// True when a `Content-Type` value asks for JSON.
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .map(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with(CONTENT_TYPE_JSON)
        })
        .unwrap_or(false)
}

/// Decodes one message body, enforcing [`MAX_MESSAGE_BYTES`].
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<T, CodecError> {
    decode_limited(bytes, content_type, MAX_MESSAGE_BYTES)
}

pub fn decode_limited<T: DeserializeOwned>(
    bytes: &[u8],
    content_type: Option<&str>,
    limit: usize,
) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    if is_json(content_type) {
        Ok(serde_json::from_slice(bytes)?)
    } else {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// Any Drover message as JSON, for people (`drover decode`). A signed command
/// is shown with its inner command decoded.
pub fn to_json(bytes: &[u8], content_type: Option<&str>) -> Result<serde_json::Value, CodecError> {
    if let Ok(signed) = decode_limited::<crate::SignedCommand>(bytes, content_type, usize::MAX) {
        if let Ok(cmd) = rmp_serde::from_slice::<crate::Command>(&signed.body) {
            return Ok(serde_json::json!({
                "signed_command": cmd,
                "key_id": signed.key_id,
                "signature": hex::encode(&signed.signature),
            }));
        }
    }
    decode_limited(bytes, content_type, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn hb() -> Heartbeat {
        Heartbeat {
            agent_id: "A".into(),
            hostname: "h".into(),
            seq: 1,
            sent_at: 5,
            interval_secs: 30,
            agent_version: "0".into(),
            os: "debian".into(),
            kernel: "6".into(),
            metrics: Metrics::default(),
            modules: vec!["sys".into()],
            operations: vec![ActiveOperation {
                command_id: "c".into(),
                action: "sys.ping".into(),
                source: Source::System,
                started_at: 1,
            }],
            rootd_error: None,
        }
    }

    #[test]
    fn msgpack_round_trip() {
        let h = hb();
        let back: Heartbeat = decode(&encode(&h), None).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn json_when_asked() {
        let h = hb();
        let json = serde_json::to_vec(&h).unwrap();
        let back: Heartbeat = decode(&json, Some("application/json; charset=utf-8")).unwrap();
        assert_eq!(back, h);
        // The same JSON bytes without the header are not MessagePack.
        assert!(decode::<Heartbeat>(&json, None).is_err());
    }

    #[test]
    fn rejects_oversized_empty_and_wrong_types() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<Heartbeat>(&big, None),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode::<Heartbeat>(&[], None),
            Err(CodecError::Empty)
        ));
        let wrong = serde_json::json!({"agent_id": 5, "hostname": "h"});
        assert!(decode::<Heartbeat>(&encode(&wrong), None).is_err());
    }

    #[test]
    fn status_strings() {
        for s in CommandStatus::ALL {
            assert_eq!(CommandStatus::parse(s.as_str()), Some(s));
            let v: CommandStatus = decode(&encode(&s), None).unwrap();
            assert_eq!(v, s);
        }
    }
}
