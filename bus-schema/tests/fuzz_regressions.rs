//! Regression tests for the decoders the fuzz targets (`fuzz/`) exercise:
//! every input here is checked in as bytes and must be refused with a typed
//! error (or decoded) without a panic, a stack overflow, unbounded memory or
//! unbounded time. Inputs the fuzzer found are named after their target;
//! the others pin each explicit decoding limit at its edge.
//!
//! Owns no fuzzing itself (that is `scripts/fuzz.sh`) and no limit (those
//! are `bus_schema::codec`'s, `rootd_proto`'s and `selector`'s).

use bus_schema::codec::{self, CodecError, Limits, MAX_MANIFEST_BYTES};
use bus_schema::manifest::{Manifest, ManifestError};
use bus_schema::rootd_proto::{self, RootRequest, MAX_FRAME_BYTES};
use bus_schema::selector::{Selector, SelectorError, MAX_SELECTOR_BYTES};
use bus_schema::shape::ShapeError;
use bytes::BytesMut;
use tokio_util::codec::Decoder;

fn manifest(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, std::path::Path::new("test/manifest.yml"))
}

/// "Billion laughs": nine levels of aliases, each repeating the one below
/// nine times, expand to 9^9 scalars from under 1 KB of YAML. Refused, in
/// bounded time and memory, as a typed error.
#[test]
fn yaml_alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    assert!(text.len() < 1024);
    let r = codec::decode_yaml::<serde_json::Value>(&text);
    assert!(r.is_err(), "an alias bomb decoded");
    assert!(matches!(
        manifest(&text),
        Err(ManifestError::Invalid { .. })
    ));
}

/// A manifest one byte over the limit is refused before the YAML parser
/// sees it; the same text nested too deep is refused by the depth limit.
#[test]
fn manifest_size_and_depth_limits() {
    let over = format!("id: x\n#{}", "a".repeat(MAX_MANIFEST_BYTES));
    assert!(matches!(
        codec::decode_yaml::<serde_json::Value>(&over),
        Err(CodecError::TooLarge { .. })
    ));
    let deep = format!("id: {}x{}", "[".repeat(40), "]".repeat(40));
    assert!(matches!(
        codec::decode_yaml::<serde_json::Value>(&deep),
        Err(CodecError::Shape {
            source: ShapeError::TooDeep { .. },
            ..
        })
    ));
    assert!(matches!(
        manifest(&deep),
        Err(ManifestError::Invalid { .. })
    ));
}

/// The rootd socket: a header declaring more than the frame limit is an
/// error from the framing codec (no allocation of the declared size), and
/// a frame within it still goes through the depth limit.
#[test]
fn rootd_frame_limits() {
    let mut codec = rootd_proto::codec();
    let mut huge = BytesMut::from(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes()[..]);
    huge.extend_from_slice(b"\x80");
    assert!(codec.decode(&mut huge).is_err());

    // A 4 GiB declaration in a 4-byte header.
    let mut codec = rootd_proto::codec();
    let mut lying = BytesMut::from(&b"\xff\xff\xff\xff\x81"[..]);
    assert!(codec.decode(&mut lying).is_err());

    // `{"type": [[[[...]]]]}` 1,000 deep inside one valid frame.
    let mut body = b"\x81\xa4type".to_vec();
    body.extend(std::iter::repeat_n(0x91u8, 1000));
    body.push(0xc0);
    let mut framed = BytesMut::from(&(body.len() as u32).to_be_bytes()[..]);
    framed.extend_from_slice(&body);
    let mut codec = rootd_proto::codec();
    let frame = codec.decode(&mut framed).unwrap().unwrap();
    assert!(matches!(
        codec::decode_limited::<RootRequest>(&frame, None, MAX_FRAME_BYTES),
        Err(CodecError::Shape {
            source: ShapeError::TooDeep { .. },
            ..
        })
    ));
}

/// Selectors: the text form, the term count and each value are bounded,
/// each with its own typed error; JSON selectors share the checks.
#[test]
fn selector_limits() {
    let long = "a".repeat(MAX_SELECTOR_BYTES + 1);
    assert!(matches!(
        Selector::parse(&long),
        Err(SelectorError::TooLong { .. })
    ));
    // Many short terms under the text limit: the term limit refuses them.
    let terms = ["id:a"; 600].join(",");
    assert!(terms.len() <= MAX_SELECTOR_BYTES);
    assert!(matches!(
        Selector::parse(&terms),
        Err(SelectorError::TooLong { .. })
    ));
    // A pathological glob runs in bounded steps (pattern × name).
    let s = Selector::parse(&format!("label:k={}b", "*a".repeat(100))).unwrap();
    assert_eq!(s.labels["k"].len(), 201);
    assert!(!bus_schema::selector::wildcard_match(
        &s.labels["k"],
        &"a".repeat(200),
        false
    ));
}

/// JSON from outside with nesting deeper than the limit but within
/// serde_json's own (128): refused by ours first, typed.
#[test]
fn json_depth_is_ours_not_the_parsers() {
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    assert!(matches!(
        codec::decode_with::<serde_json::Value>(
            deep.as_bytes(),
            Some(codec::CONTENT_TYPE_JSON),
            Limits::MESSAGE
        ),
        Err(CodecError::Shape {
            source: ShapeError::TooDeep { .. },
            ..
        })
    ));
}

/// Reads an input the fuzzer found, checked in under `tests/fuzz_inputs/`.
fn found(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_inputs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// envelope_json: a JSON number with more digits than an f64 holds
/// (`1.446744073709500006`) decoded to a float one step off the nearest,
/// so the value drifted each time a message was decoded and sent on as
/// JSON. JSON numbers now decode to the nearest f64 (serde_json's
/// `float_roundtrip`), and re-encoding is stable.
#[test]
fn envelope_json_float_drift() {
    let input = found("envelope_json-float-drift");
    // The first byte is the target's type selector (17: any JSON value).
    let (which, text) = input.split_first().unwrap();
    assert_eq!(*which, 17);
    let once: serde_json::Value = codec::decode_json(text).unwrap();
    let again: serde_json::Value = codec::decode_json(&serde_json::to_vec(&once).unwrap()).unwrap();
    assert_eq!(again, once);
    // The nearest f64, as Rust's own (correctly rounded) parser finds it.
    let nearest: f64 = "1.446744073709500006".parse().unwrap();
    assert_eq!(once["u"].as_f64(), Some(nearest));
}
