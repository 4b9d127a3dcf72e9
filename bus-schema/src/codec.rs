//! MessagePack on the wire; JSON when the message says
//! `Content-Type: application/json`. Both sizes and shapes are checked here,
//! before any consumer looks at a field.
//!
//! Owns the limits on everything Drover reads from outside (size, nesting
//! depth, collection length: [`Limits`]) and the only decoders that apply
//! them. It does not validate meaning (each envelope's `validate` does).

use serde::{de::DeserializeOwned, Serialize};

use crate::shape::{self, ShapeError};

/// Header that switches a message to JSON.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
/// Command message header naming a machine-id whose agent must leave the
/// command alone (an operator kept another machine for this agent id). Not
/// signed: it can only make an agent skip a command, never run one.
pub const NOT_MACHINE_HEADER: &str = "Drover-Not-Machine";
/// Like [`NOT_MACHINE_HEADER`], naming an agent process (instance id), for
/// clones that share a machine-id.
pub const NOT_INSTANCE_HEADER: &str = "Drover-Not-Instance";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Largest heartbeat, result or command body we accept (the broker's own
/// limit is larger; this one is ours, per message). Also the limit of a
/// JSON body of the HTTP API.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Deepest nesting of maps and arrays (JSON objects and arrays) in anything
/// read from outside. Decoders recurse once per level; a tokio worker's
/// stack survives several hundred levels in a debug build, so this stays an
/// order of magnitude below that. Drover's own messages nest at most ~8 deep.
pub const MAX_DEPTH: usize = 32;

/// Most elements (or map entries) in one collection read from outside.
pub const MAX_COLLECTION_LEN: usize = 65_536;

/// Largest app manifest (`manifest.yml`) read.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// The limits one decode enforces. Every decoder of outside bytes in Drover
/// goes through this module, so these numbers are the only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of containers; the top-level map counts as 1.
    pub max_depth: usize,
    /// Most elements (map entries) in one container.
    pub max_len: usize,
}

impl Limits {
    /// Bus messages, rootd frames (with their own size), API bodies.
    pub const MESSAGE: Limits = Limits {
        max_bytes: MAX_MESSAGE_BYTES,
        max_depth: MAX_DEPTH,
        max_len: MAX_COLLECTION_LEN,
    };

    /// The same depth and length limits with another size limit.
    pub const fn with_max_bytes(self, max_bytes: usize) -> Limits {
        Limits { max_bytes, ..self }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("message is empty")]
    Empty,
    /// Refused by the structure check, before serde saw it.
    #[error("not valid {format} for this subject: {source}")]
    Shape {
        format: &'static str,
        source: ShapeError,
    },
    #[error("not valid MessagePack for this subject: {0}")]
    MessagePack(#[from] rmp_serde::decode::Error),
    #[error("not valid JSON for this subject: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
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

/// Decodes one message body (MessagePack, or JSON when `content_type` says
/// so) within [`Limits::MESSAGE`].
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<T, CodecError> {
    decode_with(bytes, content_type, Limits::MESSAGE)
}

/// Like [`decode`] with another size limit (`limit` bytes); depth and
/// collection length stay limited whatever `limit` is.
pub fn decode_limited<T: DeserializeOwned>(
    bytes: &[u8],
    content_type: Option<&str>,
    limit: usize,
) -> Result<T, CodecError> {
    decode_with(bytes, content_type, Limits::MESSAGE.with_max_bytes(limit))
}

/// MessagePack bytes nested inside a checked envelope (the signed body of a
/// command, result, refusal report, job or enrolment claim).
pub fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with(bytes, None, Limits::MESSAGE)
}

/// A JSON document from outside (API bodies, broker advisories).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with(bytes, Some(CONTENT_TYPE_JSON), Limits::MESSAGE)
}

