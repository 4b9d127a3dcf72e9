//! Every bus envelope decoded from JSON (a message sent with
//! `Content-Type: application/json`, and API bodies): the first byte picks
//! the type, the rest is the text. Checks no panic, typed refusals and a
//! stable round trip. MessagePack is `envelope_msgpack`'s.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((which, rest)) = drover_fuzz::split(data) {
        drover_fuzz::envelope(which, rest, drover_fuzz::Format::Json);
    }
});
