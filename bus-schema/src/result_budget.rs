//! The size budget of a command's structured result (`CommandResult::data`,
//! rootd's `Done` frame), and the one rule for a result over it: the whole
//! data goes to the command's output stream as chunk lines, and the result
//! carries a bounded marker instead.
//!
//! Owns the budget, the marker's shape, the chunking and its inverse. It
//! does not publish anything: rootd sends the chunks as `Output` frames
//! before its final frame, the agent as output lines before the result.
//!
//! The marker (the `data` of a cut result):
//! `{"truncated": true, "bytes": N, "in_output": true, "chunks": K,
//! "preview": P}` where `N` is the size of the full data as compact JSON,
//! the full data is the concatenation of the command's **last** `K` output
//! lines with [`CHUNK_PREFIX`] removed, and `P` is a bounded outline (the
//! small top-level fields as they were; an array or a large field as
//! `{"items": n}` or `{"bytes": n}`).

use serde_json::{json, Map, Value};

/// Largest structured result, in bytes of compact JSON. Chosen well under
/// the bus message limit ([`crate::codec::MAX_MESSAGE_BYTES`], 256 KiB) and
/// rootd's frame limit ([`crate::rootd_proto::MAX_FRAME_BYTES`], 1 MiB), so
/// that a result with its summary and signature always fits both.
pub const MAX_RESULT_DATA_BYTES: usize = 64 * 1024;

/// Largest summary of a result, in bytes (cut at a character boundary).
pub const MAX_SUMMARY_BYTES: usize = 4000;

/// Most bytes of data in one chunk line (the prefix not counted).
pub const CHUNK_BYTES: usize = 16 * 1024;

/// What every chunk line of a moved result starts with.
pub const CHUNK_PREFIX: &str = "[result] ";

/// Top-level fields kept in the preview, at most.
const PREVIEW_FIELDS: usize = 32;
/// A top-level field is kept as it is when its JSON is at most this long.
const PREVIEW_FIELD_BYTES: usize = 256;

/// A result fitted to the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The data to send: the original one, or the marker.
    pub data: Value,
    /// Lines to put on the output stream, in order, before the result
    /// (empty when the data fit).
    pub chunks: Vec<String>,
}

