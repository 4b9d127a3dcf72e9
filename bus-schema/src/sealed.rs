//! Secrets sealed to one host's rootd: its X25519 "box key", the shape a
//! sealed value takes inside a command's params, and the helpers that seal
//! (control plane) and open (rootd) them.
//!
//! A sealed value is a libsodium sealed box (`crypto_box_seal`: an
//! ephemeral X25519 key, XSalsa20-Poly1305) of a small JSON document that
//! binds the value to its command id and field, written into params as
//! `{"sealed": "<base64>"}` in place of the clear value. Only the holder of
//! the host's secret box key (rootd) can open it; the agent relays it.
//! The command's signature covers the sealed text, so a sealed value cannot
//! be swapped without breaking the signature; the binding to command id and
//! field stops a value sealed for one command or field from being opened as
//! part of another.
//!
//! This module does not decide which fields are sensitive (the catalogue's
//! [`crate::catalogue::ActionSpec::sensitive`] and a manifest's sensitive
//! inputs do), does not keep keys on disk (rootd's `box_key` does) and does
//! not pin keys (the control plane does).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use crypto_box::aead::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Length of a box key (public or secret), in bytes.
pub const BOX_KEY_BYTES: usize = crypto_box::KEY_SIZE;
/// Longest sealed value accepted, as base64 text (64 KiB).
pub const MAX_SEALED_CHARS: usize = 64 * 1024;
/// Most sealed values one command may carry.
pub const MAX_SEALED_FIELDS: usize = 64;
/// The one key of a sealed value's object: `{"sealed": "<base64>"}`.
pub const SEALED_KEY: &str = "sealed";
/// What the agent validates in place of a sealed value (it cannot open it):
/// a string that passes the catalogue's rules for a secret text field
/// (12..=128 printable characters). rootd validates the opened value.
pub const SEALED_STAND_IN: &str = "sealed-value-checked-by-rootd";

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedError {
    #[error("box key is not {BOX_KEY_BYTES} bytes of base64: {0}")]
    BadKey(String),
    #[error(
        "field {field}: sealed value is not valid base64 or is over {MAX_SEALED_CHARS} characters"
    )]
    BadEncoding { field: String },
    #[error("field {field}: sealed value does not open with this host's box key (sealed to another host, or altered)")]
    DoesNotOpen { field: String },
    #[error("field {field}: sealed value was made for another command or field")]
    WrongBinding { field: String },
    #[error("field {field} is not sensitive; only sensitive fields may be sealed")]
    NotSensitive { field: String },
    #[error("field {field} is sensitive and must arrive sealed to this host's box key")]
    NotSealed { field: String },
    #[error("too many sealed values (most {MAX_SEALED_FIELDS})")]
    TooMany,
    #[error("sealing failed")]
    Seal,
}

/// A host's public box key: 32 bytes, written as standard base64 (44
/// characters) on the wire and in the database.
#[derive(Clone, PartialEq, Eq)]
pub struct BoxPublicKey(crypto_box::PublicKey);

impl std::fmt::Debug for BoxPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxPublicKey({})", self.to_base64())
    }
}

impl BoxPublicKey {
    /// Parses the base64 text form; anything but exactly 32 bytes is refused.
    pub fn parse(text: &str) -> Result<Self, SealedError> {
        let raw = B64
            .decode(text.trim())
            .map_err(|e| SealedError::BadKey(e.to_string()))?;
        let bytes: [u8; BOX_KEY_BYTES] = raw
            .try_into()
            .map_err(|v: Vec<u8>| SealedError::BadKey(format!("{} bytes", v.len())))?;
        Ok(Self(crypto_box::PublicKey::from_bytes(bytes)))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }
}

/// rootd's secret box key. Never serialised by this crate except through
/// [`BoxSecretKey::to_bytes`] (rootd writes those to a 0600 file).
pub struct BoxSecretKey(crypto_box::SecretKey);

impl BoxSecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self(crypto_box::SecretKey::generate(&mut OsRng))
    }

    pub fn from_bytes(bytes: [u8; BOX_KEY_BYTES]) -> Self {
        Self(crypto_box::SecretKey::from_bytes(bytes))
    }

    pub fn to_bytes(&self) -> [u8; BOX_KEY_BYTES] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> BoxPublicKey {
        BoxPublicKey(self.0.public_key())
    }
}