/// The one decoder: size, then structure (without recursion), then serde.
pub fn decode_with<T: DeserializeOwned>(
    bytes: &[u8],
    content_type: Option<&str>,
    limits: Limits,
) -> Result<T, CodecError> {
    check_size(bytes.len(), limits)?;
    if is_json(content_type) {
        shape::check_json(bytes, limits.max_depth, limits.max_len).map_err(|source| {
            CodecError::Shape {
                format: "JSON",
                source,
            }
        })?;
        Ok(serde_json::from_slice(bytes)?)
    } else {
        shape::check_msgpack(bytes, limits.max_depth, limits.max_len).map_err(|source| {
            CodecError::Shape {
                format: "MessagePack",
                source,
            }
        })?;
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// A YAML document (app manifests), within [`MAX_MANIFEST_BYTES`] and the
/// depth and length limits. YAML is parsed to a tree first (the parser's
/// own recursion limit, 128, bounds that step), the tree is measured
/// without recursion, and only then mapped onto `T`.
pub fn decode_yaml<T: DeserializeOwned>(text: &str) -> Result<T, CodecError> {
    let limits = Limits::MESSAGE.with_max_bytes(MAX_MANIFEST_BYTES);
    check_size(text.len(), limits)?;
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    check_yaml_tree(&tree, limits).map_err(|source| CodecError::Shape {
        format: "YAML",
        source,
    })?;
    Ok(serde_yaml_ng::from_value(tree)?)
}

fn check_size(size: usize, limits: Limits) -> Result<(), CodecError> {
    if size > limits.max_bytes {
        return Err(CodecError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    if size == 0 {
        return Err(CodecError::Empty);
    }
    Ok(())
}

fn check_yaml_tree(tree: &serde_yaml_ng::Value, limits: Limits) -> Result<(), ShapeError> {
    use serde_yaml_ng::Value as Y;
    let mut todo: Vec<(&Y, usize)> = vec![(tree, 1)];
    while let Some((v, depth)) = todo.pop() {
        let v = match v {
            Y::Tagged(t) => &t.value,
            v => v,
        };
        let children: Vec<&Y> = match v {
            Y::Sequence(s) => s.iter().collect(),
            Y::Mapping(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => continue,
        };
        if depth > limits.max_depth {
            return Err(ShapeError::TooDeep {
                limit: limits.max_depth,
            });
        }
        let len = match v {
            Y::Mapping(m) => m.len(),
            _ => children.len(),
        };
        if len > limits.max_len {
            return Err(ShapeError::TooLong {
                len: len as u64,
                limit: limits.max_len,
            });
        }
        todo.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// Any Drover message as JSON, for people (`drover decode`). A signed command
/// is shown with its inner command decoded.
pub fn to_json(bytes: &[u8], content_type: Option<&str>) -> Result<serde_json::Value, CodecError> {
    if let Ok(signed) = decode_limited::<crate::SignedCommand>(bytes, content_type, usize::MAX) {
        if let Ok(cmd) = decode_msgpack::<crate::Command>(&signed.body) {
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
            agent_channel: String::new(),
            protocol_version: crate::signing::PROTOCOL_VERSION,
            watch_revision: String::new(),
            services: vec![],
            services_full: false,
            key_fingerprints: None,
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
            instance_id: String::new(),
            machine_id: String::new(),
            boot_id: String::new(),
            rootd_box_key: None,
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

    /// `{"x": [[...nil...]]}`: `arrays` nested arrays under a map.
    fn nested(arrays: usize) -> Vec<u8> {
        let mut v = b"\x81\xa1x".to_vec();
        v.extend(std::iter::repeat_n(0x91u8, arrays));
        v.push(0xc0);
        v
    }

    #[test]
    fn the_nested_attack_is_refused_before_serde() {
        // The bytes of the report: 1,000 levels in about 1 KB.
        let attack = nested(1000);
        for r in [
            decode::<Heartbeat>(&attack, None).map(|_| ()),
            decode::<serde_json::Value>(&attack, None).map(|_| ()),
            decode_limited::<serde_json::Value>(&attack, None, usize::MAX).map(|_| ()),
            decode_msgpack::<serde_json::Value>(&attack).map(|_| ()),
        ] {
            assert!(
                matches!(
                    r,
                    Err(CodecError::Shape {
                        source: ShapeError::TooDeep { limit: MAX_DEPTH },
                        ..
                    })
                ),
                "{r:?}"
            );
        }
        // Just under the limit decodes; just over does not.
        let v: serde_json::Value = decode(&nested(MAX_DEPTH - 1), None).unwrap();
        assert!(v["x"].is_array());
        assert!(decode::<serde_json::Value>(&nested(MAX_DEPTH), None).is_err());
    }

    #[test]
    fn json_and_yaml_have_the_same_limits() {
        let deep = |n: usize| format!("{{\"x\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(decode_json::<serde_json::Value>(deep(MAX_DEPTH - 1).as_bytes()).is_ok());
        assert!(matches!(
            decode_json::<serde_json::Value>(deep(MAX_DEPTH).as_bytes()),
            Err(CodecError::Shape {
                source: ShapeError::TooDeep { .. },
                ..
            })
        ));
        assert!(matches!(
            decode_json::<serde_json::Value>(deep(5000).as_bytes()),
            Err(CodecError::Shape {
                source: ShapeError::TooDeep { .. },
                ..
            })
        ));
        let yaml = |n: usize| format!("x: {}1{}", "[".repeat(n), "]".repeat(n));
        assert!(decode_yaml::<serde_json::Value>(&yaml(MAX_DEPTH - 1)).is_ok());
        assert!(matches!(
            decode_yaml::<serde_json::Value>(&yaml(MAX_DEPTH)),
            Err(CodecError::Shape {
                source: ShapeError::TooDeep { .. },
                ..
            })
        ));
        // Deeper than the YAML parser's own limit: its error, no crash.
        assert!(decode_yaml::<serde_json::Value>(&yaml(1000)).is_err());
        let big = "a".repeat(MAX_MANIFEST_BYTES + 1);
        assert!(matches!(
            decode_yaml::<serde_json::Value>(&big),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn long_lists_and_lying_lengths() {
        let long: Vec<u8> = vec![1; MAX_COLLECTION_LEN + 1];
        let packed = rmp_serde::to_vec(&long).unwrap();
        assert!(matches!(
            decode::<Vec<u8>>(&packed, None),
            Err(CodecError::Shape {
                source: ShapeError::TooLong { .. },
                ..
            })
        ));
        let ok: Vec<u8> = vec![1; MAX_COLLECTION_LEN];
        assert_eq!(
            decode::<Vec<u8>>(&rmp_serde::to_vec(&ok).unwrap(), None).unwrap(),
            ok
        );
        // An array of 2^32-1 elements in 7 bytes.
        assert!(matches!(
            decode::<Vec<u8>>(b"\xdd\xff\xff\xff\xff\x01\x02", None),
            Err(CodecError::Shape { .. })
        ));
    }
}