/// Why moved data could not be put back together.
#[derive(Debug, thiserror::Error)]
pub enum ReassembleError {
    #[error("the result is not a cut-result marker")]
    NotCut,
    #[error("the marker names {want} chunks but the output has {have} lines")]
    MissingChunks { want: usize, have: usize },
    #[error("output line {0} is not a result chunk")]
    NotAChunk(usize),
    #[error("the chunks hold {have} bytes, the marker says {want}")]
    WrongSize { want: usize, have: usize },
    #[error("the chunks are not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The size the budget measures: `data` as compact JSON, in bytes.
pub fn measure(data: &Value) -> usize {
    serde_json::to_vec(data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Whether `data` is within the budget and decodable by the receiving side's
/// limits (nesting depth, collection length).
pub fn fits(data: &Value) -> bool {
    if measure(data) > MAX_RESULT_DATA_BYTES {
        return false;
    }
    let bytes = crate::encode(data);
    crate::codec::decode_limited::<Value>(&bytes, None, crate::codec::MAX_MESSAGE_BYTES).is_ok()
}

/// Whether `data` is a marker this module made.
pub fn is_cut(data: &Value) -> bool {
    data.get("truncated") == Some(&Value::Bool(true))
        && data.get("in_output") == Some(&Value::Bool(true))
}

/// Fits `data` to the budget: unchanged when it fits (or is already a
/// marker), else the marker plus the chunk lines holding all of it.
pub fn fit(data: Value) -> Fitted {
    if is_cut(&data) || fits(&data) {
        return Fitted {
            data,
            chunks: Vec::new(),
        };
    }
    let text = serde_json::to_string(&data).unwrap_or_else(|_| "null".into());
    let chunks: Vec<String> = pieces(&text, CHUNK_BYTES)
        .into_iter()
        .map(|p| format!("{CHUNK_PREFIX}{p}"))
        .collect();
    let mut marker = json!({
        "truncated": true,
        "bytes": text.len(),
        "in_output": true,
        "chunks": chunks.len(),
        "preview": preview(&data),
    });
    if !fits(&marker) {
        marker["preview"] = Value::Null;
    }
    Fitted {
        data: marker,
        chunks,
    }
}

/// Cuts `s` at the last character boundary at or before `max` bytes.
pub fn cut_summary(mut s: String) -> String {
    if s.len() > MAX_SUMMARY_BYTES {
        let mut cut = MAX_SUMMARY_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Puts the full data back together from a command's output lines (all of
/// them, in order) and the marker of its result.
pub fn reassemble<S: AsRef<str>>(marker: &Value, lines: &[S]) -> Result<Value, ReassembleError> {
    if !is_cut(marker) {
        return Err(ReassembleError::NotCut);
    }
    let want = marker["chunks"].as_u64().unwrap_or(0) as usize;
    if lines.len() < want {
        return Err(ReassembleError::MissingChunks {
            want,
            have: lines.len(),
        });
    }
    let first = lines.len() - want;
    let mut text = String::new();
    for (i, l) in lines[first..].iter().enumerate() {
        let part = l
            .as_ref()
            .strip_prefix(CHUNK_PREFIX)
            .ok_or(ReassembleError::NotAChunk(first + i))?;
        text.push_str(part);
    }
    let size = marker["bytes"].as_u64().unwrap_or(0) as usize;
    if text.len() != size {
        return Err(ReassembleError::WrongSize {
            want: size,
            have: text.len(),
        });
    }
    Ok(serde_json::from_str(&text)?)
}

/// `s` in pieces of at most `max` bytes, cut at character boundaries.
fn pieces(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// A bounded outline of `data`.
fn preview(data: &Value) -> Value {
    match data {
        Value::Array(a) => json!({ "items": a.len() }),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter().take(PREVIEW_FIELDS) {
                let k: String = k.chars().take(64).collect();
                let small = measure(v) <= PREVIEW_FIELD_BYTES;
                let shown = match v {
                    _ if small => v.clone(),
                    Value::Array(a) => json!({ "items": a.len() }),
                    Value::Object(o) => json!({ "fields": o.len(), "bytes": measure(v) }),
                    _ => json!({ "bytes": measure(v) }),
                };
                out.insert(k, shown);
            }
            Value::Object(out)
        }
        other => json!({ "bytes": measure(other) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_data_is_left_alone() {
        let d = json!({"a": [1, 2, 3]});
        let f = fit(d.clone());
        assert_eq!(f.data, d);
        assert!(f.chunks.is_empty());
    }

    #[test]
    fn large_data_round_trips_through_chunks() {
        let items: Vec<Value> = (0..5000)
            .map(|i| json!({"name": format!("pkg-é-{i}"), "n": i}))
            .collect();
        let d = json!({"manager": "apt", "upgradable": items});
        let f = fit(d.clone());
        assert!(is_cut(&f.data));
        assert!(measure(&f.data) <= MAX_RESULT_DATA_BYTES);
        assert_eq!(f.data["preview"]["manager"], "apt");
        assert_eq!(f.data["preview"]["upgradable"]["items"], 5000);
        assert!(f
            .chunks
            .iter()
            .all(|c| c.len() <= CHUNK_BYTES + CHUNK_PREFIX.len()));
        let mut lines = vec!["some earlier output".to_string()];
        lines.extend(f.chunks);
        assert_eq!(reassemble(&f.data, &lines).unwrap(), d);
        // Fitting a marker again changes nothing.
        assert_eq!(fit(f.data.clone()).data, f.data);
    }

    #[test]
    fn too_deep_data_is_moved_too() {
        let mut d = json!(1);
        for _ in 0..40 {
            d = json!([d]);
        }
        let f = fit(d.clone());
        assert!(is_cut(&f.data));
        assert_eq!(reassemble(&f.data, &f.chunks).unwrap(), d);
    }
}