/// What is inside a sealed box: the value and what it was sealed for.
#[derive(Serialize, Deserialize)]
struct Inner {
    /// The command id.
    c: String,
    /// The field path, segments joined by `/` (`password`, `inputs/token`).
    f: String,
    /// The clear value.
    v: Value,
}

/// The base64 text of a sealed value, if `v` has the sealed shape (an
/// object with exactly the one key `sealed` holding a string).
pub fn sealed_text(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(SEALED_KEY).and_then(Value::as_str),
        _ => None,
    }
}

/// Seals `value` for field `field` of command `command_id` to `key`.
pub fn seal_value(
    key: &BoxPublicKey,
    command_id: &str,
    field: &str,
    value: &Value,
) -> Result<Value, SealedError> {
    let inner = Inner {
        c: command_id.into(),
        f: field.into(),
        v: value.clone(),
    };
    let plain = serde_json::to_vec(&inner).map_err(|_| SealedError::Seal)?;
    let sealed = key
        .0
        .seal(&mut OsRng, &plain)
        .map_err(|_| SealedError::Seal)?;
    let mut m = Map::new();
    m.insert(SEALED_KEY.into(), Value::String(B64.encode(sealed)));
    Ok(Value::Object(m))
}

/// Opens a sealed value made for field `field` of command `command_id`.
pub fn open_value(
    key: &BoxSecretKey,
    command_id: &str,
    field: &str,
    text: &str,
) -> Result<Value, SealedError> {
    let bad = || SealedError::BadEncoding {
        field: field.into(),
    };
    if text.len() > MAX_SEALED_CHARS {
        return Err(bad());
    }
    let raw = B64.decode(text).map_err(|_| bad())?;
    let plain = key.0.unseal(&raw).map_err(|_| SealedError::DoesNotOpen {
        field: field.into(),
    })?;
    let inner: Inner = serde_json::from_slice(&plain).map_err(|_| SealedError::DoesNotOpen {
        field: field.into(),
    })?;
    if inner.c != command_id || inner.f != field {
        return Err(SealedError::WrongBinding {
            field: field.into(),
        });
    }
    Ok(inner.v)
}

/// The sensitive paths of one action: the catalogue's sensitive fields, and
/// for an app install the manifest's sensitive inputs as `inputs/<name>`.
pub fn sensitive_paths(
    spec: &crate::catalogue::ActionSpec,
    manifest: Option<&crate::manifest::Manifest>,
) -> Vec<String> {
    let mut out: Vec<String> = spec.sensitive.iter().map(|f| f.to_string()).collect();
    if let Some(m) = manifest {
        out.extend(
            m.inputs
                .iter()
                .filter(|i| i.is_sensitive())
                .map(|i| format!("inputs/{}", i.name)),
        );
    }
    out
}

/// Nothing secret to protect: absent, null or an empty string.
fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(str::is_empty)
}

/// Every place in `params` a sealed value or a secret may sit: each
/// top-level field, and each entry of an `inputs` object (app manifests).
/// Yields `(path, value)` with paths like `password` or `inputs/token`.
fn slots(params: &mut Value) -> Vec<(String, &mut Value)> {
    let mut out = Vec::new();
    if let Value::Object(top) = params {
        for (k, v) in top.iter_mut() {
            if k == "inputs" && v.is_object() {
                if let Value::Object(inputs) = v {
                    for (name, iv) in inputs.iter_mut() {
                        out.push((format!("inputs/{name}"), iv));
                    }
                }
            } else {
                out.push((k.clone(), v));
            }
        }
    }
    out
}

/// Seals, in a copy of `params`, every non-blank value whose path
/// `is_sensitive` says is sensitive. Returns the sealed params and how many
/// values were sealed.
pub fn seal_params(
    key: &BoxPublicKey,
    command_id: &str,
    params: &Value,
    is_sensitive: impl Fn(&str) -> bool,
) -> Result<(Value, usize), SealedError> {
    let mut out = params.clone();
    let mut n = 0;
    for (path, v) in slots(&mut out) {
        if is_sensitive(&path) && !is_blank(v) {
            n += 1;
            if n > MAX_SEALED_FIELDS {
                return Err(SealedError::TooMany);
            }
            *v = seal_value(key, command_id, &path, v)?;
        }
    }
    Ok((out, n))
}

/// Whether `params` hold any non-blank value at a sensitive path (what
/// would need sealing).
pub fn has_secrets(params: &Value, is_sensitive: impl Fn(&str) -> bool) -> bool {
    let mut copy = params.clone();
    slots(&mut copy)
        .into_iter()
        .any(|(p, v)| is_sensitive(&p) && !is_blank(v))
}

