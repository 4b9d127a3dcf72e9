//! Every bus envelope decoded from MessagePack (the default wire format):
//! the first byte picks the type, the rest is the message. Checks that
//! nothing panics, that refusals are typed errors, and that whatever
//! decodes re-encodes to stable bytes. Does not cover JSON
//! (`envelope_json`) or what sits behind a signature (`signed_*`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((which, rest)) = drover_fuzz::split(data) {
        drover_fuzz::envelope(which, rest, drover_fuzz::Format::MessagePack);
    }
});
