//! Every signature on the wire, in one place: the control plane's command
//! signing ([`command`]), the agents' signing of results, refusal reports and
//! enrolment claims ([`agent`]), automation's signing of job submissions
//! ([`automation`]), the control plane's signing of release packages
//! ([`artifact`]), key rotation ([`rotation`]); the protocol version every signed envelope carries
//! ([`PROTOCOL_VERSION`], [`check_version`]) and the refusal vocabulary.
//!
//! The plain messages that travel inside the envelopes stay in
//! `envelope.rs`, `enroll.rs` and `jobs.rs`; this module knows their bytes,
//! not their meaning. It holds no keys of its own and writes nothing but the
//! 0600 secret files it is asked to ([`write_secret_file`]).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod agent;
pub mod artifact;
pub mod automation;
pub mod command;
pub mod host_keys;
pub mod release;
pub mod rotation;

pub use agent::{agent_open, agent_sign, sign_result, AgentSignatureError, AgentSigned};
pub use automation::{open_job, AutomationKey, SignedJob};
pub use command::{write_secret_file, CommandSigner, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key {0} is not a valid Ed25519 key (expected 32 bytes, base64)")]
    BadKey(String),
}

/// Why a command was refused. The `label` is what operators see counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("signature does not verify against the pinned control-plane key")]
    BadSignature,
    #[error("command body is malformed: {0}")]
    Malformed(String),
    #[error("command is addressed to agent {addressed}, this is {me}")]
    WrongAgent { addressed: String, me: String },
    #[error("command expired at {expires_at} (now {now})")]
    Expired { expires_at: i64, now: i64 },
    #[error("command {0} was already seen (replay)")]
    Replayed(String),
    #[error("action {0} is not known here")]
    UnknownAction(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The host's clock disagrees with the control plane's by more than
    /// [`crate::clock::CLOCK_SKEW_TOLERANCE_MS`]; `skew_ms` is positive when
    /// the host is ahead. Not a security refusal: nothing was attacked.
    #[error(
        "clock skew: this host's clock is {} the control plane's, beyond the tolerance of {} s; {}",
        crate::clock::describe_skew(*skew_ms),
        crate::clock::CLOCK_SKEW_TOLERANCE_MS / 1000,
        crate::clock::CLOCK_SKEW_ADVICE
    )]
    ClockSkew { skew_ms: i64 },
}

impl Refusal {
    /// The fixed reason operators see counted.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Refusal::BadSignature => RefusalReason::BadSignature,
            Refusal::Malformed(_) => RefusalReason::Malformed,
            Refusal::WrongAgent { .. } => RefusalReason::WrongAgent,
            Refusal::Expired { .. } => RefusalReason::Expired,
            Refusal::Replayed(_) => RefusalReason::Replayed,
            Refusal::UnknownAction(_) => RefusalReason::UnknownAction,
            Refusal::InvalidParams(_) => RefusalReason::InvalidParams,
            Refusal::ClockSkew { .. } => RefusalReason::ClockSkew,
        }
    }

    pub fn label(&self) -> &'static str {
        self.reason().as_str()
    }
}

/// Why something was refused, as a fixed vocabulary: the reason of a
/// refusal report and of every refusal the control plane records. A reason
/// this version does not know decodes as [`RefusalReason::Other`], so a
/// sender cannot grow the set of groups operators see; free text travels
/// only as a bounded detail ([`MAX_REFUSAL_DETAIL_CHARS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    BadSignature,
    Malformed,
    WrongAgent,
    Expired,
    Replayed,
    UnknownAction,
    InvalidParams,
    /// A job submission signed by a key the control plane does not know.
    UnknownKey,
    /// A job submission by a key whose role may not submit.
    Forbidden,
    /// A job submission whose idempotency key already named another request.
    IdempotencyConflict,
    /// The host's clock is off beyond the tolerance. Not a security
    /// refusal ([`RefusalReason::is_security`]).
    ClockSkew,
    #[serde(other)]
    Other,
}

