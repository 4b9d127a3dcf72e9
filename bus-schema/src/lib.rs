//! Drover's wire contract.
//!
//! Every other crate speaks to the bus through this one: subject names
//! ([`subjects`]), the envelopes that travel on them ([`envelope`]), how they
//! are encoded ([`codec`]), how commands are signed ([`signing`]), the frames
//! between agent and rootd ([`rootd_proto`]), how an action ended
//! ([`outcome`]) and the catalogue of actions
//! ([`catalogue`]). Nothing outside this crate spells a subject string.
//!
//! It also holds the little that the agent and rootd share beyond the wire,
//! because neither depends on the other: the clock checks ([`clock`]),
//! storable host text ([`text`]) and the daemons' resident memory
//! ([`resident`]).

pub mod catalogue;
pub mod clock;
pub mod codec;
pub mod credentials;
pub mod enroll;
pub mod envelope;
pub mod jobs;
pub mod manifest;
pub mod outcome;
pub mod resident;
pub mod result_budget;
pub mod rootd_proto;
pub mod sealed;
pub mod selector;
pub mod shape;
pub mod signing;
pub mod subjects;
pub mod text;

pub use codec::{decode, encode, CodecError, CONTENT_TYPE_JSON, MAX_MESSAGE_BYTES};
pub use envelope::*;
pub use outcome::Outcome;
pub use signing::{CommandSigner, Refusal, RefusalReason, SigningError, VerifyingKey};

/// Milliseconds since the Unix epoch: the one clock format on the wire.
/// Includes the test-only offset ([`clock::TEST_CLOCK_OFFSET_ENV`]).
pub fn now_ms() -> i64 {
    clock::now_ms()
}