/// Opens, in a copy of `params`, every sealed value. A sealed value at a
/// path `is_sensitive` does not accept, a value that does not open or was
/// sealed for another command or field, and a non-blank clear value at a
/// sensitive path are all refused.
pub fn open_params(
    key: &BoxSecretKey,
    command_id: &str,
    params: &Value,
    is_sensitive: impl Fn(&str) -> bool,
) -> Result<Value, SealedError> {
    let mut out = params.clone();
    let mut n = 0;
    for (path, v) in slots(&mut out) {
        let sensitive = is_sensitive(&path);
        match sealed_text(v) {
            Some(text) => {
                if !sensitive {
                    return Err(SealedError::NotSensitive { field: path });
                }
                n += 1;
                if n > MAX_SEALED_FIELDS {
                    return Err(SealedError::TooMany);
                }
                let text = text.to_string();
                *v = open_value(key, command_id, &path, &text)?;
            }
            None if sensitive && !is_blank(v) => {
                return Err(SealedError::NotSealed { field: path });
            }
            None => {}
        }
    }
    Ok(out)
}

/// A copy of `params` with each sealed value at a sensitive path replaced by
/// [`SEALED_STAND_IN`]: what the agent validates, since it cannot open them.
/// Sealed values elsewhere stay as they are (and fail validation).
pub fn stand_in(params: &Value, is_sensitive: impl Fn(&str) -> bool) -> Value {
    let mut out = params.clone();
    for (path, v) in slots(&mut out) {
        if is_sensitive(&path) && sealed_text(v).is_some() {
            *v = Value::String(SEALED_STAND_IN.into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pw(p: &str) -> bool {
        p == "password" || p == "inputs/token"
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_value() {
        let sk = BoxSecretKey::generate();
        let pk = BoxPublicKey::parse(&sk.public_key().to_base64()).unwrap();
        let params = json!({"user": "app", "password": "correct horse battery"});
        let (sealed, n) = seal_params(&pk, "c1", &params, pw).unwrap();
        assert_eq!(n, 1);
        assert_eq!(sealed["user"], "app");
        assert!(sealed_text(&sealed["password"]).is_some());
        assert!(!sealed.to_string().contains("correct horse"));
        assert_eq!(open_params(&sk, "c1", &sealed, pw).unwrap(), params);
        let app = json!({"app": "hello", "inputs": {"token": "s3cret", "name": "x"}});
        let (sealed, n) = seal_params(&pk, "c2", &app, pw).unwrap();
        assert_eq!(n, 1);
        assert_eq!(open_params(&sk, "c2", &sealed, pw).unwrap(), app);
        assert_eq!(
            stand_in(&sealed, pw)["inputs"]["token"],
            json!(SEALED_STAND_IN)
        );
    }

    #[test]
    fn wrong_key_command_field_and_clear_secrets_are_refused() {
        let sk = BoxSecretKey::generate();
        let other = BoxSecretKey::generate();
        let params = json!({"password": "correct horse battery"});
        let (sealed, _) = seal_params(&sk.public_key(), "c1", &params, pw).unwrap();
        assert!(matches!(
            open_params(&other, "c1", &sealed, pw),
            Err(SealedError::DoesNotOpen { .. })
        ));
        assert!(matches!(
            open_params(&sk, "c2", &sealed, pw),
            Err(SealedError::WrongBinding { .. })
        ));
        assert!(matches!(
            open_params(&sk, "c1", &params, pw),
            Err(SealedError::NotSealed { .. })
        ));
        let moved = json!({"user": sealed["password"].clone()});
        assert!(matches!(
            open_params(&sk, "c1", &moved, pw),
            Err(SealedError::NotSensitive { .. })
        ));
        let garbage = json!({"password": {"sealed": "AAAA"}});
        assert!(matches!(
            open_params(&sk, "c1", &garbage, pw),
            Err(SealedError::DoesNotOpen { .. })
        ));
        let not_b64 = json!({"password": {"sealed": "***"}});
        assert!(matches!(
            open_params(&sk, "c1", &not_b64, pw),
            Err(SealedError::BadEncoding { .. })
        ));
        assert!(BoxPublicKey::parse("AAAA").is_err());
        assert!(!has_secrets(&json!({"password": ""}), pw));
        assert!(has_secrets(&params, pw));
    }
}