/// Longest refusal detail kept, in characters; longer text is cut.
pub const MAX_REFUSAL_DETAIL_CHARS: usize = 512;

impl RefusalReason {
    pub const ALL: [RefusalReason; 12] = [
        Self::BadSignature,
        Self::Malformed,
        Self::WrongAgent,
        Self::Expired,
        Self::Replayed,
        Self::UnknownAction,
        Self::InvalidParams,
        Self::UnknownKey,
        Self::Forbidden,
        Self::IdempotencyConflict,
        Self::ClockSkew,
        Self::Other,
    ];

    /// Whether a refusal for this reason may be an attack, and so counts on
    /// the Security page. A skewed clock is an operations fault.
    pub fn is_security(self) -> bool {
        !matches!(self, Self::ClockSkew)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::Malformed => "malformed",
            Self::WrongAgent => "wrong_agent",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::UnknownAction => "unknown_action",
            Self::InvalidParams => "invalid_params",
            Self::UnknownKey => "unknown_key",
            Self::Forbidden => "forbidden",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::ClockSkew => "clock_skew",
            Self::Other => "other",
        }
    }

    /// The reason named `s`; anything unknown is [`RefusalReason::Other`].
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or(Self::Other)
    }
}

/// `detail` cut to [`MAX_REFUSAL_DETAIL_CHARS`] characters, control
/// characters as spaces (it may quote outside bytes: [`crate::text`]).
pub fn bounded_detail(detail: &str) -> String {
    crate::text::storable(detail, MAX_REFUSAL_DETAIL_CHARS)
}

/// The major version of the wire protocol this build speaks. Every signed
/// envelope carries it as `v`; a reader refuses any other value before it
/// looks at the signature. Compatible changes (a new field with a default)
/// keep the number; anything an older reader would misread raises it.
pub const PROTOCOL_VERSION: u16 = 1;

/// The protocol version a heartbeat or enrolment claim means when it does
/// not say (`protocol_version` absent): agents from before the field existed
/// all speak version 1. Used as those fields' `#[serde(default)]`.
pub fn protocol_version_absent() -> u16 {
    1
}

/// A signed envelope of a protocol version this build does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "protocol version {got} is not supported by this {reader} (supports {supported}); {}",
    if .got > .supported { "upgrade this side" } else { "upgrade the sender" }
)]
pub struct VersionError {
    /// The `v` the envelope carried.
    pub got: u16,
    /// [`PROTOCOL_VERSION`] of this build.
    pub supported: u16,
    /// Who is reading, for people: `agent`, `rootd`, `control plane`.
    pub reader: &'static str,
}

/// Accepts exactly [`PROTOCOL_VERSION`]; `reader` names this side in the
/// error.
pub fn check_version(got: u16, reader: &'static str) -> Result<(), VersionError> {
    if got == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(VersionError {
            got,
            supported: PROTOCOL_VERSION,
            reader,
        })
    }
}

/// `SHA256:<unpadded base64>` of some public key bytes.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_are_a_fixed_vocabulary() {
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::parse(r.as_str()), r);
            let back: RefusalReason = crate::decode(&crate::encode(&r), None).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(RefusalReason::parse("made up"), RefusalReason::Other);
        let unknown: RefusalReason = crate::decode(&crate::encode(&"a new reason"), None).unwrap();
        assert_eq!(unknown, RefusalReason::Other);
        assert_eq!(bounded_detail(&"é".repeat(2000)).chars().count(), 512);
    }

    #[test]
    fn only_this_protocol_version_is_accepted() {
        assert_eq!(check_version(PROTOCOL_VERSION, "agent"), Ok(()));
        let newer = check_version(PROTOCOL_VERSION + 1, "control plane").unwrap_err();
        assert_eq!(
            newer.to_string(),
            format!(
                "protocol version {} is not supported by this control plane (supports {}); upgrade this side",
                PROTOCOL_VERSION + 1,
                PROTOCOL_VERSION
            )
        );
        let older = check_version(0, "agent").unwrap_err();
        assert!(older.to_string().ends_with("upgrade the sender"), "{older}");
    }
}
